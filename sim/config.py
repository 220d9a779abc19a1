"""Scenario schema: pydantic models with units, bounds and a source for every default.

The schema is the single source of truth for parameters: `docs/parameters.md` is generated from
it (`nksim params`), and YAML errors are reported by dotted path with the line number.
"""
from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# ---------------------------------------------------------------------------------------------
# Parameter helper: every numeric default carries a unit and a source.
# ---------------------------------------------------------------------------------------------


def P(default: Any, unit: str, source: str, desc: str, **bounds: Any) -> Any:
    """A schema field with its unit, literature source (or "assumed") and description."""
    return Field(default, description=desc, json_schema_extra={"unit": unit, "source": source}, **bounds)


class ScenarioError(ValueError):
    """Bad scenario input: the message names the YAML path and how to fix it."""

    def __init__(self, path: str, message: str, line: int | None = None, file: str | None = None):
        self.path, self.line, self.file, self.detail = path, line, file, message
        where = f"{file}:" if file else ""
        where += f"line {line}: " if line else ""
        super().__init__(f"{where}{path}: {message}" if path else f"{where}{message}")


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# ---------------------------------------------------------------------------------------------
# Space and time
# ---------------------------------------------------------------------------------------------


class Domain(_Block):
    """The simulated tissue: a 2D or 3D lattice of cell-sized sites."""

    space: Literal["lattice", "well_mixed"] = Field("lattice", description="lattice (spatial) or well_mixed (mass action, no space)")
    dims: Literal[2, 3] = P(2, "-", "assumed", "lattice dimension")
    size_um: list[float] = P([1000.0, 1000.0], "µm", "assumed", "domain edge lengths (2 or 3 values; a single value means a cube)")
    spacing_um: float = P(20.0, "µm", "assumed (about one tumor-cell diameter)", "lattice site spacing", gt=0)
    field_coarsen: int = P(2, "sites", "assumed; error bounded in tests/test_fields.py", "field voxel edge in lattice sites", ge=1, le=16)

    @model_validator(mode="after")
    def _size_matches_dims(self) -> "Domain":
        if len(self.size_um) == 1:
            object.__setattr__(self, "size_um", self.size_um * self.dims)
        if len(self.size_um) != self.dims:
            raise ValueError(f"size_um has {len(self.size_um)} values but dims is {self.dims}; give {self.dims} edge lengths")
        if any(s <= 0 for s in self.size_um):
            raise ValueError("size_um values must be > 0")
        return self

    def lattice_shape(self) -> tuple[int, int, int]:
        """Lattice sites per axis (nx, ny, nz); nz = 1 in 2D."""
        n = [max(1, int(round(s / self.spacing_um))) for s in self.size_um]
        return (n[0], n[1], n[2] if self.dims == 3 else 1)


class TimeCfg(_Block):
    """Clock: the cell step, the slower tumor and field steps, and output cadence."""

    days: float = P(3.0, "day", "assumed", "simulated duration", gt=0)
    dt_min: float = P(2.0, "min", "assumed (CAR-T speed 5 µm/min moves ~0.5 site per step; Luque 2024)", "motility/contact step", gt=0, le=60)
    tumor_dt_min: float = P(10.0, "min", "assumed (≪ 38.6 h cycle)", "division/apoptosis step (multi-rate)", gt=0, le=240)
    field_dt_min: float = P(10.0, "min", "assumed; solver exact for any step", "cytokine field step", gt=0, le=1440)
    output_every_h: float = P(2.0, "h", "assumed", "time-series output interval", gt=0)
    snapshot_every_h: float = P(24.0, "h", "assumed", "spatial snapshot interval (0 = none)", ge=0)


# ---------------------------------------------------------------------------------------------
# Tumor
# ---------------------------------------------------------------------------------------------


class Distribution(_Block):
    """A per-cell level drawn from a lognormal with the given mean and coefficient of variation."""

    mean: float = P(1.0, "relative", "assumed", "mean level (1 = reference expression)", ge=0)
    cv: float = P(0.5, "-", "assumed", "coefficient of variation (lognormal)", ge=0, le=5)


class Antigen(Distribution):
    """The CAR target on tumor cells: density per cell plus an antigen-negative fraction."""

    name: str = Field("CD19", description="target antigen (CD19, HER2, EGFR, CLDN18.2, ...)")
    negative_fraction: float = P(0.02, "fraction", "assumed", "fraction of antigen-negative cells at start", ge=0, le=1)


class TumorInit(_Block):
    """Initial tumor: a compact nodule (disc/sphere) or scattered disseminated cells."""

    shape: Literal["nodule", "scattered"] = Field("nodule", description="nodule (compact disc/sphere at the centre) or scattered (uniform random)")
    count: int = P(2000, "cells", "assumed", "initial tumor cells", ge=0)


class IFNgResponse(_Block):
    """How IFN-γ changes tumor cells: MHC-I up-regulation and slower proliferation."""

    mhc_max_fold: float = P(1.0, "fold", "assumed", "maximal MHC-I up-regulation by IFN-γ", ge=0)
    growth_max_inhibition: float = P(0.5, "fraction", "assumed", "maximal reduction of the division rate by IFN-γ", ge=0, le=1)
    ec50_ng_ml: float = P(1.0, "ng/mL", "assumed", "IFN-γ half-effect concentration", gt=0)


class Escape(_Block):
    """Tumor escape from CAR/NK pressure: antigen loss on division, antigen-low clones, NKG2D-ligand shedding."""

    antigen_loss_per_division: float = P(0.0, "probability", "assumed (CD19-negative relapse after CAR therapy arises by loss/splicing in dividing clones)", "probability that a daughter cell is antigen-negative", ge=0, le=1)
    antigen_low_fraction: float = P(0.0, "fraction", "assumed", "fraction of tumor cells that start as an antigen-low clone", ge=0, le=1)
    antigen_low_scale: float = P(0.2, "fold", "assumed", "antigen level of the low clone relative to the drawn level", gt=0, le=1)
    ligand_shedding_max: float = P(0.0, "fraction", "assumed (soluble MICA/B shedding lowers surface ligand and down-modulates NKG2D)", "maximal loss of NKG2D engagement from ligand shedding", ge=0, le=1)
    ligand_shedding_half_time_h: float = P(48.0, "h", "assumed", "time to half of the maximal shedding loss", gt=0)


