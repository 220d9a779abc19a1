"""The batch steps: every live cell, in random-sequential order, through the mechanism functions.

`nk_step` runs every cell step (motility, contact, signal integration, killing, secretion,
persistence, IL-15 division). `tumor_step` runs every tumor step and only visits cells whose
next event (division, death, clearance) is due, so its cost follows the active cells.

Both take the model's state as records (`records.py`): `nk` and `tumor` (the population arrays),
`lat` (lattice geometry, occupancy, bitmaps), `fld` (fields) and `tally` (running totals). They read
the records' arrays into locals once, so the loops run on plain arrays. A new cell, in a kernel or
set up by the model, goes through one function per population (`start_nk_cell`, `start_tumor_cell`).
"""
import numpy as np
from numba import njit

from .growth import dies_spontaneously, division_acceptance, next_division_delay, tumor_event_rate
from .killing import PATH_GRANULE, PATH_NONE, choose_kill_path, granules_per_step, is_exhausted, regenerate_granules
from .lattice import (
    immune_can_enter, immune_move, neighbour_at, occupied, offset_at, place_immune_cells, random_free_neighbour,
    random_room_neighbour, scan_neighbours, set_occupied, site_coords, voxel_of,
)
from .motility import hop, maybe_turn, moves_this_step, random_direction, turn_probability
from .order import shuffled  # noqa: F401  (re-exported: the random-sequential order)
from .params import IFNG, IL15, TGFB
from .escape import daughter_antigen
from .noise import clone_log_mean, relaxed_level, standard_normal_pair
from .field_ops import field_at, refresh_zero_flags
from .memory import keep_alive, prefetch, unmanaged
from .persistence import (
    activation_induced_death, antigen_driven_division_probability, cell_half_life, death_probability,
    either_probability, exhaustion_half_life, il15_division_probability, leaves_tissue, lineage_division_probability,
    memory_fate,
)
from .rates import hazard_probability
from .records import (  # noqa: F401  (the statistics layout, re-exported for the kernels' callers)
    C_CONJ, C_KILL0, C_NKBIRTH, C_NKDEATH, C_NKEGRESS, C_TRIG, NK_COUNTS, S_AGNEG, S_AGPOS, S_BIRTHS, S_DEATHS, S_EDGE, S_EXPORTED, S_LIVE, S_SX,
    S_SY, S_SZ, TUMOR_STATS, tumor_centroid,
)
from .streams import generator_of, stream_from, stream_view
from .recognition import (
    ROUTE_CAR, activating_signals, effective_mhc, intrinsic_responsiveness, kill_route, net_signal, tgfb_suppression,
    trigger_probability,
)

# NK states
NK_EMPTY = -1
NK_FREE = 0
NK_KILLING = 1
NK_BOUND = 2  # conjugate that did not trigger

# Tumor states
T_ALIVE = 0
T_DOOMED = 1  # lethally hit, apoptosis pending (still counted as a tumor cell)
T_DEAD = 2  # dead, occupying its site until cleared
T_EMPTY = 3  # free slot

# nk_step's per-voxel table of probabilities: MEMO_MAX rows at most (a power of 2), one cache line each
# (the voxel it holds; the death probability of the 4 half-life classes; the IL-15 division probability)
MEMO_MAX = 4096
MEMO_WIDTH = 8
MEMO_VOXEL = 0
MEMO_DIE = 1
MEMO_DIV = 5
AHEAD = 8  # the NK step prefetches the data of the cell AHEAD places on in its order (2·AHEAD: its slots)


@njit(cache=True, inline='always')
def contact_site_at(rng, site, x, y, z, offsets, alive_bits, nx, ny, nz):
    """The site of the first live tumor neighbour of `site` (at x, y, z), scanning the Moore offsets
    cyclically from a random one, or -1 (read from the live-tumor bitmap only)."""
    return scan_neighbours(rng, site, x, y, z, offsets, alive_bits, True, nx, ny, nz)


