"""Therapy set-up and step hooks: product lot, infusions through the blood compartment into the tissue
at vessel sites, systemic IL-15 (lymphodepletion, superagonist PK) and the iCasp9 suicide switch.

Systemic IL-15 is a declared modulator of the IL-15 field background; infusions and the suicide switch
are events (`model.hooks`, `model.add_nk`/`model.remove_nk`); the kernels are untouched. With no dosing/product/suicide/IL-15
options set, nothing is registered and no random numbers are drawn, so older scenarios are unchanged.
"""
from __future__ import annotations

import math

import numpy as np

from .. import section
from ..kernels.step import NK_EMPTY
from .blood import BloodCompartment
from .clinical_units import car_per_ul, transgene_copies_per_ug
from ..scenario.kernel_units import organ_return_per_min, with_lot
from .modulators import Modulator
from .products import draw_lot
from .rejection import hazard_per_min, rejected
from ..units import LN2, MIN_PER_DAY

INFILTRATION_PER_DAY = {"disseminated": 0.5, "solid": 0.02}  # assumed; see Infiltration in sim/scenario/dosing.py


def lymphodepletion_il15(ld, t_day: float) -> float:
    """IL-15 rise (ng/mL) after conditioning: a plateau for duration_days, then exponential return."""
    if ld.regimen == "none" or t_day < ld.start_day:
        return 0.0
    after = t_day - ld.start_day - ld.duration_days
    if after <= 0:
        return ld.il15_rise_ng_ml
    return ld.il15_rise_ng_ml * 0.5 ** (after / ld.decay_half_life_days)


def subcutaneous_level(doses: list[tuple[float, float]], t_day: float, absorption_half_life_h: float,
                       elimination_half_life_h: float) -> float:
    """One-compartment PK with first-order absorption: the Bateman curve of each (day, peak scale)
    dose, summed (the scale is the instant-absorption peak, F·dose/V)."""
    ka = LN2 / absorption_half_life_h
    ke = LN2 / elimination_half_life_h
    total = 0.0
    for day, scale in doses:
        tau = (t_day - day) * 24.0
        if tau < 0:
            continue
        if abs(ka - ke) < 1e-12:
            shape = ka * tau * math.exp(-ka * tau)
        else:
            shape = ka / (ka - ke) * (math.exp(-ke * tau) - math.exp(-ka * tau))
        total += scale * shape
    return total


def superagonist_il15(sa, t_day: float) -> float:
    """Superagonist level (IL-15 equivalents, ng/mL) of the s.c. doses at t."""
    doses = [(d.day, d.dose_ug_kg * sa.ng_ml_per_ug_kg) for d in sa.doses]
    return sa.potency * subcutaneous_level(doses, t_day, sa.absorption_half_life_h, sa.elimination_half_life_h)


def il2_serum(il2, t_day: float) -> float:
    """Serum IL-2 (ng/mL) of the s.c. doses at t (multiply by `potency` for IL-15 equivalents)."""
    doses = [(d.day, d.dose_miu * il2.ng_ml_per_miu) for d in il2.doses]
    return subcutaneous_level(doses, t_day, il2.absorption_half_life_h, il2.elimination_half_life_h)


