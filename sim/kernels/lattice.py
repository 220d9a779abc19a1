"""Lattice geometry: linear site indices (C order over nx, ny, nz) and Moore neighbourhoods."""
import numpy as np
from numba import njit


def moore_offsets(dims: int) -> np.ndarray:
    """Offsets of the Moore neighbourhood: 8 in 2D, 26 in 3D (int64, shape (K, 3))."""
    rng = (-1, 0, 1)
    zs = rng if dims == 3 else (0,)
    offs = [(dx, dy, dz) for dx in rng for dy in rng for dz in zs if (dx, dy, dz) != (0, 0, 0)]
    return np.array(offs, dtype=np.int64)


@njit(cache=True)
def site_coords(site, ny, nz):
    """(x, y, z) of a linear site index."""
    q = site // nz  # two integer divisions instead of three (sites are >= 0)
    z = site - q * nz
    x = q // ny
    y = q - x * ny
    return x, y, z


@njit(cache=True)
def neighbour_site(site, off, nx, ny, nz):
    """The site at offset `off` from `site`, or -1 outside the domain."""
    x, y, z = site_coords(site, ny, nz)
    x2 = x + off[0]
    y2 = y + off[1]
    z2 = z + off[2]
    if x2 < 0 or x2 >= nx or y2 < 0 or y2 >= ny or z2 < 0 or z2 >= nz:
        return -1
    return (x2 * ny + y2) * nz + z2


@njit(cache=True)
def neighbour_at(x, y, z, off, nx, ny, nz):
    """`neighbour_site` for a site whose coordinates are already known (no divisions in the loop)."""
    x2 = x + off[0]
    y2 = y + off[1]
    z2 = z + off[2]
    if x2 < 0 or x2 >= nx or y2 < 0 or y2 >= ny or z2 < 0 or z2 >= nz:
        return -1
    return (x2 * ny + y2) * nz + z2


@njit(cache=True)
def voxel_of(site, ny, nz, fy, fz, coarsen):
    """Field voxel (linear, C order) that contains a lattice site."""
    x, y, z = site_coords(site, ny, nz)
    return ((x // coarsen) * fy + (y // coarsen)) * fz + (z // coarsen)


@njit(cache=True)
def random_free_neighbour(rng, site, offsets, occ, nx, ny, nz):
    """A uniformly chosen neighbouring site free of tumor cells, or -1 when all are taken."""
    k = offsets.shape[0]
    start = rng.integers(0, k)
    x, y, z = site_coords(site, ny, nz)
    for t in range(k):
        u = start + t
        if u >= k:
            u -= k
        s2 = neighbour_at(x, y, z, offsets[u], nx, ny, nz)
        if s2 >= 0 and occ[s2] < 0:
            return s2
    return -1
