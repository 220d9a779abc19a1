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
    m.run_days(0.5)
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
    m.run_days(1.0)
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
    # heterogeneous cells: the agent's own responsiveness multiplies the net signal, as in the kernel
    m3 = pairs_model(2, antigen=1.0, mhc=1.0, ligand=0.5, extra={"nk": {"activation": {"responsiveness_sd": 1.0}}})
    a3 = next(iter(m3.agents_by_type[CARNKCell]))
    assert a3.responsiveness != 1.0
    prob3, _, _ = a3.signal_against(m3.tumor_cells().to_list()[0])
    assert prob3 == pytest.approx(trigger_probability(a3.responsiveness, m3.p_nk.half_activation, m3.p_nk.hill), rel=1e-5)
    assert nk.half_life_days() == pytest.approx(1e6)


def test_datacollector_and_batch_run(small_scenario):
    m = TumorImmuneModel(small_scenario, rng=1)
    m.run_days(0.25)
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


# ---- Mesa semantics that hold: run_for, creation, remove, per-agent step ---------------------------

def test_run_for_counts_steps_as_in_mesa_and_run_days_counts_days(small_scenario):
    m = TumorImmuneModel(small_scenario, rng=1)
    m.run_for(10)  # Mesa's meaning: 10 steps (model.time counts steps)
    assert m.steps == 10 and m.time == 10 and m.now_min == pytest.approx(10 * m.dt)
    m.run_days(0.25)
    assert m.steps == 10 + round(0.25 * 1440 / m.dt) and m.time == m.steps


def test_creating_a_carnk_agent_adds_a_cell(small_scenario):
    m = TumorImmuneModel(small_scenario, rng=1)
    n0 = m.nk_live()
    a = CARNKCell(m)
    assert m.nk_live() == n0 + 1 == len(m.agents_by_type[CARNKCell])
    assert a.state == "free" and a.granules == m.p_nk.max_granules and m.occ[a.site] < 0
    b = CARNKCell(m, pos=(1, 2))
    assert b.pos == (1, 2, 0) and m.nk_live() == n0 + 2
    assert len({a.cell_id, b.cell_id}) == 2 and min(a.cell_id, b.cell_id) >= n0
    with pytest.raises(ValueError, match="outside the lattice"):
        CARNKCell(m, pos=(10_000, 0))
    assert m.nk_live() == n0 + 2 == len(m.agents_by_type[CARNKCell])


def test_removing_a_carnk_agent_kills_the_cell(small_scenario):
    m = TumorImmuneModel(small_scenario, rng=1)
    m.run_days(0.25)
    nk = m.agents_by_type[CARNKCell]
    victims = nk.to_list()[:10]
    before = m.kills_per_nk().sum()
    for a in victims:
        a.remove()
    assert len(m.agents_by_type[CARNKCell]) == m.nk_live() == len(nk)
    assert all(m.nk.state[a.idx] == K.NK_EMPTY for a in victims)
    assert m.kills_per_nk().sum() == before  # their kills stay in the statistics
    m.run_days(0.25)  # dead cells never act again, and the count agrees after births, deaths, compaction
    assert len(m.agents_by_type[CARNKCell]) == m.nk_live()
    victims[0].remove()  # removing twice is harmless
    assert len(m.agents_by_type[CARNKCell]) == m.nk_live()


def test_removing_a_tumor_cell_updates_the_arrays_lattice_and_tallies(small_scenario):
    m = TumorImmuneModel(small_scenario, rng=1)
    n0, deaths0 = m.tumor_count(), m.tumor_stats.deaths
    cell = m.tumor_cells().to_list()[0]
    site, ag_pos = cell.site, cell.antigen > 0
    pos0 = m.tumor_stats.antigen_pos
    cell.remove()
    assert m.tumor_count() == n0 - 1 and m.tumor_stats.deaths == deaths0 + 1
    assert m.tumor_stats.antigen_pos == pos0 - int(ag_pos)
    assert m.occ[site] == -1 and cell.state == "cleared"
    ob, ab = m.occ_bits.copy(), m.alive_bits.copy()
    m.pack_bitmaps()  # the bitmaps rebuilt from occ and the states agree with the ones the removal kept
    assert np.array_equal(ob, m.occ_bits) and np.array_equal(ab, m.alive_bits)
    assert int(m.vox_tumor.sum()) == m.tumor_count()
    assert len(m.tumor_cells()) == m.tumor_count()
    new = TumorCell(m, pos=cell.pos, antigen=2.0)  # the freed site takes a new cell (a new id)
    assert new.site == site and m.tumor_count() == n0 and new.cell_id != cell.cell_id and new.antigen == 2.0
    m.run_days(0.1)  # the model runs on from there
    assert m.tumor_count() == int(m.vox_tumor.sum())


