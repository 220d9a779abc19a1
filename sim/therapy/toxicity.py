"""CRS and ICANS risk indices and the GvHD flag.

A hook sums the inflammatory release (IFN-γ + IL-6-like driver) of engaged effectors per tissue
volume in hourly bins; the exposure E is the peak 24-h release (ng/(mL·day)). Patients differ in
susceptibility (lognormal, SD σ in ln units), so the predicted rate of a grade is
P = Φ((ln E − ln E50)/σ). E50 values are calibrated to JULIET (docs/therapy.md)."""
from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr  # Φ; scipy.stats.norm.cdf is this same ufunc, but importing scipy.stats costs ~0.4 s

from ..kernels import step as K
from .effectors import gvhd_risk, inflammatory_release_per_cell_day
from ..units import MIN_PER_DAY



def install(model) -> None:
    """Register the cytokine-release monitor."""
    c = model.config
    nx, ny, nz = model.shape
    volume_ml = nx * ny * nz * (model.spacing_um * 1e-4) ** 3
    per_min = inflammatory_release_per_cell_day(c) / MIN_PER_DAY / volume_ml  # ng/mL per engaged cell-minute

    def hook(m) -> None:
        bins = m.therapy_state["cytokine_bins"]
        h = int(m.now_min // 60.0)
        while len(bins) <= h:
            bins.append(0.0)
        engaged = int(np.count_nonzero(m.nk.state[: m.nk.used] == K.NK_KILLING))
        bins[h] += engaged * per_min * m.dt

    hook.monitor = True  # observes only: no random draws, no state the kernels read
    model.hooks.append(hook)


def peak_daily_release(bins, window_h: int = 24) -> float:
    """Peak release over any 24-h window (ng/(mL·day)); a shorter run is scaled to a day."""
    b = np.asarray(bins, dtype=np.float64)
    if b.size == 0:
        return 0.0
    if b.size < window_h:
        return float(b.sum() * window_h / b.size)
    c = np.concatenate([[0.0], np.cumsum(b)])
    return float((c[window_h:] - c[:-window_h]).max())


def predicted_rate(exposure: float, e50: float, sd: float) -> float:
    """Fraction of patients reaching a grade: Φ((ln E − ln E50)/σ), 0 without exposure."""
    if exposure <= 0:
        return 0.0
    return float(ndtr((math.log(exposure) - math.log(e50)) / sd))


#: Keys of `risk_metrics`.
RISK_METRICS = ("cytokine_peak_ng_ml_day", "crs_any_rate", "crs_grade3_rate", "icans_any_rate", "icans_grade3_rate", "gvhd_risk")


def risk_metrics(model) -> dict:
    """Exposure, predicted CRS/ICANS rates (any grade and grade ≥ 3) and the GvHD flag."""
    tox = model.config.toxicity
    e = peak_daily_release(model.therapy_state["cytokine_bins"])
    return {
        "cytokine_peak_ng_ml_day": e,
        "crs_any_rate": predicted_rate(e, tox.crs.any_grade_e50, tox.crs.susceptibility_sd),
        "crs_grade3_rate": predicted_rate(e, tox.crs.grade3_e50, tox.crs.susceptibility_sd),
        "icans_any_rate": predicted_rate(e, tox.icans.any_grade_e50, tox.icans.susceptibility_sd),
        "icans_grade3_rate": predicted_rate(e, tox.icans.grade3_e50, tox.icans.susceptibility_sd),
        "gvhd_risk": gvhd_risk(model.config),
    }
