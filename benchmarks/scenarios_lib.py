"""Benchmark scenarios: 3D lesions sized so the field grid is FFT-friendly, and the 2D Mesa-baseline tissue.

The field solver's cost depends on the prime factors of the voxel-grid edge (a DCT over 103 voxels,
a prime, is ~7× slower than over 100), so the lesion domains are padded to 5-smooth voxel counts.
"""
from __future__ import annotations

import math

LESION_MARGIN_SITES = 16
LESION_COARSEN = 3
SPACING_UM = 20.0


def smooth(n: int) -> bool:
    """True when n has no prime factor above 5."""
    for p in (2, 3, 5):
        while n % p == 0 and n > 1:
            n //= p
    return n == 1


def lesion_edge_sites(n_tumor: int, coarsen: int = LESION_COARSEN, margin: int = LESION_MARGIN_SITES) -> int:
    """Edge (sites) of a cube holding a spherical nodule of n_tumor cells plus a margin, FFT-friendly."""
    r = (n_tumor / (4.0 / 3.0 * math.pi)) ** (1.0 / 3.0)
    vox = math.ceil((2 * r + 2 * margin) / coarsen)
    while not smooth(vox):
        vox += 1
    return vox * coarsen


def lesion(n_tumor: int, n_nk: int = 100_000, coarsen: int = LESION_COARSEN, field_dt_min: float = 10.0,
           days: float = 1.0) -> dict:
    """A 3D lesion: a tumor sphere with CAR-NK cells placed around it, IFN-γ, TGF-β and IL-15 fields on.

    IL-15-armored CAR-NK (mode "secreted") so that all three fields carry sources.
    """
    edge = lesion_edge_sites(n_tumor, coarsen)
    return {
        "name": f"lesion_{n_tumor:.0e}".replace("+0", ""),
        "description": f"3D lesion benchmark: {n_tumor} tumor cells, {n_nk} IL-15-armored CAR-NK, 3 fields",
        "seed": 1,
        "domain": {"dims": 3, "size_um": [edge * SPACING_UM] * 3, "spacing_um": SPACING_UM, "field_coarsen": coarsen},
        "time": {"days": days, "field_dt_min": field_dt_min},
        "tumor": {"init": {"shape": "nodule", "count": int(n_tumor)}},
        "nk": {"dose": {"cells": int(n_nk), "placement": "rim"}, "il15": {"mode": "secreted"}},
        "output": {"snapshots": False, "figure": False},
    }


def mesa_baseline(n_agents: int = 100_000, nk_fraction: float = 0.1) -> dict:
    """2D tissue for the plain-Mesa comparison: n_agents cells (tumor nodule + CAR-NK around it)."""
    n_nk = int(n_agents * nk_fraction)
    n_tumor = n_agents - n_nk
    r = math.sqrt(n_tumor / math.pi)
    edge = int(math.ceil(2 * r + 2 * LESION_MARGIN_SITES))
    return {
        "name": "mesa_baseline",
        "seed": 1,
        "domain": {"dims": 2, "size_um": [edge * SPACING_UM] * 2, "spacing_um": SPACING_UM},
        "tumor": {"init": {"shape": "nodule", "count": n_tumor}},
        "nk": {"dose": {"cells": n_nk, "placement": "rim"}},
        "output": {"snapshots": False, "figure": False},
    }