class Tumor(_Block):
    """Tumor cells: growth, antigen/MHC-I/NKG2D-ligand phenotype, apoptosis, TGF-β secretion."""

    init: TumorInit = Field(default_factory=TumorInit)
    doubling_time_h: float = P(38.6, "h", "Luque 2024 (CARTopiaX tumor cell cycle)", "cell-cycle time when space is free", gt=0)
    apoptosis_delay_min: float = P(60.0, "min", "assumed (caspase signal ~15–45 min, PMC4543232)", "time from lethal hit to death", ge=0)
    clearance_min: float = P(120.0, "min", "assumed", "time a dead cell keeps its site before clearance", ge=0)
    antigen: Antigen = Field(default_factory=Antigen)
    mhc_i: Distribution = Field(default_factory=lambda: Distribution(mean=1.0, cv=0.3))
    nkg2d_ligand: Distribution = Field(default_factory=lambda: Distribution(mean=0.5, cv=0.5))
    tgfb_secretion: float = P(5.0, "ng/(10⁶ cells·day)", "assumed (ELISA range 1–10); gives ~1–2 ng/mL in a 3D nodule (literature.md §5)", "TGF-β secretion per live tumor cell", ge=0)
    ifng_response: IFNgResponse = Field(default_factory=IFNgResponse)
    escape: Escape = Field(default_factory=Escape)


# ---------------------------------------------------------------------------------------------
# CAR-NK cells
# ---------------------------------------------------------------------------------------------


class NKDose(_Block):
    """Initial CAR-NK cells placed in the tissue."""

    cells: int = P(500, "cells", "assumed", "CAR-NK cells at t = 0", ge=0)
    placement: Literal["random", "rim"] = Field("random", description="random free sites, or a ring around the tumor")


class Motility(_Block):
    """Persistent random walk biased toward the tumor."""

    speed_um_min: float = P(5.0, "µm/min", "Luque 2024 (CAR-T speed)", "migration speed", ge=0)
    persistence_min: float = P(10.0, "min", "Luque 2024 (persistence time of motion)", "mean time before a new direction", gt=0)
    tumor_bias: float = P(0.3, "0-1", "assumed", "weight of the direction toward the tumor centroid", ge=0, le=1)


class Receptors(_Block):
    """Receptor levels that set the signal balance (relative units)."""

    car_expression: float = P(1.0, "relative", "assumed", "CAR surface level (0 = non-transduced NK)", ge=0)
    car_affinity: float = P(1.0, "relative", "assumed", "CAR affinity scale", ge=0)
    nkg2d: float = P(1.0, "relative", "assumed", "NKG2D level", ge=0)
    inhibitory: float = P(0.5, "relative", "assumed (balances NKG2D at reference MHC-I and ligand: missing-self)", "KIR/NKG2A level against MHC-I", ge=0)
    cd16: float = P(1.0, "relative", "assumed", "CD16 (FcγRIIIa) level for ADCC", ge=0)


class Activation(_Block):
    """Signal integration: net = (activating − inhibitory) × (1 − TGF-β suppression)."""

    attach_rate_per_min: float = P(0.2, "1/min", "Ghaffarizadeh 2018 (PhysiCell attachment rate)", "rate of forming a conjugate on contact", ge=0)
    half_activation: float = P(1.5, "signal", "calibrated to Vanherberghen 2013 (≈ half of NK never kill in a 12 h 1:1 assay; was 0.5 assumed, which gave 0.36); tests/test_cytotoxicity.py", "net signal giving half-maximal triggering", gt=0)
    hill: float = P(2.0, "-", "assumed", "steepness of the triggering curve", gt=0)
    release_min: float = P(10.0, "min", "assumed", "time spent on a non-triggering conjugate", ge=0)


class Killing(_Block):
    """Perforin/granzyme contact killing with a granule stock, plus a slower death-receptor route."""

    perforin: bool = Field(True, description="perforin/granzyme competent (false = perforin-deficient)")
    kill_time_min: float = P(15.0, "min", "Ghaffarizadeh 2018 (1/15 min kill rate); PMC4543232 (~15 min)", "conjugate time for a granule kill", gt=0)
    granules: float = P(4.0, "kills", "assumed (Kather immunoABM killer capacity 5)", "granule stock (kills before depletion)", ge=0)
    granule_regen_h: float = P(8.0, "h", "assumed", "time to regenerate one kill's granules", gt=0)
    death_receptor_kill_time_min: float = P(45.0, "min", "PMC4543232 (death-receptor caspase ~45 min); Prager 2019", "conjugate time for a death-receptor kill", gt=0)
    death_receptor_capacity: float = P(1.0, "kills", "Prager 2019 (perforin-deficient NK kill about once)", "death-receptor kills available per NK", ge=0)
    exhaustion_stimulations: int = P(10, "conjugates", "assumed (Kather immunoABM capacity 5; Vanherberghen 2013 serial killers)", "triggering conjugates before exhaustion", ge=1)


class Persistence(_Block):
    """In vivo NK loss as a hazard with a half-life; IL-15 extends it."""

    half_life_days: float = P(7.0, "day", "Zhang 2007 (t½ < 10 days)", "in vivo half-life without IL-15 support", gt=0)


class SuperagonistDose(_Block):
    """One subcutaneous dose of the IL-15 superagonist."""

    day: float = P(0.0, "day", "scenario input", "dose time on the simulation clock", ge=0)
    dose_ug_kg: float = P(10.0, "µg/kg", "assumed (N-803 trials dose 1–20 µg/kg s.c.) [not in literature.md]", "dose", ge=0)


class Superagonist(_Block):
    """Exogenous IL-15 superagonist (N-803-like), one-compartment PK with first-order s.c. absorption."""

    doses: list[SuperagonistDose] = Field(default_factory=list, description="dosing days and doses (needed for il15.mode = exogenous)")
    absorption_half_life_h: float = P(12.0, "h", "assumed (slow s.c. absorption)", "first-order absorption half-life", gt=0)
    elimination_half_life_h: float = P(24.0, "h", "assumed", "elimination half-life", gt=0)
    ng_ml_per_ug_kg: float = P(0.1, "ng/mL per µg/kg", "assumed (model scale; sets the height of the Bateman curve)", "concentration scale F/V of one µg/kg (instant-absorption peak)", ge=0)
    potency: float = P(1.0, "IL-15 equivalents", "assumed", "signalling strength relative to IL-15 (multiplies the concentration)", ge=0)


