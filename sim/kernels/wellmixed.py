"""Well-mixed (mass-action) rules: each Kuznetsov 1994 ODE term as one per-agent rule.

ODE term            agent rule (per step dt, state frozen at the start of the step)
s                   effector influx: Poisson(s·Ω·dt) new NK agents (drawn by the caller)
p·E·Tⁿ/(gⁿ+Tⁿ)      each NK divides with hazard p·saturation(N_T, g·Ω, n) (Hill; Kuznetsov n = 1,
                    de Pillis 2005 n = 2 with h = gⁿ)
m·E·T               each NK is inactivated with hazard (m/Ω)·N_T
d·E                 each NK dies with the persistence hazard (half-life ln2/d, `death_probability`)
a·T·(1−b·T)         each tumor cell divides with hazard a·(1−N_T/K), K = Ω/b; above K it is lost
                    with hazard a·(N_T/K−1) (same mean; the tumor is a count, so the per-cell
                    Bernoulli draws are taken as one binomial draw, identical in distribution)
n·E·T               each NK kills Poisson((n/Ω)·N_T·dt) tumor cells (a kill does not end the NK)
"""
from collections import namedtuple

import numpy as np
from numba import njit

from .order import shuffled
from .persistence import death_probability
from .rates import hazard_probability, saturation

# The well-mixed step's event counts (`counters`), by name (`WellMixedModel.counts`).
WM_COUNTS = ("kills", "nk_births", "nk_deaths", "inactivations", "influx", "tumor_births", "crowding_losses", "spare")
W_KILLS, W_NKBIRTH, W_NKDEATH, W_INACT, W_INFLUX, W_TBIRTH, W_CROWD = range(7)

# Agent-scale rates in per-minute units (see `sim.wellmixed.wellmixed_params`).
WellMixedParams = namedtuple(
    "WellMixedParams",
    ["dt", "influx", "prolif", "prolif_half", "prolif_hill", "inact", "half_life_min", "growth", "capacity", "kill"],
)


@njit(cache=True)
def mass_action_probabilities(w, n_tumor):
    """THE mapping from ODE rates to per-step quantities, at tumor count `n_tumor` (agents).

    Returns (influx_mean, p_death, p_inactivate, p_divide_nk, kill_mean, p_divide_tumor,
    p_crowding_loss). Probabilities are 1 − exp(−rate·dt) (`hazard_probability`), exact for a
    constant hazard over the step; counts (influx, kills per NK) are Poisson means rate·dt.
    Bimolecular rates were divided by Ω and saturation constants multiplied by Ω beforehand (the
    Hill form (N_T/(gΩ))ⁿ equals (T/g)ⁿ for every n), so
    with N = Ω·X agents the expected change per step is Ω times the ODE's (to O(dt)).
    """
    dt = w.dt
    T = float(n_tumor)
    p_death = death_probability(w.half_life_min, 0.0, 0.0, 1.0, dt)
    p_inact = hazard_probability(w.inact * T, dt)
    p_div_nk = hazard_probability(w.prolif * saturation(T, w.prolif_half, w.prolif_hill), dt)
    kill_mean = w.kill * T * dt
    net = w.growth * (1.0 - T / w.capacity)
    p_div_t = hazard_probability(net, dt) if net > 0.0 else 0.0
    p_crowd = hazard_probability(-net, dt) if net < 0.0 else 0.0
    return w.influx * dt, p_death, p_inact, p_div_nk, kill_mean, p_div_t, p_crowd


@njit(cache=True)
def wellmixed_step(rng, w, n_tumor, n_nk, n_in, kills, order, dead_kills, counters):
    """One synchronous step of all agents, with `n_in` influx agents (drawn by the caller from
    Poisson(influx_mean), so it can size the arrays). NK kill counts live in `kills[:n_nk]`
    (compacted on return; capacity ≥ 2·n_nk + n_in); kills of removed NK go to `dead_kills`.

    Returns (n_tumor, n_nk, n_dead). `counters` is laid out as `WM_COUNTS` (kills, NK births,
    persistence deaths, inactivations, influx, tumor divisions, crowding losses).
    """
    _, p_death, p_inact, p_div_nk, kill_mean, p_div_t, p_crowd = mass_action_probabilities(w, n_tumor)
    if kills.shape[0] < 2 * n_nk + n_in or order.shape[0] < n_nk or dead_kills.shape[0] < n_nk:
        raise ValueError("wellmixed_step: arrays too small for 2·n_nk + n_in agents")
    for i in range(n_nk):
        order[i] = i
    shuffled(rng, order[:n_nk])  # random order, so kills are shared fairly when tumor runs out
    alive_t = n_tumor
    nb = 0
    keep = np.ones(n_nk, np.bool_)
    for q in range(n_nk):
        i = order[q]
        if alive_t > 0 and kill_mean > 0.0:
            k = rng.poisson(kill_mean)
            if k > alive_t:
                k = alive_t
            kills[i] += k
            alive_t -= k
            counters[W_KILLS] += k
        if rng.random() < p_death:
            keep[i] = False
            counters[W_NKDEATH] += 1
            continue
        if rng.random() < p_inact:
            keep[i] = False
            counters[W_INACT] += 1
            continue
        if rng.random() < p_div_nk:
            kills[n_nk + nb] = 0
            nb += 1
            counters[W_NKBIRTH] += 1
    for q in range(n_in):
        kills[n_nk + nb + q] = 0
    counters[W_INFLUX] += n_in
    births_t = rng.binomial(n_tumor, p_div_t) if p_div_t > 0.0 else 0
    crowd = rng.binomial(alive_t, p_crowd) if p_crowd > 0.0 and alive_t > 0 else 0
    counters[W_TBIRTH] += births_t
    counters[W_CROWD] += crowd
    # compact: survivors keep their order, then daughters and influx
    m = 0
    nd = 0
    for i in range(n_nk):
        if keep[i]:
            kills[m] = kills[i]
            m += 1
        else:
            dead_kills[nd] = kills[i]
            nd += 1
    for q in range(nb + n_in):
        kills[m] = kills[n_nk + q]
        m += 1
    return alive_t - crowd + births_t, m, nd
