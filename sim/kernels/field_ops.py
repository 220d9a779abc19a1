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

from .lattice import voxel_of


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


@njit(cache=True, inline="always")
def field_at(values, background, f, v, nonzero):
    """Total concentration of field f in voxel v; the background alone, without reading the grid,
    when the field is identically zero (`nonzero[f]` False, see `CytokineFields.nonzero`)."""
    if nonzero[f]:
        return values[f, v] + background[f]
    return background[f]
