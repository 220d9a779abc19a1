"""The Mesa face of the model: registered CAR-NK agents, tumor views, DataCollector, batch_run."""
import mesa
import numpy as np
import pytest

from sim.agents import CARNKCell, TumorCell
from sim.kernels import step as K
from sim.kernels.recognition import trigger_probability
from sim.model import TumorImmuneModel

from helpers import pairs_model


def test_carnk_cells_are_registered_agents_reading_the_arrays(small_scenario):
    m = TumorImmuneModel(small_scenario, rng=1)
    m.run_for(0.5)
    nk = m.agents_by_type[CARNKCell]
    assert len(nk) == m.nk_live() > 0
    assert nk.agg("kills", sum) == int(m.nk.kills[: m.nk.used][m.nk.state[: m.nk.used] != K.NK_EMPTY].sum())
    killers = nk.select(lambda a: a.kills > 0)
    assert 0 < len(killers) <= len(nk)
    a = next(iter(nk))
    assert a.pos == tuple(int(v) for v in np.unravel_index(m.nk.site[a.idx], m.shape))
    assert a.state in ("free", "killing", "bound")


def test_agents_follow_births_deaths_and_compaction():
    cfg = {"domain": {"size_um": [600.0]}, "tumor": {"init": {"count": 50}},
           "nk": {"dose": {"cells": 2000}, "persistence": {"half_life_days": 0.2},
                  "il15": {"mode": "secreted", "proliferation_per_day": 3.0}}}
    m = TumorImmuneModel(cfg, rng=2)
    m.run_for(1.0)
    assert len(m.agents_by_type[CARNKCell]) == m.nk_live()
    assert all(m.nk.state[a.idx] != K.NK_EMPTY for a in m.agents_by_type[CARNKCell])


def test_tumor_views_are_built_on_request_and_not_registered(small_scenario):
    m = TumorImmuneModel(small_scenario, rng=1)
    views = m.tumor_cells()
    assert len(views) == m.tumor_count()
    assert TumorCell not in m.agents_by_type  # never registered: no Python object per tumor cell
    neg = views.select(lambda c: c.antigen_negative)
    assert len(neg) == int(m.tstats[K.S_AGNEG])
    assert views.agg("antigen", np.mean) == pytest.approx(float(m.tumor.antigen[: m.tumor.used].mean()), rel=1e-5)


def test_agent_api_uses_the_kernel_rules():
    """CARNKCell.signal_against is the kernel's conjugate_outcome: an Ag−/MHC-high target never triggers."""
    m = pairs_model(2, antigen=0.0, mhc=2.0, ligand=0.5)
    nk = next(iter(m.agents_by_type[CARNKCell]))
    target = m.tumor_cells().to_list()[0]
    prob, route, path = nk.signal_against(target)
    assert prob == 0.0
    m2 = pairs_model(2, antigen=1.0, mhc=1.0, ligand=0.5)
    prob2, route2, _ = next(iter(m2.agents_by_type[CARNKCell])).signal_against(m2.tumor_cells().to_list()[0])
    # net signal = CAR 1 + NKG2D 0.5 − inhibition 0.5 = 1 → the kernel's Hill curve at the model's parameters
    p = m2.p_nk
    assert prob2 == pytest.approx(trigger_probability(1.0, p.half_activation, p.hill), rel=1e-5) and route2 == 0  # CAR route
    assert nk.half_life_days() == pytest.approx(1e6)


def test_datacollector_and_batch_run(small_scenario):
    m = TumorImmuneModel(small_scenario, rng=1)
    m.run_for(0.25)
    df = m.datacollector.get_model_vars_dataframe()
    assert list(df["time_h"]) == [0.0, 2.0, 4.0, 6.0]
    results = mesa.batch_run(
        TumorImmuneModel,
        parameters={"config": [small_scenario], "nk.persistence.half_life_days": [3.0, 14.0]},
        rng=[5], max_steps=30, data_collection_period=-1, display_progress=False,
    )
    assert len(results) == 2
    assert {r["nk.persistence.half_life_days"] for r in results} == {3.0, 14.0}
    assert all("tumor" in r and "kills_car" in r for r in results)
