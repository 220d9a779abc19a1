"""Sweep metrics come from the modules that compute them (issue 10): any metric of summary.json can be
swept, and the declared names cannot drift from what the runs write."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import yaml

from helpers import tiny_sweep_base
from sim.metrics import OUTCOME_METRICS, outcome_metrics
from sim.output import read_parquet
from sim.sweep import KNOWN_METRICS, run_sweep


def test_outcome_metric_names_match_what_is_computed():
    ts = pd.DataFrame({"time_h": [0.0, 1.0], "tumor": [10, 5], "nk_live": [3, 2],
                       "kills_car": [0, 4], "kills_innate": [0, 1], "kills_adcc": [0, 0]})
    assert tuple(outcome_metrics(ts, np.array([0, 2, 3]), None)) == OUTCOME_METRICS


def test_toxicity_metrics_can_be_swept(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({**tiny_sweep_base(5), "sweep": {
        "design": "grid", "parameters": {"nk.dose.cells": [5, 30]}, "replicates": 1,
        "metrics": ["crs_any_rate", "cytokine_peak_ng_ml_day", "tumor_final"]}}))
    run_sweep(spec, tmp_path / "out", scheduler="inline", progress=False)
    summ = read_parquet(tmp_path / "out" / "summary.parquet")
    assert {"crs_any_rate", "cytokine_peak_ng_ml_day", "tumor_final"} <= set(summ.columns)
    assert summ["cytokine_peak_ng_ml_day"].iloc[1] > summ["cytokine_peak_ng_ml_day"].iloc[0] > 0
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert man["provenance"]["version"] and "numba" in man["provenance"]["libraries"]
    assert "crs_any_rate" in KNOWN_METRICS
