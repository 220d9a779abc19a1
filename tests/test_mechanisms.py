"""Each mechanism in isolation, on motionless NK–tumor pairs (no growth, no NK loss)."""
import math

import numpy as np
import pytest

from sim.kernels import recognition as R
from sim.kernels.killing import PATH_DEATH_RECEPTOR, PATH_GRANULE, PATH_NONE, choose_kill_path, granules_per_step, regenerate_granules
from sim.kernels.persistence import effective_half_life
from sim.model import TumorImmuneModel

from helpers import STILL, deep_merge, hit_fraction, pairs_model


def run_hours(m, hours):
    for _ in range(int(round(hours * 60 / m.dt))):
        m.step()


def test_antigen_negative_mhc_high_cell_is_not_killed():
    """Missing-self is absent and no CAR target: the net signal is ≤ 0, so no trigger, ever."""
    m = pairs_model(200, antigen=0.0, mhc=2.0, ligand=0.5)
    run_hours(m, 12)
    assert m.nk_counts.triggers == 0  # no triggering conjugate at all
    assert hit_fraction(m) == 0.0
    assert m.nk_counts.conjugates > 0  # but conjugates were formed and released


def test_antigen_negative_mhc_low_ligand_high_cell_is_killed_innately():
    """Missing self + NKG2D ligand: innate (CAR-independent) killing of antigen-negative cells."""
    m = pairs_model(200, antigen=0.0, mhc=0.05, ligand=2.0)
    run_hours(m, 6)
    assert hit_fraction(m) > 0.9
    assert m.nk_counts.kills_car == 0 and m.nk_counts.kills_innate == m.tumor.used - (m.tumor.state[: m.tumor.used] == 0).sum()


def test_car_kills_antigen_positive_cells_and_is_credited_to_car():
    m = pairs_model(200, antigen=1.0, mhc=1.0, ligand=0.5)
    run_hours(m, 6)
    assert hit_fraction(m) > 0.9
    assert m.nk_counts.kills_car > 0.9 * 200 and m.nk_counts.kills_innate == 0


@pytest.mark.parametrize("seed", [1, 2])
def test_more_tgfb_lowers_the_kill_rate(seed):
    """TGF-β suppresses activation and NKG2D: fewer kills in the same time at 10 ng/mL than at 0."""
    base = {"nk": {"activation": {"half_activation": 1.0}}}
    lo = pairs_model(400, 1.0, 1.0, 0.5, seed=seed, extra=base)
    hi = pairs_model(400, 1.0, 1.0, 0.5, seed=seed, extra=deep_merge(base, {"fields": {"tgfb": {"background_ng_ml": 10.0}}}))
    run_hours(lo, 1)
    run_hours(hi, 1)
    k_lo, k_hi = hit_fraction(lo), hit_fraction(hi)
    # binomial sd at n=400 is ≤ 0.025; the expected gap (trigger 0.69 → 0.33) is far larger
    assert k_hi < k_lo - 0.1


def test_tgfb_resistance_removes_suppression():
    assert R.tgfb_suppression(10.0, 2.0, 0.5, True) == 0.0
    assert R.tgfb_suppression(10.0, 2.0, 0.5, False) == pytest.approx(0.5 * 10 / 12)


def _surrounded_nk(granules, dr_capacity, hours=24.0, perforin=True):
    """One motionless NK cell with eight antigen+ targets around it and no granule regeneration."""
    extra = {"nk": {"killing": {"granules": granules, "granule_regen_h": 1e6, "death_receptor_capacity": dr_capacity,
                                "perforin": perforin, "exhaustion_stimulations": 1000}}}
    m = TumorImmuneModel(deep_merge(STILL, extra), rng=3)
    nx, ny, _ = m.shape
    cx, cy = nx // 2, ny // 2
    ring = [(cx + dx, cy + dy, 0) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)]
    m.add_tumor(np.ravel_multi_index(np.array(ring).T, m.shape), 1.0, 1.0, 0.5)
    m.add_nk(np.array([np.ravel_multi_index((cx, cy, 0), m.shape)]))
    run_hours(m, hours)
    return int(m.nk.kills[0])


def test_granule_stock_bounds_serial_kills():
    assert _surrounded_nk(granules=3, dr_capacity=0) == 3
    assert _surrounded_nk(granules=3, dr_capacity=1) == 4
    assert _surrounded_nk(granules=8, dr_capacity=0) == 8  # all eight neighbours