class IL15(_Block):
    """IL-15 armoring: secretion into the field, longer life and IL-15-driven proliferation."""

    mode: Literal["none", "secreted", "membrane_bound", "exogenous"] = Field(
        "none", description="none; secreted (autocrine + paracrine into the IL-15 field); membrane_bound (autocrine only, "
        "nothing enters the field); exogenous (no armoring, an IL-15 superagonist given to the patient, see superagonist)")
    secretion: float = P(0.2, "ng/(10⁶ cells·day)", "assumed (IL-15-armored CAR-NK supernatants hold tens of pg/mL; armoring acts mainly autocrine)", "IL-15 secreted into the field per armored NK", ge=0)
    half_life_extension: float = P(3.0, "fold", "assumed (Liu 2018: IL-15 critical for persistence)", "max fold extension of the half-life at saturating IL-15", ge=0)
    ec50_ng_ml: float = P(0.5, "ng/mL", "assumed", "IL-15 half-effect concentration", gt=0)
    autocrine_ng_ml: float = P(1.0, "ng/mL", "assumed", "IL-15 a secreting cell sees from its own product (autocrine), added to the field", ge=0)
    proliferation_per_day: float = P(0.3, "1/day", "assumed (Zhang 2007: 4.3 %/day without support)", "max IL-15-driven division rate", ge=0)
    max_divisions: int = P(4, "divisions", "assumed (Kather immunoABM proliferation capacity 10)", "divisions allowed per lineage", ge=0)
    superagonist: Superagonist = Field(default_factory=Superagonist)

    @model_validator(mode="after")
    def _exogenous_needs_doses(self) -> "IL15":
        if self.mode == "exogenous" and not self.superagonist.doses:
            raise ValueError("mode 'exogenous' needs superagonist.doses (a list of {day, dose_ug_kg})")
        return self


class Secretion(_Block):
    """IFN-γ release by CAR-NK cells while engaged with a target."""

    ifng_engaged: float = P(500.0, "ng/(10⁶ cells·day)", "assumed (activated NK; Bellone 1995 order of magnitude)", "IFN-γ secretion while in a triggered conjugate", ge=0)
    ifng_exhausted_fraction: float = P(0.2, "fraction", "assumed", "secretion of exhausted cells relative to fresh", ge=0, le=1)
    il6_like_engaged: float = P(20.0, "ng/(10⁶ cells·day)", "assumed (NK induce little myeloid IL-6; Liu 2020: no CRS)", "IL-6-like CRS driver released (via myeloid cells) per engaged effector", ge=0)


class Engineering(_Block):
    """Gene edits of the product beyond the CAR."""

    tgfbr2: Literal["none", "dominant_negative", "knockout"] = Field("none", description="TGF-βR2: none, dominant_negative (Yvon 2017) or knockout (Burga 2019); both remove TGF-β suppression")
    dnr_residual_signalling: float = P(0.0, "fraction", "assumed (Yvon 2017: DNRII NK keep NKG2D, perforin and killing under TGF-β)", "TGF-β suppression left with a dominant-negative receptor", ge=0, le=1)


COSTIM_DOMAINS = ("cd3z", "2b4", "dap10", "dap12")


class CARDesign(_Block):
    """CAR construct: costimulatory domain preset (activation and persistence multipliers; sim/therapy/presets.py)."""

    costim: Literal["cd3z", "2b4", "dap10", "dap12"] = Field("cd3z", description="signalling/costimulatory domain preset (CD3ζ alone is the reference)")
    activation_multiplier: float | None = P(None, "fold", "preset (docs/parameters.md, costimulatory presets)", "override of the preset's activation strength (multiplies the net signal)", ge=0)
    persistence_multiplier: float | None = P(None, "fold", "preset (docs/parameters.md, costimulatory presets)", "override of the preset's half-life multiplier", gt=0)


class Suicide(_Block):
    """iCasp9 suicide switch: a dimerizer dose kills a fraction of the CAR-NK cells (tissue and blood)."""

    enabled: bool = Field(False, description="the product carries iCasp9 (Liu 2020 construct)")
    trigger_day: float | None = P(None, "day", "scenario input", "give the dimerizer on this day", ge=0)
    ifng_threshold_ng_ml: float | None = P(None, "ng/mL", "assumed (toxicity proxy)", "give the dimerizer when the mean tissue IFN-γ exceeds this", gt=0)
    kill_fraction: float = P(0.9, "fraction", "assumed (iCasp9 + AP1903 removes ~90 % within hours, Di Stasi 2011) [not in literature.md]", "fraction of CAR-NK cells killed", ge=0, le=1)

    @model_validator(mode="after")
    def _needs_trigger(self) -> "Suicide":
        if self.enabled and self.trigger_day is None and self.ifng_threshold_ng_ml is None:
            raise ValueError("an enabled suicide switch needs trigger_day or ifng_threshold_ng_ml")
        return self


class NK(_Block):
    """CAR-NK product inside the tissue."""

    dose: NKDose = Field(default_factory=NKDose)
    motility: Motility = Field(default_factory=Motility)
    receptors: Receptors = Field(default_factory=Receptors)
    activation: Activation = Field(default_factory=Activation)
    killing: Killing = Field(default_factory=Killing)
    persistence: Persistence = Field(default_factory=Persistence)
    il15: IL15 = Field(default_factory=IL15)
    secretion: Secretion = Field(default_factory=Secretion)
    car_design: CARDesign = Field(default_factory=CARDesign)
    suicide: Suicide = Field(default_factory=Suicide)
    engineering: Engineering = Field(default_factory=Engineering)


# ---------------------------------------------------------------------------------------------
# Fields and microenvironment
# ---------------------------------------------------------------------------------------------


class FieldSpec(_Block):
    """One cytokine: diffusion, decay and a background level."""

    diffusion_um2_min: float = P(600.0, "µm²/min", "assumed (~10 µm²/s for a cytokine in tissue)", "diffusion coefficient", ge=0)
    half_life_min: float = P(60.0, "min", "assumed", "decay half-life (uptake and clearance)", gt=0)
    background_ng_ml: float = P(0.0, "ng/mL", "assumed", "systemic background level", ge=0)


def _tgfb_default() -> FieldSpec:
    return FieldSpec(diffusion_um2_min=600.0, half_life_min=3.0, background_ng_ml=0.0)