@njit(cache=True, inline='always')
def conjugate_outcome(p, tgfb, ifng_at_target, antigen, mhc, ligand, coat, exhausted, granules, dr_left, car_level,
                      responsiveness):
    """Signal integration for one NK–tumor conjugate: (trigger probability, kill route, kill path).

    `car_level` is this cell's CAR surface level (p.car_expression for CAR+ cells, 0 for CAR− cells);
    `responsiveness` its intrinsic factor on the net signal (`recognition.intrinsic_responsiveness`)."""
    nkg2d_sup = tgfb_suppression(tgfb, p.tgfb_ic50, p.tgfb_nkg2d_max, p.tgfb_resistant)
    act_sup = tgfb_suppression(tgfb, p.tgfb_ic50, p.tgfb_activation_max, p.tgfb_resistant)
    car, innate, adcc = activating_signals(car_level, p.car_affinity, antigen, p.nkg2d, ligand, nkg2d_sup, p.cd16, coat)
    mhc_eff = effective_mhc(mhc, ifng_at_target, p.mhc_max_fold, p.tumor_ifng_ec50)
    net = net_signal(car, innate, adcc, p.inhibitory, mhc_eff, p.inhibitory_block, act_sup)
    prob = 0.0 if exhausted else trigger_probability(net * responsiveness, p.half_activation, p.hill)
    return prob, kill_route(car, innate, adcc), choose_kill_path(p.perforin, granules, dr_left)


@njit(cache=True, inline='always')
def voxel_lookup(vx, vy, vz, x, y, z, fy, fz):
    """`lattice.voxel_of` from coordinates and per-axis tables (vx = arange(nx) // coarsen, ...):
    no integer division per cell."""
    return (vx[x] * fy + vy[y]) * fz + vz[z]


@njit(cache=True, inline='always')
def doom_tumor(j, now, delay, t_state, t_timer, t_site, alive_bits):
    """Mark a tumor cell lethally hit; it dies after the apoptosis delay (and is no longer a target)."""
    set_occupied(alive_bits, t_site[j], False)
    t_state[j] = T_DOOMED
    t_timer[j] = now + delay


@njit(cache=True, inline='always')
def start_nk_cell(rng, nk, c, site, granules, divisions, car, resp, born_min, p):
    """Slot `c` of the NK record becomes a fresh free cell at `site` (a daughter, or an infused cell),
    where the caller has already counted it (`lat.nk_count`: the division in `nk_step`, or
    `lattice.place_immune_cells` for infused cells): a random direction, full death-receptor capacity, no target, stimulations or kills, and its memory
    fate (CAR-T memory fraction); `resp` is its intrinsic responsiveness (a daughter inherits her
    mother's). Draws: the direction, then the memory fate."""
    nk.site[c] = site
    random_direction(rng, p.dims, nk.direction, c)
    nk.state[c] = NK_FREE
    nk.target[c] = -1
    nk.timer[c] = 0.0
    nk.route[c] = 0
    nk.granules[c] = granules
    nk.dr_left[c] = p.dr_capacity
    nk.stims[c] = 0
    nk.kills[c] = 0
    nk.divisions[c] = divisions
    nk.car[c] = car
    nk.resp[c] = resp
    nk.memory[c] = memory_fate(rng, p.memory_fraction)
    nk.born_min[c] = born_min


@njit(cache=True)
def start_nk_cells(rng, nk, first, sites, car, born_min, p):
    """`start_nk_cell` for infused cells at `sites`, in slots first, first + 1, ...: a full granule
    stock, no divisions, CAR level `car[k]`, a fresh intrinsic responsiveness. Draws from a kernel
    stream seeded from `rng`: per cell the responsiveness (if it varies), then `start_nk_cell`'s."""
    r = stream_from(rng)
    for k in range(sites.shape[0]):
        resp = intrinsic_responsiveness(r, p.responsiveness_sd)
        start_nk_cell(r, nk, first + k, sites[k], p.max_granules, 0, car[k], resp, born_min, p)


