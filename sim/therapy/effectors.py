"""Effector-level facts outside the kernels: inflammatory release (toxicity index) and the GvHD flag.
The CAR-T comparator and TGF-βR2 edits in kernel units are resolution rules (sim/scenario/kernel_units.py)."""
from __future__ import annotations



def inflammatory_release_per_cell_day(c) -> float:
    """IFN-γ plus IL-6-like release of one engaged effector, in ng/day (drives the CRS/ICANS index)."""
    if c.effector == "cart":
        s = c.cart.secretion
        return (s.ifng_engaged + s.il6_like_engaged) * 1e-6
    s = c.nk.secretion
    return (s.ifng_engaged + s.il6_like_engaged) * 1e-6


def gvhd_risk(c) -> bool:
    """GvHD flag: allogeneic CAR-T with an intact TCR. NK cells do not cause GvHD (Liu 2020)."""
    return c.effector == "cart" and c.cart.allogeneic and not c.cart.tcr_knockout