class TGFbEffects(_Block):
    """TGF-β suppression of NK function, each a fraction at saturating TGF-β (Hill, n = 1)."""

    ic50_ng_ml: float = P(2.0, "ng/mL", "literature.md §5 (2 ng/mL ~ patient plasma)", "TGF-β half-suppression concentration", gt=0)
    activation_max: float = P(0.5, "fraction", "Bellone 1995 (cytotoxicity weakly inhibited)", "max suppression of the net activating signal", ge=0, le=1)
    nkg2d_max: float = P(0.6, "fraction", "Crane 2010 (NKG2D down-regulation)", "max NKG2D down-regulation", ge=0, le=1)
    ifng_max: float = P(0.9, "fraction", "Bellone 1995; Trotta 2008 (IFN-γ strongly inhibited)", "max suppression of IFN-γ secretion", ge=0, le=1)
    resistant: bool = Field(False, description="NK carry a dominant-negative/knocked-out TGF-βR2 (Yvon 2017; Burga 2019)")


class Stroma(_Block):
    """TGF-β-secreting stroma: a shell of sites around the tumor."""

    enabled: bool = Field(False, description="add a stromal TGF-β source around the tumor")
    thickness_um: float = P(60.0, "µm", "assumed", "stromal shell thickness", ge=0)
    tgfb_secretion: float = P(20.0, "ng/(10⁶ sites·day)", "assumed (stromal fibroblasts/Tregs as a lumped source)", "TGF-β secretion per stromal site", ge=0)


class Fields(_Block):
    """Cytokine fields and their effects."""

    ifng: FieldSpec = Field(default_factory=FieldSpec)
    tgfb: FieldSpec = Field(default_factory=_tgfb_default, description="TGF-β1; default half-life 3 min (assumed: active TGF-β is cleared within minutes)")
    il15: FieldSpec = Field(default_factory=lambda: FieldSpec(diffusion_um2_min=600.0, half_life_min=90.0))
    tgfb_effects: TGFbEffects = Field(default_factory=TGFbEffects)
    stroma: Stroma = Field(default_factory=Stroma)


# ---------------------------------------------------------------------------------------------
# Therapy: dosing and trafficking, product (sim/therapy/; docs/products.md)
# ---------------------------------------------------------------------------------------------


class Infusion(_Block):
    """One infusion of the product."""

    day: float = P(0.0, "day", "scenario input", "infusion time on the simulation clock", ge=0)
    dose: float = P(1e6, "cells or cells/kg (dosing.unit)", "Liu 2020 (dose levels 1e5, 1e6, 1e7 cells/kg) [unverified]", "nominal dose (before viability and cold-chain losses)", ge=0)


class Infiltration(_Block):
    """Tumor-bed entry rate from blood: preset by indication (low for solid, high for disseminated)."""

    indication: Literal["disseminated", "solid"] = Field("disseminated", description="disseminated (blood, marrow, nodes: high entry) or solid (poorly infiltrated)")
    rate_per_day: float | None = P(None, "1/day", "preset: disseminated 0.5, solid 0.02 (assumed)", "override: fraction of blood CAR-NK entering the tumor bed per day", ge=0)


class Blood(_Block):
    """Systemic compartments (blood and other organs) that carry infused cells (ODE solved with scipy)."""

    distribution_half_life_h: float = P(1.0, "h", "assumed (infused NK leave blood within hours: lung, liver, spleen)", "half-time of blood → organ distribution", gt=0)
    return_half_life_h: float = P(24.0, "h", "assumed", "half-time of organ → blood recirculation", gt=0)


class Vessels(_Block):
    """Vessel sites where blood-borne cells enter the simulated tissue (chosen with the model RNG at set-up)."""

    count: int | None = P(20, "sites", "assumed", "number of vessel entry sites (ignored when density_per_mm2 is given)", ge=1)
    density_per_mm2: float | None = P(None, "1/mm² (2D) or 1/mm³ (3D)", "assumed", "vessel density; overrides count", gt=0)


class Lymphodepletion(_Block):
    """Conditioning before the first dose: removes IL-15 consumers, so endogenous IL-15 rises for a while."""

    regimen: Literal["none", "cy_flu"] = Field("none", description="none or cy_flu (cyclophosphamide + fludarabine)")
    start_day: float = P(-5.0, "day", "assumed (Cy/Flu days −5 to −3, Liu 2020 protocol) [unverified]", "start of conditioning on the simulation clock", le=0)
    il15_rise_ng_ml: float = P(0.5, "ng/mL", "assumed (serum IL-15 rises several-fold after Cy/Flu; model scale, EC50 0.5)", "rise of the systemic IL-15 background", ge=0)
    duration_days: float = P(7.0, "day", "assumed", "plateau length after start_day", ge=0)
    decay_half_life_days: float = P(3.0, "day", "assumed", "return to baseline after the plateau", gt=0)


class Dosing(_Block):
    """Infusion schedule, blood compartment and tissue entry (empty infusions = nk.dose only)."""

    infusions: list[Infusion] = Field(default_factory=list, description="list of {day, dose}")
    unit: Literal["cells_per_kg", "cells"] = Field("cells_per_kg", description="unit of infusions[].dose")
    weight_kg: float = P(70.0, "kg", "assumed (adult)", "patient weight", gt=0, le=500)
    tissue_fraction: float = P(1e-4, "fraction", "assumed (simulated volume / tumor-bed volume; calibrate to the observed E:T)", "share of the patient's tumor-bed entries that land in the simulated tissue", gt=0, le=1)
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


class Lot(_Block):
    """Batch-to-batch variability: each replicate (seed) draws its lot around the product means."""

    enabled: bool = Field(False, description="draw a lot per seed (false: every lot is the product mean)")
    potency_cv: float = P(0.2, "-", "assumed", "lot-to-lot CV of potency (lognormal, mean 1)", ge=0, le=2)
    viability_cv: float = P(0.1, "-", "assumed", "lot-to-lot CV of viability (beta around the product viability)", ge=0, le=1)
    car_fraction_cv: float = P(0.25, "-", "assumed", "lot-to-lot CV of the CAR+ fraction (beta around the transduction efficiency)", ge=0, le=1)


class Release(_Block):
    """Release criteria (QC) applied to the drawn lot, after the cold chain."""

    min_viability: float = P(0.7, "fraction", "assumed (common cell-therapy release criterion ≥ 70 % viable)", "minimum viable fraction", ge=0, le=1)
    min_car_fraction: float = P(0.2, "fraction", "assumed", "minimum CAR+ fraction", ge=0, le=1)
    min_potency: float = P(0.5, "relative", "assumed", "minimum potency relative to the product mean", ge=0)
    on_fail: Literal["infuse", "reject"] = Field("reject", description="what happens to a lot failing QC: infuse anyway, or reject (no cells given)")


