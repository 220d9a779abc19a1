"""Gaussian draws for the kernels, and the cell-to-cell expression noise with memory that tumor cells
pass to their daughters.

Protein levels of single human cells fluctuate around the population distribution and forget their
past within a few cell generations (Sigal 2006: mixing times of 1–3 generations in a human cancer
line), so a cell that is MHC-I-high today has daughters closer to the population mean. On each
division the log-level relaxes toward the population's log-mean as an AR(1) step whose stationary
distribution is the population's lognormal: selection can enrich a trait within a generation but
cannot fix it, unlike a genetic change. Antigen fluctuates around its clone's level (`ag_clone`), so an
antigen-low clone (`tumor.escape.antigen_low_fraction`) stays low and an antigen-negative one
(`escape.daughter_antigen`, the initial negative fraction) stays negative; MHC-I and NKG2D ligand
fluctuate around the population's mean."""
import math

from numba import njit


@njit(cache=True, inline='always')
def standard_normal_pair(rng):
    """Two independent standard normals from two uniforms of `rng` (Box–Muller)."""
    u1 = rng.random()
    u2 = rng.random()
    r = math.sqrt(-2.0 * math.log(1.0 - u1))
    return r * math.cos(2.0 * math.pi * u2), r * math.sin(2.0 * math.pi * u2)


@njit(cache=True, inline='always')
def relaxed_level(level, z, log_mean, log_sd, rho):
    """A daughter's level from her mother's: ln y' = μ + ρ·(ln y − μ) + √(1 − ρ²)·σ·z, the AR(1) step whose
    stationary law is lognormal(μ, σ) (`log_mean`, `log_sd`); `z` is a standard normal. A level ≤ 0
    (absent) stays absent; ρ = 1 keeps the level."""
    if level <= 0.0 or rho >= 1.0:
        return level
    x = log_mean + rho * (math.log(level) - log_mean) + math.sqrt(1.0 - rho * rho) * log_sd * z
    return math.exp(x)


@njit(cache=True, inline='always')
def clone_log_mean(clone_level, log_sd):
    """μ of ln y for a lognormal with mean `clone_level` and log-SD `log_sd` (0 for an absent level)."""
    if clone_level <= 0.0:
        return 0.0
    return math.log(clone_level) - 0.5 * log_sd * log_sd


def log_params(mean: float, cv: float) -> tuple[float, float]:
    """(μ, σ) of ln y for the lognormal with this mean and CV: σ² = ln(1 + cv²), μ = ln(mean) − σ²/2 (what
    `phenotype.lognormal` draws from)."""
    if mean <= 0:
        return 0.0, 0.0
    s2 = math.log1p(cv * cv)
    return math.log(mean) - s2 / 2, math.sqrt(s2)


def memory_rho(generations: float | None) -> float:
    """Per-division correlation of a log-level for a mixing time of `generations` (e^(−1/g)); None: 1."""
    return 1.0 if generations is None else math.exp(-1.0 / generations)