class Therapy:
    """What sits around the CAR-NK cells in a treatment, attached to one model at set-up."""

    def __init__(self, model):
        self.model = m = model
        c = m.config
        self.lot = draw_lot(c, m.rng)
        self.released = self.lot.infused
        m.p_nk_base = m.p_nk = with_lot(m.p_nk_base, self.lot.potency_infused, self.lot.persistence_multiplier)
        m.car_positive_fraction = self.lot.car_fraction
        self.il15_base = float(c.fields.il15.background_ng_ml)
        self._ld, self._sa = c.dosing.lymphodepletion, c.nk.il15.superagonist
        self._il2 = c.nk.il2
        self._il15_active = self._ld.regimen != "none" or c.nk.il15.mode == "exogenous" or bool(self._il2.doses)
        if self._il15_active:
            m.modulation.declare(Modulator("il15_systemic_ng_ml", "background.il15", "set", self.il15_systemic,
                                           source="dosing.lymphodepletion / nk.il15.superagonist / nk.il2"))
        if self._il2.doses:
            m.extra_reporters = getattr(m, "extra_reporters", {})
            m.extra_reporters["il2_serum_ng_ml"] = lambda mm: il2_serum(self._il2, mm.now_min / MIN_PER_DAY)
        self.rejection = hazard_per_min(c) if rejected(c) else None
        if self.rejection is not None:
            m.modulation.declare(Modulator("rejection_per_min", "nk.rejection_per_min", "set", self.rejection,
                                           source="product.rejection"))
        self.blood: BloodCompartment | None = None
        self.infused: list[dict] = []
        self.arrived = 0
        if c.dosing.infusions:
            self._setup_dosing()
        self.suicide: dict | None = None
        if c.nk.suicide.enabled:
            self.suicide = {"triggered_day": None, "killed_tissue": 0, "trigger": None}
            m.hooks.append(self._suicide_hook)

    # ------------------------------------------------------------------ systemic IL-15
    def il15_systemic(self, t_min: float) -> float:
        """Systemic IL-15 signal (ng/mL IL-15 equivalents): field background + lymphodepletion rise
        + superagonist + IL-2 × its potency (IL-2 shares the IL-2/15Rβγ receptor)."""
        t_day = t_min / MIN_PER_DAY
        v = self.il15_base + lymphodepletion_il15(self._ld, t_day)
        if self.model.config.nk.il15.mode == "exogenous":
            v += superagonist_il15(self._sa, t_day)
        if self._il2.doses:
            v += self._il2.potency * il2_serum(self._il2, t_day)
        return v

    # ------------------------------------------------------------------ dosing
    def _setup_dosing(self) -> None:
        m, c = self.model, self.model.config
        d = c.dosing
        per = d.weight_kg if d.unit == "cells_per_kg" else 1.0
        viable = self.lot.viable_fraction_infused if self.released else 0.0
        infusions = []
        for inf in d.infusions:
            cells = inf.dose * per * viable
            infusions.append((inf.day * MIN_PER_DAY, cells))
            self.infused.append({"day": inf.day, "nominal_cells": inf.dose * per, "viable_cells_infused": cells})
        p = m.p_nk
        rate = d.infiltration.rate_per_day
        if rate is None:
            rate = INFILTRATION_PER_DAY[d.infiltration.indication]
        self.k_inf_per_day = rate
        self.tissue_fraction = d.tissue_fraction
        self.blood = BloodCompartment(
            infusions=infusions, k_out=LN2 / (d.blood.distribution_half_life_h * 60.0),
            k_back=organ_return_per_min(c), k_inf=rate / MIN_PER_DAY,
            half_life_min=p.half_life_min, il15_extension=p.il15_extension, il15_ec50=p.il15_ec50,
            prolif_rate=p.prolif_rate, max_divisions=p.max_divisions,
            il15=lambda t: self.il15_systemic(t) + p.il15_autocrine,
            extra_death=self.rejection,
            memory_fraction=p.memory_fraction, memory_half_life_min=p.memory_half_life_min,
            antigen_division_per_min=(c.cart.expansion.blood_division_per_day / MIN_PER_DAY if c.effector == "cart" else 0.0),
        )
        self.vessels = self._place_vessels()
        m.hooks.append(self._dosing_hook)
        m.extra_reporters = getattr(m, "extra_reporters", {})
        m.extra_reporters["car_per_ul_blood"] = lambda mm: self.car_per_ul(mm.now_min)
        m.extra_reporters["transgene_copies_per_ug"] = lambda mm: self.transgene_copies_per_ug(mm.now_min)

    def car_per_ul(self, t_min: float) -> float:
        """CAR+ cells per µL of the patient's blood at t (clinical unit, `clinical_units.car_per_ul`)."""
        d = self.model.config.dosing
        return car_per_ul(self.blood.blood(t_min), self.lot.car_fraction, d.weight_kg, d.blood.volume_ml_per_kg)

    def transgene_copies_per_ug(self, t_min: float) -> float:
        """Transgene copies per µg of blood genomic DNA at t (what qPCR follow-up reports)."""
        b = self.model.config.dosing.blood
        return transgene_copies_per_ug(self.car_per_ul(t_min), b.leukocytes_per_ul, b.vector_copies_per_cell)

    def blood_cells(self) -> int:
        """CAR-NK cells in the patient's blood now (0 without infusions)."""
        return 0 if self.blood is None else int(round(self.blood.blood(self.model.now_min)))

    def _place_vessels(self) -> np.ndarray:
        """Vessel entry sites: `count` (or density × area/volume) tumor-free sites drawn with the model RNG."""
        m, v = self.model, self.model.config.dosing.vessels
        if v.density_per_mm2 is not None:
            size_mm = np.array(m.config.domain.size_um) / 1000.0
            n = max(1, int(round(v.density_per_mm2 * float(np.prod(size_mm)))))
        else:
            n = int(v.count or 1)
        free = np.flatnonzero(m.occ < 0)
        if free.size == 0:
            free = np.arange(m.n_sites)
        return np.sort(m.rng.choice(free, size=n, replace=free.size < n)).astype(np.int64)

    def _dosing_hook(self, m) -> None:
        lam = self.tissue_fraction * self.blood.entered(m.now_min, m.now_min + m.dt, ahead=m.dt)
        if lam <= 0:
            return
        n = int(m.rng.poisson(lam))
        if n == 0:
            return
        # n vessels drawn with replacement (vessels[rng.integers(0, vessels.size, n)]); a vessel overgrown
        # by tumor, or crowded, releases its cells into a neighbour with room; a cell that finds none
        # does not enter this section (volume exclusion, model.add_nk; the agents are built when
        # Mesa's registry is next read)
        first = m.nk.used
        m._add_nk_at_vessels(self.vessels, n)
        n = m.nk.used - first
        m.nk.divisions[first:first + n] = self.blood.divisions_so_far(m.now_min)
        self.arrived += n

    # ------------------------------------------------------------------ suicide switch
    def _suicide_hook(self, m) -> None:
        s = m.config.nk.suicide
        if self.suicide["triggered_day"] is not None:
            return
        t_day = m.now_min / MIN_PER_DAY
        why = None
        if s.trigger_day is not None and t_day + 1e-9 >= s.trigger_day:
            why = "day"
        elif s.ifng_threshold_ng_ml is not None and m.steps % m._field_every == 0 and m.fields.mean("ifng") > s.ifng_threshold_ng_ml:
            why = "ifng"
        if why is None:
            return
        nk = m.nk
        live = np.flatnonzero(nk.state[: nk.used] != NK_EMPTY)
        kill = live[m.rng.random(live.size) < s.kill_fraction]
        m.remove_nk(kill)
        if self.blood is not None:
            self.blood.scale(m.now_min, 1.0 - s.kill_fraction)
        self.suicide.update(triggered_day=t_day, killed_tissue=int(kill.size), trigger=why)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """What the hooks changed beyond the model arrays (the rest is rebuilt from config and seed)."""
        return {"arrived": int(self.arrived), "suicide": self.suicide,
                "blood_events": list(self.blood.events) if self.blood is not None else []}

    def load_state_dict(self, d: dict) -> None:
        """Restore `state_dict`; the blood ODE is replayed deterministically up to each recorded event."""
        self.arrived = int(d.get("arrived", 0))
        if d.get("suicide") is not None:
            self.suicide = dict(d["suicide"])
        for t, f in d.get("blood_events", []):
            self.blood.scale(t, f)

    # ------------------------------------------------------------------ summary
    def summary(self) -> dict:
        """The lot, QC, cold chain, infusions, arrivals and suicide-switch record of this run."""
        out = {"lot": self.lot.as_dict(), "car_positive_fraction": self.lot.car_fraction}
        if self.blood is not None:
            days = range(int(self.model.now_min // MIN_PER_DAY) + 1)
            out["dosing"] = {"infusions": self.infused, "arrived_in_tissue": int(self.arrived),
                             "infiltration_per_day": self.k_inf_per_day, "tissue_fraction": self.tissue_fraction,
                             "vessel_sites": int(self.vessels.size),
                             "blood_cells_now": self.blood.blood(self.model.now_min),
                             "blood_cells_daily": [self.blood.blood(d * MIN_PER_DAY) for d in days],
                             "car_per_ul_daily": [self.car_per_ul(d * MIN_PER_DAY) for d in days],
                             "transgene_copies_per_ug_daily": [self.transgene_copies_per_ug(d * MIN_PER_DAY) for d in days]}
            m = self.model
            if m._sample:  # a sample of a larger burden: how far its share of the entries exceeds an even one
                out["dosing"]["entry_enrichment"] = section.entry_enrichment(
                    self.tissue_fraction, m.section_state, m.config.domain.section.patient_cells)
        if self._il15_active:
            out["il15_systemic_now_ng_ml"] = self.il15_systemic(self.model.now_min)
        if self.suicide is not None:
            out["suicide"] = dict(self.suicide)
        return out