class Excursion(_Block):
    """A temperature excursion during transport or storage."""

    duration_h: float = P(1.0, "h", "scenario input", "time above the limit", ge=0)
    temperature_c: float = P(-100.0, "°C", "scenario input", "temperature during the excursion")


class ColdChain(_Block):
    """Cryopreservation, thaw, transport and excursions: loss of viable dose and potency (docs/products.md)."""

    cryopreserved: bool = Field(False, description="product is frozen and thawed at the bedside (false: fresh)")
    thaw_viability_loss: float = P(0.2, "fraction", "assumed (post-thaw NK viability and recovery losses) [not in literature.md]", "viable cells lost at thaw", ge=0, le=1)
    thaw_potency_loss: float = P(0.3, "fraction", "assumed (post-thaw NK cytotoxicity dips until recovery) [not in literature.md]", "potency lost at thaw", ge=0, le=1)
    transport_h: float = P(0.0, "h", "scenario input", "transport/hold time within specification", ge=0)
    transport_loss_per_h: float = P(0.002, "1/h", "assumed (fresh product at 2–8 °C loses ~5 %/day; set ~0 for a dry shipper)", "viability hazard during compliant transport", ge=0)
    limit_c: float = P(-135.0, "°C", "assumed (cryo storage limit; use ~8 °C for a fresh product)", "temperature above which an excursion harms cells", le=40)
    excursion_loss_per_h: float = P(0.02, "1/h", "assumed (−80 °C for 2 h loses ~20 %; −20 °C for 2 h ~95 %)", "viability hazard 10 °C above the limit", ge=0)
    q10: float = P(1.5, "-", "assumed", "hazard multiplier per 10 °C further above the limit", ge=1)
    potency_coupling: float = P(0.5, "-", "assumed", "potency of surviving cells = transport survival^coupling", ge=0)
    excursions: list[Excursion] = Field(default_factory=list, description="list of {duration_h, temperature_c}")


class Product(_Block):
    """Cell source preset (resolved into nk parameters; explicit nk values win), lots, QC and cold chain."""

    type: Literal["none", "peripheral_blood", "cord_blood", "ipsc", "nk92"] = Field(
        "none", description="cell-source preset (none: use the nk block as given)")
    car_fraction: float | None = P(None, "fraction", "preset", "override: CAR transduction efficiency (CAR+ fraction)", ge=0, le=1)
    viability: float | None = P(None, "fraction", "preset", "override: viable fraction at release", ge=0, le=1)
    cytotoxicity: float | None = P(None, "relative", "preset", "override: baseline potency (multiplies the net signal)", ge=0)
    lot: Lot = Field(default_factory=Lot)
    release: Release = Field(default_factory=Release)
    cold_chain: ColdChain = Field(default_factory=ColdChain)


class WellMixed(_Block):
    """Well-mixed mode (`domain.space: well_mixed`): the Kuznetsov 1994 effector–tumor model as agents.

    Counts are ODE cells times the system size Ω (N = Ω·X); rates are rescaled so the agent mean
    follows the ODE as Ω grows. Mapping of each term: `sim/kernels/wellmixed.py`.
    """

    omega: float = P(1e-3, "agents/cell", "assumed (≈1e4 agents near the dormant state)", "system size Ω: agents per ODE cell", gt=0, le=1)
    effector_cells: float = P(3.2e5, "cells", "Kuznetsov 1994 (E0 of the dormancy/escape example)", "initial effector cells E0 (ODE units)", ge=0)
    tumor_cells: float = P(1e6, "cells", "Kuznetsov 1994 (T0 ≤ 1e7 → dormancy)", "initial tumor cells T0 (ODE units)", ge=0)
    influx_cells_day: float = P(1.3e4, "cells/day", "Kuznetsov 1994 (s)", "s: constant effector influx", ge=0)
    proliferation_per_day: float = P(0.1245, "1/day", "Kuznetsov 1994 (p)", "p: maximal tumor-stimulated effector proliferation", ge=0)
    proliferation_half_cells: float = P(2.019e7, "cells", "Kuznetsov 1994 (g)", "g: tumor size giving half-maximal stimulation", gt=0)
    inactivation_per_cell_day: float = P(3.422e-10, "1/(cell·day)", "Kuznetsov 1994 (m)", "m: effector inactivation per tumor cell", ge=0)
    death_per_day: float = P(0.0412, "1/day", "Kuznetsov 1994 (d)", "d: effector death (persistence hazard)", gt=0)
    growth_per_day: float = P(0.18, "1/day", "Kuznetsov 1994 (a)", "a: maximal tumor growth rate", ge=0)
    inverse_capacity_per_cell: float = P(2.0e-9, "1/cell", "Kuznetsov 1994 (b)", "b: inverse tumor carrying capacity", gt=0)
    kill_per_cell_day: float = P(1.101e-7, "1/(cell·day)", "Kuznetsov 1994 (n)", "n: kill rate per effector–tumor pair", ge=0)


# ---------------------------------------------------------------------------------------------
# CAR-T comparator arm (effector: cart) and toxicity indices
# ---------------------------------------------------------------------------------------------


class CARTExpansion(_Block):
    """Antigen-driven clonal expansion of CAR-T cells."""

    division_probability_per_kill: float = P(0.5, "probability", "assumed (CAR-T expand 10²–10³-fold in vivo after antigen contact)", "probability of a division when a killing conjugate completes", ge=0, le=1)
    max_divisions: int = P(10, "divisions", "Kather immunoABM (proliferation capacity 10)", "divisions allowed per lineage", ge=0, le=40)


class CARTPersistence(_Block):
    """CAR-T persistence: effector half-life plus a long-lived memory fraction."""

    half_life_days: float = P(6.0, "day", "Luque 2024 (CAR-T lifespan 8.6 d; t½ = 8.6·ln 2)", "effector CAR-T half-life", gt=0)
    memory_fraction: float = P(0.1, "fraction", "assumed", "fraction of infused cells and of daughters that are long-lived memory cells", ge=0, le=1)
    memory_half_life_days: float = P(200.0, "day", "assumed (Awasthi 2020: CAR-T detected up to 693 days)", "memory CAR-T half-life", gt=0)