@njit(cache=True)
def arrive_nk_cells(rng, nk, first, sites, lat, tally, car_fraction, born_min, p):
    """Infused cells arriving at `sites` (`model._start_nk`), in one call: placed by volume exclusion
    (`lattice.place_immune_cells`), each placed cell CAR− with probability 1 − `car_fraction` (one
    uniform per placed cell, drawn only if `car_fraction` < 1), started by `start_nk_cells` in slots
    first, first + 1, ... (the caller has made room for every site) and given fresh run-wide ids
    (`tally.ids[1]`). The same draws from `rng`, in the same order, as those steps one by one.
    Returns (cells placed, cells that found no room), or (-1, 0), changing nothing, if a site lies
    outside the lattice."""
    nx, ny, nz = lat.shape
    n_sites = nx * ny * nz
    for k in range(sites.shape[0]):
        if sites[k] < 0 or sites[k] >= n_sites:
            return -1, 0
    placed = place_immune_cells(rng, sites, lat.occ_bits, lat.nk_count, p.immune_cap, lat.offsets, nx, ny, nz)
    n = 0
    for k in range(placed.shape[0]):
        if placed[k] >= 0:
            placed[n] = placed[k]
            n += 1
    car = np.empty(n, np.float32)
    car[:] = p.car_expression  # CAR+ share of the product (therapy layer)
    if car_fraction < 1.0:
        g = generator_of(rng)
        for k in range(n):
            if g.random() >= car_fraction:
                car[k] = 0.0
    if n > 0:  # responsiveness, direction, memory fate, full granules and DR capacity
        start_nk_cells(rng, nk, first, placed[:n], car, born_min, p)
        ids = tally.ids
        for k in range(n):
            nk.cell_id[first + k] = ids[1] + k
        ids[1] += n
    return n, sites.shape[0] - n


@njit(cache=True)
def arrive_at_vessels(rng, vessels, n, nk, first, lat, tally, car_fraction, born_min, p):
    """`arrive_nk_cells` at `n` sites drawn from `vessels` with replacement, as
    ``vessels[rng.integers(0, vessels.size, size=n)]`` draws them (Numba's `Generator.integers` is
    NumPy's algorithm on the same bit generator: the same numbers)."""
    sites = vessels[generator_of(rng).integers(0, vessels.shape[0], n)]
    return arrive_nk_cells(rng, nk, first, sites, lat, tally, car_fraction, born_min, p)


