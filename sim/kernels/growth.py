"""Tumor growth: division timing under IFN-γ cytostasis, with contact inhibition on the lattice, and
spontaneous cell loss (apoptosis) as a competing event."""
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


@njit(cache=True, inline='always')
def tumor_event_rate(division_rate_per_min, death_rate_per_min):
    """Rate of a live tumor cell's next event: a division attempt or spontaneous death (competing
    risks); the division rate itself when there is no spontaneous death (the same timers, bit for bit)."""
    return division_rate_per_min + death_rate_per_min


@njit(cache=True, inline='always')
def dies_spontaneously(rng, division_rate_per_min, death_rate_per_min):
    """Whether a live cell's due event is spontaneous death rather than a division attempt, with
    probability μ/(λ + μ), so deaths come at rate μ whether or not the cell has room to divide; no draw
    when μ is 0, so tumors without cell loss keep their random stream."""
    return death_rate_per_min > 0.0 and rng.random() * tumor_event_rate(division_rate_per_min, death_rate_per_min) < death_rate_per_min