def _one_nk_model(seed: int, agent_stepped: bool):
    cls = AgentStepped if agent_stepped else TumorImmuneModel
    cfg = {"domain": {"dims": 2, "size_um": [400.0, 400.0]},
           "time": {"days": 1.0, "output_every_h": 1.0, "snapshot_every_h": 0.0},
           "tumor": {"init": {"count": 40}}, "nk": {"dose": {"cells": 1, "placement": "rim"},
                                                   "persistence": {"half_life_days": 1.0}}}
    return cls(cfg, rng=seed)


class AgentStepped(TumorImmuneModel):
    """The Mesa way: the NK phase as shuffle_do over the agents (same kernel, cell by cell)."""

    def step_nk(self):
        self.agents_by_type[CARNKCell].shuffle_do("step")


def test_agent_step_is_the_batch_kernel_on_one_cell():
    """One NK cell: stepping it through CARNKCell.step (shuffle_do) is bit-identical to the batch step."""
    a, b = _one_nk_model(3, False), _one_nk_model(3, True)
    for _ in range(360):
        a.step()
        b.step()
    for name in a.nk.FIELDS:
        assert np.array_equal(getattr(a.nk, name)[: a.nk.used], getattr(b.nk, name)[: b.nk.used]), name
    for name in a.tumor.FIELDS:
        assert np.array_equal(getattr(a.tumor, name)[: a.tumor.used], getattr(b.tumor, name)[: b.tumor.used]), name
    assert np.array_equal(a.counters, b.counters) and np.array_equal(a.tstats, b.tstats)
    assert a.counters[K.C_CONJ] > 0  # the cell met tumor cells: contact, signal and kill rules ran


def test_agent_step_advances_only_that_cell(small_scenario):
    m = TumorImmuneModel(small_scenario, rng=4)
    agents = m.agents_by_type[CARNKCell].to_list()
    a = agents[0]
    sites = m.nk.site[: m.nk.used].copy()
    t0 = m.now_min
    a.step()
    changed = np.flatnonzero(m.nk.site[: len(sites)] != sites)
    assert set(changed) <= {a.idx} and m.now_min == t0  # time advances in model.step only


def test_shuffle_do_stepping_agrees_with_the_batch_step_statistically():
    """Many cells with a short half-life: per-agent and batch NK phases lose the same share per step."""
    cfg = {"domain": {"dims": 2, "size_um": [800.0, 800.0]},
           "time": {"days": 1.0, "output_every_h": 1.0, "snapshot_every_h": 0.0},
           "tumor": {"init": {"count": 50}}, "nk": {"dose": {"cells": 3000}, "persistence": {"half_life_days": 0.05}}}
    live = {}
    for agent in (False, True):
        m = (AgentStepped if agent else TumorImmuneModel)(cfg, rng=11)
        n0 = m.nk_live()
        for _ in range(5):
            m.step()
        live[agent] = (n0, m.nk_live(), m.nk_counts.nk_deaths)
        assert len(m.agents_by_type[CARNKCell]) == m.nk_live()
    (n0, nb, db), (_, na, da) = live[False], live[True]
    # deaths are binomial (~2 % per step): the difference of two independent counts has sd ≈ sqrt(da + db)
    assert db > 100 and abs(da - db) < 5 * np.sqrt(da + db)
    assert abs(na - nb) < 5 * np.sqrt(da + db)