@njit(cache=True, nogil=True)  # the field prefetch thread runs beside it (sim/fields.py)
def nk_step(step, now, n_used, cells):
    """Advance every live NK cell (slots < `n_used` of the record `step.nk`) by one step; returns
    (births, deaths, live cells at the start), the births' and deaths' slots written to `step.born`/
    `step.died`. `step` is the `records.NKStepType` record of the rng, parameters and state records.

    `cells` empty: every live cell, in a fresh random order (the batch step). Otherwise only the live
    cells among the slots `cells`, in that order (a Mesa agent's `step()`: one cell, same rules).

    Daughters go to the slots from `n_used` on (the caller makes room for one per cell) and inherit
    their mother's CAR level (`nk.car`: CAR+ and CAR− cells of one product) and granules.
    `fld.nonzero[f]` says whether field f may hold a value (`CytokineFields.nonzero`): grid reads of
    an identically zero field, and the voxel lookup when nothing needs it, are skipped; the flags of
    fields flagged zero are re-checked first (a field written directly is seen at once). The tumor
    centroid the cells are biased toward comes from the running sums (`records.tumor_centroid`)."""
    # one assignment per record: unpacked as one tuple (numba 0.68), the writes of the inlined
    # start_nk_cell through `nk` were lost (daughters never appeared)
    rng = step.rng
    p = step.p
    nk = step.nk
    tumor = step.tumor
    lat = step.lat
    fld = step.fld
    tally = step.tally
    born = step.born
    died = step.died
    refresh_zero_flags(fld.values, fld.nonzero)
    centroid = tumor_centroid(tally.tumor, lat.shape[0], lat.shape[1], lat.shape[2])
    stream = stream_from(rng)  # the kernel's own inlined stream, seeded from the model's Generator
    r = stream_view(stream)  # drawn from through an uncounted view (kept alive to the end)
    # the records' arrays as locals: the loop below runs on plain arrays
    n_site, n_dir, n_state, n_target, n_timer = nk.site, unmanaged(nk.direction), nk.state, nk.target, nk.timer
    n_route, n_gran, n_dr, n_stims, n_kills = nk.route, nk.granules, nk.dr_left, nk.stims, nk.kills
    n_divs, n_mem, n_car, n_resp = nk.divisions, nk.memory, nk.car, nk.resp
    t_antigen, t_mhc, t_ligand, t_coat = tumor.antigen, tumor.mhc, tumor.ligand, tumor.coat
    t_state, t_timer, t_site = unmanaged(tumor.state), unmanaged(tumor.timer), unmanaged(tumor.site)
    # the arrays the inlined rules take, as uncounted views (`memory.unmanaged`; the records keep them)
    occ, bits, alive_bits, offsets = lat.occ, unmanaged(lat.occ_bits), unmanaged(lat.alive_bits), unmanaged(lat.offsets)
    count, cap = unmanaged(lat.nk_count), p.immune_cap  # volume exclusion: immune cells per site, and the most a site holds
    vx, vy, vz = unmanaged(lat.vx), unmanaged(lat.vy), unmanaged(lat.vz)
    coarsen = lat.coarsen
    fvals, fbg, fsrc = unmanaged(fld.values), unmanaged(fld.background), unmanaged(fld.sources)
    fnonzero, src_scale = unmanaged(fld.nonzero), fld.source_scale
    counters = tally.nk
    nx, ny, nz = lat.shape
    fx, fy, fz = lat.fshape
    dt = p.dt
    order = np.empty(n_used if cells.shape[0] == 0 else cells.shape[0], np.uint64)  # unsigned: no wraparound
    m = 0
    if cells.shape[0] == 0:
        for i in range(n_used):
            if n_state[i] != NK_EMPTY:
                order[m] = i
                m += 1
        order = shuffled(r, order[:m])
    else:
        for i in cells:
            if 0 <= i < n_used and n_state[i] != NK_EMPTY:
                order[m] = i
                m += 1
        order = order[:m]
    nb = 0
    nd = 0
    # loop invariants (the per-axis voxel lookups vx, vy, vz come with the lattice record)
    p_attach = hazard_probability(p.attach_rate, dt)
    p_turn = turn_probability(p.persistence_min, dt)
    p_egress = hazard_probability(p.egress_per_min, dt)
    regen = granules_per_step(p.regen_min, dt)
    need_voxel = fnonzero[TGFB] or fnonzero[IL15] or p.il15_rate > 0.0 or p.ifng_rate > 0.0
    # a cell's death and IL-15 division probabilities depend on it only through its voxel's IL-15 (fixed
    # during the step) and its half-life class (memory, exhausted): with more cells than voxels they are
    # computed once per voxel and class, kept in a direct-mapped table of one cache line per voxel
    # (`MEMO_*`; the same function of the same inputs), else per cell; one row if no voxel is looked up
    use_memo = m > fvals.shape[1] or not need_voxel
    memo_size = 1
    while use_memo and need_voxel and memo_size < fvals.shape[1] and memo_size < MEMO_MAX:
        memo_size *= 2
    memo_mask = memo_size - 1
    memo = np.full((memo_size, MEMO_WIDTH), -1.0)  # -1: not computed (probabilities are >= 0; no voxel -1)
    nv = fvals.shape[1]
    plane = ny * nz
    n_sites = nx * plane
    for k in range(m):
        # prefetch (results unchanged): the per-cell arrays of cell k + 2·AHEAD, then, its site now
        # cached, the field voxels and live-tumor bitmap words around cell k + AHEAD
        if k + 2 * AHEAD < m:
            prefetch(n_site, order[k + 2 * AHEAD])  # its whole record: the hot fields share one line (NKPopulation.PACKED)
        if k + AHEAD < m:
            sj = n_site[order[k + AHEAD]]
            if need_voxel:
                xj, yj, zj = site_coords(sj, ny, nz)
                vj = voxel_lookup(vx, vy, vz, xj, yj, zj, fy, fz)
                prefetch(fvals, TGFB * nv + vj)
                prefetch(fvals, IL15 * nv + vj)
                prefetch(fsrc, IL15 * nv + vj)
                if use_memo:
                    prefetch(memo, (vj & memo_mask) * MEMO_WIDTH)
            prefetch(alive_bits, sj >> 6)
            prefetch(bits, sj >> 6)
            prefetch(count, sj)
            if sj >= plane:
                prefetch(alive_bits, (sj - plane) >> 6)
            if sj + plane < n_sites:
                prefetch(alive_bits, (sj + plane) >> 6)
        i = order[k]
        s = n_site[i]
        if occupied(bits, s):  # a tumor daughter took this site: step aside into a neighbour with room, if any
            s2 = random_room_neighbour(r, s, offsets, bits, count, cap, nx, ny, nz)
            if s2 >= 0:
                immune_move(count, s, s2)
                s = s2
                n_site[i] = s
        x, y, z = site_coords(s, ny, nz)
        v = voxel_lookup(vx, vy, vz, x, y, z, fy, fz) if need_voxel else 0
        tgfb = field_at(fvals, fbg, TGFB, v, fnonzero)
        il15 = field_at(fvals, fbg, IL15, v, fnonzero) + p.il15_autocrine
        # persistence
        exhausted = is_exhausted(n_stims[i], p.exhaustion_stims)
        t_half = exhaustion_half_life(cell_half_life(n_mem[i], p.half_life_min, p.memory_half_life_min), exhausted,
                                      p.exhausted_half_life_factor)
        row = v & memo_mask
        if use_memo and memo[row, MEMO_VOXEL] != v:  # another voxel's row (or none yet): start it afresh
            memo[row, MEMO_VOXEL] = v
            for c in range(MEMO_VOXEL + 1, MEMO_WIDTH):
                memo[row, c] = -1.0
        col = MEMO_DIE + (2 if n_mem[i] else 0) + (1 if exhausted else 0)
        if not use_memo or memo[row, col] < 0.0:
            memo[row, col] = death_probability(t_half, il15, p.il15_extension, p.il15_ec50, dt, p.rejection_per_min)
        dies = r.random() < memo[row, col]
        if dies or leaves_tissue(r, n_state[i] == NK_FREE, p_egress):  # no egress draw for a cell that died
            n_state[i] = NK_EMPTY
            count[s] -= 1
            died[nd] = i
            nd += 1
            counters[C_NKDEATH if dies else C_NKEGRESS] += 1
            continue
        n_gran[i] = regenerate_granules(n_gran[i], p.max_granules, regen)
        if p.il15_rate > 0.0:
            fsrc[IL15, v] += p.il15_rate * src_scale
        # IL-15-driven division, plus antigen-driven expansion when a kill completes (CAR-T)
        completing = n_state[i] == NK_KILLING and now + dt >= n_timer[i] and t_state[n_target[i]] == T_ALIVE
        if not use_memo or memo[row, MEMO_DIV] < 0.0:
            memo[row, MEMO_DIV] = il15_division_probability(p.prolif_rate, il15, p.il15_ec50, dt)
        p_div = either_probability(
            lineage_division_probability(memo[row, MEMO_DIV], n_divs[i], p.max_divisions),
            antigen_driven_division_probability(completing, p.stim_division_prob, n_divs[i], p.max_divisions))
        if p_div > 0.0 and r.random() < p_div:  # no draw when division is impossible
            # the daughter takes a neighbour with room, else stays with its mother if her site has room,
            # else the division does not happen (volume exclusion, `immune_can_enter`)
            s2 = random_room_neighbour(r, s, offsets, bits, count, cap, nx, ny, nz)
            if s2 < 0 and immune_can_enter(bits, count, s, cap):
                s2 = s
            if s2 >= 0:
                count[s2] += 1
                c = n_used + nb
                n_divs[i] += 1
                start_nk_cell(r, nk, c, s2, n_gran[i], n_divs[i], n_car[i], n_resp[i], now + dt, p)
                born[nb] = c
                nb += 1
                counters[C_NKBIRTH] += 1
        st = n_state[i]
        if st != NK_FREE:
            if st == NK_KILLING and p.ifng_rate > 0.0:
                ifng_sup = tgfb_suppression(tgfb, p.tgfb_ic50, p.tgfb_ifng_max, p.tgfb_resistant)
                f = p.ifng_exhausted_fraction if exhausted else 1.0
                fsrc[IFNG, v] += p.ifng_rate * (1.0 - ifng_sup) * f * src_scale
            if now + dt >= n_timer[i]:
                j = n_target[i]
                if st == NK_KILLING and t_state[j] == T_ALIVE:
                    doom_tumor(j, now + dt, p.apoptosis_delay_min, t_state, t_timer, t_site, alive_bits)
                    n_kills[i] += 1
                    counters[C_KILL0 + n_route[i]] += 1
                n_state[i] = NK_FREE
                n_target[i] = -1
                if st == NK_KILLING and activation_induced_death(r, p.aicd_per_trigger):
                    n_state[i] = NK_EMPTY
                    count[s] -= 1
                    died[nd] = i
                    nd += 1
                    counters[C_NKDEATH] += 1
            continue
        # contact and signal integration
        sc = contact_site_at(r, s, x, y, z, offsets, alive_bits, nx, ny, nz)
        if sc >= 0 and r.random() < p_attach:
            counters[C_CONJ] += 1
            j = occ[sc]
            vt = voxel_of(sc, ny, nz, fy, fz, coarsen) if fnonzero[IFNG] else 0
            ifng_t = field_at(fvals, fbg, IFNG, vt, fnonzero)
            prob, route, path = conjugate_outcome(p, tgfb, ifng_t, t_antigen[j], t_mhc[j], t_ligand[j], t_coat[j],
                                                  exhausted, n_gran[i], n_dr[i], n_car[i], n_resp[i])
            n_target[i] = j
            if path != PATH_NONE and r.random() < prob:
                counters[C_TRIG] += 1
                n_stims[i] += 1
                n_state[i] = NK_KILLING
                n_route[i] = route
                if path == PATH_GRANULE:
                    n_gran[i] -= 1.0
                    n_timer[i] = now + p.kill_min
                else:
                    n_dr[i] -= 1.0
                    n_timer[i] = now + p.dr_kill_min
            else:
                n_state[i] = NK_BOUND
                n_timer[i] = now + p.release_min
            continue
        # motility
        maybe_turn(r, n_dir, i, p_turn, p.dims)
        for _ in range(moves_this_step(r, p.sites_per_step)):
            s2, x, y, z = hop(r, s, x, y, z, n_dir, i, centroid, p.tumor_bias, bits, count, cap, nx, ny, nz)
            if s2 < 0:
                random_direction(r, p.dims, n_dir, i)
                break
            if s2 != s:
                immune_move(count, s, s2)
            s = s2
        n_site[i] = s
    keep_alive(stream)
    return nb, nd, m


