"""Tumor escape set-up: antigen-low clones at the start, and NKG2D-ligand shedding over time.

Antigen loss on division is a kernel rule (`sim/kernels/escape.py`, called by `tumor_step`).
Shedding is lumped into one time course: surface-ligand loss and soluble-ligand NKG2D down-modulation
both lower the NKG2D signal (NKG2D × ligand), so the NKG2D input is scaled by
1 − max·(1 − 2^(−t/t½))."""
from __future__ import annotations

import numpy as np

from .modulators import Modulator



def install(model) -> None:
    """Apply antigen-low clones to the initial tumor and register the shedding hook."""
    e = model.config.tumor.escape
    t = model.tumor
    if e.antigen_low_fraction > 0 and t.used:
        n = t.used
        low = (model.rng.random(n) < e.antigen_low_fraction) & (t.antigen[:n] > 0)
        t.antigen[:n][low] *= np.float32(e.antigen_low_scale)
        t.ag_clone[:n][low] *= np.float32(e.antigen_low_scale)  # a clone: its daughters stay antigen-low
        model.therapy_state["stats"]["antigen_low_cells_initial"] = int(low.sum())
    if e.ligand_shedding_max > 0:
        model.modulation.declare(Modulator("nkg2d_engagement_factor", "nk.nkg2d", "scale",
                                           lambda t: shedding_factor(t, e), source="tumor.escape.ligand_shedding_max"))


def shedding_factor(now_min: float, e) -> float:
    """Remaining NKG2D engagement under ligand shedding at time `now_min`."""
    return 1.0 - e.ligand_shedding_max * (1.0 - 2.0 ** (-now_min / (e.ligand_shedding_half_time_h * 60.0)))
