"""Dosing: infusions, blood compartment, vessels, tissue entry and lymphodepletion."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .base import Float, OptFloat, OptInt, P, _Block


class Infusion(_Block):
    """One infusion of the product."""

    day: Float = P(0.0, "day", "scenario input", "infusion time on the simulation clock", ge=0)
    dose: Float = P(1e6, "cells or cells/kg (dosing.unit)", "Liu 2020 (dose levels 1e5, 1e6, 1e7 cells/kg) [unverified]", "nominal dose (before viability and cold-chain losses)", ge=0)


class Infiltration(_Block):
    """Tumor-bed entry rate from blood: preset by indication (low for solid, high for disseminated)."""

    indication: Literal["disseminated", "solid"] = Field("disseminated", description="disseminated (blood, marrow, nodes: high entry) or solid (poorly infiltrated)")
    rate_per_day: OptFloat = P(None, "1/day", "preset: disseminated 0.5, solid 0.02 (assumed)", "override: fraction of blood CAR-NK entering the tumor bed per day", ge=0)


class Blood(_Block):
    """Systemic compartments (blood and other organs) that carry infused cells (ODE solved with scipy)."""

    distribution_half_life_h: Float = P(1.0, "h", "assumed (infused NK leave blood within hours: lung, liver, spleen)", "half-time of blood → organ distribution", gt=0)
    return_half_life_h: Float = P(24.0, "h", "assumed", "half-time of organ → blood recirculation", gt=0)
    volume_ml_per_kg: Float = P(70.0, "mL/kg", "Nadler 1962 (Surgery 51:224): adult blood volume ≈ 70 mL/kg", "blood volume per kg body weight (CAR+ cells/µL read-out)", gt=0)
    leukocytes_per_ul: Float = P(5000.0, "cells/µL", "assumed (adult leukocytes 4,000–11,000/µL; lower for weeks after Cy/Flu)", "host nucleated blood cells (transgene copies/µg gDNA read-out)", ge=0)
    vector_copies_per_cell: Float = P(1.0, "copies", "assumed (retroviral CAR vectors: 1–3 integrated copies per transduced cell)", "transgene copies per CAR+ cell (copies/µg gDNA read-out)", gt=0)


class Vessels(_Block):
    """Vessel sites where blood-borne cells enter the simulated tissue (chosen with the model RNG at set-up)."""

    count: OptInt = P(20, "sites", "assumed", "number of vessel entry sites (ignored when density_per_mm2 is given)", ge=1)
    density_per_mm2: OptFloat = P(None, "1/mm² (2D) or 1/mm³ (3D)", "assumed", "vessel density; overrides count", gt=0)


class Lymphodepletion(_Block):
    """Conditioning before the first dose: removes IL-15 consumers, so endogenous IL-15 rises for a while."""

    regimen: Literal["none", "cy_flu"] = Field("none", description="none or cy_flu (cyclophosphamide + fludarabine)")
    start_day: Float = P(-5.0, "day", "assumed (Cy/Flu days −5 to −3, Liu 2020 protocol) [unverified]", "start of conditioning on the simulation clock", le=0)
    il15_rise_ng_ml: Float = P(0.5, "ng/mL", "assumed (serum IL-15 rises several-fold after Cy/Flu; model scale, EC50 0.5)", "rise of the systemic IL-15 background", ge=0)
    duration_days: Float = P(7.0, "day", "assumed", "plateau length after start_day", ge=0)
    decay_half_life_days: Float = P(3.0, "day", "assumed", "return to baseline after the plateau", gt=0)


class Dosing(_Block):
    """Infusion schedule, blood compartment and tissue entry (empty infusions = nk.dose only)."""

    infusions: list[Infusion] = Field(default_factory=list, description="list of {day, dose}")
    unit: Literal["cells_per_kg", "cells"] = Field("cells_per_kg", description="unit of infusions[].dose")
    weight_kg: Float = P(70.0, "kg", "assumed (adult)", "patient weight", gt=0, le=500)
    tissue_fraction: Float = P(1e-4, "fraction", "assumed (simulated volume / tumor-bed volume; calibrate to the observed E:T)", "share of the patient's tumor-bed entries that land in the simulated tissue", gt=0, le=1)
    infiltration: Infiltration = Field(default_factory=Infiltration)
    blood: Blood = Field(default_factory=Blood)
    vessels: Vessels = Field(default_factory=Vessels)
    lymphodepletion: Lymphodepletion = Field(default_factory=Lymphodepletion)

    @model_validator(mode="after")
    def _sorted(self) -> "Dosing":
        days = [i.day for i in self.infusions]
        if days != sorted(days):
            raise ValueError("infusions must be listed in time order (by day)")
        return self
