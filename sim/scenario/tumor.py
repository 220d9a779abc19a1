"""Tumor block: growth, antigen/MHC-I/NKG2D-ligand phenotype, IFN-γ response, escape."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Float, Int, OptFloat, P, _Block


class Distribution(_Block):
    """A per-cell level drawn from a lognormal with the given mean and coefficient of variation."""

    mean: Float = P(1.0, "relative", "assumed", "mean level (1 = reference expression)", ge=0)
    cv: Float = P(0.5, "-", "assumed", "coefficient of variation (lognormal)", ge=0, le=5)


class Antigen(Distribution):
    """The CAR target on tumor cells: density per cell plus an antigen-negative fraction."""

    name: str = Field("CD19", description="target antigen (CD19, HER2, EGFR, CLDN18.2, ...)")
    negative_fraction: Float = P(0.02, "fraction", "assumed", "fraction of antigen-negative cells at start", ge=0, le=1)
    low_below: Float = P(0.5, "× mean", "assumed (Spiegel 2021 call CD19-low an IHC H-score under 150, half the 300 of full-intensity staining of every cell)",
                         "read-out only: antigen-positive cells below this fraction of `mean` count as antigen-low (`tumor_ag_low`)", ge=0, le=1)


class TumorInit(_Block):
    """Initial tumor: a compact nodule (disc/sphere) or scattered disseminated cells."""

    shape: Literal["nodule", "scattered"] = Field("nodule", description="nodule (compact disc/sphere at the centre) or scattered (uniform random)")
    count: Int = P(2000, "cells", "assumed", "initial tumor cells", ge=0)


class IFNgResponse(_Block):
    """How IFN-γ changes tumor cells: MHC-I up-regulation and slower proliferation."""

    mhc_max_fold: Float = P(1.0, "fold", "assumed", "maximal MHC-I up-regulation by IFN-γ", ge=0)
    growth_max_inhibition: Float = P(0.5, "fraction", "assumed", "maximal reduction of the division rate by IFN-γ", ge=0, le=1)
    ec50_ng_ml: Float = P(1.0, "ng/mL", "assumed", "IFN-γ half-effect concentration", gt=0)


class Escape(_Block):
    """Tumor escape from CAR/NK pressure: antigen loss on division, antigen-low clones, NKG2D-ligand shedding."""

    antigen_loss_per_division: Float = P(0.0, "probability", "assumed (CD19-negative relapse after CAR therapy arises by loss/splicing in dividing clones)", "probability that a daughter cell is antigen-negative", ge=0, le=1)
    antigen_low_fraction: Float = P(0.0, "fraction", "assumed", "fraction of tumor cells that start as an antigen-low clone", ge=0, le=1)
    antigen_low_scale: Float = P(0.2, "fold", "assumed", "antigen level of the low clone relative to the drawn level", gt=0, le=1)
    ligand_shedding_max: Float = P(0.0, "fraction", "assumed (soluble MICA/B shedding lowers surface ligand and down-modulates NKG2D)", "maximal loss of NKG2D engagement from ligand shedding", ge=0, le=1)
    ligand_shedding_half_time_h: Float = P(48.0, "h", "assumed", "time to half of the maximal shedding loss", gt=0)


class Tumor(_Block):
    """Tumor cells: growth, antigen/MHC-I/NKG2D-ligand phenotype, apoptosis, TGF-β secretion."""

    init: TumorInit = Field(default_factory=TumorInit)
    doubling_time_h: Float = P(38.6, "h", "Luque 2024 (CARTopiaX tumor cell cycle)", "cell-cycle time when space is free", gt=0)
    death_per_day: Float = P(0.0, "1/day", "assumed (0: no spontaneous cell loss, the right default for a closed lesion, where contact inhibition already limits growth to the rim; an open sample of a tumor that loses cells needs it per indication: e.g. a cell loss factor 1 − Tpot/Td of 0.40–0.61 in Burkitt lymphoma, Iversen 1974, taken as 0.5 by cd19_lymphoma_cb_il15.yaml)", "spontaneous apoptosis hazard of a live tumor cell, whether or not it has room to divide (net growth with free space: ln 2 / doubling_time − death)", ge=0)
    expression_memory_generations: OptFloat = P(2.0, "generations", "Sigal 2006 (protein levels of human cells mix within 1–3 generations)", "memory of a cell's antigen, MHC-I and NKG2D-ligand levels across divisions: non-genetic expression noise (null: daughters copy them exactly)", gt=0)
    apoptosis_delay_min: Float = P(60.0, "min", "assumed (caspase signal ~15–45 min, PMC4543232)", "time from lethal hit to death", ge=0)
    clearance_min: Float = P(120.0, "min", "assumed", "time a dead cell keeps its site before clearance", ge=0)
    antigen: Antigen = Field(default_factory=Antigen)
    mhc_i: Distribution = Field(default_factory=lambda: Distribution(mean=1.0, cv=0.3))
    nkg2d_ligand: Distribution = Field(default_factory=lambda: Distribution(mean=0.5, cv=0.5))
    tgfb_secretion: Float = P(5.0, "ng/(10⁶ cells·day)", "assumed (ELISA range 1–10); gives ~1–2 ng/mL in a 3D nodule (literature.md §5)", "TGF-β secretion per live tumor cell", ge=0)
    ifng_response: IFNgResponse = Field(default_factory=IFNgResponse)
    escape: Escape = Field(default_factory=Escape)
