"""CAR-NK block: dose, motility, receptors, activation, killing, persistence, IL-15, design, engineering."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

import math

from .base import Float, Int, OptFloat, OptInt, P, _Block


class NKDose(_Block):
    """Initial CAR-NK cells placed in the tissue."""

    cells: Int = P(500, "cells", "assumed", "CAR-NK cells at t = 0", ge=0)
    placement: Literal["random", "rim"] = Field("random", description="random free sites, or a ring around the tumor")


class Motility(_Block):
    """Persistent random walk biased toward the tumor."""

    speed_um_min: Float = P(5.0, "µm/min", "Luque 2024 (CAR-T speed)", "migration speed", ge=0)
    persistence_min: Float = P(10.0, "min", "Luque 2024 (persistence time of motion)", "mean time before a new direction", gt=0)
    tumor_bias: Float = P(0.3, "0-1", "assumed", "weight of the direction toward the tumor centroid", ge=0, le=1)


#: Most immune cells one site may hold (the per-site count array is uint16).
MAX_IMMUNE_PER_SITE = 65535


class Crowding(_Block):
    """Volume exclusion: a lattice site holds one tumor cell or at most k immune cells (CAR-NK or, with
    `effector: cart`, CAR-T); k = floor(site volume / immune-cell volume), at least 1, unless set."""

    diameter_um: Float = P(10.0, "µm", "small lymphocytes are 7–10 µm (Marguerat 2012: ~7 µm; BioNumbers 109546); NK cells are large granular lymphocytes, so the upper end is taken", "immune-cell (NK, CAR-T) diameter, a sphere", gt=0, le=1000)
    max_per_site: OptInt = P(None, "cells", "derived: floor(spacing³ / (π/6 · diameter³)), at least 1 (20 µm sites, 10 µm cells: 15); a 2D site is spacing² × spacing, as the fields take it", "immune cells one lattice site holds (null = derived from the volumes)", ge=1, le=MAX_IMMUNE_PER_SITE)

    def per_site(self, spacing_um: float) -> int:
        """k: the set `max_per_site`, else the site volume over the cell volume, rounded down, at least 1."""
        if self.max_per_site is not None:
            return int(self.max_per_site)
        k = math.floor(spacing_um ** 3 / (math.pi / 6.0 * self.diameter_um ** 3) * (1 + 1e-12))
        return int(min(max(k, 1), MAX_IMMUNE_PER_SITE))


class Receptors(_Block):
    """Receptor levels that set the signal balance (relative units)."""

    car_expression: Float = P(1.0, "relative", "assumed", "CAR surface level (0 = non-transduced NK)", ge=0)
    car_affinity: Float = P(1.0, "relative", "assumed", "CAR affinity scale", ge=0)
    nkg2d: Float = P(1.0, "relative", "assumed", "NKG2D level", ge=0)
    inhibitory: Float = P(0.5, "relative", "assumed (balances NKG2D at reference MHC-I and ligand: missing-self)", "KIR/NKG2A level against MHC-I", ge=0)
    cd16: Float = P(1.0, "relative", "assumed", "CD16 (FcγRIIIa) level for ADCC", ge=0)


class Activation(_Block):
    """Signal integration: net = (activating − inhibitory) × (1 − TGF-β suppression)."""

    attach_rate_per_min: Float = P(0.2, "1/min", "Ghaffarizadeh 2018 (PhysiCell attachment rate)", "rate of forming a conjugate on contact", ge=0)
    half_activation: Float = P(3.4, "signal", "calibrated: nksim calibrate scenarios/calibrate_invitro.yaml, posterior median 3.36 (90 % 1.92–4.96) against the in vitro tables (Vanherberghen 2013; literature.md §9 4 h lysis ranges); docs/calibration.md", "net signal giving half-maximal triggering", gt=0)
    hill: Float = P(2.0, "-", "assumed", "steepness of the triggering curve", gt=0)
    responsiveness_sd: Float = P(0.7, "log-SD", "calibrated: nksim calibrate scenarios/calibrate_invitro.yaml, posterior median 0.69 (90 % 0.19–1.33); non-killers are an intrinsic NK subset (Vanherberghen 2013); docs/calibration.md", "cell-to-cell spread of intrinsic responsiveness (lognormal, mean 1, inherited by daughters; 0 = identical cells)", ge=0, le=3)
    release_min: Float = P(10.0, "min", "assumed", "time spent on a non-triggering conjugate", ge=0)


class Killing(_Block):
    """Perforin/granzyme contact killing with a granule stock, plus a slower death-receptor route."""

    perforin: bool = Field(True, description="perforin/granzyme competent (false = perforin-deficient)")
    kill_time_min: Float = P(16.7, "min", "calibrated: nksim calibrate scenarios/calibrate_invitro.yaml, posterior median 16.7 (90 % 8.3–41.7; prior Ghaffarizadeh 2018 1/15 min, PMC4543232 ~15 min); docs/calibration.md", "conjugate time for a granule kill", gt=0)
    granules: Float = P(4.0, "kills", "assumed (Kather immunoABM killer capacity 5)", "granule stock (kills before depletion)", ge=0)
    granule_regen_h: Float = P(8.0, "h", "assumed", "time to regenerate one kill's granules", gt=0)
    death_receptor_kill_time_min: Float = P(45.0, "min", "PMC4543232 (death-receptor caspase ~45 min); Prager 2019", "conjugate time for a death-receptor kill", gt=0)
    death_receptor_capacity: Float = P(1.0, "kills", "Prager 2019 (perforin-deficient NK kill about once)", "death-receptor kills available per NK", ge=0)
    exhaustion_stimulations: Int = P(10, "conjugates", "assumed (Kather immunoABM capacity 5; Vanherberghen 2013 serial killers)", "triggering conjugates before exhaustion", ge=1)


class Persistence(_Block):
    """In vivo NK loss as a hazard with a half-life; IL-15 extends it."""

    half_life_days: Float = P(7.0, "day", "Zhang 2007 (t½ < 10 days)", "in vivo half-life without IL-15 support", gt=0)
    exhausted_half_life_factor: Float = P(0.5, "fraction", "assumed (exhausted NK lose function and are lost faster; no measured rate)", "half-life of an exhausted cell relative to a fresh one (1: no exhaustion-driven loss)", gt=0, le=1)
    memory_fraction: Float = P(0.0, "fraction", "assumed (conventional NK products have no long-lived subset; set it for memory-like products, e.g. cytokine-induced memory-like NK, Romee 2016, doi:10.1126/scitranslmed.aaf2341)", "fraction of infused cells and of daughters that are long-lived memory-like NK", ge=0, le=1)
    memory_half_life_days: Float = P(90.0, "day", "assumed (memory-like NK keep their phenotype > 3 months after one dose without cytokine support, Bednarski 2022, Blood)", "half-life of a memory-like NK without IL-15 support (IL-15 stretches it as it stretches the effector half-life)", gt=0)
    aicd_per_trigger: Float = P(0.02, "probability", "assumed (activation-induced death of NK after target engagement; no measured per-conjugate rate)", "chance a cell dies as each triggered conjugate completes (activation-induced cell death)", ge=0, le=1)


class SuperagonistDose(_Block):
    """One subcutaneous dose of the IL-15 superagonist."""

    day: Float = P(0.0, "day", "scenario input", "dose time on the simulation clock", ge=0)
    dose_ug_kg: Float = P(10.0, "µg/kg", "assumed (N-803 trials dose 1–20 µg/kg s.c.) [not in literature.md]", "dose", ge=0)


class Superagonist(_Block):
    """Exogenous IL-15 superagonist (N-803-like), one-compartment PK with first-order s.c. absorption."""

    doses: list[SuperagonistDose] = Field(default_factory=list, description="dosing days and doses (needed for il15.mode = exogenous)")
    absorption_half_life_h: Float = P(12.0, "h", "assumed (slow s.c. absorption)", "first-order absorption half-life", gt=0)
    elimination_half_life_h: Float = P(24.0, "h", "assumed", "elimination half-life", gt=0)
    ng_ml_per_ug_kg: Float = P(0.1, "ng/mL per µg/kg", "assumed (model scale; sets the height of the Bateman curve)", "concentration scale F/V of one µg/kg (instant-absorption peak)", ge=0)
    potency: Float = P(1.0, "IL-15 equivalents", "assumed", "signalling strength relative to IL-15 (multiplies the concentration)", ge=0)


class IL15(_Block):
    """IL-15 armoring: secretion into the field, longer life and IL-15-driven proliferation."""

    mode: Literal["none", "secreted", "membrane_bound", "exogenous"] = Field(
        "none", description="none; secreted (autocrine + paracrine into the IL-15 field); membrane_bound (autocrine only, "
        "nothing enters the field); exogenous (no armoring, an IL-15 superagonist given to the patient, see superagonist)")
    secretion: Float = P(0.2, "ng/(10⁶ cells·day)", "assumed (IL-15-armored CAR-NK supernatants hold tens of pg/mL; armoring acts mainly autocrine)", "IL-15 secreted into the field per armored NK", ge=0)
    half_life_extension: Float = P(3.0, "fold", "assumed (Liu 2018: IL-15 critical for persistence)", "max fold extension of the half-life at saturating IL-15", ge=0)
    ec50_ng_ml: Float = P(0.5, "ng/mL", "assumed", "IL-15 half-effect concentration", gt=0)
    autocrine_ng_ml: Float = P(1.0, "ng/mL", "assumed", "IL-15 a secreting cell sees from its own product (autocrine), added to the field", ge=0)
    proliferation_per_day: Float = P(0.3, "1/day", "assumed (Zhang 2007: 4.3 %/day without support)", "max IL-15-driven division rate", ge=0)
    uptake_um3_per_min: Float = P(3.0e3, "µm³/(cell·min)", "assumed: k_on 1e7–1e8 /M/s × ~10³ IL-2/15Rβγ per cell ≈ 10³–10⁴ µm³/min (receptor-mediated consumption as in Thurley 2015, doi:10.1371/journal.pcbi.1004206)",
                                  "IL-15 field cleared per effector cell (first-order receptor uptake, every NK or CAR-T cell)", ge=0)
    max_divisions: Int = P(4, "divisions", "assumed (Kather immunoABM proliferation capacity 10)", "divisions allowed per lineage", ge=0, le=64)
    superagonist: Superagonist = Field(default_factory=Superagonist)

    @model_validator(mode="after")
    def _exogenous_needs_doses(self) -> "IL15":
        if self.mode == "exogenous" and not self.superagonist.doses:
            raise ValueError("mode 'exogenous' needs superagonist.doses (a list of {day, dose_ug_kg})")
        return self


class IL2Dose(_Block):
    """One subcutaneous dose of IL-2 (aldesleukin)."""

    day: Float = P(0.0, "day", "scenario input", "dose time on the simulation clock", ge=0)
    dose_miu: Float = P(10.0, "million IU", "Miller 2005 (10 MIU s.c. every other day × 6 after haploidentical NK)", "dose", ge=0)


class IL2(_Block):
    """Low-dose IL-2 given with the cells, as in many NK trials: one-compartment PK with first-order
    s.c. absorption. IL-2 signals through the IL-2/15Rβγ chains IL-15 uses, so its level adds to the
    systemic IL-15 signal as IL-15 equivalents (`potency`); regulatory T-cell expansion is not modelled."""

    doses: list[IL2Dose] = Field(default_factory=list, description="dosing days and doses (none: no IL-2)")
    absorption_half_life_h: Float = P(1.5, "h", "assumed (s.c. IL-2 peaks in serum within a few hours)", "first-order absorption half-life", gt=0)
    elimination_half_life_h: Float = P(2.0, "h", "assumed (s.c. IL-2: apparent serum half-life of hours)", "elimination half-life", gt=0)
    ng_ml_per_miu: Float = P(0.1, "ng/mL per MIU", "assumed (model scale; sets the height of the Bateman curve)", "concentration scale F/V of one million IU (instant-absorption peak)", ge=0)
    potency: Float = P(0.5, "IL-15 equivalents", "assumed (PMC4099265: IL-15 supports NK persistence better than IL-2)", "NK survival/proliferation signal of IL-2 relative to IL-15", ge=0)


class Secretion(_Block):
    """IFN-γ release by CAR-NK cells while engaged with a target."""

    ifng_engaged: Float = P(500.0, "ng/(10⁶ cells·day)", "assumed (activated NK; Bellone 1995 order of magnitude)", "IFN-γ secretion while in a triggered conjugate", ge=0)
    ifng_exhausted_fraction: Float = P(0.2, "fraction", "assumed", "secretion of exhausted cells relative to fresh", ge=0, le=1)
    il6_like_engaged: Float = P(20.0, "ng/(10⁶ cells·day)", "assumed (NK induce little myeloid IL-6; Liu 2020: no CRS)", "IL-6-like CRS driver released (via myeloid cells) per engaged effector", ge=0)


class Engineering(_Block):
    """Gene edits of the product beyond the CAR."""

    tgfbr2: Literal["none", "dominant_negative", "knockout"] = Field("none", description="TGF-βR2: none, dominant_negative (Yvon 2017) or knockout (Burga 2019); both remove TGF-β suppression")
    dnr_residual_signalling: Float = P(0.0, "fraction", "assumed (Yvon 2017: DNRII NK keep NKG2D, perforin and killing under TGF-β)", "TGF-β suppression left with a dominant-negative receptor", ge=0, le=1)


COSTIM_DOMAINS = ("cd3z", "2b4", "dap10", "dap12")


class CARDesign(_Block):
    """CAR construct: costimulatory domain preset (activation and persistence multipliers; sim/therapy/presets.py)."""

    costim: Literal["cd3z", "2b4", "dap10", "dap12"] = Field("cd3z", description="signalling/costimulatory domain preset (CD3ζ alone is the reference)")
    activation_multiplier: OptFloat = P(None, "fold", "preset (docs/parameters.md, costimulatory presets)", "override of the preset's activation strength (multiplies the net signal)", ge=0)
    persistence_multiplier: OptFloat = P(None, "fold", "preset (docs/parameters.md, costimulatory presets)", "override of the preset's half-life multiplier", gt=0)


class Suicide(_Block):
    """iCasp9 suicide switch: a dimerizer dose kills a fraction of the CAR-NK cells (tissue and blood)."""

    enabled: bool = Field(False, description="the product carries iCasp9 (Liu 2020 construct)")
    trigger_day: OptFloat = P(None, "day", "scenario input", "give the dimerizer on this day", ge=0)
    ifng_threshold_ng_ml: OptFloat = P(None, "ng/mL", "assumed (toxicity proxy)", "give the dimerizer when the mean tissue IFN-γ exceeds this", gt=0)
    kill_fraction: Float = P(0.9, "fraction", "assumed (iCasp9 + AP1903 removes ~90 % within hours, Di Stasi 2011) [not in literature.md]", "fraction of CAR-NK cells killed", ge=0, le=1)

    @model_validator(mode="after")
    def _needs_trigger(self) -> "Suicide":
        if self.enabled and self.trigger_day is None and self.ifng_threshold_ng_ml is None:
            raise ValueError("an enabled suicide switch needs trigger_day or ifng_threshold_ng_ml")
        return self


class NK(_Block):
    """CAR-NK product inside the tissue."""

    dose: NKDose = Field(default_factory=NKDose)
    motility: Motility = Field(default_factory=Motility)
    crowding: Crowding = Field(default_factory=Crowding)
    receptors: Receptors = Field(default_factory=Receptors)
    activation: Activation = Field(default_factory=Activation)
    killing: Killing = Field(default_factory=Killing)
    persistence: Persistence = Field(default_factory=Persistence)
    il15: IL15 = Field(default_factory=IL15)
    il2: IL2 = Field(default_factory=IL2)
    secretion: Secretion = Field(default_factory=Secretion)
    car_design: CARDesign = Field(default_factory=CARDesign)
    suicide: Suicide = Field(default_factory=Suicide)
    engineering: Engineering = Field(default_factory=Engineering)
