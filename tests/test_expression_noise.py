"""Non-genetic expression noise with memory (tumor.expression_memory_generations, kernels/noise.py):
daughters' antigen, MHC-I and NKG2D-ligand levels relax toward their clone's or the population's
distribution, so selection cannot fix a non-heritable trait, while genetic antigen loss stays."""
import math

import numpy as np
from scipy import stats

from sim.kernels.noise import log_params, memory_rho, relaxed_level, standard_normal_pair
from sim.kernels.streams import seeded_stream
from sim.kernels.step import T_ALIVE
from sim.model import TumorImmuneModel


def test_the_relaxation_keeps_the_population_lognormal_and_forgets_at_the_stated_rate():
    """Stationarity: 20 000 levels drawn from lognormal(mean 1, CV 0.3) keep that law after five
    relaxation steps (KS p > 1e-3). Memory: cells all starting at 3× the mean have a mean log-deviation
    of ρ^k·ln 3 after k steps (ρ = e^(−1/2) for 2 generations); 4 standard errors of 20 000 draws."""
    rng = np.random.default_rng(3)
    st = seeded_stream(1, 2, 3)
    mu, sd = log_params(1.0, 0.3)
    rho = memory_rho(2.0)
    assert rho == math.exp(-0.5) and memory_rho(None) == 1.0
    x = rng.lognormal(mu, sd, 20_000)
    hi = np.full(20_000, 3.0)
    for _ in range(5):
        for i in range(x.size):
            z1, z2 = standard_normal_pair(st)
            x[i] = relaxed_level(x[i], z1, mu, sd, rho)
            hi[i] = relaxed_level(hi[i], z2, mu, sd, rho)
    assert stats.kstest(np.log(x), stats.norm(mu, sd).cdf).pvalue > 1e-3
    dev = np.log(hi) - mu
    expect = rho ** 5 * (math.log(3.0) - mu)
    assert abs(dev.mean() - expect) < 4 * sd / math.sqrt(20_000)
    assert relaxed_level(0.0, 1.0, mu, sd, rho) == 0.0 and relaxed_level(2.5, 1.0, mu, sd, 1.0) == 2.5


def _grown(memory, **tumor):
    cfg = {"domain": {"dims": 2, "size_um": [800.0, 800.0]}, "nk": {"dose": {"cells": 0}},
           "tumor": {"init": {"count": 40, "shape": "scattered"}, "doubling_time_h": 12.0,
                     "expression_memory_generations": memory, **tumor}}
    m = TumorImmuneModel(cfg, rng=9)
    return m


def test_daughters_regress_to_the_population_and_clones_keep_their_level():
    """Forty founders set to MHC-I 4× the mean, a third antigen-negative, a third an antigen-low
    clone (level 0.2): after 3 days of growth (~6 generations) MHC-I has regressed to within 0.15 of the
    population's log-mean, the antigen-negative clone is still negative, and the low clone's cells
    fluctuate around 0.2, not around the population mean 1. With null memory daughters copy exactly."""
    for memory in (2.0, None):
        m = _grown(memory)
        t = m.tumor
        n = t.used
        t.mhc[:n] = 4.0
        neg, low = np.arange(n) % 3 == 0, np.arange(n) % 3 == 1
        t.antigen[:n][neg], t.ag_clone[:n][neg] = 0.0, 0.0
        t.antigen[:n][low], t.ag_clone[:n][low] = 0.2, 0.2
        t.antigen[:n][~neg & ~low], t.ag_clone[:n][~neg & ~low] = 1.0, 1.0
        m.run_days(3.0)
        alive = np.flatnonzero(t.state[: t.used] == T_ALIVE)
        assert alive.size > 400
        mhc, ag, clone = t.mhc[alive], t.antigen[alive], t.ag_clone[alive]
        assert ((ag == 0) == (clone == 0)).all() and (clone == 0).any()
        if memory is None:
            assert (mhc == 4.0).all() and set(np.unique(ag)) <= {0.0, np.float32(0.2), 1.0}
            continue
        mu, _ = log_params(1.0, 0.3)
        assert abs(np.log(mhc).mean() - mu) < 0.15
        lowc = clone == np.float32(0.2)
        assert abs(np.log(ag[lowc]).mean() - log_params(0.2, m.config.tumor.antigen.cv)[0]) < 0.15
        assert np.unique(ag[lowc]).size > 50  # they do fluctuate
