"""Host-versus-graft rejection (sim/therapy/rejection.py): an extra death hazard for HLA-mismatched
products that grows as the host recovers from lymphodepletion, in tissue and blood alike."""
from __future__ import annotations

import math

import pytest

from sim.config import coerce
from sim.model import TumorImmuneModel
from sim.scenario.resolve import resolve
from sim.therapy.blood import B, O, BloodCompartment
from sim.therapy.rejection import host_recovery, rejected, rejection_per_day

BASE = {"domain": {"size_um": [800.0, 800.0]}, "tumor": {"init": {"count": 0}},
        "output": {"snapshots": False, "figure": False}, "time": {"snapshot_every_h": 0}}


def scenario(**blocks):
    return coerce({**BASE, **blocks})


def test_host_recovery_course():
    """0 until the conditioning plateau + delay is over, half recovered one half-time later, → 1;
    a host without lymphodepletion is recovered from the start."""
    c = scenario(product={"type": "ipsc"}, dosing={"lymphodepletion": {"regimen": "cy_flu", "start_day": -5}})
    ld, rej = c.dosing.lymphodepletion, c.product.rejection
    t_r = ld.start_day + ld.duration_days + rej.recovery_delay_days
    assert host_recovery(ld, rej, t_r - 0.1) == 0.0
    assert host_recovery(ld, rej, t_r + rej.recovery_half_time_days) == pytest.approx(0.5)
    assert host_recovery(ld, rej, t_r + 10 * rej.recovery_half_time_days) == pytest.approx(1.0, abs=1e-3)
    assert host_recovery(scenario().dosing.lymphodepletion, rej, 0.0) == 1.0
    assert rejection_per_day(c, t_r + rej.recovery_half_time_days) == pytest.approx(0.5 * rej.max_rate_per_day * 1.0)


def test_presets_set_the_mismatch_and_explicit_values_win():
    """Each product preset sets product.rejection.hla_mismatch (origin preset:<type>); a user value wins;
    hypoimmune products, autologous (mismatch 0) cells and the CAR-T arm are not rejected."""
    eff = resolve({**BASE, "product": {"type": "cord_blood"}})
    assert eff.scenario.product.rejection.hla_mismatch == pytest.approx(0.33)
    assert eff.origins["product.rejection.hla_mismatch"] == "preset:cord_blood"
    mine = resolve({**BASE, "product": {"type": "cord_blood", "rejection": {"hla_mismatch": 0.0}}})
    assert mine.scenario.product.rejection.hla_mismatch == 0.0 and not rejected(mine.scenario)
    assert not rejected(scenario(product={"type": "ipsc", "rejection": {"hypoimmune": True}}))
    assert not rejected(scenario())  # product none: the nk block as written, nothing rejected
    assert rejected(scenario(product={"type": "ipsc"}))


def test_mismatched_cells_die_at_the_added_hazard():
    """Tissue NK of a fully mismatched product in an unconditioned host die at ln2/t½ + max_rate: the
    maximum-likelihood hazard over 1.5 days (≈ 1,100 deaths of 2,000 cells, relative SE ≈ 3 %) is
    within 4 SE of it; the hypoimmune product's is within 4 SE of ln2/t½ alone (≈ 350 deaths, SE 5 %)."""
    hazards = {}
    for hypo in (False, True):
        c = {**BASE, "product": {"type": "ipsc", "rejection": {"hypoimmune": hypo}},
             "nk": {"dose": {"cells": 2000}, "il15": {"proliferation_per_day": 0.0}, "motility": {"speed_um_min": 0.0}}}
        m = TumorImmuneModel(c, rng=3)
        m.run_for(1.5)
        hazards[hypo] = math.log(2) / m.observed_nk_half_life_days()  # deaths per NK-day
        t_half = m.config.nk.persistence.half_life_days
    base = math.log(2) / t_half
    assert hazards[True] == pytest.approx(base, rel=0.20)
    assert hazards[False] == pytest.approx(base + 0.35, rel=0.12)


def test_blood_compartment_loses_cells_to_rejection():
    """With no exchange or entry the blood + organ pool decays at ln2/t½ + k_rej exactly (ODE tolerance)."""
    k = 0.2 / 1440.0
    t_half = 5 * 1440.0
    bc = BloodCompartment(infusions=[(0.0, 1e6)], k_out=math.log(2) / 60, k_back=math.log(2) / 1440, k_inf=0.0,
                          half_life_min=t_half, il15_extension=0.0, il15_ec50=0.5, prolif_rate=0.0, max_divisions=0,
                          il15=lambda t: 0.0, extra_death=lambda t: k)
    for t in (1440.0, 5 * 1440.0):
        y = bc.state(t)
        assert y[B] + y[O] == pytest.approx(1e6 * math.exp(-(math.log(2) / t_half + k) * t), rel=1e-4)


def test_rejection_is_a_declared_modulator_with_a_column():
    """The hazard is a modulator of nk.rejection_per_min (one per target) and a time-series column."""
    m = TumorImmuneModel({**BASE, "product": {"type": "nk92"}, "nk": {"dose": {"cells": 10}}}, rng=0)
    m.run_for(0.1)
    names = {d["name"]: d for d in m.modulation.describe()}
    assert names["rejection_per_min"]["target"] == "nk.rejection_per_min"
    assert m.p_nk.rejection_per_min == pytest.approx(0.35 / 1440.0)
    assert "rejection_per_min" in m.datacollector.get_model_vars_dataframe().columns