@njit(cache=True)
def count_antigen_low(state, antigen, n, cut):
    """Live (or doomed) tumor cells among slots < n with 0 < antigen < cut (`tumor_ag_low`), in one
    pass: no temporaries the size of the tumor (at 1e8 cells NumPy's masks took ~0.5 GB per output)."""
    c = 0
    for i in range(n):
        if (state[i] == T_ALIVE or state[i] == T_DOOMED) and 0.0 < antigen[i] < cut:
            c += 1
    return c


@njit(cache=True, inline='always')
def on_boundary(x, y, z, nx, ny, nz):
    """Whether a site lies on the domain boundary (a first or last layer along an axis; z only in 3D)."""
    return x == 0 or x == nx - 1 or y == 0 or y == ny - 1 or (nz > 1 and (z == 0 or z == nz - 1))


@njit(cache=True, inline='always')
def add_tumor_stats(tally, lat, site, antigen, sign):
    """Add (sign=+1) or remove (sign=-1) a live tumor cell from the running totals (`tally.tumor`,
    `tally.vox_tumor`)."""
    nx, ny, nz = lat.shape
    x, y, z = site_coords(site, ny, nz)
    tstats = tally.tumor
    tstats[S_LIVE] += sign
    if antigen > 0.0:
        tstats[S_AGPOS] += sign
    else:
        tstats[S_AGNEG] += sign
    tstats[S_SX] += sign * x
    tstats[S_SY] += sign * y
    tstats[S_SZ] += sign * z
    if on_boundary(x, y, z, nx, ny, nz):
        tstats[S_EDGE] += sign
    tally.vox_tumor[voxel_of(site, ny, nz, lat.fshape[1], lat.fshape[2], lat.coarsen)] += sign


