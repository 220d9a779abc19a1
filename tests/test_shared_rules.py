"""Rules written once: the batch kernels, the model's set-up and the Mesa agents call the same function."""
import numpy as np
import pytest

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


def _bare_model(dims=2, **extra):
    size = [600.0] * 2 if dims == 2 else [300.0] * 3
    cfg = {"domain": {"dims": dims, "size_um": size}, "tumor": {"init": {"count": 0}}, "nk": {"dose": {"cells": 0}}}
    return TumorImmuneModel({**cfg, **extra}, rng=11)


def test_infused_cells_start_like_daughters():
    """model.add_nk runs the kernel's start_nk_cell: uniform unit directions, full granules and
    death-receptor capacity, the memory fate of the product."""
    from scipy import stats

    for dims in (2, 3):
        m = _bare_model(dims)
        p = m.p_nk
        m.add_nk(np.arange(4000) % m.n_sites)
        nk = m.nk
        d = nk.direction[:4000].astype(np.float64)
        assert np.allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-6)
        if dims == 2:
            assert (d[:, 2] == 0).all()
            assert stats.kstest(np.arctan2(d[:, 1], d[:, 0]), stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue > 1e-3
        else:
            assert stats.kstest(d[:, 2], stats.uniform(-1, 2).cdf).pvalue > 1e-3
        assert (nk.granules[:4000] == np.float32(p.max_granules)).all() and (nk.dr_left[:4000] == np.float32(p.dr_capacity)).all()
        assert (nk.state[:4000] == 0).all() and (nk.target[:4000] == -1).all() and not nk.memory[:4000].any()
    m = _bare_model(2, effector="cart")
    assert m.p_nk.memory_fraction > 0
    m.add_nk(np.arange(4000) % m.n_sites)  # lattice sites (add_nk refuses others)
    assert abs(m.nk.memory[:4000].mean() - m.p_nk.memory_fraction) < 4 * np.sqrt(m.p_nk.memory_fraction / 4000) + 0.01


def test_seeded_tumor_cells_wait_the_daughters_first_division_delay():
    """model.add_tumor draws each first division attempt with growth.next_division_delay, after now."""
    from scipy import stats

    m = _bare_model(2)
    m.now_min = 100.0
    m.add_tumor(np.arange(800), 1.0, 1.0, 1.0)
    wait = m.tumor.timer[:800].astype(np.float64) - 100.0
    rate = m.p_tumor.division_rate
    assert wait.min() >= 0 and stats.kstest(wait * rate, "expon").pvalue > 1e-3
    assert m.tumor_stats.live == 800 and m.vox_tumor.sum() == 800


def test_saturation_is_one_hill_rule_and_n1_is_michaelis_menten_bit_for_bit():
    """`rates.saturation(c, EC50, n)`: n = 1 (also when n is left out) is exactly c/(c + EC50), the
    rule before the Hill exponent existed; n = 2 is the closed form c²/(EC50² + c²) to rounding;
    EC50 is the half-maximal level for every n; the triggering curve is the same function."""
    from sim.kernels.rates import saturation
    from sim.kernels.recognition import trigger_probability

    rng = np.random.default_rng(5)
    c = 10.0 ** rng.uniform(-6, 12, 500)
    e = 10.0 ** rng.uniform(-6, 12, 500)
    for ci, ei in zip(c, e):
        assert saturation(ci, ei) == ci / (ci + ei) == saturation(ci, ei, 1.0)  # bit for bit
        assert saturation(ci, ei, 2.0) == pytest.approx(ci * ci / (ei * ei + ci * ci), rel=1e-14, abs=1e-300)
        assert trigger_probability(ci, ei, 2.0) == saturation(ci, ei, 2.0)
    for n in (1.0, 2.0, 3.7):
        assert saturation(4.5e3, 4.5e3, n) == 0.5
        assert saturation(0.0, 1.0, n) == 0.0 and saturation(-1.0, 1.0, n) == 0.0
    assert saturation(1e300, 1e-10, 3.0) == 1.0  # x = (c/EC50)ⁿ overflows: 1, not inf/inf = NaN
    # de Pillis 2005: T²/(h + T²) with h = 2.02e7 cells², at T = 1e4 cells, as g = √h
    assert saturation(1e4, np.sqrt(2.02e7), 2.0) == pytest.approx(1e8 / (2.02e7 + 1e8), rel=1e-14)


def test_memory_like_nk_fraction_uses_the_same_rules_as_cart_memory():
    """`nk.persistence.memory_fraction` assigns memory-like NK with the kernel's memory_fate (as CAR-T
    memory), and the CARNKCell view gives a memory cell the memory half-life (IL-15-extended like the
    kernel's); with the default 0 no cell is memory and the random stream draws nothing for it."""
    from sim.units import MIN_PER_DAY

    m = _bare_model(2, nk={"dose": {"cells": 0}, "persistence": {"memory_fraction": 0.3, "memory_half_life_days": 90.0}})
    p = m.p_nk
    assert p.memory_fraction == 0.3 and p.memory_half_life_min == 90.0 * MIN_PER_DAY
    m.add_nk(np.arange(4000) % m.n_sites)
    mem = m.nk.memory[:4000].astype(bool)
    assert abs(mem.mean() - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 4000)
    a_mem = next(a for a in m.agents if getattr(a, "memory", False))
    a_eff = next(a for a in m.agents if hasattr(a, "memory") and not a.memory)
    assert a_mem.memory and not a_eff.memory
    assert a_mem.half_life_days() / a_eff.half_life_days() == pytest.approx(90.0 / m.config.nk.persistence.half_life_days)


def test_division_probability_is_the_lineage_limit_on_the_il15_hazard_bit_for_bit():
    """nk_step memoises the IL-15 division hazard per voxel and applies the lineage limit per cell
    (`lineage_division_probability`): the same numbers as `division_probability` and its formula."""
    from sim.kernels.persistence import division_probability, il15_division_probability, lineage_division_probability
    from sim.kernels.rates import hazard_probability

    for il15 in (0.0, 1e-3, 0.37, 2.0, 55.0):
        for divs in (0, 3, 6, 9):
            want = 0.0 if divs >= 6 else hazard_probability(0.0013 * il15 / (il15 + 0.8) if il15 > 0 else 0.0, 2.0)
            got = division_probability(0.0013, il15, 0.8, divs, 6, 2.0)
            memo = lineage_division_probability(il15_division_probability(0.0013, il15, 0.8, 2.0), divs, 6)
            assert got == want and memo == want
