"""The infused effector: CAR-NK (default) or the CAR-T comparator, resolved into the same kernel
parameters (no second engine), plus product engineering such as TGF-βR2 edits."""
from __future__ import annotations
from ..units import MIN_PER_DAY



def resolve_effector(p, c, voxel_volume_ml: float):
    """Apply `nk.engineering` and, for `effector: cart`, the CAR-T differences to the NK kernel params."""
    e = c.nk.engineering
    if e.tgfbr2 == "knockout" or (e.tgfbr2 == "dominant_negative" and e.dnr_residual_signalling == 0.0):
        p = p._replace(tgfb_resistant=True)
    elif e.tgfbr2 == "dominant_negative":
        r = e.dnr_residual_signalling
        p = p._replace(tgfb_activation_max=p.tgfb_activation_max * r, tgfb_nkg2d_max=p.tgfb_nkg2d_max * r,
                       tgfb_ifng_max=p.tgfb_ifng_max * r)
    if c.effector == "cart":
        from ..model import secretion_rate

        t = c.cart
        p = p._replace(
            nkg2d=0.0, inhibitory=0.0, cd16=0.0,  # MHC-independent CAR killing only, no ADCC
            half_life_min=t.persistence.half_life_days * MIN_PER_DAY,
            memory_fraction=t.persistence.memory_fraction,
            memory_half_life_min=t.persistence.memory_half_life_days * MIN_PER_DAY,
            stim_division_prob=t.expansion.division_probability_per_kill,
            max_divisions=int(t.expansion.max_divisions),
            ifng_rate=secretion_rate(t.secretion.ifng_engaged, voxel_volume_ml),
        )
    return p


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
