"""Lattice geometry: linear site indices (C order over nx, ny, nz) and Moore neighbourhoods."""
import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros

from .rates import uniform_index
from .streams import generator_of


def moore_offsets(dims: int) -> np.ndarray:
    """Offsets of the Moore neighbourhood: 8 in 2D, 26 in 3D (int64, shape (K, 3))."""
    rng = (-1, 0, 1)
    zs = rng if dims == 3 else (0,)
    offs = [(dx, dy, dz) for dx in rng for dy in rng for dz in zs if (dx, dy, dz) != (0, 0, 0)]
    return np.array(offs, dtype=np.int64)


@njit(cache=True, inline='always')
def site_coords(site, ny, nz):
    """(x, y, z) of a linear site index."""
    if nz == 1:  # 2D: one integer division
        x = site // ny
        return x, site - x * ny, 0
    q = site // nz  # two integer divisions instead of three (sites are >= 0)
    z = site - q * nz
    x = q // ny
    y = q - x * ny
    return x, y, z


@njit(cache=True, inline='always')
def offset_at(offsets, u):
    """Row `u` of the Moore offsets as a tuple: a row view would cost two atomic reference-count
    updates per neighbour scanned."""
    return offsets[u, 0], offsets[u, 1], offsets[u, 2]


@njit(cache=True, inline='always')
def neighbour_at(x, y, z, off, nx, ny, nz):
    """The site at offset `off` from (x, y, z), or -1 outside the domain."""
    x2 = x + off[0]
    y2 = y + off[1]
    z2 = z + off[2]
    if x2 < 0 or x2 >= nx or y2 < 0 or y2 >= ny or z2 < 0 or z2 >= nz:
        return -1
    return (x2 * ny + y2) * nz + z2


