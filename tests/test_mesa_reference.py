"""The plain-Mesa reference model (benchmarks/mesa_reference.py) as a statistical oracle for the kernels.

Same rules, same initial state, independent code and random streams: the tumor and CAR-NK
trajectories must agree in distribution. A negative control (slower attachment in the kernel)
checks that the comparison has the power to see a real rule difference.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from benchmarks.mesa_reference import MesaReference, oracle_overrides
from sim.model import TumorImmuneModel

# the threshold of identical-cell days (1.5, not the calibrated 3.4) keeps the kills high enough for the
# comparison to have power; the per-cell responsiveness spread (default 0.7) and the tumor's expression
# noise (default) are on, so the oracle checks those rules too
CFG = {"domain": {"dims": 2, "size_um": [800.0, 800.0]}, "tumor": {"init": {"count": 150}},
       "nk": {"dose": {"cells": 40, "placement": "rim"}, "activation": {"half_activation": 1.5}}}
REPS, STEPS, CHECK_EVERY = 16, 360, 120  # 12 h at dt = 2 min, observed at 4, 8 and 12 h


def trajectories(use_mesa: bool, **extra) -> np.ndarray:
    """(replicate, checkpoint, [tumor, NK live, kills]) for REPS seeds."""
    out = []
    for rep in range(REPS):
        m = TumorImmuneModel(CFG, rng=500 + rep, **oracle_overrides(), **extra)
        sim = MesaReference(m, seed=500 + rep) if use_mesa else m
        rows = []
        for k in range(1, STEPS + 1):
            sim.step()
            if k % CHECK_EVERY == 0:
                kills = sim.kills if use_mesa else m.nk_counts.kills_car + m.nk_counts.kills_innate + m.nk_counts.kills_adcc
                rows.append((sim.tumor_count(), sim.nk_live(), kills))
        out.append(rows)
    return np.array(out, dtype=float)


@pytest.fixture(scope="module")
def mesa_runs():
    return trajectories(True)


def welch_p(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Welch t-test p-values per checkpoint and observable."""
    return stats.ttest_ind(a, b, axis=0, equal_var=False).pvalue


def test_kernel_matches_mesa_reference_in_distribution(mesa_runs):
    kern = trajectories(False)
    # the comparison is not vacuous: NK kill most of the tumor in 12 h
    assert kern[:, -1, 2].mean() > 50 and mesa_runs[:, -1, 2].mean() > 50
    p = welch_p(kern, mesa_runs)
    assert np.all(p > 1e-3), f"kernel vs Mesa reference differ: p = {p}"
    rel = np.abs(kern.mean(0) - mesa_runs.mean(0)) / np.maximum(mesa_runs.mean(0), 1.0)
    assert np.all(rel < 0.15), f"relative mean differences {rel}"


def test_oracle_detects_a_changed_rule(mesa_runs):
    slow = trajectories(False, **{"nk.activation.attach_rate_per_min": 0.02})
    p = welch_p(slow, mesa_runs)
    assert p[:, 2].min() < 1e-3  # kills differ
