"""Recognition and signal integration: CAR, NKG2D, CD16 (ADCC) versus KIR/NKG2A on MHC-I,
modulated by TGF-β and IFN-γ. Returns the parts separately so kills can be attributed."""
import math

from numba import njit

from .noise import standard_normal_pair
from .rates import saturation

ROUTE_CAR = 0
ROUTE_INNATE = 1
ROUTE_ADCC = 2


@njit(cache=True, inline='always')
def tgfb_suppression(tgfb_ng_ml, ic50_ng_ml, max_fraction, resistant):
    """Fraction by which TGF-β suppresses an NK function (0 for TGF-β-resistant cells)."""
    if resistant:
        return 0.0
    return max_fraction * saturation(tgfb_ng_ml, ic50_ng_ml)


@njit(cache=True, inline='always')
def effective_mhc(mhc_base, ifng_ng_ml, max_fold, ec50_ng_ml):
    """MHC-I level after IFN-γ up-regulation: the counter-effect that protects tumor from NK."""
    return mhc_base * (1.0 + max_fold * saturation(ifng_ng_ml, ec50_ng_ml))


@njit(cache=True, inline='always')
def activating_signals(car_expression, car_affinity, antigen, nkg2d, ligand, nkg2d_suppression, cd16, coating):
    """The three activating inputs (CAR, NKG2D, CD16) as separate signals."""
    car = car_expression * car_affinity * antigen
    innate = nkg2d * (1.0 - nkg2d_suppression) * ligand
    adcc = cd16 * coating
    return car, innate, adcc


@njit(cache=True, inline='always')
def net_signal(car, innate, adcc, inhibitory, mhc, inhibitory_block, activation_suppression):
    """Net activation: activating minus KIR/NKG2A×MHC-I inhibition, scaled down by TGF-β."""
    net = car + innate + adcc - inhibitory * (1.0 - inhibitory_block) * mhc
    if net <= 0.0:
        return 0.0
    return net * (1.0 - activation_suppression)


@njit(cache=True, inline='always')
def intrinsic_responsiveness(rng, log_sd):
    """A cell's intrinsic responsiveness, the factor on its net signal: lognormal with mean 1 and
    log-scale SD `log_sd` (one Box–Muller normal), inherited by daughters. NK cells differ in
    responsiveness (education, maturation), so some never kill while serial killers make most kills
    (Vanherberghen 2013). No draw, and exactly 1, when `log_sd` ≤ 0."""
    if log_sd <= 0.0:
        return 1.0
    z, _ = standard_normal_pair(rng)
    return math.exp(log_sd * z - 0.5 * log_sd * log_sd)


@njit(cache=True, inline='always')
def trigger_probability(net, half_activation, hill):
    """Probability that a conjugate triggers degranulation: a Hill function of the net signal
    (`rates.saturation` with exponent `hill`)."""
    return saturation(net, half_activation, hill)


@njit(cache=True, inline='always')
def kill_route(car, innate, adcc):
    """Which receptor gets credit for a kill: the largest activating input."""
    if car >= innate and car >= adcc and car > 0.0:
        return ROUTE_CAR
    if adcc > innate:
        return ROUTE_ADCC
    return ROUTE_INNATE