def test_creating_an_agent_of_the_wrong_effector_type_is_refused(small_scenario):
    from sim.agents import CARTCell

    m = TumorImmuneModel(small_scenario, rng=1)
    n0 = len(m.agents)
    with pytest.raises(TypeError, match="CARNKCell"):
        CARTCell(m)
    assert len(m.agents) == n0


def test_removing_a_tumor_cell_ends_the_conjugates_with_it():
    m = pairs_model(4, antigen=1.0, mhc=1.0, ligand=0.5)
    for _ in range(200):
        m.step()
        busy = np.flatnonzero(m.nk.state[: m.nk.used] != K.NK_FREE)
        if busy.size:
            break
    assert busy.size
    j = int(m.nk.target[busy[0]])
    TumorCell(m, j).remove()
    assert m.nk.state[busy[0]] == K.NK_FREE and m.nk.target[busy[0]] == -1
    assert m.tumor.state[j] == K.T_EMPTY


def _registry(m):
    return [(a.unique_id, a.idx, int(m.nk.cell_id[a.idx])) for a in m.agents]


def test_agents_of_daughters_and_arrivals_are_built_when_looked_at_as_if_at_birth():
    """Cells born in the kernel or arriving from blood get their agents, and dead cells' agents leave,
    when Mesa's registry is read (also through a reference to an agent set kept across steps); the
    registry (order, unique_ids) and the run are what registering each at birth and deregistering at
    death gives, which is what happens while someone listens to the registry's signals."""
    from mesa.experimental.mesa_signals import ModelSignals

    cfg = {"domain": {"dims": 2, "size_um": [600.0, 600.0]}, "tumor": {"init": {"count": 200}},
           "nk": {"dose": {"cells": 40}, "il15": {"mode": "secreted"}},
           "dosing": {"infusions": [{"day": 0, "dose": 1e7}], "tissue_fraction": 2e-5}}
    lazy, eager = TumorImmuneModel(cfg, rng=5), TumorImmuneModel(cfg, rng=5)
    added = []

    def handler(signal):
        added.append(signal)

    eager.observe("agents", ModelSignals.AGENT_ADDED, handler)
    held = lazy.agents_by_type[CARNKCell]  # a reference kept across steps sees the registry up to date
    held_all = lazy.agents
    removed = 0
    for k in range(240):
        lazy.step()
        eager.step()
        assert not eager._n_pending and not eager._dead_agents  # in step at once while observed
        removed += bool(lazy._dead_agents)
        if k % 60 == 59:
            assert len(held) == len(held_all) == lazy.nk_live()  # reading the registry builds them
            assert all(lazy.nk.state[a.idx] != K.NK_EMPTY for a in held)
    for _ in range(60):  # end with agents not built yet
        lazy.step()
        eager.step()
        if lazy._n_pending:
            break
    assert lazy._n_pending > 0 and removed and len(added) > 40
    assert _registry(lazy) == _registry(eager)
    assert lazy.agent_id_counter == eager.agent_id_counter
    assert len(lazy.agents_by_type[CARNKCell]) == lazy.nk_live() == eager.nk_live()
    assert np.array_equal(lazy.counters, eager.counters) and np.array_equal(lazy.nk.site, eager.nk.site)


def test_an_agent_created_by_hand_registers_after_the_pending_ones():
    m = TumorImmuneModel({"domain": {"dims": 2, "size_um": [400.0, 400.0]}, "tumor": {"init": {"count": 50}},
                          "nk": {"dose": {"cells": 0}},
                          "dosing": {"infusions": [{"day": 0, "dose": 1e7}], "tissue_fraction": 2e-5}}, rng=2)
    for _ in range(60):
        m.step()
    pending = m._n_pending
    assert pending > 0
    a = CARNKCell(m)  # registers: the cells that arrived before it first
    assert m._n_pending == 0
    reg = _registry(m)
    assert reg[-1][0] == a.unique_id == max(u for u, _, _ in reg)
    assert [u for u, _, _ in reg] == sorted(u for u, _, _ in reg)
    assert len(m.agents) == m.nk_live()
