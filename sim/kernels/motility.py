"""NK motility: a persistent random walk on the lattice, biased toward the tumor."""
import math

import numpy as np
from numba import njit

from .lattice import immune_can_enter, neighbour_at
from .rates import hazard_probability


@njit(cache=True, inline='always')
def random_direction(rng, dims, out, i):
    """Write a uniformly random unit vector (2D or 3D) into row `i` of `out` (n, 3): a point uniform in
    the unit disk (ball), drawn by rejection from the enclosing square (cube), then normalised. A row
    index, not a row view: a view costs two atomic reference-count updates in the NK step's loop."""
    while True:
        a = 2.0 * rng.random() - 1.0
        b = 2.0 * rng.random() - 1.0
        c = 2.0 * rng.random() - 1.0 if dims == 3 else 0.0
        n2 = a * a + b * b + c * c
        if 1e-12 < n2 <= 1.0:
            break
    inv = 1.0 / math.sqrt(n2)
    out[i, 0] = a * inv
    out[i, 1] = b * inv
    out[i, 2] = c * inv


@njit(cache=True, inline='always')
def turn_probability(persistence_min, dt_min):
    """Per-step probability of a turn: the turning hazard is 1/persistence time."""
    return hazard_probability(1.0 / persistence_min, dt_min)


@njit(cache=True, inline='always')
def maybe_turn(rng, directions, i, p_turn, dims):
    """Draw a new direction for row `i` of `directions` with probability `p_turn` (from
    `turn_probability`, computed once per step)."""
    if rng.random() < p_turn:
        random_direction(rng, dims, directions, i)


@njit(cache=True, inline='always')
def moves_this_step(rng, sites_per_step):
    """Number of one-site hops this step: floor plus a Bernoulli remainder, so mean speed is exact."""
    k = int(sites_per_step)
    if rng.random() < sites_per_step - k:
        k += 1
    return k


@njit(cache=True, inline='always')
def axis_step(moves, d):
    """-1, 0 or +1 along one axis: the sign of `d` if `moves` (arithmetic, so it compiles branch-free)."""
    return np.int64(moves) * (2 * np.int64(d > 0.0) - 1)


@njit(cache=True, inline='always')
def hop(rng, site, x, y, z, directions, i, centroid, bias, bits, count, cap, nx, ny, nz):
    """One lattice hop from `site` (at x, y, z) along the biased direction (row `i` of `directions`), by stochastic rounding per
    axis; returns the new (site, x, y, z), the old ones if the rounding gives no move, or site -1 if a
    tumor cell, a full site (`lattice.immune_can_enter`: `cap` immune cells per site, `count` per site)
    or the domain edge blocks the way: a move into a full site is refused, like one into a tumor cell.
    The caller moves the cell's count (`lattice.immune_move`)."""
    cx = centroid[0] - x
    cy = centroid[1] - y
    cz = centroid[2] - z
    norm = math.sqrt(cx * cx + cy * cy + cz * cz)
    b = bias / norm if norm > 1e-9 else 0.0  # bias times the unit bearing
    d0 = (1.0 - bias) * directions[i, 0] + b * cx
    d1 = (1.0 - bias) * directions[i, 1] + b * cy
    d2 = (1.0 - bias) * directions[i, 2] + b * cz
    m = max(abs(d0), max(abs(d1), abs(d2)))
    if m < 1e-12:
        return site, x, y, z
    # axis i moves with probability |d_i| / max_j |d_j| (compared as u·max < |d_i|: no division)
    o0 = axis_step(rng.random() * m < abs(d0), d0)
    o1 = axis_step(rng.random() * m < abs(d1), d1)
    o2 = axis_step(rng.random() * m < abs(d2), d2) if nz > 1 else 0
    if o0 == 0 and o1 == 0 and o2 == 0:
        return site, x, y, z
    s2 = neighbour_at(x, y, z, (o0, o1, o2), nx, ny, nz)
    if s2 < 0 or not immune_can_enter(bits, count, s2, cap):
        return -1, x, y, z
    return s2, x + o0, y + o1, z + o2
