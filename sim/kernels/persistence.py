"""NK persistence: death hazard from the in vivo half-life, extended by IL-15, and IL-15-driven division."""
from numba import njit

from .rates import LN2, hazard_probability, saturation


@njit(cache=True, inline='always')
def effective_half_life(half_life_min, il15_ng_ml, max_extension, ec50_ng_ml):
    """Half-life stretched by IL-15 signalling: t½·(1 + ext·IL15/(IL15+EC50))."""
    return half_life_min * (1.0 + max_extension * saturation(il15_ng_ml, ec50_ng_ml))


@njit(cache=True, inline='always')
def death_probability(half_life_min, il15_ng_ml, max_extension, ec50_ng_ml, dt_min, extra_hazard_per_min=0.0):
    """Per-step probability that an NK cell dies: persistence loss (IL-15-extended half-life) plus an
    extra hazard that IL-15 does not extend (host-versus-graft rejection, `therapy.rejection`)."""
    t_half = effective_half_life(half_life_min, il15_ng_ml, max_extension, ec50_ng_ml)
    return hazard_probability(LN2 / t_half + extra_hazard_per_min, dt_min)


@njit(cache=True, inline='always')
def il15_division_probability(max_rate_per_min, il15_ng_ml, ec50_ng_ml, dt_min):
    """Per-step probability of an IL-15-driven division of a cell below its lineage limit."""
    return hazard_probability(max_rate_per_min * saturation(il15_ng_ml, ec50_ng_ml), dt_min)


@njit(cache=True, inline='always')
def lineage_division_probability(p_il15, divisions, max_divisions):
    """`p_il15` (`il15_division_probability`) for a cell below the lineage limit, else 0."""
    if divisions >= max_divisions:
        return 0.0
    return p_il15


@njit(cache=True, inline='always')
def division_probability(max_rate_per_min, il15_ng_ml, ec50_ng_ml, divisions, max_divisions, dt_min):
    """Per-step probability of an IL-15-driven NK division (none once the lineage limit is reached)."""
    return lineage_division_probability(il15_division_probability(max_rate_per_min, il15_ng_ml, ec50_ng_ml, dt_min),
                                        divisions, max_divisions)


@njit(cache=True, inline='always')
def cell_half_life(memory, half_life_min, memory_half_life_min):
    """Half-life of one cell: memory cells (CAR-T memory fraction) persist much longer."""
    return memory_half_life_min if memory else half_life_min


@njit(cache=True, inline='always')
def antigen_driven_division_probability(completing_kill, prob_per_kill, divisions, max_divisions):
    """Probability of a clonal-expansion division when a killing conjugate completes (CAR-T)."""
    if not completing_kill or divisions >= max_divisions:
        return 0.0
    return prob_per_kill


@njit(cache=True, inline='always')
def either_probability(p_a, p_b):
    """Probability that at least one of two independent events happens (one division per step)."""
    return 1.0 - (1.0 - p_a) * (1.0 - p_b)


@njit(cache=True, inline='always')
def memory_fate(rng, memory_fraction):
    """1 if a new cell joins the long-lived memory fraction (CAR-T), else 0; no draw when the
    fraction is 0, so products without memory keep their random stream."""
    if memory_fraction > 0.0 and rng.random() < memory_fraction:
        return 1
    return 0


@njit(cache=True, inline='always')
def exhaustion_half_life(t_half, exhausted, factor):
    """Exhaustion-driven loss: an exhausted cell's half-life × `factor` (1: exhaustion costs no life)."""
    return t_half * factor if exhausted else t_half


@njit(cache=True, inline='always')
def activation_induced_death(rng, prob):
    """Activation-induced cell death as a triggered conjugate completes; no draw when `prob` is 0,
    so products without AICD keep their random stream."""
    return prob > 0.0 and rng.random() < prob


@njit(cache=True, inline='always')
def leaves_tissue(rng, state_free, p_egress):
    """Recirculation: a cell not engaged with a target leaves the tumor bed for blood this step (the
    section's side of the blood compartment's organ → blood return); no draw when egress is off, so
    runs without it keep their random stream."""
    return p_egress > 0.0 and state_free and rng.random() < p_egress
