"""Therapy layer, companions part (issue 6b): companion drugs, the CAR-T comparator arm, tumor escape, TGF-βR2 engineering,
toxicity indices, arms, and the qualitative claim of each therapy scenario (arms share tumor and seed)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from sim import api
from sim.agents import CARNKCell, CARTCell
from sim.config import PK, DrugDose, Scenario, ScenarioError, arm_scenarios, coerce, load_scenario
from sim.kernels import step as K
from sim.kernels.drugs import chemo_pulse
from sim.kernels.escape import daughter_antigen
from sim.kernels.persistence import antigen_driven_division_probability, cell_half_life
from sim.model import TumorImmuneModel
from sim.therapy.pk import PKCurve, rate_matrix
from sim.therapy.toxicity import peak_daily_release, predicted_rate

SCEN = Path(__file__).resolve().parents[1] / "scenarios"
SMALL = {
    "domain": {"dims": 2, "size_um": [600.0, 600.0]},
    "time": {"days": 0.5, "output_every_h": 2.0, "snapshot_every_h": 0},
    "tumor": {"init": {"count": 200}},
    "nk": {"dose": {"cells": 60, "placement": "rim"}},
    "output": {"snapshots": False, "figure": False},
}


def arms(name: str, days: float | None = None, seed: int | None = None) -> dict:
    """Run every arm of a library scenario (same seed), optionally shortened; without the untreated
    control arm that `nksim run` adds (these tests compare the written arms)."""
    return api.run_arms(SCEN / f"{name}.yaml", days=days, seed=seed, untreated=False)


def with_(base: dict, **dotted) -> Scenario:
    return coerce(base, {k.replace("__", "."): v for k, v in dotted.items()})


# --- pharmacokinetics ------------------------------------------------------------------------

def test_two_compartment_pk_matches_numerical_ode():
    pk = PK(compartments=2, v_central_ml_per_kg=40, clearance_ml_per_day_per_kg=3, v_peripheral_ml_per_kg=30, q_ml_per_day_per_kg=12)
    doses = [DrugDose(day=0, mg_per_kg=4), DrugDose(day=7, mg_per_kg=2)]
    curve = PKCurve(pk, doses)
    A = rate_matrix(pk)
    x = np.array([4.0, 0.0])
    a = solve_ivp(lambda t, y: A @ y, (0, 7), x, rtol=1e-10, atol=1e-12)
    y7 = a.y[:, -1] + np.array([2.0, 0.0])
    b = solve_ivp(lambda t, y: A @ y, (7, 20), y7, t_eval=[10.0, 20.0], rtol=1e-10, atol=1e-12)
    for t, amt in zip([10.0, 20.0], b.y[0]):
        assert curve.plasma_ug_ml(t) == pytest.approx(amt / 40 * 1000, rel=1e-6)
    assert curve.plasma_ug_ml(-1) == 0.0
    assert curve.tissue_ug_ml(3) == pytest.approx(0.2 * curve.plasma_ug_ml(3))


def test_one_compartment_pk_half_life():
    pk = PK(compartments=1, v_central_ml_per_kg=50, clearance_ml_per_day_per_kg=5)
    c = PKCurve(pk, [DrugDose(day=1, mg_per_kg=5)])
    assert c.plasma_ug_ml(1) == pytest.approx(100.0)  # 5 mg/kg / 50 mL/kg
    assert c.plasma_ug_ml(1 + math.log(2) * 10) == pytest.approx(50.0)  # t½ = ln2·V/CL


# --- ADCC antibody ---------------------------------------------------------------------------

def test_antibody_coats_in_proportion_to_antigen_and_occupancy():
    cfg = with_(SMALL, drugs__antibody={"doses": [{"day": 0.0, "mg_per_kg": 4}], "kd_ug_ml": 5.0, "coat_per_antigen": 2.0})
    m = TumorImmuneModel(cfg, rng=1)
    assert not m.tumor.coat[: m.tumor.used].any()
    m.step()
    conc = PKCurve(cfg.drugs.antibody.pk, cfg.drugs.antibody.doses).tissue_ug_ml(0.0)
    occ = conc / (conc + 5.0)
    n = m.tumor.used
    np.testing.assert_allclose(m.tumor.coat[:n], 2.0 * m.tumor.antigen[:n] * occ, rtol=1e-5)
    assert "antibody_ug_ml" in m.reporters()


def test_egfr_cetuximab_adcc_needs_antibody_and_cd16():
    r = arms("egfr_solid_cetuximab_adcc", days=1.0)
    assert r["carnk"].metrics["kills_adcc"] == 0  # no antibody
    assert r["cd16neg_cetuximab"].metrics["kills_adcc"] == 0  # antibody, but no CD16
    both = r["carnk_cetuximab"].metrics
    assert both["kills_adcc"] > 50
    total = lambda m: m["kills_car"] + m["kills_innate"] + m["kills_adcc"]  # noqa: E731
    assert total(both) > 1.5 * total(r["carnk"].metrics)
    assert "antibody_ug_ml" in r["carnk_cetuximab"].timeseries and r["carnk_cetuximab"].timeseries["antibody_ug_ml"].iloc[-1] > 1


# --- checkpoint blockade -------------------------------------------------------------------------

def test_checkpoint_hooks_set_kernel_parameters():
    dose = {"doses": [{"day": 0.0, "mg_per_kg": 10}], "kd_ug_ml": 0.5}
    cfg = with_(SMALL, drugs__anti_nkg2a=dose, drugs__anti_tigit=dose, drugs__anti_pd1=dose)
    m = TumorImmuneModel(cfg, rng=1)
    p0 = m.p_nk
    m.step()
    p = m.p_nk
    assert p0.inhibitory_block == 0.0 and 0.55 < p.inhibitory_block <= 0.6  # max_effect 0.6 at ~full occupancy
    assert p.half_activation == pytest.approx(p0.half_activation * (1 - 0.3 * _occ(cfg, cfg.drugs.anti_tigit)), rel=1e-6)
    assert p.exhaustion_stims == 15 and isinstance(p.exhaustion_stims, int)


def _occ(cfg, drug):
    c = PKCurve(drug.pk, drug.doses).tissue_ug_ml(0.0)
    return c / (c + drug.kd_ug_ml)


def test_anti_nkg2a_raises_kills_of_mhc_high_targets():
    r = arms("checkpoint_nkg2a_combo", days=1.5)
    base, combo = r["carnk"].metrics, r["carnk_anti_nkg2a"].metrics
    kills = lambda m: m["kills_car"] + m["kills_innate"]  # noqa: E731
    assert kills(combo) > 2 * kills(base)
    assert combo["tumor_final"] < base["tumor_final"]


# --- chemotherapy ----------------------------------------------------------------------------

def test_chemo_pulse_spares_quiescent_cells():
    n = 4000
    state = np.zeros(n, np.int8)
    timer = np.full(n, 100.0, np.float32)
    quiescent = np.zeros(n, np.int8)
    quiescent[: n // 2] = 1  # contact-inhibited half (with cell loss their clocks still run: a finite timer)
    site = np.arange(n, dtype=np.int32)
    alive_bits = np.full((n + 63) // 64, -1, np.int64)  # every site holds a live cell
    killed = chemo_pulse(np.random.default_rng(3), 10.0, 0.5, 60.0, n, state, timer, site, quiescent, alive_bits)
    assert (state[: n // 2] == K.T_ALIVE).all()
    bits = np.unpackbits(alive_bits.view(np.uint8), bitorder="little")[:n]
    assert np.array_equal(bits == 1, state == K.T_ALIVE)  # doomed cells are no longer targets
    doomed = state[n // 2:] == K.T_DOOMED
    assert killed == doomed.sum() and abs(doomed.mean() - 0.5) < 0.05
    assert np.all(timer[n // 2:][doomed] == 70.0)


def test_chemo_lowers_tumor_and_nk_counts():
    r = arms("chemo_combo", days=3.5)
    alone, combo = r["carnk"], r["carnk_chemo"]
    assert combo.metrics["tumor_final"] < 0.8 * alone.metrics["tumor_final"]
    assert combo.metrics["nk_final"] < 0.7 * alone.metrics["nk_final"]
    assert combo.metrics["chemo_tumor_kills"] > 0 and combo.metrics["chemo_nk_depleted"] > 0
    before = combo.timeseries[combo.timeseries.time_h <= 24].nk_live.iloc[-1]
    after = combo.timeseries[combo.timeseries.time_h >= 28].nk_live.iloc[0]
    assert after < 0.75 * before  # the day-1 pulse removes ~40 % of the NK cells


# --- TGF-β resistance ------------------------------------------------------------------------

def test_tgfbr2_engineering_maps_onto_resistance():
    assert not TumorImmuneModel(SMALL, rng=0).p_nk.tgfb_resistant
    for edit in ("dominant_negative", "knockout"):
        assert TumorImmuneModel(with_(SMALL, nk__engineering__tgfbr2=edit), rng=0).p_nk.tgfb_resistant
    p = TumorImmuneModel(with_(SMALL, nk__engineering={"tgfbr2": "dominant_negative", "dnr_residual_signalling": 0.25}), rng=0).p_nk
    assert not p.tgfb_resistant and p.tgfb_ifng_max == pytest.approx(0.9 * 0.25)


def test_tgfb_resistance_improves_control_in_tgfb_rich_tumor():
    r = arms("her2_solid_tgfb_dnr", days=1.5)
    wt, dnr = r["unedited"].metrics, r["tgfbr2_dnr"].metrics
    assert r["unedited"].timeseries.mean_tgfb_ng_ml.iloc[-1] > 0.5
    assert dnr["tumor_final"] < 0.85 * wt["tumor_final"]
    assert dnr["kills_innate"] > 2 * wt["kills_innate"]  # NKG2D no longer down-regulated


# --- CAR-T comparator ----------------------------------------------------------------------------

def test_cart_effector_resolves_to_car_only_killing():
    m = TumorImmuneModel(with_(SMALL, effector="cart"), rng=2)
    p = m.p_nk
    assert p.nkg2d == p.inhibitory == p.cd16 == 0.0
    assert p.stim_division_prob == 0.5 and p.max_divisions == 10 and p.memory_fraction == 0.0079
    assert all(isinstance(a, CARTCell) for a in m.agents)
    assert type(next(iter(TumorImmuneModel(SMALL, rng=2).agents))) is CARNKCell
    mem = m.nk.memory[: m.nk.used].astype(bool)
    a = next(a for a in m.agents if a.memory) if mem.any() else None
    assert a is None or a.half_life_days() > 100
    assert antigen_driven_division_probability(True, 0.5, 3, 10) == 0.5
    assert antigen_driven_division_probability(False, 0.5, 3, 10) == 0.0
    assert antigen_driven_division_probability(True, 0.5, 10, 10) == 0.0
    assert cell_half_life(1, 10.0, 99.0) == 99.0 and cell_half_life(0, 10.0, 99.0) == 10.0


@pytest.fixture(scope="module")
def cart_vs_carnk():
    return arms("cd19_carnk_vs_cart")


def test_cart_has_higher_crs_index_and_lands_near_juliet(cart_vs_carnk):
    nk, t = cart_vs_carnk["carnk"].metrics, cart_vs_carnk["cart"].metrics
    assert t["cytokine_peak_ng_ml_day"] > 5 * nk["cytokine_peak_ng_ml_day"]
    assert t["crs_any_rate"] > nk["crs_any_rate"]
    # JULIET (Schuster 2019): CRS 58 % / 22 %, neurological events 21 % / 12 %; CAR-NK (Liu 2020): none.
    assert 0.45 < t["crs_any_rate"] < 0.70 and 0.12 < t["crs_grade3_rate"] < 0.32
    assert 0.12 < t["icans_any_rate"] < 0.30 and 0.05 < t["icans_grade3_rate"] < 0.20
    assert nk["crs_any_rate"] < 0.05 and nk["icans_any_rate"] < 0.02
    assert t["kills_innate"] == 0 and t["kills_adcc"] == 0 and not t["gvhd_risk"] and not nk["gvhd_risk"]
    # antigen-driven expansion: CAR-T expand more in the first two days
    ts_t, ts_nk = cart_vs_carnk["cart"].timeseries, cart_vs_carnk["carnk"].timeseries
    assert ts_t[ts_t.time_h == 48].nk_live.iloc[0] > 1.5 * ts_nk[ts_nk.time_h == 48].nk_live.iloc[0]


def test_arms_share_the_initial_tumor(cart_vs_carnk):
    a, b = (r.timeseries.iloc[0] for r in cart_vs_carnk.values())
    assert a.tumor == b.tumor and a.tumor_ag_neg == b.tumor_ag_neg
    cfgs = dict(arm_scenarios(load_scenario(SCEN / "cd19_carnk_vs_cart.yaml")))
    m1, m2 = TumorImmuneModel(cfgs["carnk"], rng=5), TumorImmuneModel(cfgs["cart"], rng=5)
    np.testing.assert_array_equal(m1.tumor.antigen[: m1.tumor.used], m2.tumor.antigen[: m2.tumor.used])


def test_compare_figure_and_cli_arms(cart_vs_carnk, tmp_path):
    from sim.cli import main
    from sim.compare import arms_table, compare_figure

    fig = compare_figure(cart_vs_carnk)
    assert len(fig.axes) == 4 and len(fig.axes[0].lines) == 4
    assert list(arms_table(cart_vs_carnk).arm) == ["carnk", "cart"]
    out = tmp_path / "cmp"
    assert main(["run", str(SCEN / "cd19_carnk_vs_cart.yaml"), "--out", str(out), "--days", "0.1", "--quiet"]) == 0
    assert (out / "compare.png").stat().st_size > 1000 and (out / "arms.csv").is_file()
    import pandas as pd

    assert list(pd.read_csv(out / "arms.csv")["arm"]) == ["untreated", "carnk", "cart"]  # the untreated control first
    untreated = json.loads((out / "untreated" / "summary.json").read_text())
    assert untreated["scenario"]["nk"]["dose"]["cells"] == 0 and untreated["origins"]["nk.dose.cells"] == "arm:untreated"
    assert untreated["metrics"]["kills_car"] == 0
    assert (out / "carnk" / "summary.json").is_file() or any((out / "carnk").iterdir())
    # nksim plot on the arms folder: the arms side by side, then each arm's own figures
    from PIL import Image

    assert main(["plot", str(out)]) == 0
    with Image.open(out / "plots" / "arms_compare.png") as im:
        assert im.size[0] > 1000
    assert (out / "plots" / "cart" / "outcome_curves.png").is_file()


def test_gvhd_flag_and_risk_model():
    m = TumorImmuneModel(with_(SMALL, effector="cart", cart__allogeneic=True), rng=0)
    from sim.therapy.companions import therapy_metrics

    assert therapy_metrics(m)["gvhd_risk"]
    assert not therapy_metrics(TumorImmuneModel(with_(SMALL, effector="cart", cart={"allogeneic": True, "tcr_knockout": True}), rng=0))["gvhd_risk"]
    assert predicted_rate(0.0, 10.0, 1.0) == 0.0 and predicted_rate(10.0, 10.0, 1.0) == pytest.approx(0.5)
    assert peak_daily_release([1.0] * 30 + [5.0] * 24) == pytest.approx(120.0)
    assert peak_daily_release([2.0] * 12) == pytest.approx(48.0)


# --- tumor escape ----------------------------------------------------------------------------

def test_escape_kernel_and_setup():
    rng = np.random.default_rng(0)
    assert daughter_antigen(rng, 1.5, 0.0) == 1.5 and daughter_antigen(rng, 1.5, 1.0) == 0.0
    base = TumorImmuneModel(SMALL, rng=4)
    low = TumorImmuneModel(with_(SMALL, tumor__escape={"antigen_low_fraction": 0.5, "antigen_low_scale": 0.1}), rng=4)
    ratio = low.tumor.antigen[:200] / np.where(base.tumor.antigen[:200] > 0, base.tumor.antigen[:200], 1)
    assert 0.35 < np.isclose(ratio, 0.1, rtol=1e-4).mean() < 0.65
    shed = TumorImmuneModel(with_(SMALL, tumor__escape={"ligand_shedding_max": 0.8, "ligand_shedding_half_time_h": 1.0}), rng=4)
    shed.run_days(0.5)
    assert shed.p_nk.nkg2d == pytest.approx(1 - 0.8 * (1 - 2 ** -12), rel=1e-3)


def test_antigen_loss_on_division_makes_negative_daughters():
    for loss in (1.0, 0.0):
        cfg = with_(SMALL, tumor__escape__antigen_loss_per_division=loss, tumor__antigen__negative_fraction=0.0,
                    nk__dose__cells=0, tumor__doubling_time_h=10.0)
        m = TumorImmuneModel(cfg, rng=3)
        m.run_days(1.0)
        births = m.tstats[K.S_BIRTHS]
        assert births > 50 and m.tstats[K.S_DEATHS] == 0
        # loss = 1: every daughter is antigen-negative and every parent keeps its antigen
        assert m.tstats[K.S_AGNEG] == (births if loss else 0) and m.tstats[K.S_AGPOS] == (200 if loss else 200 + births)
        n = m.tumor.used
        neg = (m.tumor.antigen[:n] == 0) & (m.tumor.state[:n] == K.T_ALIVE)
        assert neg.sum() == m.tstats[K.S_AGNEG]


def test_antigen_loss_leads_to_antigen_negative_relapse():
    r = arms("cldn18_gastric")  # 10 days; the claim holds on seeds 1–3 too (antigen-negative share 0.94–0.97)
    ts, ctrl = r["antigen_loss"].timeseries, r["no_loss"].timeseries
    nadir = ts.tumor.idxmin()
    assert ts.tumor.iloc[-1] > 2 * ts.tumor.iloc[nadir]  # relapse after the nadir
    assert ts.tumor_ag_neg.iloc[0] == 0 and ts.tumor_ag_neg.iloc[-1] > 5 * max(1, ts.tumor_ag_neg.iloc[nadir])
    assert ts.tumor_ag_neg.iloc[-1] / ts.tumor.iloc[-1] > 0.4  # the relapse is largely antigen-negative
    assert ctrl.tumor_ag_neg.max() == 0  # no loss, no antigen-negative disease


# --- schema --------------------------------------------------------------------------------

def test_cart_rejects_nk_product_presets():
    with pytest.raises(ScenarioError) as e:
        coerce({"effector": "cart", "product": {"type": "cord_blood"}})
    assert e.value.path == "product.type"
    with pytest.raises(ScenarioError) as e:
        coerce({"domain": {"space": "well_mixed"}, "drugs": {"chemo": {"doses": [{"day": 1}]}}})
    assert e.value.path == "drugs.chemo.doses"


@pytest.mark.parametrize("dotted,value,path", [
    ("tumor.escape.antigen_loss_per_division", 1.5, "tumor.escape.antigen_loss_per_division"),
    ("nk.engineering.tgfbr2", "partial", "nk.engineering.tgfbr2"),
    ("effector", "nkt", "effector"),
    ("cart.expansion.division_probability_per_kill", -0.1, "cart.expansion.division_probability_per_kill"),
    ("cart.persistence.memory_half_life_days", 0, "cart.persistence.memory_half_life_days"),
    ("toxicity.crs.any_grade_e50", 0, "toxicity.crs.any_grade_e50"),
    ("drugs.antibody.doses", [{"day": -1, "mg_per_kg": 4}], "drugs.antibody.doses.0.day"),
    ("drugs.antibody.pk.compartments", 3, "drugs.antibody.pk.compartments"),
    ("drugs.anti_nkg2a.max_effect", 2.0, "drugs.anti_nkg2a.max_effect"),
    ("drugs.chemo.doses", [{"day": 1, "cycling_kill_fraction": 1.5}], "drugs.chemo.doses.0.cycling_kill_fraction"),
    ("arms", [{"name": "a", "set": {"nk.dose.cells": -1}}], "arms.0.set.nk.dose.cells"),
    ("arms", [{"name": "a", "set": {"nk.dose.cels": 5}}], "arms.0.set.nk.dose.cels"),
])
def test_bad_therapy_values_name_the_path(dotted, value, path):
    with pytest.raises(ScenarioError) as e:
        coerce({}, {dotted: value})
    assert e.value.path == path


@pytest.mark.parametrize("name", ["cd19_carnk_vs_cart", "her2_solid_tgfb_dnr", "egfr_solid_cetuximab_adcc",
                                  "cldn18_gastric", "checkpoint_nkg2a_combo", "chemo_combo"])
def test_therapy_scenarios_have_header_and_validate(name):
    path = SCEN / f"{name}.yaml"
    assert path.read_text(encoding="utf-8").startswith("# ")
    cfg = load_scenario(path)
    assert len(arm_scenarios(cfg)) >= 2


def test_therapy_run_resumes_bit_identically_from_checkpoint(tmp_path):
    import pandas as pd

    from sim import checkpoint

    drug = {"doses": [{"day": 0.1, "mg_per_kg": 2}]}
    cfg = with_(SMALL, effector="cart", time__days=0.6, drugs__antibody=drug, drugs__anti_tigit=drug,
                drugs__chemo__doses=[{"day": 0.4}], tumor__escape__ligand_shedding_max=0.5)
    finished = api.run(cfg, seed=3)
    interrupted = TumorImmuneModel(cfg.model_copy(update={"seed": 3}), rng=3)
    interrupted.run_days(0.25)
    ck = tmp_path / "run.checkpoint.npz"
    checkpoint.save(interrupted, ck, [])
    res = api.run(cfg, seed=3, checkpoint=ck, checkpoint_every_h=6)
    pd.testing.assert_frame_equal(res.timeseries, finished.timeseries)
    assert res.metrics == finished.metrics and res.metrics["chemo_tumor_kills"] > 0


def test_cli_reports_a_bad_arm_by_path_and_line(tmp_path, capsys):
    from sim.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\narms:\n  - name: a\n    set: {}\n  - name: b\n    set: {drugs.chemo.doses: [{day: 1, lymphocyte_depletion: 2}]}\n")
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "arms.1.set.drugs.chemo.doses.0.lymphocyte_depletion" in err and "bad.yaml:5:" in err
    dup = tmp_path / "dup.yaml"
    dup.write_text("arms:\n  - {name: a}\n  - {name: a}\n")
    with pytest.raises(ScenarioError, match="duplicate arm name"):
        load_scenario(dup)
