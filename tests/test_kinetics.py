"""Blood kinetics of infused products (sim/kinetics.py, `nksim validate kinetics`) against Liu 2020,
Zhang 2007 and Stein 2019, plus the blood compartment's memory pool and tumor-bed recirculation."""
import math

import numpy as np
import pytest

from sim import data
from sim.kinetics import PRODUCTS, blood_curve, kinetic_metrics
from sim.therapy.blood import BloodCompartment

ROOT = data.path(".").parent.parent
CB, PB, CART = PRODUCTS


@pytest.fixture(scope="module")
def metrics():
    """Two lots of each product (the lot spread is small next to the tolerances below)."""
    return {name: [kinetic_metrics(blood_curve(ov, seed)) for seed in (4000, 4001)] for name, ov in PRODUCTS.items()}


def test_package_scenarios_are_copies_of_the_shipped_ones():
    """Package-data scenarios that also live in scenarios/ must not drift from them."""
    for f in data.path(".").glob("*.yaml"):
        twin = ROOT / "scenarios" / f.name
        if twin.exists():
            assert f.read_bytes() == twin.read_bytes(), f"sim/data/{f.name} differs from scenarios/{f.name}"


def _bc(**kw):
    base = dict(infusions=[(0.0, 1e6)], k_out=math.log(2) / 60, k_back=math.log(2) / 1440, k_inf=0.5 / 1440,
                half_life_min=1e12, il15_extension=0.0, il15_ec50=0.5, prolif_rate=0.0, max_divisions=0,
                il15=lambda t: 0.0)
    return BloodCompartment(**{**base, **kw})


def test_tumor_bed_entry_is_not_a_sink():
    """Cells entering the tumor bed recirculate: with no death, blood + organs keep every infused cell,
    while the entries (which feed the section) keep growing."""
    bc = _bc()
    y = bc.state(60 * 1440.0)
    assert y[0] + y[1] == pytest.approx(1e6, rel=1e-4)
    assert bc.entered(0.0, 60 * 1440.0) > 1e5


def test_memory_pool_takes_its_fraction_and_outlives_effectors():
    """A fraction f of the bolus joins the memory pool (as `persistence.memory_fate` assigns tissue cells);
    with effector t½ 5 d and memory t½ 200 d, the level at day 120 is set by the memory pool."""
    f, day = 0.1, 1440.0
    bc = _bc(half_life_min=5 * day, memory_fraction=f, memory_half_life_min=200 * day)
    y0 = bc.state(0.0)
    assert y0[4] == pytest.approx(f * 1e6) and y0[0] == pytest.approx((1 - f) * 1e6)
    y = bc.state(120 * day)
    expected_memory = f * 1e6 * 0.5 ** (120 / 200)
    assert y[4] + y[5] == pytest.approx(expected_memory, rel=1e-3)
    assert y[0] + y[1] < 1e-3 * (y[4] + y[5])


def test_pb_nk_decline_half_life_under_10_days(metrics):
    """Zhang 2007 (literature.md): non-armored NK persist with a half-life under 10 days; the bound is
    the published statement itself, so no tolerance is added."""
    for m in metrics[PB]:
        assert m["decline_half_life_days"] < 10.0


def test_cart_terminal_half_life_matches_stein(metrics):
    """Stein 2019: terminal half-life ≈ 220 d. The model's comes from the memory half-life default
    (200 d, sourced to Awasthi 2020's persistence, not fitted to Stein), so ±20 % is the gap between two
    independent sources, and the level must still be above the qPCR detection limit at 1 year."""
    for m in metrics[CART]:
        assert m["terminal_half_life_days"] == pytest.approx(220.0, rel=0.20)
        assert m["detectable_day_365"]


def test_cart_expansion_doubling_and_peak(metrics):
    """Stein 2019: expansion doubling ≈ 0.78 d. `cart.expansion.blood_division_per_day` is calibrated to
    it, so this only checks the calibration holds (±15 %: death and redistribution during expansion
    move it); the peak day is not calibrated and must fall in the first two weeks (Tmax of about 10 d)."""
    for m in metrics[CART]:
        assert m["doubling_days"] == pytest.approx(0.78, rel=0.15)
        assert 5.0 <= m["peak_day"] <= 14.0


def test_cart_initial_decline_matches_stein(metrics):
    """Stein 2019: initial decline half-life ≈ 4.3 d (±30 %: the between-patient spread of a population fit).
    The effector half-life default is Stein's contraction rate α and the memory fraction Stein's F_B; the
    decline measured here also carries the IL-15 extension after lymphodepletion and recirculation."""
    for m in metrics[CART]:
        assert m["decline_half_life_days"] == pytest.approx(4.3, rel=0.30)


def test_cb_il15_carnk_expands_within_two_weeks(metrics):
    """Liu 2020: expansion within the first two weeks. The cord-blood preset's IL-15-driven division rate
    (0.6/day) is calibrated to it, so this checks the calibration holds in every lot (no tolerance: the
    published statement is the bound) and that the expansion is a real rise (doubling under a week)."""
    for m in metrics[CB]:
        assert m["peak_day"] <= 14.0
        assert m["doubling_days"] < 7.0


@pytest.mark.xfail(strict=True, reason="known gap (docs/validation.md §4): no long-lived subset of the CB product survives "
                   "host-versus-graft rejection (hazard 0.35/day x 0.33 mismatch once the host recovers), so nothing is "
                   "detectable at a year; Liu 2020 saw persistence despite HLA mismatch, a mechanism the model lacks")
def test_cb_il15_carnk_persists_a_year_like_liu(metrics):
    """Liu 2020: low-level persistence detectable ≥ 12 months (qPCR; detection limit assumed 10 copies/µg)."""
    for m in metrics[CB]:
        assert m["detectable_day_365"]
