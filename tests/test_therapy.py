"""Therapy layer (issue 6, part a): dosing and the blood compartment, products, lots/QC/cold chain,
IL-15 modes, CAR costimulation presets, the iCasp9 switch, and the three scenarios' claims."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest

from sim import api
from sim.config import ScenarioError, coerce, load_scenario, parameter_table_markdown
from sim.kernels import step as K
from sim.model import TumorImmuneModel
from sim.therapy.blood import B, E, O, X, BloodCompartment
from sim.therapy.dosing import lymphodepletion_il15, superagonist_il15
from sim.scenario.presets import COSTIM, PRODUCTS
from sim.therapy.products import cold_chain_factors

ROOT = Path(__file__).resolve().parents[1]
SCEN = ROOT / "scenarios"

# a small tissue: 30 × 30 sites, a 200-cell nodule
SMALL = {"domain": {"size_um": [600.0, 600.0]}, "tumor": {"init": {"count": 200}},
         "output": {"snapshots": False, "figure": False}, "time": {"snapshot_every_h": 0}}


def cfg(**blocks) -> dict:
    """SMALL plus nested blocks (merged one level deep)."""
    out = copy.deepcopy(SMALL)
    for k, v in blocks.items():
        out[k] = {**out.get(k, {}), **v} if isinstance(v, dict) else v
    return out


def run_steps(m: TumorImmuneModel, days: float) -> None:
    m.run_days(days)


# ----------------------------------------------------------------------------- blood compartment
def test_blood_mass_balance_and_boluses():
    """Without tumor-bed entry or IL-15, blood + organs decay exactly with the half-life; boluses add."""
    t_half = 3 * 1440.0
    bc = BloodCompartment(infusions=[(0.0, 1e6), (2 * 1440.0, 5e5)], k_out=math.log(2) / 60, k_back=math.log(2) / 1440,
                          k_inf=0.0, half_life_min=t_half, il15_extension=3.0, il15_ec50=0.5, prolif_rate=0.0,
                          max_divisions=4, il15=lambda t: 0.0)
    for t in (0.5 * 1440, 1.9 * 1440, 3 * 1440, 10 * 1440):
        y = bc.state(t)
        expect = 1e6 * 0.5 ** (t / t_half) + (5e5 * 0.5 ** ((t - 2880) / t_half) if t >= 2880 else 0.0)
        assert y[B] + y[O] == pytest.approx(expect, rel=1e-4)
        assert y[E] == 0.0
    # distribution: a day after the bolus nearly all cells have left the blood for the organs
    y = bc.state(1440.0)
    assert y[B] < 0.1 * (y[B] + y[O])


def test_blood_entry_il15_and_suicide_scale():
    """Tumor-bed entry is ∝ blood level; IL-15 prolongs circulation; scale() removes cells from then on."""
    kw = dict(infusions=[(0.0, 1e6)], k_out=math.log(2) / 60, k_back=math.log(2) / 1440, k_inf=0.5 / 1440,
              half_life_min=3 * 1440.0, il15_extension=3.0, il15_ec50=0.5, prolif_rate=0.0, max_divisions=0)
    low = BloodCompartment(il15=lambda t: 0.0, **kw)
    high = BloodCompartment(il15=lambda t: 2.0, **kw)
    t = 7 * 1440.0
    assert high.state(t)[B] > 2 * low.state(t)[B]
    assert high.entered(0, t) > low.entered(0, t) > 0
    y1 = low.state(1440.0)
    low.scale(1440.0, 0.1)
    y2 = low.state(1440.0 + 1e-6)
    assert y2[B] + y2[O] == pytest.approx(0.1 * (y1[B] + y1[O]), rel=1e-3)
    assert y2[E] == pytest.approx(y1[E], rel=1e-6)


def test_blood_entries_evaluated_ahead_are_the_same_numbers():
    """entered(t0, t1, ahead=dt) evaluates the coming steps' states together (memo); every value equals
    the one evaluated on demand, across infusions, 7-day segments and a suicide-switch scale()."""
    kw = dict(infusions=[(0.0, 1e6), (4 * 1440.0, 5e5)], k_out=math.log(2) / 60, k_back=math.log(2) / 1440,
              k_inf=0.5 / 1440, half_life_min=3 * 1440.0, il15_extension=3.0, il15_ec50=0.5, prolif_rate=1e-3,
              max_divisions=4, il15=lambda t: 1.0 + math.sin(t / 500.0), chunk_min=1440.0)
    plain, ahead = BloodCompartment(**kw), BloodCompartment(**kw)
    dt, t, got, want = 2.0, 0.0, [], []
    for k in range(6000):  # 8.3 days: segments end every day, at the second infusion and at the scale()
        if k == 2500:
            plain.scale(t, 0.3)
            ahead.scale(t, 0.3)
        want.append((plain.entered(t, t + dt), plain.divisions_so_far(t)))
        got.append((ahead.entered(t, t + dt, ahead=dt), ahead.divisions_so_far(t)))
        t += dt
    assert got == want and len(ahead._segs) == len(plain._segs) >= 9


def test_blood_expansion_is_capped_by_the_division_budget():
    """IL-15-driven expansion in blood stops once the lineage budget (2^max_divisions − 1) is spent."""
    bc = BloodCompartment(infusions=[(0.0, 1e6)], k_out=math.log(2) / 60, k_back=math.log(2) / 1440, k_inf=0.0,
                          half_life_min=1e9, il15_extension=0.0, il15_ec50=0.5, prolif_rate=2.0 / 1440,
                          max_divisions=2, il15=lambda t: 1e3)
    y = bc.state(30 * 1440.0)
    assert y[X] == pytest.approx(3e6, rel=1e-3) and y[B] + y[O] == pytest.approx(4e6, rel=1e-3)
    assert bc.divisions_so_far(30 * 1440.0) == 2


def test_lymphodepletion_and_superagonist_profiles():
    ld = coerce({"dosing": {"lymphodepletion": {"regimen": "cy_flu", "start_day": -5, "duration_days": 7,
                                                "il15_rise_ng_ml": 0.5, "decay_half_life_days": 3}}}).dosing.lymphodepletion
    assert lymphodepletion_il15(ld, 0.0) == 0.5 and lymphodepletion_il15(ld, 5.0) == pytest.approx(0.25)
    sa = coerce({"nk": {"il15": {"mode": "exogenous", "superagonist": {"doses": [{"day": 1, "dose_ug_kg": 10}]}}}}).nk.il15.superagonist
    assert superagonist_il15(sa, 0.9) == 0.0
    ka, ke = math.log(2) / sa.absorption_half_life_h, math.log(2) / sa.elimination_half_life_h
    t_max_h = math.log(ka / ke) / (ka - ke)
    peak = superagonist_il15(sa, 1 + t_max_h / 24)
    assert peak > superagonist_il15(sa, 1 + (t_max_h - 3) / 24) and peak > superagonist_il15(sa, 1 + (t_max_h + 3) / 24)
    assert superagonist_il15(sa, 20) < 0.01 * peak


# ----------------------------------------------------------------------------- dosing in the model
def test_infusion_cells_arrive_at_vessels_deterministically():
    c = cfg(nk={"dose": {"cells": 0}}, dosing={"infusions": [{"day": 0, "dose": 1e6}], "tissue_fraction": 1e-4,
                                                "vessels": {"count": 5}})
    runs = []
    for _ in range(2):
        m = TumorImmuneModel(c, rng=3)
        assert m.therapy.vessels.size == 5 and (m.occ[m.therapy.vessels] < 0).all()
        m.run_days(0.5)
        runs.append((m.therapy.arrived, m.nk.site[: m.nk.used].copy()))
    assert runs[0][0] > 20 and runs[0][0] == runs[1][0]
    assert np.array_equal(runs[0][1], runs[1][1])


def test_infusions_replace_the_default_initial_dose_unless_set():
    inf = {"infusions": [{"day": 1, "dose": 1e6}]}
    assert TumorImmuneModel(cfg(dosing=inf), rng=0).nk_live() == 0
    assert TumorImmuneModel(cfg(dosing=inf, nk={"dose": {"cells": 40}}), rng=0).nk_live() == 40


def test_defaults_leave_old_scenarios_unchanged():
    """No dosing/product options: no hook registered, no random draws (same result as before)."""
    m = TumorImmuneModel(SMALL, rng=1)
    assert [h for h in m.hooks if not getattr(h, "monitor", False)] == [] and m.therapy.blood is None  # toxicity monitor only observes
    assert np.all(m.nk.car[: m.nk.used] == m.p_nk.car_expression)


# ----------------------------------------------------------------------------- products
def test_presets_resolve_and_explicit_values_win():
    m = TumorImmuneModel(cfg(product={"type": "nk92"}, nk={"persistence": {"half_life_days": 3.0}}), rng=0)
    assert m.config.nk.persistence.half_life_days == 3.0  # explicit wins
    assert m.config.nk.receptors.cd16 == 0.0  # preset
    assert m.config.nk.il15.max_divisions == 0 and m.p_nk.prolif_rate == 0.0
    # the same through a Scenario object plus an override (coerce keeps "unset" fields unset)
    sc = coerce(cfg(product={"type": "cord_blood"}))
    m2 = TumorImmuneModel(sc, rng=0, **{"product.type": "ipsc"})
    assert m2.config.nk.receptors.cd16 == PRODUCTS["ipsc"].cd16.value
    assert m2.car_positive_fraction == PRODUCTS["ipsc"].car_fraction.value


def test_car_negative_cells_do_not_car_kill():
    """CAR transduction < 1: CAR− cells carry car = 0 in the per-cell array and kill only innately."""
    m = TumorImmuneModel(cfg(product={"type": "peripheral_blood", "car_fraction": 0.5}, nk={"dose": {"cells": 400}}), rng=2)
    car = m.nk.car[: m.nk.used]
    assert set(np.unique(car)) == {0.0, m.p_nk.car_expression}
    assert 0.4 < (car > 0).mean() < 0.6
    kills = {}
    for frac in (0.0, 1.0):  # stress ligands high enough for innate (NKG2D) kills
        m = TumorImmuneModel(cfg(product={"car_fraction": frac, "release": {"on_fail": "infuse"}}, nk={"dose": {"cells": 200}},
                                 tumor={"init": {"count": 200}, "nkg2d_ligand": {"mean": 2.0, "cv": 0.3}}), rng=2)
        m.run_days(0.5)
        kills[frac] = (int(m.counters[K.C_KILL0]), int(m.counters[K.C_KILL0 + 1]))
    assert kills[0.0][0] == 0 and kills[0.0][1] > 0 and kills[1.0][0] > 0


def test_nk92_does_not_proliferate_and_does_no_adcc():
    """Irradiated NK-92: no division even with IL-15; CD16-negative, so antibody coating gives no ADCC."""
    base = cfg(nk={"dose": {"cells": 150}, "il15": {"mode": "secreted"}},
               tumor={"init": {"count": 200}, "antigen": {"mean": 0.0, "negative_fraction": 1.0}})
    kills = {}
    for kind in ("nk92", "peripheral_blood"):
        m = TumorImmuneModel(cfg(**base, product={"type": kind, "car_fraction": 1.0}), rng=4)
        m.tumor.coat[: m.tumor.used] = 1.0  # as if an antibody coated every tumor cell
        m.run_days(0.5)
        kills[kind] = int(m.counters[K.C_KILL0 + 2])
        if kind == "nk92":
            assert m.counters[K.C_NKBIRTH] == 0
        else:
            assert m.counters[K.C_NKBIRTH] > 0
    assert kills["nk92"] == 0 and kills["peripheral_blood"] > 0


def test_lots_qc_and_cold_chain():
    prod = {"type": "peripheral_blood", "lot": {"enabled": True, "potency_cv": 0.3},
            "release": {"min_viability": 0.85, "min_car_fraction": 0.3, "on_fail": "reject"}}
    c = cfg(product=prod, nk={"dose": {"cells": 50}}, dosing={"infusions": [{"day": 0, "dose": 1e6}]})
    lots = [TumorImmuneModel(c, rng=s).therapy for s in range(12)]
    assert len({round(t.lot.potency, 6) for t in lots}) == 12  # each seed draws its own lot
    failed = [t for t in lots if not t.lot.passed_qc]
    passed = [t for t in lots if t.lot.passed_qc]
    assert failed and passed
    for t in failed:  # rejected: no cells in tissue or blood
        assert not t.released and t.model.nk_live() == 0
        assert all(i["viable_cells_infused"] == 0 for i in t.infused)
    for t in passed:
        assert t.model.nk_live() == 50 and t.infused[0]["viable_cells_infused"] > 0
    # infuse-anyway policy gives the failed lots
    c2 = cfg(product={**prod, "release": {**prod["release"], "on_fail": "infuse"}}, nk={"dose": {"cells": 50}})
    t = TumorImmuneModel(c2, rng=lots.index(failed[0])).therapy
    assert not t.lot.passed_qc and t.released and t.model.nk_live() == 50


def test_cold_chain_excursion_lowers_viable_dose_and_potency():
    ok = coerce({"product": {"cold_chain": {"cryopreserved": True, "transport_h": 24}}}).product.cold_chain
    bad = coerce({"product": {"cold_chain": {"cryopreserved": True, "transport_h": 24,
                                             "excursions": [{"duration_h": 2, "temperature_c": -60}]}}}).product.cold_chain
    (v_ok, p_ok), (v_bad, p_bad) = cold_chain_factors(ok), cold_chain_factors(bad)
    assert v_bad < v_ok < 1 and p_bad < p_ok < 1
    doses = []
    for cc in (ok, bad):
        c = cfg(product={"type": "cord_blood", "cold_chain": cc.model_dump()}, dosing={"infusions": [{"day": 0, "dose": 1e6}]})
        th = TumorImmuneModel(c, rng=0).therapy
        doses.append((th.infused[0]["viable_cells_infused"], th.model.p_nk.half_activation))
    assert doses[1][0] < doses[0][0]  # fewer viable cells
    assert doses[1][1] > doses[0][1]  # lower potency = higher half-activation


# ----------------------------------------------------------------------------- armoring and engineering
def test_membrane_bound_il15_extends_persistence_without_field():
    half = {}
    for mode in ("none", "membrane_bound"):
        m = TumorImmuneModel(cfg(nk={"dose": {"cells": 300}, "persistence": {"half_life_days": 0.5},
                                     "il15": {"mode": mode, "proliferation_per_day": 0.0}}), rng=5)
        m.run_days(1.0)
        half[mode] = m.observed_nk_half_life_days()
        assert m.fields.mean("il15") == 0.0  # nothing secreted into the field
    assert half["membrane_bound"] > 1.5 * half["none"]


def test_exogenous_superagonist_and_lymphodepletion_raise_il15_background():
    sa = {"mode": "exogenous", "superagonist": {"doses": [{"day": 0.0, "dose_ug_kg": 10}]}}
    m = TumorImmuneModel(cfg(nk={"dose": {"cells": 10}, "il15": sa}), rng=0)
    m.run_days(0.5)
    assert m.fields.background[2] > 0.1 and m.fields.mean("il15") == pytest.approx(m.fields.background[2])
    ld = TumorImmuneModel(cfg(dosing={"lymphodepletion": {"regimen": "cy_flu"}}), rng=0)
    ld.step()
    assert ld.fields.background[2] == pytest.approx(0.5)


def test_lymphodepletion_prolongs_nk_persistence():
    half = {}
    for regimen in ("none", "cy_flu"):
        m = TumorImmuneModel(cfg(nk={"dose": {"cells": 300}, "persistence": {"half_life_days": 0.5},
                                     "il15": {"proliferation_per_day": 0.0}},
                                 dosing={"lymphodepletion": {"regimen": regimen}}), rng=5)
        m.run_days(1.0)
        half[regimen] = m.observed_nk_half_life_days()
    assert half["cy_flu"] > 1.5 * half["none"]  # IL-15 0.5 ng/mL = EC50: t½ × (1 + 3 · 0.5) = 2.5×


def test_costim_presets_scale_activation_and_persistence():
    ref = TumorImmuneModel(SMALL, rng=0).p_nk
    for name, pre in COSTIM.items():
        p = TumorImmuneModel(cfg(nk={"car_design": {"costim": name}}), rng=0).p_nk
        assert p.half_activation == pytest.approx(ref.half_activation / pre.activation.value)
        assert p.half_life_min == pytest.approx(ref.half_life_min * pre.persistence.value)
    p = TumorImmuneModel(cfg(nk={"car_design": {"costim": "2b4", "activation_multiplier": 2.0}}), rng=0).p_nk
    assert p.half_activation == pytest.approx(ref.half_activation / 2.0)


def test_icasp9_removes_cells_on_day_and_on_ifng_threshold():
    m = TumorImmuneModel(cfg(nk={"dose": {"cells": 300}, "suicide": {"enabled": True, "trigger_day": 0.25, "kill_fraction": 0.9}},
                             dosing={"infusions": [{"day": 0, "dose": 1e6}]}), rng=6)
    m.run_days(0.24)
    before, blood_before = m.nk_live(), m.therapy.blood.blood(m.now_min)
    m.run_days(0.02)
    s = m.therapy.summary()["suicide"]
    assert s["trigger"] == "day" and s["killed_tissue"] > 0.8 * before
    assert m.nk_live() < 0.2 * before + 10
    assert m.therapy.blood.blood(m.now_min) < 0.15 * blood_before
    t = TumorImmuneModel(cfg(nk={"dose": {"cells": 300}, "suicide": {"enabled": True, "ifng_threshold_ng_ml": 1e-3}}), rng=6)
    t.run_days(0.5)
    assert t.therapy.suicide["trigger"] == "ifng" and t.nk_live() < 100


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("raw, path", [
    ({"dosing": {"infusions": [{"day": 0, "dose": -1}]}}, "dosing.infusions.0.dose"),
    ({"dosing": {"infusions": [{"day": 3, "dose": 1}, {"day": 1, "dose": 1}]}}, "dosing"),
    ({"dosing": {"weight_kg": 0}}, "dosing.weight_kg"),
    ({"dosing": {"infiltration": {"indication": "liquid"}}}, "dosing.infiltration.indication"),
    ({"dosing": {"lymphodepletion": {"regimen": "cy"}}}, "dosing.lymphodepletion.regimen"),
    ({"dosing": {"vessels": {"count": 0}}}, "dosing.vessels.count"),
    ({"product": {"type": "tcell"}}, "product.type"),
    ({"product": {"cold_chain": {"q10": 0.5}}}, "product.cold_chain.q10"),
    ({"product": {"lot": {"potency_cv": -1}}}, "product.lot.potency_cv"),
    ({"product": {"release": {"on_fail": "maybe"}}}, "product.release.on_fail"),
    ({"nk": {"il15": {"mode": "exogenous"}}}, "nk.il15"),
    ({"nk": {"car_design": {"costim": "cd28"}}}, "nk.car_design.costim"),
    ({"nk": {"suicide": {"enabled": True}}}, "nk.suicide"),
])
def test_bad_values_name_the_path(raw, path):
    with pytest.raises(ScenarioError) as e:
        coerce(raw)
    assert e.value.path == path


def test_impossible_lot_cv_is_a_scenario_error():
    with pytest.raises(ScenarioError) as e:
        TumorImmuneModel(cfg(product={"type": "cord_blood", "lot": {"enabled": True, "viability_cv": 0.9}}), rng=0)
    assert e.value.path == "product.lot.viability_cv"


def test_preset_tables_are_in_the_parameter_docs():
    text = parameter_table_markdown()
    for name in list(PRODUCTS) + list(COSTIM):
        assert f"| `{name}` |" in text
    assert "`dosing.infusions[].dose`" in text
    assert (ROOT / "docs" / "parameters.md").read_text(encoding="utf-8") == text


# ----------------------------------------------------------------------------- scenarios
def test_cd19_dose_levels_more_dose_more_kills():
    kills = []
    for dose in (1e5, 1e6, 1e7):
        r = api.run(SCEN / "cd19_lymphoma_cb_il15.yaml", days=1.5,
                    overrides={"dosing.infusions": [{"day": 0, "dose": dose}], "output.snapshots": False, "output.figure": False})
        kills.append(r.metrics["kills_car"] + r.metrics["kills_innate"])
        th = r.summary["therapy"]
        assert th["lot"]["product"] == "cord_blood" and th["il15_systemic_now_ng_ml"] > 0.4  # Cy/Flu
    assert kills[0] < kills[1] < kills[2]
    assert kills[2] > 3 * kills[0]


def test_split_doses_keep_nk_longer():
    late = {}
    for arm, inf in (("single", [{"day": 0, "dose": 3e6}]), ("split", None)):
        ov = {"output.snapshots": False, "output.figure": False}
        if inf:
            ov["dosing.infusions"] = inf
        ts = api.run(SCEN / "multi_dose_schedule.yaml", overrides=ov).timeseries
        late[arm] = ts.loc[ts.time_h >= 9 * 24, "nk_live"].mean()
        if arm == "single":
            early_single = ts.loc[ts.time_h <= 3 * 24, "nk_live"].max()
        else:
            early_split = ts.loc[ts.time_h <= 3 * 24, "nk_live"].max()
            blood = ts.set_index("time_h")["nk_blood"]
            assert blood[102.0] > 2 * blood[90.0] and blood[198.0] > 2 * blood[186.0]  # the day-4 and day-8 infusions
    assert late["split"] > 1.1 * late["single"]
    assert early_single > early_split  # the bolus gives the higher early peak


def test_manufacturing_variability_spread_and_rejection():
    sc = load_scenario(SCEN / "manufacturing_variability.yaml")
    outcomes = []
    for seed in range(1, 7):
        r = api.run(sc, seed=seed, days=1.0, overrides={"output.snapshots": False, "output.figure": False})
        lot = r.summary["therapy"]["lot"]
        infused = r.summary["therapy"]["dosing"]["infusions"][0]["viable_cells_infused"]
        if not lot["passed_qc"]:
            assert infused == 0 and r.metrics["kills_car"] == 0 and r.summary["therapy"]["dosing"]["arrived_in_tissue"] == 0
        else:
            assert infused > 0 and lot["cold_chain_survival"] < 0.8
            outcomes.append(r.metrics["kills_car"])
    assert len(outcomes) >= 2 and max(outcomes) > min(outcomes)  # lots spread the outcome
    assert len(outcomes) < 6  # some lots were rejected


def test_checkpoint_resume_with_dosing_lot_and_suicide(tmp_path):
    """Lot, vessels, blood ODE and the fired suicide switch survive a checkpoint bit-identically."""
    from sim import checkpoint

    c = cfg(product={"type": "cord_blood", "lot": {"enabled": True}, "release": {"on_fail": "infuse"}},
            nk={"dose": {"cells": 50}, "il15": {"mode": "membrane_bound"},
                "suicide": {"enabled": True, "trigger_day": 0.2, "kill_fraction": 0.5}},
            dosing={"infusions": [{"day": 0, "dose": 1e6}, {"day": 0.4, "dose": 1e6}],
                    "lymphodepletion": {"regimen": "cy_flu"}})
    m = TumorImmuneModel(coerce(c).model_copy(update={"seed": 9}), rng=9)
    m.run_days(0.3)
    checkpoint.save(m, tmp_path / "ck.npz")
    m2, _ = checkpoint.load(tmp_path / "ck.npz")
    m.run_days(0.3)
    m2.run_days(0.3)
    assert m.therapy.summary() == m2.therapy.summary()
    assert m.therapy.suicide["killed_tissue"] > 0 and m.therapy.arrived > 0
    assert m.nk.used == m2.nk.used
    for a, b in [(m.nk.site[: m.nk.used], m2.nk.site[: m.nk.used]), (m.nk.car[: m.nk.used], m2.nk.car[: m.nk.used]),
                 (m.occ, m2.occ), (m.fields.values, m2.fields.values)]:
        assert np.array_equal(a, b)


# ----------------------------------------------------------------------------- clinical units
def test_blood_read_outs_in_clinical_units():
    """CAR+ cells/µL and transgene copies/µg gDNA follow the documented conversions: 7e6 CAR+ cells in
    70 kg × 70 mL/kg = 4.9 L are 1.43/µL; among 5000 leukocytes/µL with one copy each that is
    1.43/5001.43 × 1e6/6.6 ≈ 43 copies/µg."""
    from sim.therapy.clinical_units import CELLS_PER_UG_GDNA, car_per_ul, transgene_copies_per_ug

    ul = car_per_ul(7e6, 1.0, 70.0, 70.0)
    assert ul == pytest.approx(7e6 / 4.9e6)
    assert transgene_copies_per_ug(ul, 5000.0, 1.0) == pytest.approx(ul / (5000.0 + ul) * 1e6 / 6.6)
    assert CELLS_PER_UG_GDNA == pytest.approx(151515.15, rel=1e-6)
    m = TumorImmuneModel(cfg(dosing={"infusions": [{"day": 0, "dose": 1e6}]}), rng=0)
    run_steps(m, 0.5)
    ts = m.datacollector.get_model_vars_dataframe()
    th, d = m.therapy, m.config.dosing
    expect = th.blood.blood(m.now_min) * th.lot.car_fraction / (d.weight_kg * 70.0 * 1000.0)
    assert th.car_per_ul(m.now_min) == pytest.approx(expect, rel=1e-12)
    assert {"car_per_ul_blood", "transgene_copies_per_ug"} <= set(ts.columns)
    s = th.summary()["dosing"]
    assert len(s["car_per_ul_daily"]) == len(s["transgene_copies_per_ug_daily"]) == 1
    assert s["car_per_ul_daily"][0] > 0


# ----------------------------------------------------------------------------- IL-2 support
def test_il2_pk_and_its_il15_equivalent_signal():
    """IL-2 s.c. doses follow the Bateman curve (peak at ln(ka/ke)/(ka−ke), the same PK rule as the
    superagonist); the systemic IL-15 signal adds potency × IL-2; serum IL-2 is a time-series column."""
    from sim.therapy.dosing import il2_serum, subcutaneous_level

    il2 = {"doses": [{"day": 0.0, "dose_miu": 10.0}], "absorption_half_life_h": 1.5, "elimination_half_life_h": 2.0,
           "ng_ml_per_miu": 0.1, "potency": 0.5}
    c = coerce(cfg(nk={"dose": {"cells": 10}, "il2": il2}))
    ka, ke = math.log(2) / 1.5, math.log(2) / 2.0
    t_peak_h = math.log(ka / ke) / (ka - ke)
    peak = il2_serum(c.nk.il2, t_peak_h / 24)
    assert peak == pytest.approx(1.0 * ka / (ka - ke) * (math.exp(-ke * t_peak_h) - math.exp(-ka * t_peak_h)))
    assert il2_serum(c.nk.il2, t_peak_h / 24 - 0.01) < peak > il2_serum(c.nk.il2, t_peak_h / 24 + 0.01)
    assert subcutaneous_level([], 1.0, 1.0, 2.0) == 0.0
    m = TumorImmuneModel(c, rng=0)
    t = 0.2 * 1440
    assert m.therapy.il15_systemic(t) == pytest.approx(m.therapy.il15_base + 0.5 * il2_serum(c.nk.il2, 0.2))
    m.run_days(0.25)
    ts = m.datacollector.get_model_vars_dataframe()
    assert ts["il2_serum_ng_ml"].max() > 0 and ts["il15_systemic_ng_ml"].max() > m.therapy.il15_base
    assert coerce(cfg()).nk.il2.doses == []  # no IL-2 unless given


def test_a_sample_reports_its_entry_enrichment_over_an_even_spread():
    """`therapy.dosing.entry_enrichment` = tissue_fraction × patient_cells / section tumor cells at day 0:
    the factor by which a sample's share of the tumor-bed entries exceeds its share of the disease
    (exact arithmetic on the run's own inputs); a whole lesion, or a sample without a burden, has none."""
    base = {"domain": {"dims": 2, "size_um": [400.0, 400.0],
                       "section": {"represents": "sample", "boundary": "open", "patient_cells": 1e9}},
            "tumor": {"init": {"count": 200}}, "nk": {"dose": {"cells": 0}},
            "dosing": {"infusions": [{"day": 0, "dose": 1e6}], "tissue_fraction": 1e-5},
            "time": {"days": 0.05}, "output": {"snapshots": False, "figure": False}}
    r = api.run(base)
    n0 = r.timeseries["tumor"].iloc[0]
    assert r.summary["therapy"]["dosing"]["entry_enrichment"] == pytest.approx(1e-5 * 1e9 / n0, rel=1e-12)
    lesion = {**base, "domain": {"dims": 2, "size_um": [400.0, 400.0]}}
    assert "entry_enrichment" not in api.run(lesion).summary["therapy"]["dosing"]
    no_burden = {**base, "domain": {**base["domain"], "section": {"represents": "sample", "boundary": "open"}}}
    assert api.run(no_burden).summary["therapy"]["dosing"]["entry_enrichment"] is None
