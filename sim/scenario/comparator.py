"""CAR-T comparator arm (effector: cart) and the CRS/ICANS toxicity indices."""
from __future__ import annotations


from pydantic import Field

from .base import Float, Int, P, _Block


class CARTExpansion(_Block):
    """Antigen-driven clonal expansion of CAR-T cells."""

    division_probability_per_kill: Float = P(0.5, "probability", "assumed (CAR-T expand 10²–10³-fold in vivo after antigen contact)", "probability of a division when a killing conjugate completes", ge=0, le=1)
    max_divisions: Int = P(10, "divisions", "Kather immunoABM (proliferation capacity 10)", "divisions allowed per lineage", ge=0, le=40)
    blood_division_per_day: Float = P(0.95, "1/day", "calibrated to Stein 2019 (tisagenlecleucel expansion doubling time 0.78 d, net of death; docs/validation.md)", "programmed clonal expansion of CAR-T in the patient after antigen contact (blood compartment), until the lineage budget is spent", ge=0)


class CARTPersistence(_Block):
    """CAR-T persistence: effector half-life plus a long-lived memory fraction."""

    half_life_days: Float = P(4.3, "day", "Stein 2019, doi:10.1002/psp4.12388 (tisagenlecleucel contraction rate α = 0.16/day; Luque 2024's 8.6-day lifespan would give 6 d)", "effector CAR-T half-life", gt=0)
    memory_fraction: Float = P(0.0079, "fraction", "Stein 2019 (fraction of the peak entering the persistent phase, F_B = 0.0079)", "fraction of infused cells and of daughters that are long-lived memory cells", ge=0, le=1)
    memory_half_life_days: Float = P(200.0, "day", "assumed (Awasthi 2020: CAR-T detected up to 693 days)", "memory CAR-T half-life", gt=0)


class CARTSecretion(_Block):
    """Inflammatory cytokine output of engaged CAR-T cells (larger than NK)."""

    ifng_engaged: Float = P(2500.0, "ng/(10⁶ cells·day)", "assumed (5× the CAR-NK default)", "IFN-γ secretion while in a triggered conjugate", ge=0)
    il6_like_engaged: Float = P(2000.0, "ng/(10⁶ cells·day)", "assumed (T-cell GM-CSF/CD40L drive myeloid IL-6)", "IL-6-like CRS driver released per engaged CAR-T", ge=0)


class CARTActivation(_Block):
    """Triggering and killing of a CAR-T conjugate: the values CAR-T runs were calibrated with (the CAR-NK
    in vitro calibration of nk.activation and nk.killing describes NK cells, not T cells)."""

    half_activation: Float = P(1.5, "signal", "assumed (the CAR-T arm's value since its CRS/ICANS and Stein 2019 kinetics calibration; NK's in vitro fit does not apply to T cells)", "net CAR signal giving half-maximal triggering", gt=0)
    responsiveness_sd: Float = P(0.0, "log-SD", "assumed (no per-cell spread measured for CAR-T killing)", "cell-to-cell spread of intrinsic responsiveness", ge=0, le=3)
    kill_time_min: Float = P(15.0, "min", "Ghaffarizadeh 2018 (1/15 min kill rate); PMC4543232 (~15 min)", "conjugate time for a granule kill", gt=0)


class CART(_Block):
    """What differs when the infused effector is a CAR-T cell (nk: still sets dose, CAR, motility, killing).

    CAR-T kill only through the CAR (MHC-independent): no NKG2D, no KIR/NKG2A inhibition, no CD16/ADCC.
    """

    activation: CARTActivation = Field(default_factory=CARTActivation)
    expansion: CARTExpansion = Field(default_factory=CARTExpansion)
    persistence: CARTPersistence = Field(default_factory=CARTPersistence)
    secretion: CARTSecretion = Field(default_factory=CARTSecretion)
    allogeneic: bool = Field(False, description="donor-derived (allogeneic) CAR-T product")
    tcr_knockout: bool = Field(False, description="endogenous TCR removed (e.g. TRAC edit): no GvHD risk flag")


class RiskModel(_Block):
    """Per-patient probit over log cytokine exposure: P(grade) = Φ((ln E − ln E50)/σ)."""

    any_grade_e50: Float = P(1.0, "ng/(mL·day)", "Schuster 2019 (JULIET) calibration, docs/therapy.md", "exposure at which half of patients have any-grade toxicity", gt=0)
    grade3_e50: Float = P(1.0, "ng/(mL·day)", "Schuster 2019 (JULIET) calibration, docs/therapy.md", "exposure at which half of patients have grade ≥ 3", gt=0)
    susceptibility_sd: Float = P(1.0, "ln units", "assumed", "patient-to-patient SD of log susceptibility", gt=0)


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