@njit(cache=True, inline='always')
def start_tumor_cell(tumor, lat, tally, c, site, antigen, ag_clone, mhc, ligand, coat, timer):
    """Slot `c` of the tumor record becomes a live cell at the free `site` (a daughter, or a seeded
    cell): its arrays, a fresh run-wide id (`tally.ids[0]`), the lattice and both bitmaps, and the
    running totals."""
    tumor.site[c] = site
    tumor.cell_id[c] = tally.ids[0]
    tally.ids[0] += 1
    tumor.antigen[c] = antigen
    tumor.ag_clone[c] = ag_clone
    tumor.mhc[c] = mhc
    tumor.ligand[c] = ligand
    tumor.coat[c] = coat
    tumor.state[c] = T_ALIVE
    tumor.timer[c] = timer
    tumor.quiescent[c] = 0
    lat.occ[site] = c
    set_occupied(lat.occ_bits, site, True)
    set_occupied(lat.alive_bits, site, True)
    add_tumor_stats(tally, lat, site, antigen, 1)


@njit(cache=True)
def start_tumor_cells(rng, now, p, tumor, lat, tally, first, sites, antigen, ag_clone, mhc, ligand):
    """`start_tumor_cell` for cells seeded by the model (uncoated) in slots first, first + 1, ...; each
    first division attempt is `next_division_delay` after `now`, drawn from a kernel stream seeded
    from `rng`, as for a daughter."""
    r = stream_from(rng)
    rate = tumor_event_rate(p.division_rate, p.death_rate)
    for k in range(sites.shape[0]):
        timer = now + next_division_delay(r, rate)
        start_tumor_cell(tumor, lat, tally, first + k, sites[k], antigen[k], ag_clone[k], mhc[k], ligand[k], 0.0, timer)


