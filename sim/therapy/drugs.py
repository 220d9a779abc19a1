"""Companion drugs: checkpoint blockade as declared modulators, ADCC antibody coating and chemotherapy
pulses as events.

A checkpoint antibody's receptor occupancy (from `PKCurve`) modulates one kernel parameter
(inhibitory_block, half_activation or exhaustion_stims; sim/therapy/modulators.py). The ADCC antibody
coats tumor cells (`model.tumor.coat`, the CD16 input) and chemotherapy calls the `chemo_pulse` kernel:
both change cells, so they stay step hooks."""
from __future__ import annotations

import numpy as np

from ..kernels import step as K
from ..kernels.drugs import chemo_pulse
from .modulators import Modulator
from .pk import PKCurve, occupancy
from ..units import MIN_PER_DAY



def install(model) -> None:
    """Register a hook for each drug that has doses."""
    d = model.config.drugs
    if d.antibody.doses:
        _install_antibody(model, d.antibody)
    for name, target, rule in CHECKPOINTS:
        drug = getattr(d, name)
        if drug.doses:
            curve = PKCurve(drug.pk, drug.doses)
            model.modulation.declare(Modulator(
                f"{name}_occupancy", f"nk.{target}", rule, gain=drug.max_effect, source=f"drugs.{name}",
                course=lambda t, c=curve, kd=drug.kd_ug_ml: occupancy(c.tissue_ug_ml(t / MIN_PER_DAY), kd)))
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


#: Checkpoint drug → the kernel parameter its occupancy modulates and how (sim/therapy/modulators.py RULES).
CHECKPOINTS = (
    ("anti_nkg2a", "inhibitory_block", "block"),  # NKG2A blocked: the inhibitory signal falls toward 0
    ("anti_tigit", "half_activation", "lower"),  # TIGIT blocked: easier triggering
    ("anti_pd1", "exhaustion_stims", "raise_count"),  # PD-1 blocked: more stimulations before exhaustion
)


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
                                     t.used, t.state, t.timer, t.site, t.quiescent, m.alive_bits)
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
