"""NK motility: a persistent random walk on the lattice, biased toward the tumor."""
import math

from numba import njit

from .lattice import neighbour_at, occupied, site_coords
from .rates import hazard_probability


@njit(cache=True)
def random_direction(rng, dims, out):
    """Write a uniformly random unit vector (2D or 3D) into `out`."""
    n = 0.0
    while n < 1e-12:
        out[0] = rng.normal()
        out[1] = rng.normal()
        out[2] = rng.normal() if dims == 3 else 0.0
        n = math.sqrt(out[0] ** 2 + out[1] ** 2 + out[2] ** 2)
    out[0] /= n
    out[1] /= n
    out[2] /= n


@njit(cache=True)
def maybe_turn(rng, direction, persistence_min, dt_min, dims):
    """Draw a new direction with the turning hazard 1/persistence time."""
    if rng.random() < hazard_probability(1.0 / persistence_min, dt_min):
        random_direction(rng, dims, direction)


@njit(cache=True)
def moves_this_step(rng, sites_per_step):
    """Number of one-site hops this step: floor plus a Bernoulli remainder, so mean speed is exact."""
    k = int(sites_per_step)
    if rng.random() < sites_per_step - k:
        k += 1
    return k


@njit(cache=True)
def hop(rng, site, direction, centroid, bias, bits, nx, ny, nz):
    """One lattice hop along the biased direction (stochastic rounding per axis); tumor sites block."""
    x, y, z = site_coords(site, ny, nz)
    cx = centroid[0] - x
    cy = centroid[1] - y
    cz = centroid[2] - z
    norm = math.sqrt(cx * cx + cy * cy + cz * cz)
    if norm > 1e-9:
        cx /= norm
        cy /= norm
        cz /= norm
    else:
        cx = 0.0
        cy = 0.0
        cz = 0.0
    d0 = (1.0 - bias) * direction[0] + bias * cx
    d1 = (1.0 - bias) * direction[1] + bias * cy
    d2 = (1.0 - bias) * direction[2] + bias * cz
    m = max(abs(d0), max(abs(d1), abs(d2)))
    if m < 1e-12:
        return site
    o0 = (1 if d0 > 0 else -1) if rng.random() < abs(d0) / m else 0
    o1 = (1 if d1 > 0 else -1) if rng.random() < abs(d1) / m else 0
    o2 = (1 if d2 > 0 else -1) if (nz > 1 and rng.random() < abs(d2) / m) else 0
    if o0 == 0 and o1 == 0 and o2 == 0:
        return site
    off = (o0, o1, o2)
    s2 = neighbour_at(x, y, z, off, nx, ny, nz)
    if s2 < 0 or occupied(bits, s2):
        return -1
    return s2
