"""Companion drugs: ADCC antibody, checkpoint blockade, chemotherapy."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .base import Float, NoBool, P, _Block


class DrugDose(_Block):
    """One antibody infusion."""

    day: Float = P(0.0, "day", "scenario input", "infusion day (0 = start of the run)", ge=0)
    mg_per_kg: Float = P(4.0, "mg/kg", "assumed", "dose per body weight", gt=0)


class PK(_Block):
    """Linear one- or two-compartment pharmacokinetics per kg body weight (solved with scipy)."""

    compartments: Annotated[Literal[1, 2], NoBool] = P(2, "-", "assumed", "1 (central only) or 2 (central + peripheral)")
    v_central_ml_per_kg: Float = P(40.0, "mL/kg", "assumed (typical IgG1: ~3 L central volume)", "central volume", gt=0)
    clearance_ml_per_day_per_kg: Float = P(3.0, "mL/(day·kg)", "assumed (typical IgG1: ~0.2 L/day)", "linear clearance", gt=0)
    v_peripheral_ml_per_kg: Float = P(40.0, "mL/kg", "assumed (typical IgG1)", "peripheral volume (2 compartments)", gt=0)
    q_ml_per_day_per_kg: Float = P(10.0, "mL/(day·kg)", "assumed (typical IgG1)", "inter-compartmental clearance", ge=0)
    tissue_to_plasma: Float = P(0.2, "ratio", "assumed (interstitial IgG ~10–30 % of plasma)", "tumor interstitial / plasma concentration", gt=0, le=1)


class Antibody(_Block):
    """Tumor-targeting IgG1 (rituximab/trastuzumab/cetuximab style): coats antigen+ cells for CD16 ADCC."""

    name: str = Field("cetuximab", description="antibody name (free text)")
    doses: list[DrugDose] = P([], "list", "scenario input", "infusions (empty = no antibody)")
    pk: PK = Field(default_factory=PK)
    kd_ug_ml: Float = P(1.0, "µg/mL", "assumed (IgG1 K_D ~ 1–10 nM ≈ 0.15–1.5 µg/mL)", "concentration for half-maximal antigen occupancy", gt=0)
    coat_per_antigen: Float = P(1.5, "relative", "assumed", "CD16 signal per unit antigen at full occupancy", ge=0)


class Checkpoint(_Block):
    """A blocking antibody against an NK checkpoint, with its own PK and a documented effect."""

    doses: list[DrugDose] = P([], "list", "scenario input", "infusions (empty = none)")
    pk: PK = Field(default_factory=PK)
    kd_ug_ml: Float = P(0.5, "µg/mL", "assumed", "concentration for half-maximal receptor occupancy", gt=0)
    max_effect: Float = P(0.5, "fraction", "assumed", "effect at full occupancy (see the block description)", ge=0, le=1)


class AntiNKG2A(Checkpoint):
    """Anti-NKG2A (monalizumab-like): removes max_effect of the MHC-I/HLA-E inhibitory signal at full occupancy."""

    max_effect: Float = P(0.6, "fraction", "assumed (NKG2A share of MHC-I inhibition; the rest is KIR)", "fraction of the inhibitory signal removed at full occupancy", ge=0, le=1)


class AntiTIGIT(Checkpoint):
    """Anti-TIGIT: lowers the half-activation signal by max_effect at full occupancy (more activation)."""

    max_effect: Float = P(0.3, "fraction", "assumed (no NK-specific quantification published)", "fractional drop of activation.half_activation at full occupancy", ge=0, le=0.95)


class AntiPD1(Checkpoint):
    """Anti-PD-1: raises the stimulations before exhaustion by max_effect at full occupancy (less exhaustion)."""

    max_effect: Float = P(0.5, "fraction", "assumed (PD-1 on activated NK is low; effect kept modest)", "fractional rise of killing.exhaustion_stimulations at full occupancy", ge=0, le=1)


class ChemoDose(_Block):
    """One chemotherapy pulse."""

    day: Float = P(0.0, "day", "scenario input", "dosing day", ge=0)
    cycling_kill_fraction: Float = P(0.5, "fraction", "assumed (cell-cycle-specific log kill)", "fraction of cycling (non-quiescent) tumor cells killed", ge=0, le=1)
    lymphocyte_depletion: Float = P(0.5, "fraction", "assumed (lymphodepleting chemotherapy)", "fraction of effector (NK/T) cells killed", ge=0, le=1)


class Chemo(_Block):
    """Chemotherapy pulses: kill cycling tumor cells and deplete lymphocytes."""

    name: str = Field("chemotherapy", description="regimen name (free text)")
    doses: list[ChemoDose] = P([], "list", "scenario input", "pulses (empty = none)")


class Drugs(_Block):
    """Companion drugs (docs/therapy.md)."""

    antibody: Antibody = Field(default_factory=Antibody)
    anti_nkg2a: AntiNKG2A = Field(default_factory=AntiNKG2A)
    anti_tigit: AntiTIGIT = Field(default_factory=AntiTIGIT)
    anti_pd1: AntiPD1 = Field(default_factory=AntiPD1)
    chemo: Chemo = Field(default_factory=Chemo)