class CARTSecretion(_Block):
    """Inflammatory cytokine output of engaged CAR-T cells (larger than NK)."""

    ifng_engaged: float = P(2500.0, "ng/(10⁶ cells·day)", "assumed (5× the CAR-NK default)", "IFN-γ secretion while in a triggered conjugate", ge=0)
    il6_like_engaged: float = P(2000.0, "ng/(10⁶ cells·day)", "assumed (T-cell GM-CSF/CD40L drive myeloid IL-6)", "IL-6-like CRS driver released per engaged CAR-T", ge=0)


class CART(_Block):
    """What differs when the infused effector is a CAR-T cell (nk: still sets dose, CAR, motility, killing).

    CAR-T kill only through the CAR (MHC-independent): no NKG2D, no KIR/NKG2A inhibition, no CD16/ADCC.
    """

    expansion: CARTExpansion = Field(default_factory=CARTExpansion)
    persistence: CARTPersistence = Field(default_factory=CARTPersistence)
    secretion: CARTSecretion = Field(default_factory=CARTSecretion)
    allogeneic: bool = Field(False, description="donor-derived (allogeneic) CAR-T product")
    tcr_knockout: bool = Field(False, description="endogenous TCR removed (e.g. TRAC edit): no GvHD risk flag")


class RiskModel(_Block):
    """Per-patient probit over log cytokine exposure: P(grade) = Φ((ln E − ln E50)/σ)."""

    any_grade_e50: float = P(1.0, "ng/(mL·day)", "Schuster 2019 (JULIET) calibration, docs/therapy.md", "exposure at which half of patients have any-grade toxicity", gt=0)
    grade3_e50: float = P(1.0, "ng/(mL·day)", "Schuster 2019 (JULIET) calibration, docs/therapy.md", "exposure at which half of patients have grade ≥ 3", gt=0)
    susceptibility_sd: float = P(1.0, "ln units", "assumed", "patient-to-patient SD of log susceptibility", gt=0)


def _crs_default() -> RiskModel:
    return RiskModel(any_grade_e50=CRS_E50[0], grade3_e50=CRS_E50[1])


def _icans_default() -> RiskModel:
    return RiskModel(any_grade_e50=ICANS_E50[0], grade3_e50=ICANS_E50[1])


# Calibrated on scenarios/cd19_carnk_vs_cart.yaml (CAR-T arm) to JULIET (Schuster 2019, literature.md §6):
# CRS 58 % any grade / 22 % grade ≥3, neurological events 21 % / 12 %. See docs/therapy.md.
# Recalibrated after the 2D voxel-volume fix (was 1370/3630, 3750/5420).
CRS_E50 = (1330.0, 3520.0)
ICANS_E50 = (3640.0, 5270.0)


class Toxicity(_Block):
    """CRS and ICANS risk indices from the peak 24-h inflammatory cytokine release (docs/therapy.md)."""

    crs: RiskModel = Field(default_factory=_crs_default, description="cytokine release syndrome (source: Schuster 2019 calibration)")
    icans: RiskModel = Field(default_factory=_icans_default, description="neurotoxicity (source: Schuster 2019 calibration)")


# ---------------------------------------------------------------------------------------------
# Companion drugs
# ---------------------------------------------------------------------------------------------


class DrugDose(_Block):
    """One antibody infusion."""

    day: float = P(0.0, "day", "scenario input", "infusion day (0 = start of the run)", ge=0)
    mg_per_kg: float = P(4.0, "mg/kg", "assumed", "dose per body weight", gt=0)


class PK(_Block):
    """Linear one- or two-compartment pharmacokinetics per kg body weight (solved with scipy)."""

    compartments: Literal[1, 2] = P(2, "-", "assumed", "1 (central only) or 2 (central + peripheral)")
    v_central_ml_per_kg: float = P(40.0, "mL/kg", "assumed (typical IgG1: ~3 L central volume)", "central volume", gt=0)
    clearance_ml_per_day_per_kg: float = P(3.0, "mL/(day·kg)", "assumed (typical IgG1: ~0.2 L/day)", "linear clearance", gt=0)
    v_peripheral_ml_per_kg: float = P(40.0, "mL/kg", "assumed (typical IgG1)", "peripheral volume (2 compartments)", gt=0)
    q_ml_per_day_per_kg: float = P(10.0, "mL/(day·kg)", "assumed (typical IgG1)", "inter-compartmental clearance", ge=0)
    tissue_to_plasma: float = P(0.2, "ratio", "assumed (interstitial IgG ~10–30 % of plasma)", "tumor interstitial / plasma concentration", gt=0, le=1)


class Antibody(_Block):
    """Tumor-targeting IgG1 (rituximab/trastuzumab/cetuximab style): coats antigen+ cells for CD16 ADCC."""

    name: str = Field("cetuximab", description="antibody name (free text)")
    doses: list[DrugDose] = P([], "list", "scenario input", "infusions (empty = no antibody)")
    pk: PK = Field(default_factory=PK)
    kd_ug_ml: float = P(1.0, "µg/mL", "assumed (IgG1 K_D ~ 1–10 nM ≈ 0.15–1.5 µg/mL)", "concentration for half-maximal antigen occupancy", gt=0)
    coat_per_antigen: float = P(1.5, "relative", "assumed", "CD16 signal per unit antigen at full occupancy", ge=0)


class Checkpoint(_Block):
    """A blocking antibody against an NK checkpoint, with its own PK and a documented effect."""

    doses: list[DrugDose] = P([], "list", "scenario input", "infusions (empty = none)")
    pk: PK = Field(default_factory=PK)
    kd_ug_ml: float = P(0.5, "µg/mL", "assumed", "concentration for half-maximal receptor occupancy", gt=0)
    max_effect: float = P(0.5, "fraction", "assumed", "effect at full occupancy (see the block description)", ge=0, le=1)


class AntiNKG2A(Checkpoint):
    """Anti-NKG2A (monalizumab-like): removes max_effect of the MHC-I/HLA-E inhibitory signal at full occupancy."""

    max_effect: float = P(0.6, "fraction", "assumed (NKG2A share of MHC-I inhibition; the rest is KIR)", "fraction of the inhibitory signal removed at full occupancy", ge=0, le=1)


class AntiTIGIT(Checkpoint):
    """Anti-TIGIT: lowers the half-activation signal by max_effect at full occupancy (more activation)."""

    max_effect: float = P(0.3, "fraction", "assumed (no NK-specific quantification published)", "fractional drop of activation.half_activation at full occupancy", ge=0, le=0.95)


