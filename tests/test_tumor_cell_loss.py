"""Spontaneous tumor cell loss (`tumor.death_per_day`, `growth.dies_spontaneously`): a competing event of
each live cell's clock, so deaths come at rate μ whether or not a cell has room to divide, and net growth
with free space is λ − μ."""
import math

import numpy as np
import pytest

from sim.kernels.growth import dies_spontaneously, tumor_event_rate
from sim.model import TumorImmuneModel
from sim.units import MIN_PER_DAY


def _model(count, size_um, death_per_day, shape, doubling_h=24.0, seed=5):
    cfg = {"domain": {"dims": 2, "size_um": [size_um, size_um], "spacing_um": 20.0},
           "tumor": {"init": {"count": count, "shape": shape}, "doubling_time_h": doubling_h,
                     "death_per_day": death_per_day},
           "nk": {"dose": {"cells": 0}}, "fields": {"stroma": {"enabled": False}},
           "output": {"snapshots": False}}
    return TumorImmuneModel(cfg, rng=seed)


def test_rule_is_a_competing_risk_and_draws_nothing_without_loss():
    """P(death at an event) = μ/(λ + μ); with μ = 0 the event rate is λ itself and no number is drawn."""
    rng = np.random.default_rng(1)
    lam, mu = 2.0, 0.5
    hits = sum(dies_spontaneously(rng, lam, mu) for _ in range(40000))
    assert abs(hits / 40000 - mu / (lam + mu)) < 4 * math.sqrt(0.2 * 0.8 / 40000)
    assert tumor_event_rate(lam, 0.0) == lam
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    assert not dies_spontaneously(a, lam, 0.0)
    assert a.random() == b.random()  # the stream did not move


def test_net_growth_with_free_space_is_division_minus_death():
    """300 cells scattered on a lattice with room to spare (one cell in 30 sites): after 3 days the count
    is N0·exp((λ − μ)t). Tolerance: 4 SD of a birth–death process at these rates plus 3 % for the space
    that fills up and the cells doomed but not yet counted dead (apoptosis delay 1 h of 72 h)."""
    lam = math.log(2.0) / 1.0  # per day, doubling 24 h
    mu = 0.4
    m = _model(300, 1900.0, mu, "scattered")
    n0 = m.tumor_stats.live
    m.run_days(3.0)
    expected = n0 * math.exp((lam - mu) * 3.0)
    var = n0 * (lam + mu) / (lam - mu) * math.exp(2 * (lam - mu) * 3.0) * (1 - math.exp(-(lam - mu) * 3.0))
    assert abs(m.tumor_stats.live - expected) < 4 * math.sqrt(var) + 0.03 * expected
    assert m.nk_counts.kills_car == m.nk_counts.kills_innate == 0  # losses are not kills


@pytest.mark.filterwarnings("ignore::sim.errors.DomainEdgeWarning")
def test_cells_without_room_still_die_at_rate_mu():
    """A lattice filled with tumor (no free site): with μ = 0 nothing dies; with μ the deaths in one day
    are N·(1 − e^{−μ}) within 4 binomial SD plus the refill by neighbours of the cleared sites (their
    daughters can die too: at most a few %)."""
    still = _model(2500, 1000.0, 0.0, "nodule")
    still.run_days(1.0)
    assert still.tumor_stats.deaths == 0
    mu = 0.3
    m = _model(2500, 1000.0, mu, "nodule")
    n = m.tumor_stats.live
    assert n == 2500 and m.n_sites == 2500
    m.run_days(1.0)
    p = 1 - math.exp(-mu)
    deaths = m.tumor_stats.deaths
    assert abs(deaths - n * p) < 4 * math.sqrt(n * p * (1 - p)) + 0.05 * n * p
    assert m.now_min == pytest.approx(MIN_PER_DAY)


@pytest.mark.filterwarnings("ignore::sim.errors.DomainEdgeWarning")
def test_chemotherapy_spares_contact_inhibited_cells_under_cell_loss():
    """Chemotherapy hits cycling cells. With spontaneous death every live cell keeps a clock, so quiescence
    is its own flag (`TumorPopulation.quiescent`: its last division found no room and no neighbour has
    been cleared since). Without loss the flag is the sleeping clock (timer = ∞) cell for cell, so runs
    without loss are unchanged. With loss, on a lattice packed with tumor, a pulse on day 4 dooms no
    flagged cell and about half of the others (4 binomial SD)."""
    cfg = {"domain": {"dims": 2, "size_um": [1000.0, 1000.0], "spacing_um": 20.0},
           "tumor": {"init": {"count": 2500, "shape": "nodule"}, "doubling_time_h": 24.0},
           "nk": {"dose": {"cells": 0}}, "fields": {"stroma": {"enabled": False}}, "output": {"snapshots": False},
           "drugs": {"chemo": {"doses": [{"day": 4.0, "cycling_kill_fraction": 0.5, "lymphocyte_depletion": 0.0}]}}}
    for mu in (0.0, 0.3):
        m = TumorImmuneModel({**cfg, "tumor": {**cfg["tumor"], "death_per_day": mu}}, rng=9)
        m.run_days(4.0)  # the pulse fires at the start of the next step (not a tumor step: nothing else dooms)
        t = m.tumor
        alive = t.state[: t.used] == 0
        flagged = alive & (t.quiescent[: t.used] == 1)
        if mu == 0.0:
            assert np.array_equal(flagged[alive], np.isinf(t.timer[: t.used][alive]))  # the flag is the clock
        else:
            assert not np.isinf(t.timer[: t.used][alive]).any()  # every clock runs: only the flag tells
        assert flagged.sum() > 0.1 * alive.sum()  # a packed lattice: many cells are blocked
        cycling = int((alive & ~flagged).sum())
        m.step()
        doomed = alive & (t.state[: alive.size] == 1)
        assert not (doomed & flagged).any()  # no contact-inhibited cell was hit
        kills = m.therapy_state["stats"]["chemo_tumor_kills"]
        assert abs(kills - 0.5 * cycling) < 4 * math.sqrt(0.25 * cycling) + 1

