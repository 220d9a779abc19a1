"""Tumor growth: division timing under IFN-γ cytostasis, with contact inhibition on the lattice."""
import math

from numba import njit

from .rates import saturation


@njit(cache=True, inline='always')
def division_acceptance(ifng_ng_ml, max_inhibition, ec50_ng_ml):
    """Probability that a scheduled division proceeds under IFN-γ (thinning of the division process)."""
    return 1.0 - max_inhibition * saturation(ifng_ng_ml, ec50_ng_ml)


@njit(cache=True, inline='always')
def next_division_delay(rng, rate_per_min):
    """Waiting time to the next division attempt (exponential, so a woken cell needs no memory),
    by inversion of one uniform draw."""
    return -math.log(1.0 - rng.random()) / rate_per_min