class AntiPD1(Checkpoint):
    """Anti-PD-1: raises the stimulations before exhaustion by max_effect at full occupancy (less exhaustion)."""

    max_effect: float = P(0.5, "fraction", "assumed (PD-1 on activated NK is low; effect kept modest)", "fractional rise of killing.exhaustion_stimulations at full occupancy", ge=0, le=1)


class ChemoDose(_Block):
    """One chemotherapy pulse."""

    day: float = P(0.0, "day", "scenario input", "dosing day", ge=0)
    cycling_kill_fraction: float = P(0.5, "fraction", "assumed (cell-cycle-specific log kill)", "fraction of cycling (non-quiescent) tumor cells killed", ge=0, le=1)
    lymphocyte_depletion: float = P(0.5, "fraction", "assumed (lymphodepleting chemotherapy)", "fraction of effector (NK/T) cells killed", ge=0, le=1)


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


class Arm(_Block):
    """One treatment arm: dotted-path overrides applied to the scenario (same tumor, same seed)."""

    name: str = Field("arm", description="arm name (output subfolder; unique)")
    set: dict[str, Any] = P({}, "-", "scenario input", "dotted-path overrides, e.g. {effector: cart}")


class Output(_Block):
    """What a run writes."""

    snapshots: bool = Field(True, description="write spatial snapshots (.npz)")
    figure: bool = Field(True, description="write the tumor/CAR-NK PNG")


class Scenario(_Block):
    """A complete nksim scenario."""

    name: str = Field("scenario", description="scenario name (output folder name)")
    description: str = Field("", description="free text")
    seed: int = P(12345, "-", "-", "random seed (recorded in every output)", ge=0)
    domain: Domain = Field(default_factory=Domain)
    time: TimeCfg = Field(default_factory=TimeCfg)
    tumor: Tumor = Field(default_factory=Tumor)
    nk: NK = Field(default_factory=NK)
    fields: Fields = Field(default_factory=Fields)
    dosing: Dosing = Field(default_factory=Dosing)
    product: Product = Field(default_factory=Product)
    output: Output = Field(default_factory=Output)
    wellmixed: WellMixed = Field(default_factory=WellMixed, description="well-mixed (mass-action) mode parameters; used only when domain.space is well_mixed")
    effector: Literal["carnk", "cart"] = Field("carnk", description="infused effector: carnk, or cart (comparator arm; see cart:)")
    cart: CART = Field(default_factory=CART)
    drugs: Drugs = Field(default_factory=Drugs)
    toxicity: Toxicity = Field(default_factory=Toxicity)
    arms: list[Arm] = P([], "list", "scenario input", "treatment arms run on identical tumors and seeds (empty = one run)")


# ---------------------------------------------------------------------------------------------
# Loading, overrides and error reporting
# ---------------------------------------------------------------------------------------------


def _line_index(text: str) -> dict[tuple, int]:
    """Map each key path in a YAML document to its 1-based line number."""
    lines: dict[tuple, int] = {}

    def walk(node: Any, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                p = path + (str(k.value),)
                lines[p] = k.start_mark.line + 1
                walk(v, p)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                lines[path + (i,)] = v.start_mark.line + 1
                walk(v, path + (i,))

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lines
    if root is not None:
        walk(root, ())
    return lines


def load_raw(path: str | Path) -> dict:
    """Read a scenario YAML into a plain dict; ScenarioError on a missing file or bad YAML."""
    p = Path(path)
    if not p.is_file():
        raise ScenarioError("", f"scenario file not found: {p} (check the path)")
    text = p.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(e, "problem", None) or str(e)
        raise ScenarioError("", f"malformed YAML: {problem} (fix the indentation or quoting)", line=line, file=str(p)) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ScenarioError("", "the top level must be a mapping of blocks (name:, tumor:, nk:, ...)", file=str(p))
    raw["__source__"] = {"file": str(p), "lines": _line_index(text)}
    return raw


def _model_for_path(model: type[BaseModel], path: tuple) -> type[BaseModel] | None:
    """The pydantic block class at a key path, for "did you mean" hints."""
    for key in path:
        if isinstance(key, int):
            continue
        f = model.model_fields.get(key)
        ann = getattr(f, "annotation", None) if f else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def _format_error(err: dict, lines: dict, file: str | None) -> ScenarioError:
    """Turn one pydantic error into a ScenarioError naming the dotted path, line and fix."""
    loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x.startswith("function-")))
    dotted = ".".join(str(x) for x in loc)
    typ, msg = err["type"], err["msg"]
    if typ == "extra_forbidden":
        parent = _model_for_path(Scenario, loc[:-1])
        options = list(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), options, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else (f"; allowed keys: {', '.join(options)}" if options else "")
        msg = f"unknown key '{loc[-1]}'{hint}"
    elif typ in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        parent = _model_for_path(Scenario, loc[:-1])
        f = parent.model_fields.get(str(loc[-1])) if parent else None
        unit = (f.json_schema_extra or {}).get("unit") if f is not None else None
        msg = f"{msg} (got {err.get('input')!r}{f' {unit}' if unit and unit != '-' else ''}); set a value in the allowed range"
    elif "type" in typ or typ.endswith("_parsing"):
        msg = f"{msg} (got {err.get('input')!r})"
    elif typ == "literal_error":
        msg = f"{msg} (got {err.get('input')!r})"
    line = None
    for k in range(len(loc), 0, -1):
        line = lines.get(tuple(str(x) if not isinstance(x, int) else x for x in loc[:k]))
        if line:
            break
    return ScenarioError(dotted, msg, line=line, file=file)