@njit(cache=True, nogil=True)  # the field prefetch thread runs beside it (sim/fields.py)
def due_cells(t_used, t_state, t_timer, horizon):
    """The tumor slots whose next event (division, death, clearance) is due by `horizon`, in one pass,
    and how many of them are live: an upper bound on the births of the tumor step."""
    order = np.empty(t_used, np.uint32)  # pages are touched only as far as it is filled
    n = 0
    n_live = 0
    for i in range(t_used):
        if t_timer[i] <= horizon and t_state[i] != T_EMPTY:  # timer first: most cells are not due
            order[n] = i
            n += 1
            if t_state[i] == T_ALIVE:
                n_live += 1
    return order[:n].copy(), n_live


@njit(cache=True, nogil=True)  # the field prefetch thread runs beside it (sim/fields.py)
def tumor_step(rng, now, dt, p, tumor, t_used, n_free, lat, fld, tally, due):
    """Process the due tumor events (`due`, from `due_cells`: division, death, clearance) in random
    order; returns (t_used, n_free). Every write to `lat.occ` is mirrored in the occupancy bitmap."""
    stream = stream_from(rng)
    r = stream_view(stream)  # uncounted views for the inlined rules, as in `nk_step`
    t_site, t_antigen, t_mhc, t_ligand, t_coat = tumor.site, tumor.antigen, tumor.mhc, tumor.ligand, tumor.coat
    t_state, t_timer, free_slots, t_ag_clone = unmanaged(tumor.state), unmanaged(tumor.timer), tumor.free_slots, tumor.ag_clone
    t_site, t_quiescent, alive_bits = unmanaged(t_site), tumor.quiescent, unmanaged(lat.alive_bits)
    occ, bits, offsets, coarsen = lat.occ, unmanaged(lat.occ_bits), unmanaged(lat.offsets), lat.coarsen
    fvals, fbg = fld.values, fld.background
    tstats = tally.tumor
    nx, ny, nz = lat.shape
    fx, fy, fz = lat.fshape
    horizon = now + dt
    rate = tumor_event_rate(p.division_rate, p.death_rate)
    order = shuffled(r, due)
    for i in order:
        st = t_state[i]
        s = t_site[i]
        if st == T_ALIVE:
            if dies_spontaneously(r, p.division_rate, p.death_rate):
                doom_tumor(i, t_timer[i], p.apoptosis_delay_min, t_state, t_timer, t_site, alive_bits)
                continue
            v = voxel_of(s, ny, nz, fy, fz, coarsen)
            ifng = fvals[IFNG, v] + fbg[IFNG]
            if r.random() >= division_acceptance(ifng, p.ifng_growth_max, p.ifng_ec50):
                t_timer[i] = horizon + next_division_delay(r, rate)
                continue
            s2 = random_free_neighbour(r, s, offsets, bits, nx, ny, nz)
            if s2 < 0 and p.open_boundary:
                # an open section (`sim/section.py`): the division happens and the daughter leaves the
                # section into the rest of the disease; the mother keeps cycling, with her levels
                tstats[S_EXPORTED] += 1
                t_timer[i] = horizon + next_division_delay(r, rate)
                continue
            if s2 < 0:
                # quiescent until a neighbour is cleared; with spontaneous death its events go on (a
                # memoryless clock, so this is the same in law as waking when a neighbour clears), and
                # `quiescent` says what the sleeping clock says without it (chemotherapy spares these cells)
                t_timer[i] = np.inf if p.death_rate <= 0.0 else horizon + next_division_delay(r, rate)
                t_quiescent[i] = 1
                continue
            t_quiescent[i] = 0
            if n_free > 0:
                n_free -= 1
                c = free_slots[n_free]
            else:
                c = t_used
                t_used += 1
            ag = daughter_antigen(r, t_antigen[i], p.antigen_loss)
            clone_c = t_ag_clone[i] if ag > 0.0 else 0.0  # antigen loss is genetic: the daughter founds a negative clone
            mhc_c, lig_c = t_mhc[i], t_ligand[i]
            if p.expression_rho < 1.0:  # both daughters (the mother's slot is one) relax toward their means
                rho = p.expression_rho
                z1, z2 = standard_normal_pair(r)
                z3, z4 = standard_normal_pair(r)
                z5, z6 = standard_normal_pair(r)
                ag_mu = clone_log_mean(t_ag_clone[i], p.antigen_log_sd)
                if clone_c > 0.0:
                    ag = relaxed_level(ag, z6, ag_mu, p.antigen_log_sd, rho)
                if t_ag_clone[i] > 0.0:
                    t_antigen[i] = relaxed_level(t_antigen[i], z5, ag_mu, p.antigen_log_sd, rho)
                mhc_c = relaxed_level(t_mhc[i], z2, p.mhc_log_mean, p.mhc_log_sd, rho)
                lig_c = relaxed_level(t_ligand[i], z4, p.ligand_log_mean, p.ligand_log_sd, rho)
                t_mhc[i] = relaxed_level(t_mhc[i], z1, p.mhc_log_mean, p.mhc_log_sd, rho)
                t_ligand[i] = relaxed_level(t_ligand[i], z3, p.ligand_log_mean, p.ligand_log_sd, rho)
            t_timer[i] = horizon + next_division_delay(r, rate)
            timer_c = horizon + next_division_delay(r, rate)
            coat = t_coat[i] if ag > 0.0 else 0.0
            start_tumor_cell(tumor, lat, tally, c, s2, ag, clone_c, mhc_c, lig_c, coat, timer_c)
            tstats[S_BIRTHS] += 1
        elif st == T_DOOMED:
            t_state[i] = T_DEAD
            t_timer[i] = t_timer[i] + p.clearance_min
            add_tumor_stats(tally, lat, s, t_antigen[i], -1)
            tstats[S_DEATHS] += 1
        elif st == T_DEAD:
            t_state[i] = T_EMPTY
            occ[s] = -1
            set_occupied(bits, s, False)
            free_slots[n_free] = i
            n_free += 1
            x, y, z = site_coords(s, ny, nz)
            for k in range(offsets.shape[0]):
                s3 = neighbour_at(x, y, z, offset_at(offsets, k), nx, ny, nz)
                if s3 >= 0 and occupied(bits, s3):
                    q = occ[s3]
                    if q >= 0 and t_state[q] == T_ALIVE:
                        t_quiescent[q] = 0  # room again: no longer contact-inhibited
                        if t_timer[q] == np.inf:
                            t_timer[q] = horizon + next_division_delay(r, rate)
    keep_alive(stream)
    return t_used, n_free
