"""Therapy effects as declared modulators (issue 10): evaluated once per step from the static base,
recorded in the time series, one per target, independent of installation order."""
from __future__ import annotations

import pytest

from sim import api
from sim.model import TumorImmuneModel
from sim.therapy.modulators import RULES, Modulation, Modulator

BASE = {
    "domain": {"size_um": [400.0, 400.0]}, "time": {"days": 1.0, "output_every_h": 4.0, "snapshot_every_h": 0},
    "tumor": {"init": {"count": 60}, "escape": {"ligand_shedding_max": 0.5, "ligand_shedding_half_time_h": 12.0}},
    "nk": {"dose": {"cells": 20}},
    "drugs": {"anti_nkg2a": {"doses": [{"day": 0.2, "mg_per_kg": 10}]}, "anti_tigit": {"doses": [{"day": 0.0, "mg_per_kg": 10}]},
              "anti_pd1": {"doses": [{"day": 0.0, "mg_per_kg": 10}]}},
    "dosing": {"lymphodepletion": {"regimen": "cy_flu"}},
    "output": {"snapshots": False, "figure": False},
}


def test_each_step_rebuilds_parameters_from_the_base():
    m = TumorImmuneModel(BASE, rng=3)
    base = m.p_nk_base
    names = {x.name: x for x in m.modulation.modulators}
    assert set(names) == {"nkg2d_engagement_factor", "anti_nkg2a_occupancy", "anti_tigit_occupancy",
                          "anti_pd1_occupancy", "il15_systemic_ng_ml"}
    for _ in range(200):
        t = m.now_min
        m.step()
        for x in m.modulation.modulators:
            v = x.course(t)
            assert m.modulation.values[x.name] == v
            if x.target.startswith("nk."):
                field = x.target[3:]
                assert getattr(m.p_nk, field) == RULES[x.rule](getattr(base, field), v, x.gain)  # never compounded
    assert m.p_nk_base is base  # the static base is never edited
    assert m.fields.background[m.fields.index("il15")] == names["il15_systemic_ng_ml"].course(m.now_min - m.dt)


def test_modulator_values_are_timeseries_columns_and_recorded():
    res = api.run(BASE, seed=2, days=0.5)
    ts = res.timeseries
    for col in ("nkg2d_engagement_factor", "anti_nkg2a_occupancy", "anti_tigit_occupancy", "anti_pd1_occupancy",
                "il15_systemic_ng_ml"):
        assert col in ts.columns
    assert ts["anti_nkg2a_occupancy"].iloc[0] == 0.0 and ts["anti_nkg2a_occupancy"].iloc[-1] > 0.5  # dosed at day 0.2
    assert ts["nkg2d_engagement_factor"].is_monotonic_decreasing
    mods = {d["name"]: d for d in res.summary["modulators"]}
    assert mods["anti_pd1_occupancy"]["target"] == "nk.exhaustion_stims"
    assert res.summary["kernel_parameters"]["exhaustion_stims"] == 10


def test_one_modulator_per_target():
    mod = Modulation()
    mod.declare(Modulator("a", "nk.nkg2d", "scale", lambda t: 1.0, source="x"))
    with pytest.raises(ValueError, match="both modulate nk.nkg2d"):
        mod.declare(Modulator("b", "nk.nkg2d", "scale", lambda t: 1.0, source="y"))
    with pytest.raises(ValueError, match="unknown modulator rule"):
        Modulator("c", "nk.cd16", "double", lambda t: 1.0)


def test_unchanged_modulator_values_give_the_same_parameter_tuple():
    """Evaluation returns the previous tuple when the changes are identical (so the kernels' record
    is reused); a value of another type or sign of zero is a change."""
    from sim.kernels.params import NKParams
    from sim.therapy.modulators import Modulation, Modulator

    base = NKParams(*range(len(NKParams._fields)))._replace(rejection_per_min=1.0)
    vals = iter([0.0, 0.0, -0.0, 0, 0.5])
    mod = Modulation()
    mod.declare(Modulator("rej", "nk.rejection_per_min", "set", lambda t: next(vals)))
    ps = [mod.evaluate(0.0, base, None) for _ in range(5)]
    assert ps[1] is ps[0] and ps[2] is not ps[1] and ps[3] is not ps[2] and ps[4] is not ps[3]
    assert [type(p.rejection_per_min) for p in ps] == [float, float, float, int, float]
    assert str(ps[2].rejection_per_min) == "-0.0"
