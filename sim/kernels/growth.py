"""Tumor growth: division timing under IFN-γ cytostasis, with contact inhibition on the lattice."""
from numba import njit

from .rates import saturation


@njit(cache=True)
def division_acceptance(ifng_ng_ml, max_inhibition, ec50_ng_ml):
    """Probability that a scheduled division proceeds under IFN-γ (thinning of the division process)."""
    return 1.0 - max_inhibition * saturation(ifng_ng_ml, ec50_ng_ml)


@njit(cache=True)
def next_division_delay(rng, rate_per_min):
    """Waiting time to the next division attempt (exponential, so a woken cell needs no memory)."""
    return rng.exponential(1.0 / rate_per_min)
