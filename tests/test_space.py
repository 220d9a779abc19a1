"""Space (issue 13): volume exclusion of immune cells on the lattice, and the domain-boundary watch.

A site holds one tumor cell or at most k immune cells (`nk.crowding`, `lattice.immune_can_enter`);
the tumor touching the boundary or filling most of the domain is flagged in the summary and warned about.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from sim import api
from sim.errors import DomainEdgeWarning
from sim.kernels import step as K
from sim.kernels.lattice import immune_can_enter, set_occupied
from sim.model import TumorImmuneModel
from sim.scenario import ScenarioError, resolve


def _recount(m):
    return m.recount_immune(np.zeros_like(m.nk_count))


# ------------------------------------------------------------------------------------ k and its key
def test_k_is_derived_from_the_volumes_and_can_be_set():
    c = resolve({}).scenario
    assert c.nk.crowding.diameter_um == 10.0 and c.nk.crowding.max_per_site is None
    assert c.nk.crowding.per_site(20.0) == math.floor(20.0 ** 3 / (math.pi / 6 * 10.0 ** 3)) == 15
    assert c.nk.crowding.per_site(10.0) == 1  # at least one cell, however small the site
    m = TumorImmuneModel({"domain": {"size_um": [200.0, 200.0]}, "tumor": {"init": {"count": 0}},
                          "nk": {"dose": {"cells": 0}, "crowding": {"diameter_um": 8.0}}}, rng=0)
    assert m.p_nk.immune_cap == math.floor(8000 / (math.pi / 6 * 512)) == 29
    assert resolve({"nk": {"crowding": {"max_per_site": 4}}}).scenario.nk.crowding.per_site(20.0) == 4
    for bad in ({"max_per_site": 0}, {"max_per_site": 2.5}, {"diameter_um": 0}, {"max_per_site": True}):
        with pytest.raises(ScenarioError, match="nk.crowding"):
            resolve({"nk": {"crowding": bad}})


# ------------------------------------------------------------------------------------ the invariant
@pytest.mark.parametrize("dims,cap", [(2, None), (2, 3), (3, 2)])
def test_immune_cells_per_site_never_exceed_k_and_the_counts_match_the_positions(dims, cap):
    """A crowded, proliferating scenario: after many steps no site holds more than k immune cells, the
    kernels' count array equals a recount from positions, and no immune cell shares a site with a
    tumor cell unless it had nowhere to step aside to."""
    size = [400.0, 400.0] if dims == 2 else [160.0] * 3
    cfg = {"domain": {"dims": dims, "size_um": size}, "tumor": {"init": {"count": 60}},
           "nk": {"dose": {"cells": (1500 if cap is None else 800) if dims == 2 else 500}, "il15": {"mode": "membrane_bound", "proliferation_per_day": 3.0},
                  "persistence": {"half_life_days": 50.0}}}
    if cap is not None:
        cfg["nk"]["crowding"] = {"max_per_site": cap}
    m = TumorImmuneModel(cfg, rng=5)
    k = m.p_nk.immune_cap
    assert (m.nk_count <= k).all() and np.array_equal(m.nk_count, _recount(m))
    for _ in range(8):
        for _ in range(60):
            m.step()
        assert int(m.nk_count.max()) <= k
        assert np.array_equal(m.nk_count, _recount(m))
    assert m.nk_counts.nk_births > 0
    live = m.nk.state[: m.nk.used] != K.NK_EMPTY
    on_tumor = live & (m.occ[m.nk.site[: m.nk.used]] >= 0)
    assert on_tumor.sum() <= 0.02 * live.sum()
    if cap is not None:  # the cap binds: some site is full
        assert int(m.nk_count.max()) == k


def test_removals_keep_the_counts_in_step():
    m = TumorImmuneModel({"domain": {"size_um": [300.0, 300.0]}, "tumor": {"init": {"count": 20}},
                          "nk": {"dose": {"cells": 300}}}, rng=2)
    live = np.flatnonzero(m.nk.state[: m.nk.used] != K.NK_EMPTY)
    m.remove_nk(live[::3])
    assert np.array_equal(m.nk_count, _recount(m)) and int(m.nk_count.sum()) == m.nk_live()


# ------------------------------------------------------------------------------------ hand-made cases
def _tiny(cap, **nk):
    """A 2D 10 × 10 lattice without tumor: NK cells that hop exactly one site per step along their
    direction (speed 10 µm/min, dt 2 min, 20 µm sites), never turn, never die."""
    cfg = {"domain": {"size_um": [200.0, 200.0]}, "tumor": {"init": {"count": 0}},
           "nk": {"dose": {"cells": 0}, "crowding": {"max_per_site": cap},
                  "motility": {"speed_um_min": 10.0, "persistence_min": 1e9, "tumor_bias": 0.0},
                  "persistence": {"half_life_days": 1e6}, **nk}}
    m = TumorImmuneModel(cfg, rng=1)
    assert m.p_nk.sites_per_step == 1.0
    return m


def _hold(m, idx):
    """Keep cells where they are: a non-triggering conjugate that never ends, no divisions left."""
    m.nk.state[idx] = K.NK_BOUND
    m.nk.timer[idx] = 1e12
    m.nk.divisions[idx] = m.p_nk.max_divisions


def test_a_move_into_a_full_site_is_refused():
    ny = 10
    a, b = 4 * ny + 4, 5 * ny + 4  # b is a's neighbour along +x
    for cap, moved in ((2, False), (3, True)):
        m = _tiny(cap)
        m.add_nk(np.array([a, b, b]))
        _hold(m, [1, 2])
        m.nk.direction[0] = (1.0, 0.0, 0.0)
        mover = m._nk_agents[0]
        assert mover.can_enter(b) is moved and mover.neighbours_on_site == 1
        m.step()
        assert m.nk.site[0] == (b if moved else a)
        assert m.nk_count[a] == (0 if moved else 1) and m.nk_count[b] == (3 if moved else 2)
        assert np.array_equal(m.nk_count, _recount(m))


def test_the_agents_and_the_kernels_share_the_rule():
    m = _tiny(2)
    m.add_nk(np.array([11, 11, 12]))
    t = 13
    m.occ[t] = 0  # a tumor cell's site (bitmap only, for the rule)
    set_occupied(m.occ_bits, t, True)
    agent = m._nk_agents[2]
    for s in (11, 12, 13, 14):
        assert agent.can_enter(s) == bool(immune_can_enter(m.occ_bits, m.nk_count, s, m.p_nk.immune_cap))
    assert [agent.can_enter(s) for s in (11, 12, 13, 14)] == [False, True, False, True]


def test_divisions_respect_the_cap():
    """The daughter takes a neighbour with room, else stays with her mother if the mother's site has
    room, else the division is refused."""
    ny = 10
    a = 4 * ny + 4
    ring = np.array([a + dx * ny + dy for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)])
    fast = {"il15": {"mode": "membrane_bound", "proliferation_per_day": 1e5, "max_divisions": 4}}
    for cap, births, where in ((1, 0, None), (2, 1, a)):
        m = _tiny(cap, **fast)
        m.add_nk(np.concatenate([[a], np.repeat(ring, cap)]))  # the mother, then every neighbour full
        _hold(m, np.arange(1, m.nk.used))
        m.nk.direction[0] = (0.0, 0.0, 0.0)
        m.step()
        assert m.nk_counts.nk_births == births and int(m.nk_count.max()) <= cap
        if where is not None:
            assert m.nk.site[m.nk.used - 1] == where
        assert np.array_equal(m.nk_count, _recount(m))
    m = _tiny(1, **fast)  # one neighbour with room: the daughter goes there
    m.add_nk(np.concatenate([[a], ring[1:]]))
    _hold(m, np.arange(1, m.nk.used))
    m.step()
    assert m.nk_counts.nk_births == 1 and m.nk.site[m.nk.used - 1] == ring[0]


def test_infusions_respect_the_cap():
    m = _tiny(2)
    placed = m.add_nk(np.array([33] * 7))
    assert len(placed) == 7 and m.nk_count[33] == 2 and int(m.nk_count.max()) == 2
    assert np.array_equal(m.nk_count, _recount(m))
    neigh = {33 + dx * 10 + dy for dx in (-1, 0, 1) for dy in (-1, 0, 1)}
    assert set(m.nk.site[: m.nk.used]) <= neigh
    n = m.nk.used
    m.add_nk(np.full(40, 33))  # 9 sites × 2 = 18 places: the rest find no room
    assert m.nk.used == 18 and m.domain_watch.crowded_out == 40 - (18 - n)
    with pytest.raises(ScenarioError, match="nk.dose.cells"):  # an initial dose the domain cannot hold
        TumorImmuneModel({"domain": {"size_um": [100.0, 100.0]}, "tumor": {"init": {"count": 0}},
                          "nk": {"dose": {"cells": 26}, "crowding": {"max_per_site": 1}}}, rng=0)
    m = TumorImmuneModel({"domain": {"size_um": [100.0, 100.0]}, "tumor": {"init": {"count": 5}},
                          "nk": {"dose": {"cells": 20, "placement": "rim"}, "crowding": {"max_per_site": 1}}}, rng=0)
    assert m.nk_live() == 20 and int(m.nk_count.max()) == 1 and not (m.occ[m.nk.site[:20]] >= 0).any()


def test_immune_cells_step_aside_from_a_tumor_daughter():
    m = _tiny(3)
    m.add_nk(np.array([44, 44]))
    m.nk.direction[:2] = 0.0
    m.add_tumor(np.array([44]), 1.0, 1.0, 1.0)  # a tumor cell lands on their site
    m.step()
    assert not (m.nk.site[:2] == 44).any() and m.nk_count[44] == 0
    assert np.array_equal(m.nk_count, _recount(m))



def test_tumor_cells_are_added_only_on_distinct_free_lattice_sites():
    """add_tumor's check (a one-bit-per-site pass, not np.unique's sorted copy) refuses repeats,
    occupied sites and sites off the lattice (a negative one used to wrap to the far end)."""
    m = _tiny(3)
    n = m.n_sites
    m.add_tumor(np.array([5, 1]), 1.0, 1.0, 1.0)
    for bad in ([7, 9, 7], [2, 5], [n], [-1], [n - 1, 3, n - 1], [[7, 9]]):  # the last: not 1-D
        with pytest.raises(ValueError, match="distinct, free and on the lattice"):
            m.add_tumor(np.array(bad), 1.0, 1.0, 1.0)
    assert m.tumor_count() == 2
    m.add_tumor(np.array([n - 1, 0, 64, 63]), 1.0, 1.0, 1.0)  # word edges of the bitmap
    assert m.tumor_count() == 6


# ------------------------------------------------------------------------------------ the boundary
def test_a_tumor_reaching_the_boundary_is_flagged_and_warned_about():
    cfg = {"name": "edge", "domain": {"size_um": [200.0, 200.0]}, "time": {"days": 2.0, "snapshot_every_h": 0},
           "tumor": {"init": {"count": 40}, "doubling_time_h": 12.0}, "nk": {"dose": {"cells": 0}},
           "output": {"figure": False}}
    with pytest.warns(DomainEdgeWarning) as rec:
        r = api.run(cfg, seed=1)
    m = r.metrics
    assert m["tumor_at_boundary"] is True and 0 < m["tumor_boundary_day"] <= 2.0
    assert m["domain_fill_fraction_max"] == pytest.approx(max(r.timeseries["tumor"]) / 100, abs=0.05)
    assert m["domain_fill_fraction_max"] > 0.9
    lines = [str(w.message) for w in rec if issubclass(w.category, DomainEdgeWarning)]
    assert len(lines) == 2 and all("\n" not in s for s in lines)
    assert "boundary" in lines[0] and "fills" in lines[1]


def test_a_tumor_far_from_the_boundary_is_not_flagged():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DomainEdgeWarning)
        r = api.run({"domain": {"size_um": [600.0, 600.0]}, "time": {"days": 0.5, "snapshot_every_h": 0},
                     "tumor": {"init": {"count": 30}}, "nk": {"dose": {"cells": 10}}, "output": {"figure": False}}, seed=1)
    m = r.metrics
    assert m["tumor_at_boundary"] is False and m["tumor_boundary_day"] is None
    assert 0 < m["domain_fill_fraction_max"] < 0.05


def test_boundary_count_is_kept_by_the_kernels():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DomainEdgeWarning)
        m = TumorImmuneModel({"domain": {"dims": 3, "size_um": [100.0] * 3}, "tumor": {"init": {"count": 30},
                              "doubling_time_h": 8.0}, "nk": {"dose": {"cells": 0}}}, rng=3)
        for _ in range(400):
            m.step()
    t = m.tumor
    st = t.state[: t.used]
    live = (st == K.T_ALIVE) | (st == K.T_DOOMED)
    xyz = np.stack(np.unravel_index(t.site[: t.used][live], m.shape), axis=1)
    edge = ((xyz == 0) | (xyz == np.array(m.shape) - 1)).any(axis=1)
    assert m.tumor_stats.at_boundary == edge.sum() > 0


def test_nksim_run_prints_one_warning_line(tmp_path, capsys):
    import yaml

    from sim.cli import main

    sc = tmp_path / "edge.yaml"
    sc.write_text(yaml.safe_dump({"name": "edge", "domain": {"size_um": [200.0, 200.0]},
                                  "time": {"days": 1.0, "snapshot_every_h": 0}, "output": {"figure": False},
                                  "tumor": {"init": {"count": 60}, "doubling_time_h": 6.0}, "nk": {"dose": {"cells": 0}}}))
    assert main(["run", str(sc), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert [line for line in err if "domain boundary" in line] == [line for line in err if line.startswith("nksim: warning:") and "boundary" in line]
    assert len([line for line in err if "domain boundary" in line]) == 1
    assert any(line.startswith("nksim: warning: edge: the tumor fills") for line in err)


def test_a_tumor_seeded_on_the_boundary_is_flagged_but_warns_only_when_it_fills_the_domain():
    cfg = {"domain": {"size_um": [300.0, 300.0]}, "time": {"days": 0.3, "snapshot_every_h": 0},
           "tumor": {"init": {"count": 120, "shape": "scattered"}}, "nk": {"dose": {"cells": 0}}, "output": {"figure": False}}
    with warnings.catch_warnings():
        warnings.simplefilter("error", DomainEdgeWarning)
        r = api.run(cfg, seed=4)
    assert r.metrics["tumor_at_boundary"] is True and r.metrics["tumor_boundary_day"] == 0.0
    cfg["tumor"]["init"]["count"] = 215  # 215 of 225 sites
    with pytest.warns(DomainEdgeWarning, match="fills") as rec:
        api.run(cfg, seed=4)
    assert len(rec) == 1


def test_arrivals_in_one_kernel_call_match_the_steps_one_by_one():
    """kernels.step.arrive_nk_cells (model._start_nk) = place_immune_cells, then rng.random(n) for the
    CAR− share, then start_nk_cells and fresh ids: the same cells, draws and counts."""
    from sim.kernels.lattice import place_immune_cells

    cfg = {"domain": {"dims": 2, "size_um": [300.0, 300.0]}, "tumor": {"init": {"count": 120}},
           "nk": {"dose": {"cells": 0}}}
    a, b = TumorImmuneModel(cfg, rng=8), TumorImmuneModel(cfg, rng=8)
    for m in (a, b):
        m.car_positive_fraction = 0.55
    sites = np.concatenate([np.flatnonzero(a.occ >= 0)[:30], np.full(12, 5), np.arange(40, 60)])  # tumor, crowded, free
    slots = a._start_nk(sites)
    # b: the same steps one at a time
    nk, p = b.nk, b.p_nk
    nx, ny, nz = b.shape
    placed = place_immune_cells(b.rng, sites.astype(np.int64), b.occ_bits, b.nk_count, p.immune_cap, b.offsets, nx, ny, nz)
    where = placed[placed >= 0]
    car = np.full(where.size, p.car_expression, dtype=np.float32)
    car[b.rng.random(where.size) >= 0.55] = 0.0
    nk.ensure(where.size)
    K.start_nk_cells(b.rng, nk.record, 0, where, car, b.now_min, p)
    b._assign_nk_ids(np.arange(where.size))
    nk.used = where.size
    assert len(slots) == where.size < sites.size
    for name in nk.FIELDS:
        assert np.array_equal(getattr(a.nk, name)[: nk.used], getattr(nk, name)[: nk.used]), name
    assert np.array_equal(a.nk_count, b.nk_count) and np.array_equal(a.next_ids, b.next_ids)
    assert a.rng.bit_generator.state == b.rng.bit_generator.state
    assert a.domain_watch.crowded_out == sites.size - where.size
    assert 0 < (a.nk.car[: nk.used] == 0).sum() < nk.used
    with pytest.raises(ValueError, match="lattice sites"):
        a._start_nk(np.array([3, a.n_sites]))
    assert a.nk.used == nk.used and np.array_equal(a.nk_count, b.nk_count)  # nothing changed


def test_vessel_arrivals_draw_their_sites_as_numpy_does():
    """model._add_nk_at_vessels(vessels, n) = _start_nk(vessels[rng.integers(0, vessels.size, n)])."""
    cfg = {"domain": {"dims": 2, "size_um": [300.0, 300.0]}, "tumor": {"init": {"count": 120}},
           "nk": {"dose": {"cells": 0}}}
    a, b = TumorImmuneModel(cfg, rng=4), TumorImmuneModel(cfg, rng=4)
    vessels = np.array([3, 5, 5, 17, int(np.flatnonzero(a.occ >= 0)[0]), 200], dtype=np.int64)
    for n in (1, 7, 40, 0, 3):
        a._add_nk_at_vessels(vessels, n)
        b._start_nk(vessels[b.rng.integers(0, vessels.size, size=n)])
    for name in a.nk.FIELDS:
        assert np.array_equal(getattr(a.nk, name)[: a.nk.used], getattr(b.nk, name)[: b.nk.used]), name
    assert a.rng.bit_generator.state == b.rng.bit_generator.state
    assert a.domain_watch.crowded_out == b.domain_watch.crowded_out