@njit(cache=True, inline='always')
def voxel_of(site, ny, nz, fy, fz, coarsen):
    """Field voxel (linear, C order) that contains a lattice site."""
    x, y, z = site_coords(site, ny, nz)
    return ((x // coarsen) * fy + (y // coarsen)) * fz + (z // coarsen)


@njit(cache=True, inline='always')
def occupied(bits, site):
    """Whether `site`'s bit is set in a site bitmap (one bit per site, int64 words).

    Two bitmaps mirror the lattice in 1/32 of the memory of `occ`, so the neighbourhood scans of the
    NK step stay in cache: `occ_bits` (a tumor cell holds the site, `occ >= 0`) and `alive_bits`
    (it holds a live, not yet hit tumor cell). `occ` itself is read only for a site that matters."""
    return (bits[site >> 6] >> (site & 63)) & 1 == 1


@njit(cache=True, inline='always')
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


@njit(cache=True, inline='always')
def row_bits(bits, site):
    """The bits of the three consecutive sites site, site+1, site+2 as an integer 0..7 (bit 0 = site)."""
    o = site & 63
    if o <= 61:
        return (bits[site >> 6] >> o) & 7
    return row_bits_split(bits, site)


@njit(cache=True)
def row_bits_split(bits, site):
    """`row_bits` for a row that straddles two words (2 rows in 64): a call, so the 9 inlined row reads
    of a 3D neighbourhood stay small."""
    v = 0
    for t in range(3):
        if occupied(bits, site + t):
            v |= 1 << t
    return v


@njit(cache=True, inline='always')
def neighbour_mask(bits, x, y, z, ny, nz):
    """The Moore neighbours of the interior site (x, y, z) whose bit is set in `bits`, as a mask: bit u
    for row u of `moore_offsets` (8 bits in 2D, 26 in 3D).

    Read as rows of three consecutive sites (3 reads in 2D, 9 in 3D instead of 8 or 26 single bits);
    the middle bit of the 27-site (9-site) block, the site itself, is dropped."""
    if nz == 1:  # 2D: rows run along y; block bit 3·(dx+1) + (dy+1)
        m = (row_bits(bits, (x - 1) * ny + y - 1) | (row_bits(bits, x * ny + y - 1) << 3)
             | (row_bits(bits, (x + 1) * ny + y - 1) << 6))
        return (m & 0xF) | ((m >> 5) << 4)
    m = 0  # 3D: rows run along z; block bit 9·(dx+1) + 3·(dy+1) + (dz+1)
    for dx in range(3):
        for dy in range(3):
            m |= row_bits(bits, ((x + dx - 1) * ny + y + dy - 1) * nz + z - 1) << (9 * dx + 3 * dy)
    return (m & 0x1FFF) | ((m >> 14) << 13)


@njit(cache=True, inline='always')
def first_cyclic(mask, start):
    """The first set bit of `mask` (not 0) at `start` or after it, wrapping around to bit 0: the offset
    a cyclic scan from `start` stops at, found without a loop (no mispredicted branch per offset)."""
    later = mask >> start
    if later != 0:
        return start + trailing_zeros(later)
    return trailing_zeros(mask)


@njit(cache=True, inline='always')
def flagged_mask(bits, flag, x, y, z, ny, nz, k):
    """`neighbour_mask` of the neighbours whose bit equals `flag` (k = 8 or 26 offsets)."""
    m = neighbour_mask(bits, x, y, z, ny, nz)
    return m if flag else ~m & ((np.int64(1) << k) - 1)


@njit(cache=True, inline='always')
def neighbour_site(site, offsets, u, ny, nz):
    """The neighbour of `site` at row `u` of the Moore offsets (one that exists: a row of a mask)."""
    off = offset_at(offsets, u)
    return site + (off[0] * ny + off[1]) * nz + off[2]


@njit(cache=True, inline='always')
def flagged_neighbours(bits, flag, x, y, z, offsets, nx, ny, nz):
    """(mask, interior): the existing Moore neighbours of (x, y, z) whose bit in `bits` equals `flag`, as
    a mask over the rows of `offsets`, and whether the site is interior (every neighbour exists).

    An interior site's mask is a few row reads (`flagged_mask`), inlined with no loop; an edge site's is
    a call (`edge_mask`). Inlined code keeps no loop: Numba cannot drop the reference counting of the
    arrays an inlined function with a loop takes, an atomic add per array and call (that cost the NK
    step ~40 % of its time)."""
    k = offsets.shape[0]
    # interior: every neighbour exists (a 3D neighbourhood, 26 offsets, needs z inside as well)
    if 0 < x < nx - 1 and 0 < y < ny - 1 and (k == 8 or 0 < z < nz - 1):
        return flagged_mask(bits, flag, x, y, z, ny, nz, k), True
    return edge_mask(bits, flag, x, y, z, offsets, nx, ny, nz), False


@njit(cache=True)
def edge_mask(bits, flag, x, y, z, offsets, nx, ny, nz):
    """`flagged_neighbours`' mask for a site on the domain edge: bounds-checked, one offset at a time."""
    m = 0
    for u in range(offsets.shape[0]):
        s2 = neighbour_at(x, y, z, offset_at(offsets, u), nx, ny, nz)
        if s2 >= 0 and occupied(bits, s2) == flag:
            m |= np.int64(1) << u
    return m


@njit(cache=True, inline='always')
def random_start_scan(rng, mask, interior, k):
    """The row a cyclic scan of `mask` from a random start offset stops at (`first_cyclic`), or -1.

    The start is drawn unless an interior site has no candidate; an edge site always draws one, as the
    offset-by-offset scan it replaced did, so the random stream is unchanged."""
    if mask == 0 and interior:
        return -1
    start = uniform_index(rng, k)
    if mask == 0:
        return -1
    return first_cyclic(mask, start)


@njit(cache=True, inline='always')
def scan_neighbours(rng, site, x, y, z, offsets, bits, flag, nx, ny, nz):
    """The first Moore neighbour of `site` (at x, y, z) whose bit in `bits` equals `flag`, scanning
    the offsets (`moore_offsets`, in its order) cyclically from a random one, or -1.

    An interior site with no such neighbour returns -1 after a row test and no random draw; the scan
    is one mask (`flagged_neighbours`) and a trailing-zero count (`first_cyclic`), with no loop."""
    mask, interior = flagged_neighbours(bits, flag, x, y, z, offsets, nx, ny, nz)
    u = random_start_scan(rng, mask, interior, offsets.shape[0])
    return -1 if u < 0 else neighbour_site(site, offsets, u, ny, nz)


@njit(cache=True, inline='always')
def random_free_neighbour(rng, site, offsets, bits, nx, ny, nz):
    """A neighbouring site free of tumor cells (first free one scanning from a random offset), or -1.

    `bits` is the occupancy bitmap (see `occupied`)."""
    x, y, z = site_coords(site, ny, nz)
    return scan_neighbours(rng, site, x, y, z, offsets, bits, False, nx, ny, nz)


# ---- volume exclusion: a site holds one tumor cell or at most `cap` immune cells -------------------
# `count` (uint16, one per site) is the number of immune cells (CAR-NK or CAR-T) standing on each site,
# kept up to date by every kernel that adds, moves or removes one; `cap` is `NKParams.immune_cap`
# (nk.crowding). A site holding a tumor cell takes no immune cell: conjugates form across neighbouring
# sites (the contact scan reads the Moore neighbours), as they always have.


@njit(cache=True, inline='always')
def immune_can_enter(bits, count, site, cap):
    """The volume-exclusion rule: whether one more immune cell may stand on `site` (no tumor cell
    holds it, per the occupancy bitmap `bits`, and fewer than `cap` immune cells stand on it).

    The one rule for moves, divisions, infusions and displacement, in the kernels and for the Mesa
    agents (`CARNKCell.can_enter`)."""
    return not occupied(bits, site) and count[site] < cap


@njit(cache=True, inline='always')
def immune_move(count, src, dst):
    """Keep the per-site immune counts in step with one cell moving from `src` to `dst`."""
    count[src] -= 1
    count[dst] += 1


@njit(cache=True, inline='always')
def random_room_neighbour(rng, site, offsets, bits, count, cap, nx, ny, nz):
    """A neighbouring site an immune cell may enter (`immune_can_enter`: tumor-free and not full),
    scanning from a random offset, or -1.

    Draws exactly as `random_free_neighbour` does (none for an interior site without a tumor-free
    neighbour, else one offset) and returns the same site while no site around is full. Inlined code
    keeps no loop (see `flagged_neighbours`): the scan past a full site is a call."""
    x, y, z = site_coords(site, ny, nz)
    free, interior = flagged_neighbours(bits, False, x, y, z, offsets, nx, ny, nz)
    u = random_start_scan(rng, free, interior, offsets.shape[0])
    if u < 0:
        return -1
    s2 = neighbour_site(site, offsets, u, ny, nz)
    if count[s2] < cap:
        return s2
    return room_past_full(site, u, free, offsets, count, cap, ny, nz)


@njit(cache=True)
def room_past_full(site, u, free, offsets, count, cap, ny, nz):
    """The scan of `random_room_neighbour` on from the full free neighbour at offset `u`: the next
    tumor-free neighbours (`free`, a `flagged_neighbours` mask) in the cyclic order, the first not full,
    or -1."""
    free &= ~(np.int64(1) << u)
    while free != 0:
        u = first_cyclic(free, u)
        s2 = neighbour_site(site, offsets, u, ny, nz)
        if count[s2] < cap:
            return s2
        free &= ~(np.int64(1) << u)
    return -1


@njit(cache=True)
def place_immune_cells(rng, sites, bits, count, cap, offsets, nx, ny, nz):
    """Where arriving immune cells (an infusion, a vessel's entries) stand: each at its `sites[k]` if it
    may enter there, else at a random neighbour it may enter, else nowhere (-1); the counts of the
    chosen sites are raised in order, so later cells see earlier ones. Draws from `rng` only for a
    cell whose own site is full or holds a tumor cell (`rng`: a Generator or a `GeneratorRecord`)."""
    g = generator_of(rng)
    out = np.empty(sites.shape[0], np.int64)
    for k in range(sites.shape[0]):
        s = sites[k]
        if not immune_can_enter(bits, count, s, cap):
            s = random_room_neighbour(g, s, offsets, bits, count, cap, nx, ny, nz)
        if s >= 0:
            count[s] += 1
        out[k] = s
    return out


@njit(cache=True)
def count_immune(sites, live, count):
    """Recount the immune cells per site from positions: count[s] = live cells with site s."""
    count[:] = 0
    for i in range(sites.shape[0]):
        if live[i]:
            count[sites[i]] += 1


@njit(cache=True)
def distinct_free_sites(sites, occ):
    """True when every site is on the lattice, free (occ < 0) and listed once: one pass with a bitmap of
    one bit per site (np.unique sorted a copy: 16 B per cell, 1.6 GB at 10^8, with the gather of
    occ at the sites 5 B more; the 1e8 set-up's peak RSS was inside it)."""
    n = occ.shape[0]
    seen = np.zeros((n + 63) >> 6, np.uint64)
    for k in range(sites.shape[0]):
        s = sites[k]
        if s < 0 or s >= n or occ[s] >= 0:
            return False
        w = s >> 6
        b = np.uint64(1) << np.uint64(s & 63)
        if seen[w] & b:
            return False
        seen[w] |= b
    return True
