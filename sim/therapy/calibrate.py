"""Calibrate the CRS/ICANS E50s to JULIET (Schuster 2019, literature.md §6) on the CAR-T arm of a scenario.

`python -m sim.therapy.calibrate [scenario] [n_seeds]` runs the arm over seeds, takes the geometric-mean
exposure E*, and solves Φ((ln E* − ln E50)/σ) = target rate for each E50 (the values in sim/scenario/comparator.py)."""
from __future__ import annotations

import math
import sys

import numpy as np
from scipy.stats import norm

JULIET = {"crs_any": 0.58, "crs_grade3": 0.22, "icans_any": 0.21, "icans_grade3": 0.12}


def e50_for(exposure: float, rate: float, sd: float) -> float:
    """E50 that makes a probit model predict `rate` at `exposure`."""
    return exposure * math.exp(-sd * norm.ppf(rate))


def calibrate(scenario: str | None = None, n_seeds: int = 5, arm: str = "cart") -> dict:
    """Exposures of the arm over seeds and the E50s that reproduce JULIET at their geometric mean."""
    from ..api import run
    from .. import data
    from ..scenario import arm_scenarios, load_scenario

    cfg = dict(arm_scenarios(load_scenario(scenario or data.path("cd19_carnk_vs_cart.yaml"))))[arm]
    cfg = cfg.model_copy(update={"output": cfg.output.model_copy(update={"snapshots": False, "figure": False})})
    exposures = [run(cfg, seed=cfg.seed + k).metrics["cytokine_peak_ng_ml_day"] for k in range(n_seeds)]
    e = float(np.exp(np.mean(np.log(exposures))))
    sd = cfg.toxicity.crs.susceptibility_sd
    return {"exposures": exposures, "geomean": e, **{k: e50_for(e, r, sd) for k, r in JULIET.items()}}


if __name__ == "__main__":
    args = sys.argv[1:]
    out = calibrate(*(args[:1] or []), *(int(a) for a in args[1:2]))
    for k, v in out.items():
        print(k, v)
