"""Rules written once: the batch kernels, the model's set-up and the Mesa agents call the same function."""
import numpy as np

from sim.kernels.killing import is_exhausted
from sim.kernels.order import shuffled
from sim.kernels.phenotype import lognormal, lognormal_levels
from sim.model import TumorImmuneModel


def test_lognormal_has_the_asked_mean_and_cv_and_draws_nothing_when_degenerate():
    rng = np.random.default_rng(1)
    x = lognormal(rng, 2.0, 0.5, 200_000)
    assert abs(x.mean() / 2.0 - 1) < 0.01 and abs(x.std() / x.mean() / 0.5 - 1) < 0.02
    state = rng.bit_generator.state
    assert lognormal(rng, 0.0, 0.5) == 0.0 and lognormal(rng, 1.5, 0.0) == 1.5
    assert np.array_equal(lognormal_levels(rng, 3, 1.5, 0.0), np.full(3, 1.5, np.float32))
    assert rng.bit_generator.state == state
    assert lognormal_levels(rng, 4, 1.0, 0.3).dtype == np.float32


def test_exhaustion_is_one_rule_for_kernel_model_agents_and_snapshots():
    m = TumorImmuneModel({"domain": {"size_um": [400.0, 400.0]}, "tumor": {"init": {"count": 50}},
                          "nk": {"dose": {"cells": 30}}}, rng=3)
    thr = m.p_nk.exhaustion_stims
    m.nk.stims[:30] = np.arange(30) % (thr + 3)
    want = [bool(is_exhausted(int(s), thr)) for s in m.nk.stims[:30]]
    assert [a.exhausted for a in m._nk_agents[:30]] == want
    assert m.nk_exhausted() == sum(want)
    assert list(m.snapshot()["nk_exhausted"]) == want and 0 < sum(want) < 30


def test_the_well_mixed_step_uses_the_batch_shuffle():
    a = shuffled(np.random.default_rng(7), np.arange(50))
    b = np.arange(50)
    rng = np.random.default_rng(7)
    for i in range(49, 0, -1):  # Fisher–Yates from uniform draws, written out
        j = int(rng.random() * (i + 1))
        b[i], b[j] = b[j], b[i]
    assert np.array_equal(a, b)