def validate(raw: dict) -> Scenario:
    """Validate a raw scenario dict; raise ScenarioError naming the first bad YAML path."""
    raw = dict(raw)
    src = raw.pop("__source__", {}) or {}
    raw.pop("sweep", None)
    try:
        cfg = Scenario.model_validate(raw)
    except ValidationError as e:
        errs = e.errors()
        first = _format_error(errs[0], src.get("lines", {}), src.get("file"))
        if len(errs) > 1:
            others = "; ".join(str(_format_error(x, src.get("lines", {}), None)) for x in errs[1:4])
            raise ScenarioError(first.path, f"{first.detail} (also: {others})", first.line, first.file) from None
        raise first from None
    if cfg.effector == "cart" and cfg.product.type != "none":
        raise ScenarioError("product.type", f"the NK product preset '{cfg.product.type}' does not apply to effector: cart; "
                            "set product.type: none", line=src.get("lines", {}).get(("product", "type")), file=src.get("file"))
    if cfg.domain.space == "well_mixed":
        d = cfg.drugs
        used = [f"drugs.{k}.doses" for k in ("antibody", "anti_nkg2a", "anti_tigit", "anti_pd1", "chemo") if getattr(d, k).doses]
        used += ["effector"] if cfg.effector != "carnk" else []
        if used:
            raise ScenarioError(used[0], "well-mixed mode has no therapy layer (drugs, CAR-T arm); use domain.space: lattice",
                                line=src.get("lines", {}).get(tuple(used[0].split(".")[:2])), file=src.get("file"))
    if cfg.arms:
        arm_scenarios(cfg, raw, src)
    return cfg


def arm_scenarios(cfg: Scenario, raw: dict | None = None, src: dict | None = None) -> list[tuple[str, Scenario]]:
    """The scenario of each arm (overrides applied, same seed); errors name `arms.<i>.set.<path>`."""
    base = {k: v for k, v in (raw if raw is not None else cfg.model_dump()).items() if k not in ("arms", "__source__", "sweep")}
    lines = (src or {}).get("lines", {})
    out, names = [], set()
    for i, arm in enumerate(cfg.arms):
        where = f"arms.{i}.set"
        line = lines.get(("arms", i))
        if arm.name in names:
            raise ScenarioError(f"arms.{i}.name", f"duplicate arm name '{arm.name}'", line=line)
        names.add(arm.name)
        if any(k.split(".")[0] == "arms" for k in arm.set):
            raise ScenarioError(where, "an arm cannot set arms", line=line)
        try:
            out.append((arm.name, validate(apply_overrides(base, arm.set))))
        except ScenarioError as e:
            raise ScenarioError(f"{where}.{e.path}" if e.path else where, e.detail, line=line, file=(src or {}).get("file")) from None
    return out


def apply_overrides(raw: dict, overrides: dict[str, Any]) -> dict:
    """Return a copy of `raw` with dotted-path overrides set; unknown paths raise ScenarioError."""
    out = copy.deepcopy({k: v for k, v in raw.items() if k != "__source__"})
    for dotted, value in overrides.items():
        keys = dotted.split(".")
        model: type[BaseModel] | None = Scenario
        node = out
        for i, key in enumerate(keys):
            if model is not None and key not in model.model_fields:
                close = difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.5)
                hint = f"; did you mean '{'.'.join(keys[:i] + [close[0]])}'?" if close else ""
                raise ScenarioError(dotted, f"unknown parameter path{hint}")
            sub = _model_for_path(model, (key,)) if model is not None else None
            if i == len(keys) - 1:
                node[key] = value
            else:
                node = node.setdefault(key, {})
                if not isinstance(node, dict):
                    raise ScenarioError(dotted, f"'{'.'.join(keys[: i + 1])}' is not a block")
            model = sub
    return out


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Load, override and validate a scenario YAML file."""
    raw = load_raw(path)
    src = raw.get("__source__")
    if overrides:
        raw = apply_overrides(raw, overrides)
        raw["__source__"] = src
    return validate(raw)


def coerce(scenario: Scenario | dict | str | Path | None, overrides: dict[str, Any] | None = None) -> Scenario:
    """Accept a Scenario, a raw dict, a YAML path or None (defaults), with optional overrides."""
    if scenario is None:
        scenario = {}
    if isinstance(scenario, (str, Path)):
        return load_scenario(scenario, overrides)
    if isinstance(scenario, Scenario):
        if not overrides:
            return scenario
        scenario = scenario.model_dump(exclude_unset=True)  # keep "not set" so product presets still resolve
    raw = apply_overrides(scenario, overrides or {})
    return validate(raw)


# ---------------------------------------------------------------------------------------------
# The parameter table
# ---------------------------------------------------------------------------------------------


def parameter_rows(model: type[BaseModel] = Scenario, prefix: str = "") -> list[dict]:
    """Every leaf parameter: dotted path, default, unit, bounds, source and description."""
    rows = []
    inst = model()
    for name, f in model.model_fields.items():
        path = f"{prefix}{name}"
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            default = getattr(inst, name)
            for r in parameter_rows(type(default), path + "."):
                if "[]" not in r["path"]:  # list items keep their own block defaults
                    r["default"] = _deep_get(default, r["path"][len(path) + 1 :])
                rows.append(r)
            continue
        extra = f.json_schema_extra or {}
        ops = {"Ge": "≥", "Gt": ">", "Le": "≤", "Lt": "<"}
        bounds = [f"{ops[type(m).__name__]} {getattr(m, type(m).__name__.lower())}" for m in f.metadata if type(m).__name__ in ops]
        item = (getattr(ann, "__args__", None) or (None,))[0] if getattr(ann, "__origin__", None) is list else None
        if isinstance(item, type) and issubclass(item, BaseModel):  # list of blocks: document one item's keys
            rows.append({"path": path, "default": getattr(inst, name), "unit": "-", "bounds": "", "declared": True,
                         "source": "scenario input (list; item keys below)", "description": f.description or ""})
            rows.extend(parameter_rows(item, path + "[]."))
            continue
        rows.append(
            {
                "path": path,
                "default": getattr(inst, name),
                "unit": extra.get("unit", "-"),
                "bounds": ", ".join(bounds),
                "source": extra.get("source", "-"),
                "description": f.description or "",
                "declared": "unit" in extra and "source" in extra,
            }
        )
    return rows


def _deep_get(obj: Any, dotted: str) -> Any:
    for k in dotted.split("."):
        obj = getattr(obj, k)
    return obj


def parameter_table_markdown() -> str:
    """The documented parameter table, generated from the schema."""
    out = [
        "# Parameter table",
        "",
        "Generated from `sim/config.py` by `nksim params` — do not edit by hand.",
        "Every default is in physical units; the source is a paper from `shared/reference/literature.md` or \"assumed\".",
        "",
        "| parameter | default | unit | bounds | source | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for r in parameter_rows():
        out.append(f"| `{r['path']}` | {r['default']} | {r['unit']} | {r['bounds']} | {r['source']} | {r['description']} |")
    from .therapy.presets import preset_tables_markdown

    return "\n".join(out) + "\n" + preset_tables_markdown()
