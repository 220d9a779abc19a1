"""Response read-outs the way a trial reads them, from one run's tumor time series.

Heme (disseminated) disease, on tumor burden B: CR when B is below the detection limit (a fraction of
baseline, the MRD convention), PR at ≥ 50 % reduction, PD when B rises ≥ 50 % above its nadir so far (Lugano, iwCLL) to at least a tenth of baseline (measurable again),
else SD. Solid lesions, RECIST-like on the lesion diameter, taken as ∝ B^(1/d) for a d-dimensional
section (one lesion, so the "sum of diameters" is its diameter): CR when no tumor cell is left, PR at
≥ 30 % decrease, PD at ≥ 20 % increase over the nadir, else SD. Response is read at each assessment
visit (every `assess_every_days` up to `assessment_day`); best overall response is the best category
before the first PD; PD is judged against the smallest burden recorded at baseline and earlier visits.
Progression-free time: the first visit (visits go on every `assess_every_days` to the end of the run)
at which progression holds, censored at the end of the run. Thresholds are keys of `cohort.criteria` with their sources.
B is the patient's: for a section that samples a larger burden (`domain.section.represents: sample`) the
section plus the disease outside it (`tumor_total`, sim/section.py), else the section's `tumor`; antigen
shares are the section's."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .spec import Criteria

ORDER = ("CR", "PR", "SD", "PD")  # best first


def burden(tumor: np.ndarray, disease: str, dims: int) -> np.ndarray:
    """What the criteria measure: cells (heme) or the lesion diameter in units of the baseline's (solid)."""
    t = np.asarray(tumor, dtype=float)
    if disease == "heme":
        return t
    base = t[0] if t[0] > 0 else 1.0
    return (t / base) ** (1.0 / dims)


def category(b: float, b0: float, nadir: float, tumor_cells: float, c: Criteria) -> str:
    """The response category of one assessment."""
    if c.disease == "heme":
        if b <= c.detection_limit * b0:
            return "CR"
        # PD: ≥ 50 % above the nadir and measurable again (from a CR, nadir 0, the floor alone decides)
        if b >= (1.0 + c.heme_progression_increase) * nadir and b >= c.heme_progression_floor * b0:
            return "PD"
        return "PR" if b <= (1.0 - c.heme_pr_reduction) * b0 else "SD"
    if tumor_cells <= 0:
        return "CR"
    if b >= (1.0 + c.progression_increase) * nadir:
        return "PD"
    return "PR" if b <= (1.0 - c.recist_pr_decrease) * b0 else "SD"


def visit_days(every: float, until: float) -> np.ndarray:
    """Assessment visits every `every` days up to `until`, the last one at `until` even off the grid."""
    days = np.arange(every, until + 1e-9, every)
    if days.size == 0 or days[-1] < until - 1e-9:
        days = np.append(days, until)
    return days


def read_out(ts: pd.DataFrame, c: Criteria, dims: int) -> dict:
    """Best change, response at the assessment day, best overall response and progression-free time.

    Response and progression are judged at the visits, against the smallest burden recorded on study
    (baseline and earlier visits: RECIST 1.1's nadir), not against minima between visits that no one
    observed. Visits continue every `assess_every_days` after the assessment day for progression."""
    t_day = ts["time_h"].to_numpy(dtype=float) / 24.0
    cells = ts["tumor_total" if "tumor_total" in ts else "tumor"].to_numpy(dtype=float)  # the patient's burden
    b = burden(cells, c.disease, dims)
    b0 = b[0]
    n_assess = visit_days(c.assess_every_days, c.assessment_day).size
    days = np.union1d(visit_days(c.assess_every_days, c.assessment_day),
                      visit_days(c.assess_every_days, max(c.assessment_day, float(t_day[-1]))))
    visits = np.searchsorted(t_day, days - 1e-9)
    visits = visits[visits < t_day.size]  # visits after the end of the series are not made
    cats, first_pd, nadir = [], -1, b0
    for k, i in enumerate(visits):
        cat = category(b[i], b0, float(nadir), cells[i], c)
        if k < n_assess:
            cats.append(cat)
        if cat == "PD" and first_pd < 0:
            first_pd = int(i)
        nadir = min(nadir, b[i])
    pfs_day = float(t_day[first_pd]) if first_pd >= 0 else float(t_day[-1])
    before_pd = []
    for k in cats:
        before_pd.append(k)
        if k == "PD":
            break
    best = min(before_pd, key=ORDER.index) if before_pd else "NE"
    change = (b / b0 - 1.0) if b0 > 0 else np.zeros_like(b)
    upto = (t_day > 0) & (t_day <= c.assessment_day + 1e-9)  # post-baseline measurements only
    return {
        "response": cats[-1] if cats and len(cats) == n_assess else "NE",
        "best_response": best,
        "best_change": float(change[upto].min()) if upto.any() else math.nan,
        "change_at_assessment": float(change[upto][-1]) if upto.any() else math.nan,
        "progressed": bool(first_pd >= 0),
        "pfs_days": pfs_day,
        "responder": best in ("CR", "PR"),
        "burden_baseline": float(cells[0]),
        "burden_at_assessment": float(cells[upto][-1]) if upto.any() else math.nan,
        **antigen_negative_readouts(ts, ts["tumor"].to_numpy(dtype=float), first_pd, upto),
    }


def antigen_negative_readouts(ts: pd.DataFrame, cells: np.ndarray, first_pd: int, upto: np.ndarray) -> dict:
    """Antigen escape: the antigen-negative share of the tumor at the assessment day and at the first
    PD visit; a progression is antigen-negative when that share is at least one half (the way CD19-negative
    relapse is reported after CD19 CAR therapy); the same for antigen-negative or -low cells where the
    series has `tumor_ag_low`. NaN where the series has no `tumor_ag_neg` or no tumor."""
    if "tumor_ag_neg" not in ts:
        return {}
    out = {}
    neg = ts["tumor_ag_neg"].to_numpy(dtype=float)
    escaped = {"antigen_negative": neg}
    if "tumor_ag_low" in ts:  # negative or low (`tumor.antigen.low_below`): Spiegel 2021's CD19−/lo
        escaped["antigen_negative_or_low"] = neg + ts["tumor_ag_low"].to_numpy(dtype=float)
    for name, count in escaped.items():
        share = np.divide(count, cells, out=np.full(cells.shape, np.nan), where=cells > 0)
        at_pd = float(share[first_pd]) if first_pd >= 0 else math.nan
        out |= {f"{name}_share_at_assessment": float(share[upto][-1]) if upto.any() else math.nan,
                f"{name}_share_at_progression": at_pd,
                f"{name}_progression": bool(first_pd >= 0 and at_pd >= 0.5)}
    return out


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (scipy's binomtest)."""
    if n == 0:
        return (math.nan, math.nan)
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def paired_difference(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Difference of response rates b − a on the same patients, with a Wald interval for paired
    proportions (discordant pairs; Agresti, Categorical Data Analysis §10.1)."""
    from scipy.stats import norm

    a, b = np.asarray(a, bool), np.asarray(b, bool)
    n = a.size
    if n == 0:
        return (math.nan, math.nan, math.nan)
    n10, n01 = int((a & ~b).sum()), int((~a & b).sum())
    d = (n01 - n10) / n
    var = ((n01 + n10) - (n01 - n10) ** 2 / n) / n ** 2
    h = norm.ppf(0.5 + level / 2) * math.sqrt(max(var, 0.0))
    return d, d - h, d + h
