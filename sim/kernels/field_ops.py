"""Numba kernels that move cytokine between cells (lattice sites) and field voxels.

Lattice sites and voxels are both addressed by linear C-order indices: site
``s`` of an ``(nx, ny, nz)`` lattice is ``(i, j, k)`` with ``s = (i*ny + j)*nz + k``;
with coarsening factor ``c`` it lies in voxel ``(i//c, j//c, k//c)`` of the
``(fx, fy, fz) = ceil((nx, ny, nz)/c)`` field grid. Negative site indices are
treated as "no site" (e.g. dead or unplaced cells) and skipped.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .lattice import site_coords, voxel_of


@njit(cache=True)
def site_to_voxel(site, nx, ny, nz, fx, fy, fz, coarsen):
    """Linear voxel index holding lattice site ``site`` (`lattice.voxel_of`, the one mapping every kernel shares)."""
    return voxel_of(site, ny, nz, fy, fz, coarsen)


@njit(cache=True)
def deposit(sources, sites, weights, rate, nx, ny, nz, fx, fy, fz, coarsen):
    """Add ``rate*weights[n]`` (ng/mL/min) to the voxel of each site: secretion for the next step.

    ``weights`` may be a boolean "is secreting" mask or per-cell float weights.
    """
    for n in range(sites.shape[0]):
        s = sites[n]
        if s < 0:
            continue
        v = site_to_voxel(s, nx, ny, nz, fx, fy, fz, coarsen)
        sources[v] += rate * weights[n]


@njit(cache=True)
def count_per_voxel(out, sites, nx, ny, nz, fx, fy, fz, coarsen):
    """Add 1 to ``out[v]`` for each site's voxel (cells per voxel, e.g. for uptake); negative sites skipped."""
    for n in range(sites.shape[0]):
        s = sites[n]
        if s >= 0:
            out[site_to_voxel(s, nx, ny, nz, fx, fy, fz, coarsen)] += 1.0


@njit(cache=True)
def count_live_per_voxel(out, sites, state, n_used, empty, vx, vy, vz, fy, fz, ny, nz):
    """`count_per_voxel` of the sites of the cells in slots < n_used whose state is not `empty`, in
    one pass over the slots (no mask or gathered copy); the voxel from per-axis tables (vx = the
    voxel coordinate of each x, ...; one integer division per cell). Returns how many were counted."""
    n = 0
    for i in range(n_used):
        if state[i] != empty:
            s = sites[i]
            if s >= 0:
                x, y, z = site_coords(s, ny, nz)
                out[(vx[x] * fy + vy[y]) * fz + vz[z]] += 1.0
                n += 1
    return n


@njit(cache=True)
def count_live_in_voxels(out, sites, state, n_used, empty, site_voxel):
    """`count_live_per_voxel` with the voxel of each site read from a table (`site_voxel[s]`)."""
    n = 0
    for i in range(n_used):
        if state[i] != empty:
            s = sites[i]
            if s >= 0:
                out[site_voxel[s]] += 1.0
                n += 1
    return n


@njit(cache=True)
def sample(values, site, background, nx, ny, nz, fx, fy, fz, coarsen):
    """Total concentration (field + background, ng/mL) a cell at ``site`` senses."""
    return values[site_to_voxel(site, nx, ny, nz, fx, fy, fz, coarsen)] + background


@njit(cache=True)
def sample_many(values, sites, background, nx, ny, nz, fx, fy, fz, coarsen, out):
    """Vector form of :func:`sample` into ``out``; ``nan`` for negative (absent) sites."""
    for n in range(sites.shape[0]):
        s = sites[n]
        if s < 0:
            out[n] = np.nan
        else:
            out[n] = values[site_to_voxel(s, nx, ny, nz, fx, fy, fz, coarsen)] + background
    return out


ZERO_SCAN_CHUNK = 4096  # words OR-ed between early-exit tests


@njit(cache=True, inline="always")
def _or_words(u):
    a = np.uint64(0)
    for k in range(u.shape[0]):  # a plain reduction: LLVM vectorises it
        a |= u[k]
    return a


@njit(cache=True)
def zero_scan(u):
    """Of float64s seen as their bits (`u`, a uint64 view): (whether any value is other than ±0 —
    NaN counts as a value, like ``ndarray.any``; whether any bit is set — i.e. not every value is +0.0).
    One OR over the words, chunk by chunk (shifting the OR left drops the sign bits, so -0.0 is no
    value), stopping at the first chunk that holds a value."""
    n = u.shape[0]
    acc = np.uint64(0)
    i = 0
    while i < n:
        j = i + ZERO_SCAN_CHUNK if i + ZERO_SCAN_CHUNK < n else n
        acc |= _or_words(u[i:j])
        if acc << np.uint64(1) != 0:
            return True, True
        i = j
    return acc << np.uint64(1) != 0, acc != 0


@njit(cache=True)
def refresh_zero_flags(values, nonzero):
    """For each field f flagged zero (`nonzero[f]` False), set the flag if `values[f]` holds a value
    (`zero_scan`; values are (fields, voxels), C order). What `values[f].any()` gives, 3–4× faster."""
    for f in range(values.shape[0]):
        if not nonzero[f]:
            nonzero[f] = zero_scan(values[f].view(np.uint64))[0]


@njit(cache=True)
def grid_flags(values, sources, out):
    """Per field f of (fields, voxels) grids: out[f] = (sources[f] holds a value, sources[f] has a
    bit set (is not all +0.0), values[f] holds a value) — `zero_scan` on each; values[f] is scanned
    only when sources[f] holds no value."""
    for f in range(values.shape[0]):
        out[f, 0], out[f, 1] = zero_scan(sources[f].view(np.uint64))
        out[f, 2] = out[f, 0] or zero_scan(values[f].view(np.uint64))[0]
    return out


@njit(cache=True, inline="always")
def field_at(values, background, f, v, nonzero):
    """Total concentration of field f in voxel v; the background alone, without reading the grid,
    when the field is identically zero (`nonzero[f]` False, see `CytokineFields.nonzero`)."""
    if nonzero[f]:
        return values[f, v] + background[f]
    return background[f]
