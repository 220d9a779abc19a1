"""The memory-bounded set-up helpers (nodule and shell site selection) give exactly the brute-force sites."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sim.kernels import step as K
from sim.model import TumorImmuneModel


def brute_nodule(m: TumorImmuneModel, count: int) -> np.ndarray:
    """The `count` sites nearest the domain centre, ties to the lower index, over the whole lattice."""
    xyz = np.stack(np.unravel_index(np.arange(m.n_sites), m.shape), axis=1)
    d2 = ((xyz - m._centre()) ** 2).sum(axis=1)
    return np.sort(np.lexsort((np.arange(m.n_sites), d2))[:count])


def brute_shell(m: TumorImmuneModel, r_in: float, r_out: float) -> np.ndarray:
    xyz = np.stack(np.unravel_index(np.arange(m.n_sites), m.shape), axis=1)
    d = np.sqrt(((xyz - m.centroid()) ** 2).sum(axis=1))
    return np.flatnonzero((d >= r_in) & (d < r_out))


@pytest.mark.parametrize("dims,size,count", [(2, [400, 300], 37), (2, [420, 420], 120), (3, [200, 180, 220], 91),
                                             (3, [220, 220, 220], 300), (2, [200, 200], 1)])
def test_nodule_and_shell_sites_match_brute_force(dims, size, count):
    m = TumorImmuneModel({"domain": {"dims": dims, "size_um": size}, "tumor": {"init": {"count": count}},
                          "nk": {"dose": {"cells": 0}}}, rng=1)
    for n in (1, count // 2 + 1, count):
        np.testing.assert_array_equal(m._nodule_sites(n), brute_nodule(m, n))
    rng = np.random.default_rng(3)
    for _ in range(5):  # arbitrary (non-lattice) centroids and radii, including ones reaching past the edge
        m.tstats[K.S_SX : K.S_SZ + 1] = m.tumor_stats.live * (rng.random(3) * np.array(m.shape) - 0.5) * (np.array(m.shape) > 1)
        r_in = rng.random() * 4
        r_out = r_in + rng.random() * 6 + 0.5
        np.testing.assert_array_equal(m._shell_sites(r_in, r_out), brute_shell(m, r_in, r_out))
    assert math.isclose(m.tumor_count(), count)


def test_tumor_capacity_reserve_is_the_due_divisions():
    """The pre-step reserve counts live cells due to divide; the arrays never need more."""
    m = TumorImmuneModel({"domain": {"size_um": [600.0, 600.0]}, "tumor": {"init": {"count": 300}},
                          "nk": {"dose": {"cells": 0}}, "time": {"tumor_dt_min": 60.0}}, rng=2)
    t = m.tumor
    for _ in range(720):  # one day: several waves of divisions
        h = m.now_min + 100.0
        due = (t.timer[: t.used] <= h) & (t.state[: t.used] != K.T_EMPTY)
        order, n_live = K.due_cells(t.used, t.state, t.timer, h)
        assert np.array_equal(order, np.flatnonzero(due))
        assert n_live == int((due & (t.state[: t.used] == K.T_ALIVE)).sum())
        m.step()
        assert t.used <= t.capacity
    assert m.tumor_count() > 300 and t.capacity <= 2 * max(600, m.tumor_count())


def test_preflight_slot_sizes_are_the_populations_fields():
    """The memory estimate's bytes per tumor slot and per CAR-NK slot are what the populations store: the
    itemsizes of their fields (a packed NK record counts its padded 64 bytes, plus the cold fields)."""
    from sim.scenario import preflight as pf
    from sim.state import NKPopulation, TumorPopulation

    def itemsize(dt, tail):
        return np.dtype(dt).itemsize * int(np.prod(tail or (1,)))

    tumor = sum(itemsize(dt, tail) for dt, _, tail in TumorPopulation.FIELDS.values())
    assert pf.B_TUMOR_SLOT == tumor
    cold = sum(itemsize(dt, tail) for n, (dt, _, tail) in NKPopulation.FIELDS.items() if n not in NKPopulation.PACKED)
    assert pf.B_NK_SLOT == 64 + cold and NKPopulation(16).site.strides == (64,)
