"""Outcome metrics of one run, computed from the model's time series and counters.

Tumor endpoints are defined here once (figures and sweeps call these functions):

* **time to response** (`response_time_h`): the first output time at which the tumor is at or below
  `RESPONSE_FRACTION` (50 %) of its initial size; None when it never is (censored at the run's end).
* **time to progression** (`progression_time_h`): the first output time at which the tumor is at
  least `PROGRESSION_RISE` (1.2 ×, RECIST-like "+20 % from nadir") above the smallest size reached
  before it, and larger than that size; None when it never is. A tumor that only grows progresses as
  soon as it is 20 % above its initial size.
* **durable control** (`durable_control`): the tumor is at or below `RESPONSE_FRACTION` of its
  initial size at every output time of the last `durable_hold_h(run length)` hours of the run: the
  last `DURABLE_HOLD_H` (7 days), or the last half of a run shorter than 14 days
  (`durable_control_hold_h` records which). A tumor that falls below half and regrows is not
  durably controlled, whatever its time to response.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

#: Outcome metrics of the tumor alone, meaningful for an untreated control too (the others count
#: CAR-NK cells, of which it has none); figures draw the control's reference only for these.
TUMOR_METRICS = (
    "tumor_initial", "tumor_final", "tumor_reduction", "nadir", "nadir_time_h", "eradicated",
    "response_time_h", "progression_time_h", "durable_control", "durable_control_hold_h",
)
#: Every key of `outcome_metrics` (tests/test_metrics_registry.py keeps the two in step).
OUTCOME_METRICS = TUMOR_METRICS + (
    "nk_initial", "nk_final", "nk_half_life_days_observed",
    "kills_car", "kills_innate", "kills_adcc", "kills_per_nk_mean", "kills_per_nk_max", "fraction_nk_no_kill",
    "kills_per_nk_hist",
)
#: List-valued metrics (list columns in sweep tables; no sensitivity indices).
LIST_METRICS = ("kills_per_nk_hist",)

RESPONSE_FRACTION = 0.5  # response / control: tumor at or below this fraction of its initial size
PROGRESSION_RISE = 1.2  # progression: tumor at least this factor above its running nadir
DURABLE_HOLD_H = 7 * 24.0  # durable control: below RESPONSE_FRACTION for the last 7 days ...


def durable_hold_h(run_h: float, hold_h: float = DURABLE_HOLD_H) -> float:
    """The window of durable control: `hold_h`, or half the run when the run is shorter than 2 × hold_h."""
    return float(min(hold_h, 0.5 * float(run_h)))


def time_to_response(time_h, tumor, fraction: float = RESPONSE_FRACTION) -> float | None:
    """First time (h) with tumor ≤ fraction × initial; None if never (censored at the end)."""
    t, y = np.asarray(time_h, dtype=float), np.asarray(tumor, dtype=float)
    if y.size == 0:
        return None
    hit = np.flatnonzero(y <= fraction * y[0])
    return float(t[hit[0]]) if hit.size else None


def time_to_progression(time_h, tumor, rise: float = PROGRESSION_RISE) -> float | None:
    """First time (h) with tumor ≥ rise × (smallest earlier size) and above it; None if never."""
    t, y = np.asarray(time_h, dtype=float), np.asarray(tumor, dtype=float)
    if y.size < 2:
        return None
    nadir = np.minimum.accumulate(y)[:-1]  # smallest size strictly before each later point
    later = y[1:]
    hit = np.flatnonzero((later >= rise * nadir) & (later > nadir))
    return float(t[1:][hit[0]]) if hit.size else None


def durable_control(time_h, tumor, fraction: float = RESPONSE_FRACTION, hold_h: float | None = None) -> bool:
    """Tumor ≤ fraction × initial at every output time of the last `hold_h` hours (default `durable_hold_h`)."""
    t, y = np.asarray(time_h, dtype=float), np.asarray(tumor, dtype=float)
    if y.size == 0:
        return False
    hold = durable_hold_h(t[-1] - t[0]) if hold_h is None else float(hold_h)
    window = t >= t[-1] - hold
    return bool(np.all(y[window] <= fraction * y[0]))


def outcome_metrics(ts: pd.DataFrame, kills_per_nk: np.ndarray, nk_half_life_days: float | None) -> dict:
    """Tumor reduction, nadir, eradication, response/progression/durable control, NK persistence
    and the kills-per-NK distribution."""
    tumor = ts["tumor"].to_numpy(dtype=float)
    time_h = ts["time_h"].to_numpy(dtype=float)
    t0, tf = float(tumor[0]), float(tumor[-1])
    i_nadir = int(np.argmin(tumor))
    k = np.asarray(kills_per_nk, dtype=np.int64)
    hist = np.bincount(k).tolist() if k.size else [0]
    return {
        "tumor_initial": int(t0),
        "tumor_final": int(tf),
        "tumor_reduction": (t0 - tf) / t0 if t0 > 0 else 0.0,
        "nadir": int(tumor[i_nadir]),
        "nadir_time_h": float(ts["time_h"].iloc[i_nadir]),
        "eradicated": bool(tf == 0),
        "response_time_h": time_to_response(time_h, tumor),
        "progression_time_h": time_to_progression(time_h, tumor),
        "durable_control": durable_control(time_h, tumor),
        "durable_control_hold_h": durable_hold_h(time_h[-1] - time_h[0]),
        "nk_initial": int(ts["nk_live"].iloc[0]),
        "nk_final": int(ts["nk_live"].iloc[-1]),
        "nk_half_life_days_observed": None if nk_half_life_days is None else float(nk_half_life_days),
        "kills_car": int(ts["kills_car"].iloc[-1]),
        "kills_innate": int(ts["kills_innate"].iloc[-1]),
        "kills_adcc": int(ts["kills_adcc"].iloc[-1]),
        "kills_per_nk_mean": float(k.mean()) if k.size else 0.0,
        "kills_per_nk_max": int(k.max()) if k.size else 0,
        "fraction_nk_no_kill": float((k == 0).mean()) if k.size else 0.0,
        "kills_per_nk_hist": hist,
    }
