"""IL-15 economy: receptor-mediated uptake by effector cells (a per-voxel sink in the field solver)
keeps secreted IL-15 at the level its own secretion/clearance ratio allows, whatever the NK count."""
from __future__ import annotations

import math

import numpy as np
import pytest

from helpers import STILL, deep_merge
from sim.fields import CytokineFields
from sim.kernels.params import IL15
from sim.model import TumorImmuneModel


def test_uniform_sink_and_source_reach_the_exact_steady_state():
    """A uniform source s and uptake k with decay g: u → s/(g + k) with the exact local solution
    u(t) = s/a (1 − e^{−a t}) (diffusion does nothing on a uniform field), to round-off."""
    g_half, k, s = 90.0, 0.05, 0.002
    f = CytokineFields((20, 20, 1), 20.0, 2, ("c",), [600.0], [g_half], [0.0])
    a = math.log(2) / g_half + k
    for n in range(1, 40):
        f.sources[0] = s
        f.step(10.0, {0: np.full(f.shape, k)})
        assert np.allclose(f.values[0], s / a * (1 - math.exp(-a * 10.0 * n)), rtol=1e-12, atol=0)


def test_sink_without_diffusion_is_local_and_conserves_elsewhere():
    """A sink in one voxel removes cytokine only there when D = 0; the other voxels only decay."""
    f = CytokineFields((6, 6, 1), 20.0, 1, ("c",), [0.0], [math.inf], [0.0])
    f.values[0] = 1.0
    k = np.zeros(f.shape)
    k[2, 3, 0] = 0.1
    f.step(5.0, {0: k})
    expect = np.ones(f.shape)
    expect[2, 3, 0] = math.exp(-0.5)
    assert np.allclose(f.values[0], expect, rtol=1e-14)


def test_zero_sink_is_bit_identical_to_the_exact_step():
    """An all-zero sink takes the ordinary exact path (scenarios without uptake do not change)."""
    rng = np.random.default_rng(3)
    a = CytokineFields((16, 12, 1), 20.0, 1, ("c",), [600.0], [90.0], [0.0])
    b = CytokineFields((16, 12, 1), 20.0, 1, ("c",), [600.0], [90.0], [0.0])
    a.values[0] = b.values[0] = rng.random(a.shape)
    a.sources[0] = b.sources[0] = rng.random(a.shape)
    a.step(10.0)
    b.step(10.0, {0: np.zeros(a.shape)})
    assert np.array_equal(a.values, b.values)


def _secreting(cells: int, uptake: float, days: float = 1.0) -> TumorImmuneModel:
    c = deep_merge(STILL, {"time": {"days": days}, "domain": {"field_coarsen": 2},
                           "nk": {"dose": {"cells": cells, "placement": "random"},
                                  "il15": {"mode": "secreted", "proliferation_per_day": 0.0,
                                           "uptake_um3_per_min": uptake}}})
    m = TumorImmuneModel(c, rng=11)
    m.run_for(days)
    return m


def test_secreted_il15_self_limits_at_secretion_over_clearance():
    """With uptake every voxel obeys u ≤ S/Cl (per-cell secretion over per-cell clearance: the
    local steady state n·S/(g·V + n·Cl) is below it for any n, and diffusion cannot exceed a bound
    that holds everywhere), so a 10× larger dose does not raise the level 10×; without uptake it does."""
    cap = None
    levels = {}
    for cells in (200, 2000):
        for uptake in (0.0, 3.0e3):
            m = _secreting(cells, uptake)
            p = m.config.nk.il15
            s_ng_min = p.secretion * 1e-6 / 1440.0  # ng/min per cell
            cap = s_ng_min / (uptake * 1e-12) if uptake else math.inf
            levels[cells, uptake] = float(m.fields.values[IL15].mean())
            assert m.fields.values[IL15].max() <= cap * (1 + 1e-9)
    assert levels[2000, 0.0] / levels[200, 0.0] == pytest.approx(10.0, rel=0.05)  # linear without uptake
    assert levels[2000, 3.0e3] / levels[200, 3.0e3] < 3.0  # saturating with uptake
    assert levels[2000, 3.0e3] < cap  # tens of pg/mL: the range the secretion's source note cites
    assert 0.005 < levels[2000, 3.0e3] < 0.1


def test_uptake_counts_every_effector_in_its_voxel():
    """The sink handed to the field solver is (cells in the voxel) × (clearance of one cell / voxel volume)."""
    m = _secreting(300, 3.0e3, days=0.01)
    sinks = m._field_sinks()
    k = sinks[IL15].reshape(-1)
    live = m.nk.state[: m.nk.used] != -1  # NK_EMPTY
    assert k.sum() == pytest.approx(live.sum() * 3.0e3 * 1e-12 / m.fields.voxel_volume_ml, rel=1e-12)