def test_perforin_deficient_nk_kill_about_once():
    """Prager 2019: without perforin only the death-receptor route is left (capacity 1)."""
    assert _surrounded_nk(granules=5, dr_capacity=1, perforin=False) == 1


def test_kill_path_choice_and_granule_regeneration():
    assert choose_kill_path(True, 1.0, 1.0) == PATH_GRANULE
    assert choose_kill_path(True, 0.5, 1.0) == PATH_DEATH_RECEPTOR
    assert choose_kill_path(False, 5.0, 0.0) == PATH_NONE
    assert regenerate_granules(1.0, 4.0, granules_per_step(60.0, 30.0)) == pytest.approx(1.5)
    assert regenerate_granules(3.9, 4.0, granules_per_step(60.0, 30.0)) == 4.0


def test_ifng_upregulates_mhc_and_protects_from_nk():
    assert R.effective_mhc(1.0, 0.0, 1.0, 1.0) == 1.0
    assert R.effective_mhc(1.0, 1.0, 1.0, 1.0) == pytest.approx(1.5)
    # a target that is killable without IFN-γ becomes protected by a high IFN-γ level
    car, inn, adcc = R.activating_signals(1.0, 1.0, 0.0, 1.0, 0.8, 0.0, 0.0, 0.0)
    assert R.net_signal(car, inn, adcc, 0.5, R.effective_mhc(1.0, 0.0, 1.0, 1.0), 0.0, 0.0) > 0
    assert R.net_signal(car, inn, adcc, 0.5, R.effective_mhc(1.0, 100.0, 1.0, 1.0), 0.0, 0.0) == 0.0


def _observed_half_life(extra, seed=5, days=6.0):
    cfg = deep_merge(STILL, deep_merge({"nk": {"dose": {"cells": 3000}, "il15": {"proliferation_per_day": 0.0}}}, extra))
    m = TumorImmuneModel(cfg, rng=seed)
    run_hours(m, days * 24)
    return m.observed_nk_half_life_days(), m.nk_counts.nk_deaths


def test_observed_nk_half_life_matches_configured_without_il15():
    t_half, deaths = _observed_half_life({"nk": {"persistence": {"half_life_days": 3.0}}})
    # MLE of an exponential rate from d deaths has relative sd 1/sqrt(d) (d ≈ 2300 → 2 %); allow 4 sd
    assert abs(t_half / 3.0 - 1) < 4 / math.sqrt(deaths)


def test_observed_nk_half_life_with_exogenous_il15():
    """IL-15 at its EC50 stretches the half-life by 1 + ext/2."""
    extra = {"nk": {"persistence": {"half_life_days": 2.0}, "il15": {"half_life_extension": 2.0, "ec50_ng_ml": 0.5}},
             "fields": {"il15": {"background_ng_ml": 0.5}}}
    t_half, deaths = _observed_half_life(extra, days=8.0)
    expected = effective_half_life(2.0, 0.5, 2.0, 0.5)
    assert expected == pytest.approx(4.0)
    assert abs(t_half / expected - 1) < 4 / math.sqrt(deaths)


def test_observed_nk_half_life_with_il15_armoring():
    """Membrane/autocrine IL-15 (secretion to the field switched off) extends persistence by the autocrine level."""
    extra = {"nk": {"persistence": {"half_life_days": 2.0},
                    "il15": {"mode": "secreted", "secretion": 0.0, "autocrine_ng_ml": 1.0, "half_life_extension": 3.0, "ec50_ng_ml": 0.5}}}
    t_half, deaths = _observed_half_life(extra, days=8.0)
    expected = effective_half_life(2.0, 1.0, 3.0, 0.5)  # 2 × (1 + 3·2/3) = 6 days
    assert abs(t_half / expected - 1) < 4 / math.sqrt(deaths)


def test_il15_drives_nk_proliferation():
    cfg = deep_merge(STILL, {"nk": {"dose": {"cells": 500}, "il15": {"proliferation_per_day": 0.5, "max_divisions": 3}},
                             "fields": {"il15": {"background_ng_ml": 10.0}}})
    m = TumorImmuneModel(cfg, rng=2)
    run_hours(m, 48)
    assert m.nk_live() > 700
    assert m.nk.divisions[: m.nk.used].max() <= 3
    m0 = TumorImmuneModel(deep_merge(STILL, {"nk": {"dose": {"cells": 500}}}), rng=2)
    run_hours(m0, 48)
    assert m0.nk_live() == 500
