"""Outcome metrics of one run, computed from the model's time series and counters."""
from __future__ import annotations

import numpy as np
import pandas as pd

#: Every key of `outcome_metrics` (tests/test_metrics_registry.py keeps the two in step).
OUTCOME_METRICS = (
    "tumor_initial", "tumor_final", "tumor_reduction", "nadir", "nadir_time_h", "eradicated",
    "nk_initial", "nk_final", "nk_half_life_days_observed",
    "kills_car", "kills_innate", "kills_adcc", "kills_per_nk_mean", "kills_per_nk_max", "fraction_nk_no_kill",
    "kills_per_nk_hist",
)
#: List-valued metrics (list columns in sweep tables; no sensitivity indices).
LIST_METRICS = ("kills_per_nk_hist",)


def outcome_metrics(ts: pd.DataFrame, kills_per_nk: np.ndarray, nk_half_life_days: float | None) -> dict:
    """Tumor reduction, nadir, eradication, NK persistence and the kills-per-NK distribution."""
    tumor = ts["tumor"].to_numpy(dtype=float)
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
