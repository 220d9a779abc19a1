"""Recirculation: effector cells that came from blood leave the tumor bed at the blood compartment's
organ → blood return rate (one rate, `kernel_units.egress_per_min`), only while not engaged with a target."""
import math

import numpy as np
import pytest

from sim import data
from sim.kernels.persistence import leaves_tissue
from sim.model import TumorImmuneModel
from sim.scenario.kernel_units import egress_per_min
from sim.scenario.resolve import resolve

LYMPHOMA = data.path("cd19_lymphoma_cb_il15.yaml")


def test_egress_rate_is_the_blood_return_rate_and_off_without_infusions():
    """With infusions the section's egress equals ln 2 / return half-life; cells placed in the tissue with
    no blood compartment (nk.dose.cells) have nowhere to return and do not leave."""
    eff = resolve(LYMPHOMA, {"dosing.blood.return_half_life_h": 12.0})
    assert egress_per_min(eff.scenario) == pytest.approx(math.log(2) / (12.0 * 60.0))
    placed = resolve(data.path("cd19_carnk_vs_cart.yaml"))
    assert egress_per_min(placed.scenario) == 0.0


def test_only_free_cells_leave():
    """The rule: a free cell leaves with probability p; a cell in a conjugate (killing or bound) never does."""
    rng = np.random.default_rng(0)
    assert leaves_tissue(rng, True, 1.0) and not leaves_tissue(rng, False, 1.0) and not leaves_tissue(rng, True, 0.0)


def test_free_cells_leave_the_section_at_the_return_rate():
    """Cells with no tumor to engage, no death and no division leave as a binomial with the per-step
    egress probability; the count must fall within 4 binomial standard deviations of n·(1 − (1−p)^k)."""
    eff = resolve(LYMPHOMA, {"tumor.init.count": 0, "nk.persistence.half_life_days": 1e9, "nk.il15.mode": "none",
                             "nk.il15.proliferation_per_day": 0.0, "dosing.tissue_fraction": 1e-30,
                             "dosing.lymphodepletion.regimen": "none", "product.rejection.hypoimmune": True,
                             "dosing.blood.return_half_life_h": 6.0})
    m = TumorImmuneModel(eff)
    rng = np.random.default_rng(1)
    m.add_nk(rng.integers(0, m.n_sites, size=2000))
    n0 = m.nk_live()
    steps = 90
    for _ in range(steps):
        m.step()
    p = 1.0 - math.exp(-egress_per_min(eff.scenario) * m.dt)
    q = 1.0 - (1.0 - p) ** steps
    left = m.nk_counts.nk_egress
    assert m.nk_counts.nk_deaths == 0 and left == n0 - m.nk_live()
    assert abs(left - n0 * q) <= 4.0 * math.sqrt(n0 * q * (1.0 - q))
