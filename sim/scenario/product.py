"""Cell product: lot variability, release QC, cold chain (sim/therapy/products.py resolves it)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Float, OptFloat, P, _Block


class Lot(_Block):
    """Batch-to-batch variability: each replicate (seed) draws its lot around the product means."""

    enabled: bool = Field(False, description="draw a lot per seed (false: every lot is the product mean)")
    potency_cv: Float = P(0.2, "-", "assumed", "lot-to-lot CV of potency (lognormal, mean 1)", ge=0, le=2)
    viability_cv: Float = P(0.1, "-", "assumed", "lot-to-lot CV of viability (beta around the product viability)", ge=0, le=1)
    car_fraction_cv: Float = P(0.25, "-", "assumed", "lot-to-lot CV of the CAR+ fraction (beta around the transduction efficiency)", ge=0, le=1)


class Release(_Block):
    """Release criteria (QC) applied to the drawn lot, after the cold chain."""

    min_viability: Float = P(0.7, "fraction", "assumed (common cell-therapy release criterion ≥ 70 % viable)", "minimum viable fraction", ge=0, le=1)
    min_car_fraction: Float = P(0.2, "fraction", "assumed", "minimum CAR+ fraction", ge=0, le=1)
    min_potency: Float = P(0.5, "relative", "assumed", "minimum potency relative to the product mean", ge=0)
    on_fail: Literal["infuse", "reject"] = Field("reject", description="what happens to a lot failing QC: infuse anyway, or reject (no cells given)")


class Excursion(_Block):
    """A temperature excursion during transport or storage."""

    duration_h: Float = P(1.0, "h", "scenario input", "time above the limit", ge=0)
    temperature_c: Float = P(-100.0, "°C", "scenario input", "temperature during the excursion")


class ColdChain(_Block):
    """Cryopreservation, thaw, transport and excursions: loss of viable dose and potency (docs/products.md)."""

    cryopreserved: bool = Field(False, description="product is frozen and thawed at the bedside (false: fresh)")
    thaw_viability_loss: Float = P(0.2, "fraction", "assumed (post-thaw NK viability and recovery losses) [not in literature.md]", "viable cells lost at thaw", ge=0, le=1)
    thaw_potency_loss: Float = P(0.3, "fraction", "assumed (post-thaw NK cytotoxicity dips until recovery) [not in literature.md]", "potency lost at thaw", ge=0, le=1)
    transport_h: Float = P(0.0, "h", "scenario input", "transport/hold time within specification", ge=0)
    transport_loss_per_h: Float = P(0.002, "1/h", "assumed (fresh product at 2–8 °C loses ~5 %/day; set ~0 for a dry shipper)", "viability hazard during compliant transport", ge=0)
    limit_c: Float = P(-135.0, "°C", "assumed (cryo storage limit; use ~8 °C for a fresh product)", "temperature above which an excursion harms cells", le=40)
    excursion_loss_per_h: Float = P(0.02, "1/h", "assumed (−80 °C for 2 h loses ~20 %; −20 °C for 2 h ~95 %)", "viability hazard 10 °C above the limit", ge=0)
    q10: Float = P(1.5, "-", "assumed", "hazard multiplier per 10 °C further above the limit", ge=1)
    potency_coupling: Float = P(0.5, "-", "assumed", "potency of surviving cells = transport survival^coupling", ge=0)
    excursions: list[Excursion] = Field(default_factory=list, description="list of {duration_h, temperature_c}")


class Rejection(_Block):
    """Host-versus-graft rejection of an allogeneic product: an extra death hazard in blood and tissue
    (not extended by IL-15) that grows as the host's T cells recover from lymphodepletion."""

    hla_mismatch: Float = P(0.0, "fraction", "preset by product (0: autologous or HLA-matched)", "share of HLA loci mismatched between product and host", ge=0, le=1)
    hypoimmune: bool = Field(False, description="HLA-edited (B2M/CIITA knockout, CD47+) product that host T cells do not reject")
    max_rate_per_day: Float = P(0.35, "1/day", "assumed (Miller 2005, Blood 105:3051: haploidentical NK cells expand only after high-dose Cy/Flu and are cleared otherwise; t½ ≈ 2 d at full mismatch)", "rejection hazard at full host recovery and full mismatch", ge=0)
    recovery_delay_days: Float = P(7.0, "day", "assumed (Miller 2005: donor NK cells expand in blood for about 2 weeks after Hi-Cy/Flu)", "days after the lymphodepletion plateau ends before host T cells begin to recover", ge=0)
    recovery_half_time_days: Float = P(14.0, "day", "assumed; with recovery_delay_days, 90 % recovered about 8 weeks after Cy/Flu, as the CD8+ T cells (the HLA class I-restricted effectors of rejection) recover within the first months after Cy/Flu and CD19 CAR-T while CD4+ T cells stay low for a year or more (Strati 2021; Logue 2021)", "half-time of host immune recovery", gt=0)


class Product(_Block):
    """Cell source preset (resolved into nk parameters; explicit nk values win), lots, QC and cold chain."""

    type: Literal["none", "peripheral_blood", "cord_blood", "ipsc", "nk92"] = Field(
        "none", description="cell-source preset (none: use the nk block as given)")
    car_fraction: OptFloat = P(None, "fraction", "preset", "override: CAR transduction efficiency (CAR+ fraction)", ge=0, le=1)
    viability: OptFloat = P(None, "fraction", "preset", "override: viable fraction at release", ge=0, le=1)
    cytotoxicity: OptFloat = P(None, "relative", "preset", "override: baseline potency (multiplies the net signal)", ge=0)
    lot: Lot = Field(default_factory=Lot)
    release: Release = Field(default_factory=Release)
    cold_chain: ColdChain = Field(default_factory=ColdChain)
    rejection: Rejection = Field(default_factory=Rejection)
