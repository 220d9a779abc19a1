"""Companion drugs as step hooks: ADCC antibody coating, checkpoint blockade and chemotherapy pulses.

Each hook reads its drug's tissue concentration from `PKCurve` and writes the effect where the kernels
read it: `model.tumor.coat` (CD16 input), or a field of `model.p_nk` (inhibitory_block, half_activation,
exhaustion_stims). Chemotherapy calls the `chemo_pulse` kernel."""
from __future__ import annotations

import numpy as np

from ..kernels import step as K
from ..kernels.drugs import chemo_pulse
from .pk import PKCurve, occupancy
from ..units import MIN_PER_DAY



def install(model) -> None:
    """Register a hook for each drug that has doses."""
    d = model.config.drugs
    if d.antibody.doses:
        _install_antibody(model, d.antibody)
    p = model.p_nk
    if d.anti_nkg2a.doses:
        _install_checkpoint(model, "anti_nkg2a", d.anti_nkg2a, "inhibitory_block",
                            lambda occ, e, base=p.inhibitory_block: base + (1.0 - base) * e * occ)
    if d.anti_tigit.doses:
        _install_checkpoint(model, "anti_tigit", d.anti_tigit, "half_activation",
                            lambda occ, e, base=p.half_activation: base * (1.0 - e * occ))
    if d.anti_pd1.doses:
        _install_checkpoint(model, "anti_pd1", d.anti_pd1, "exhaustion_stims",
                            lambda occ, e, base=p.exhaustion_stims: int(round(base * (1.0 + e * occ))))
    if d.chemo.doses:
        _install_chemo(model, d.chemo)


def _install_antibody(model, ab) -> None:
    """Coating = coat_per_antigen × antigen × occupancy, refreshed when the occupancy moves by > 0.1 %.

    Daughters inherit the coat in `tumor_step` (0 if they lost the antigen), so new cells need no pass."""
    curve = PKCurve(ab.pk, ab.doses)
    model.therapy_state["occupancy"]["antibody"] = 0.0

    def hook(m) -> None:
        occ = occupancy(curve.tissue_ug_ml(m.now_min / MIN_PER_DAY), ab.kd_ug_ml)
        if abs(occ - m.therapy_state["occupancy"]["antibody"]) > 1e-3:
            t, n = m.tumor, m.tumor.used
            t.coat[:n] = ab.coat_per_antigen * t.antigen[:n] * occ
            m.therapy_state["occupancy"]["antibody"] = occ

    model.hooks.append(hook)
    model.extra_reporters["antibody_ug_ml"] = lambda m: curve.tissue_ug_ml(m.now_min / MIN_PER_DAY)


def _install_checkpoint(model, name: str, drug, field: str, effect) -> None:
    """Each step, set one kernel parameter to effect(occupancy, max_effect) of the drug's receptor occupancy."""
    curve = PKCurve(drug.pk, drug.doses)
    model.therapy_state["occupancy"][name] = 0.0

    def hook(m) -> None:
        occ = occupancy(curve.tissue_ug_ml(m.now_min / MIN_PER_DAY), drug.kd_ug_ml)
        held = m.therapy_state["occupancy"]
        if abs(occ - held[name]) > 1e-4:  # skip namedtuple rebuilds for negligible changes
            held[name] = occ
        value = effect(held[name], drug.max_effect)
        if getattr(m.p_nk, field) != value:
            m.p_nk = m.p_nk._replace(**{field: value})

    model.hooks.append(hook)
    model.extra_reporters[f"{name}_occupancy"] = lambda m: occupancy(curve.tissue_ug_ml(m.now_min / MIN_PER_DAY), drug.kd_ug_ml)


def _install_chemo(model, chemo) -> None:
    """At each dosing time: doom a fraction of cycling tumor cells and remove a fraction of effectors."""
    doses = sorted(chemo.doses, key=lambda x: x.day)
    stats = model.therapy_state["stats"]
    stats["chemo_tumor_kills"] = 0
    stats["chemo_nk_depleted"] = 0

    def hook(m) -> None:
        lo, hi = m.now_min - 1e-6, m.now_min + m.dt - 1e-6  # steps tile time: each pulse fires once
        for dose in doses:
            if lo <= dose.day * MIN_PER_DAY < hi:
                t, st = m.tumor, m.therapy_state["stats"]
                killed = chemo_pulse(m.rng, m.now_min, dose.cycling_kill_fraction, m.p_tumor.apoptosis_delay_min,
                                     t.used, t.state, t.timer, t.site, m.alive_bits)
                st["chemo_tumor_kills"] += int(killed)
                st["chemo_nk_depleted"] += remove_effectors(m, dose.lymphocyte_depletion)

    model.hooks.append(hook)


def remove_effectors(m, fraction: float) -> int:
    """Remove each live effector cell with probability `fraction` (not counted as persistence deaths)."""
    nk = m.nk
    live = np.flatnonzero(nk.state[: nk.used] != K.NK_EMPTY)
    gone = live[m.rng.random(live.size) < fraction]
    m.remove_nk(gone)
    return int(gone.size)
