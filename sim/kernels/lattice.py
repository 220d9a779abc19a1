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
    return neighbour_at(x, y, z, off, nx, ny, nz)


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
def occupied(bits, site):
    """Whether `site`'s bit is set in a site bitmap (one bit per site, int64 words).

    Two bitmaps mirror the lattice in 1/32 of the memory of `occ`, so the neighbourhood scans of the
    NK step stay in cache: `occ_bits` (a tumor cell holds the site, `occ >= 0`) and `alive_bits`
    (it holds a live, not yet hit tumor cell). `occ` itself is read only for a site that matters."""
    return (bits[site >> 6] >> (site & 63)) & 1 == 1


@njit(cache=True)
def set_occupied(bits, site, flag):
    """Set or clear the bit of `site` (kept in step with every write to `occ` or to a tumor state)."""
    if flag:
        bits[site >> 6] |= np.int64(1) << (site & 63)
    else:
        bits[site >> 6] &= ~(np.int64(1) << (site & 63))


@njit(cache=True)
def pack_occupancy(occ, bits):
    """Rebuild the whole occupancy bitmap from the `occ` lattice."""
    bits[:] = 0
    for s in range(occ.shape[0]):
        if occ[s] >= 0:
            bits[s >> 6] |= np.int64(1) << (s & 63)


@njit(cache=True)
def pack_alive(occ, t_state, alive_state, bits):
    """Rebuild the live-tumor bitmap: sites whose tumor cell is in `alive_state`."""
    bits[:] = 0
    for s in range(occ.shape[0]):
        j = occ[s]
        if j >= 0 and t_state[j] == alive_state:
            bits[s >> 6] |= np.int64(1) << (s & 63)


def occupancy_bits(occ: np.ndarray) -> np.ndarray:
    """A new occupancy bitmap (int64 words) for an `occ` lattice."""
    bits = np.zeros((occ.shape[0] + 63) // 64, dtype=np.int64)
    pack_occupancy(occ, bits)
    return bits


@njit(cache=True)
def random_free_neighbour(rng, site, offsets, bits, nx, ny, nz):
    """A neighbouring site free of tumor cells (first free one scanning from a random offset), or -1.

    `bits` is the occupancy bitmap (see `occupied`)."""
    k = offsets.shape[0]
    start = rng.integers(0, k)
    x, y, z = site_coords(site, ny, nz)
    for t in range(k):
        u = start + t
        if u >= k:
            u -= k
        s2 = neighbour_at(x, y, z, offsets[u], nx, ny, nz)
        if s2 >= 0 and not occupied(bits, s2):
            return s2
    return -1
