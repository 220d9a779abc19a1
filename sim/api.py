"""Python API mirroring the CLI: `load_scenario(path)` and `run(scenario) -> Result`."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__
from . import checkpoint as ckpt
from .config import Scenario, ScenarioError, coerce, load_scenario  # noqa: F401  (re-exported)
from .metrics import outcome_metrics
from .model import MIN_PER_DAY, TumorImmuneModel
from .therapy import resolve_product
from .output import atomic_dir, write_run
from .therapy.companions import therapy_metrics

TIMESERIES_COLUMNS = [
    "time_h", "tumor", "tumor_ag_pos", "tumor_ag_neg", "nk_live", "nk_exhausted",
    "kills_car", "kills_innate", "kills_adcc", "mean_ifng_ng_ml", "mean_tgfb_ng_ml", "mean_il15_ng_ml",
    "nk_blood",
]


@dataclass
class Result:
    """One finished run: its time series, summary (metrics, seed, resolved scenario) and snapshots."""

    timeseries: pd.DataFrame
    summary: dict
    snapshots: list[dict] = field(default_factory=list)
    out: Path | None = None

    @property
    def metrics(self) -> dict:
        return self.summary["metrics"]


def timeseries_frame(model: TumorImmuneModel) -> pd.DataFrame:
    """The DataCollector's model variables with integer columns typed as integers."""
    df = model.datacollector.get_model_vars_dataframe().reset_index(drop=True)
    df = df[TIMESERIES_COLUMNS + [c for c in df.columns if c not in TIMESERIES_COLUMNS]]  # + therapy columns
    for c in TIMESERIES_COLUMNS:
        if c not in ("time_h",) and not c.startswith("mean_"):
            df[c] = df[c].astype("int64")
    return df


def run(scenario: Any, seed: int | None = None, out: str | Path | None = None, progress: bool = False,
        days: float | None = None, overrides: dict | None = None,
        checkpoint: str | Path | None = None, checkpoint_every_h: float | None = None) -> Result:
    """Run a scenario (Scenario, dict or YAML path) and return its Result; write it to `out` if given.

    With `checkpoint`, the state is saved there every `checkpoint_every_h` simulated hours, and a run
    whose checkpoint already exists resumes from it (bit-identical to an uninterrupted run).
    """
    cfg = coerce(scenario, overrides)
    if seed is None:
        seed = cfg.seed
    cfg = cfg.model_copy(update={"seed": int(seed)})
    days = cfg.time.days if days is None else float(days)
    t0 = time.perf_counter()
    snap_every = cfg.time.snapshot_every_h * 60.0 if cfg.output.snapshots and cfg.time.snapshot_every_h > 0 else None
    if checkpoint is not None and cfg.domain.space == "well_mixed":
        raise ScenarioError("domain.space", "checkpoints cover the lattice model only; well-mixed runs take seconds, run them without one")
    if checkpoint is not None and Path(checkpoint).exists():
        model, snaps = ckpt.load(checkpoint)
        if model.config != resolve_product(cfg):
            raise ScenarioError("", f"checkpoint {checkpoint} was written for a different scenario or seed; delete it to start afresh")
    elif cfg.domain.space == "well_mixed":
        from .wellmixed import WellMixedModel

        model = WellMixedModel(cfg, rng=int(seed))
        snaps = []  # no positions to snapshot
    else:
        model = TumorImmuneModel(cfg, rng=int(seed))
        snaps = [model.snapshot()] if snap_every else []
    n_steps = int(round(days * MIN_PER_DAY / model.dt))
    done = int(round(model.now_min / model.dt))
    ck_every = int(round(checkpoint_every_h * 60 / model.dt)) if checkpoint and checkpoint_every_h else 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_steps, initial=done, unit="step", desc=cfg.name, dynamic_ncols=True, mininterval=0.5)
    next_snap = (len(snaps)) * snap_every if snap_every else None
    for k in range(done, n_steps):
        model.step()
        if snap_every and model.now_min + 1e-9 >= next_snap:
            snaps.append(model.snapshot())
            next_snap += snap_every
        if ck_every and (k + 1) % ck_every == 0 and k + 1 < n_steps:
            ckpt.save(model, checkpoint, snaps)
        if bar is not None and (k % 50 == 0 or k == n_steps - 1):
            bar.set_postfix_str(f"t={model.now_min / MIN_PER_DAY:.2f} d tumor={model.tumor_count()} NK={model.nk_live()}",
                                refresh=False)
            bar.update(k + 1 - bar.n)  # redraws at most every `mininterval` seconds
    if bar is not None:
        bar.close()
    ts = timeseries_frame(model)
    summary = {
        "scenario": model.config.model_dump(mode="json"),  # with product presets resolved
        "seed": int(seed),
        "version": __version__,
        "days": days,
        "wall_time_s": time.perf_counter() - t0,
        "metrics": {**outcome_metrics(ts, model.kills_per_nk(), model.observed_nk_half_life_days()),
                    **therapy_metrics(model)},  # + toxicity indices, GvHD flag, chemo (sim/therapy/companions.py)
        # product lot, QC, cold chain, infusions, suicide switch (lattice model only)
        "therapy": model.therapy.summary() if hasattr(model, "therapy") else None,
    }
    result = Result(ts, summary, snaps)
    if out is not None:
        out = Path(out)
        with atomic_dir(out) as tmp:
            write_run(tmp, ts, summary, snaps, figure=cfg.output.figure)
        result.out = out
    if checkpoint is not None and Path(checkpoint).exists():
        Path(checkpoint).unlink()
    return result


def run_arms(scenario: Any, seed: int | None = None, out: str | Path | None = None, progress: bool = False,
             days: float | None = None, overrides: dict | None = None) -> dict[str, Result]:
    """Run every arm of a scenario (`arms:`) with the same seed, so the tumors start identical.

    Each arm is written to `out/<arm>/`; with `out`, a side-by-side figure goes to `out/compare.png`."""
    from .config import arm_scenarios

    cfg = coerce(scenario, overrides)
    seed = cfg.seed if seed is None else int(seed)
    results = {}
    for name, arm_cfg in arm_scenarios(cfg):
        results[name] = run(arm_cfg, seed=seed, out=None if out is None else Path(out) / name, progress=progress, days=days)
    if out is not None:
        from .compare import write_comparison

        write_comparison(results, Path(out))
    return results


def warm_up() -> None:
    """Compile (or load from cache) every Numba kernel once, on a tiny model."""
    m = TumorImmuneModel({"domain": {"size_um": [200.0]}, "tumor": {"init": {"count": 20}}, "nk": {"dose": {"cells": 5}}}, rng=0)
    for _ in range(10):
        m.step()
