"""Synthetic calibration problems: data simulated by nksim itself at known parameter values, for the
identifiability test (tests/test_calibration.py) and benchmark (benchmarks/calibration_identifiability.py).

`write_invitro_problem` simulates the in vitro assay (the packaged well, optionally smaller) at four
E:T ratios with `wells` replicate wells per ratio at the true values, and writes a data table (the
mean of the wells ± its standard error) plus a calibration file that fits the same parameters.
`uncertainty` says how the data and their uncertainty are made:

- a number σ (% points): one well per ratio plus Gaussian measurement noise N(0, σ²), stated as
  ± σ. This is exactly the generative model the stochastic acceptor assumes (with `replicates: 1`),
  so the 90 % credible intervals hold the true values 90 % of the time in expectation;
- `"sd"`: the mean of `wells` wells ± the SD of one well (conservative: the mean is more precise
  than stated), the quick test's choice;
- `"se"`: the mean ± its standard error. Also nominal, but the model's well-to-well noise is then
  larger than the stated uncertainty and the stochastic acceptor accepts very few candidates.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from sim import api, data
from sim.assays import assay_overrides
from sim.scenario.resolve import resolve
from sim.sweep.seeds import child_seed

from .spec import ObservableSpec, observe

ET_RATIOS = (1.0, 2.5, 5.0, 10.0)
LYSIS = {"columns": ["kills_car", "kills_innate", "kills_adcc"], "per_initial": "tumor", "scale": 100.0}
DEFAULT_PRIORS = {
    "nk.activation.half_activation": {"prior": "lognormal", "median": 1.5, "sigma": 1.0, "low": 0.1, "high": 30.0},
    "nk.killing.kill_time_min": {"prior": "lognormal", "median": 15.0, "sigma": 0.5, "low": 2.0, "high": 120.0},
}


def write_invitro_problem(folder: str | Path, truth: dict[str, float], *, times_h=(1.0, 2.0, 4.0), wells: int = 4,
                          size_um: float | None = None, targets: int | None = None, priors: dict | None = None,
                          population: int = 100, generations: int = 6, predictive_draws: int = 50, seed: int = 7,
                          data_seed: int = 12345, floor: float = 1.0, uncertainty: str | float = "se",
                          overrides: dict | None = None) -> Path:
    """Write `synthetic_lysis.csv` and `calibrate_synthetic.yaml` into `folder`; return the YAML path.

    `floor` (% points) is the smallest uncertainty, so a datum where every well agrees still has one."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    scenario = data.path("invitro_cytotoxicity.yaml")
    noise = None if isinstance(uncertainty, str) else float(uncertainty)
    if noise is None and uncertainty not in ("se", "sd") or noise is not None and not noise > 0:
        raise ValueError(f"uncertainty must be 'se', 'sd' or a positive number, got {uncertainty!r}")
    if noise is not None:
        wells = 1
    const: dict = dict(overrides or {})
    if size_um is not None:
        const["domain.size_um"] = [float(size_um), float(size_um)]
    if targets is not None:
        const["tumor.init.count"] = int(targets)
    base = resolve(scenario, const, "calibrate")
    n_t = int(base.scenario.tumor.init.count)
    spec = ObservableSpec(**LYSIS)
    rows, conditions = [], {}
    for i, et in enumerate(ET_RATIOS):
        name = f"et{et:g}"
        conditions[name] = {"assay": {"et": et}}
        seeds = [child_seed(c) for c in np.random.SeedSequence([data_seed, i]).spawn(wells)]
        ov = {**const, **assay_overrides(et, n_targets=n_t), **truth}
        ys = np.array([observe(spec, r.timeseries, r.metrics, times_h)
                       for r in (api.run(base, seed=s, days=max(times_h) / 24.0, overrides=ov) for s in seeds)])
        if noise is not None:
            rng = np.random.default_rng(np.random.SeedSequence([data_seed, i, 1]))
            values, unc = ys[0] + rng.normal(0.0, noise, len(times_h)), np.full(len(times_h), noise)
            how = f"one well + N(0, {noise:g}²) measurement noise"
        else:
            sd = ys.std(axis=0, ddof=1) if wells > 1 else np.zeros(len(times_h))
            values, unc = ys.mean(axis=0), np.maximum(sd / np.sqrt(wells) if uncertainty == "se" else sd, floor)
            how = f"mean of {wells} wells ± {'s.e.' if uncertainty == 'se' else 'SD of one well'}"
        for t, m, u in zip(times_h, values, unc):
            rows.append({"condition": name, "time": t, "observable": "lysis_pct", "value": round(float(m), 3),
                         "uncertainty": round(float(u), 3), "source": f"nksim synthetic: {how} at {truth}"})
    pd.DataFrame(rows).to_csv(folder / "synthetic_lysis.csv", index=False)
    doc = {"base": str(scenario), "calibrate": {
        "seed": seed, "parameters": priors or {p: DEFAULT_PRIORS[p] for p in truth}, "data": "synthetic_lysis.csv",
        "overrides": const, "conditions": conditions, "observables": {"lysis_pct": LYSIS},
        "population": population, "generations": generations, "predictive_draws": predictive_draws}}
    path = folder / "calibrate_synthetic.yaml"
    path.write_text(f"# Synthetic data from nksim at {truth} (sim/calibration/synthetic.py)\n"
                    + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path
