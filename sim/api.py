"""Python API mirroring the CLI: `load_scenario(path)`, `run(scenario) -> Result`, `run_arms`."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import checkpoint as ckpt
from .metrics import outcome_metrics
from .model import TumorImmuneModel
from .output import TIMESERIES_COLUMNS, atomic_dir, write_run
from .provenance import provenance
from .scenario import Scenario, ScenarioError, coerce, load_scenario  # noqa: F401  (re-exported)
from .scenario.resolve import arm_effectives, resolve
from .therapy.companions import therapy_metrics
from .units import MIN_PER_DAY
from .wellmixed import WellMixedModel


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
    df = df[list(TIMESERIES_COLUMNS) + [c for c in df.columns if c not in TIMESERIES_COLUMNS]]  # + therapy columns
    for c in TIMESERIES_COLUMNS:
        if c not in ("time_h",) and not c.startswith("mean_"):
            df[c] = df[c].astype("int64")
    return df


def run(scenario: Any, seed: int | None = None, out: str | Path | None = None, progress: bool = False,
        days: float | None = None, overrides: dict | None = None,
        checkpoint: str | Path | None = None, checkpoint_every_h: float | None = None) -> Result:
    """Run a scenario (YAML path, dict, Scenario or resolved Effective) and return its Result; write it to
    `out` if given. `seed`, `days` and `overrides` are layers of the one resolution step (`resolve`).

    With `checkpoint`, the state is saved there every `checkpoint_every_h` simulated hours, and a run
    whose checkpoint already exists resumes from it (bit-identical to an uninterrupted run).
    """
    eff = resolve(scenario, overrides)
    run_layer = {k: v for k, v in (("seed", None if seed is None else int(seed)),
                                   ("time.days", None if days is None else float(days))) if v is not None}
    eff = eff.with_layer("run", run_layer)
    cfg = eff.scenario
    seed, days = cfg.seed, cfg.time.days
    t0 = time.perf_counter()
    snap_every = cfg.time.snapshot_every_h * 60.0 if cfg.output.snapshots and cfg.time.snapshot_every_h > 0 else None
    if checkpoint is not None and cfg.domain.space == "well_mixed":
        raise ScenarioError("domain.space", "checkpoints cover the lattice model only; well-mixed runs take seconds, run them without one")
    if checkpoint is not None and Path(checkpoint).exists():
        model, snaps = ckpt.load(checkpoint)
        if model.config.model_dump() != cfg.model_dump():
            raise ScenarioError("", f"checkpoint {checkpoint} was written for a different scenario or seed; delete it to start afresh")
    elif cfg.domain.space == "well_mixed":
        model = WellMixedModel(eff, rng=seed)
        snaps = []  # no positions to snapshot
    else:
        model = TumorImmuneModel(eff, rng=seed)
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
        "scenario": cfg.model_dump(mode="json"),  # the effective scenario (presets, rules and overrides applied)
        "origins": eff.provenance(),  # where every non-default value came from: user, preset:<p>, arm:<a>, sweep, run
        "seed": int(seed),
        "days": days,
        **provenance(),  # nksim version, git commit, library versions, platform
        "wall_time_s": time.perf_counter() - t0,
        "metrics": {**outcome_metrics(ts, model.kills_per_nk(), model.observed_nk_half_life_days()),
                    **therapy_metrics(model)},  # + toxicity indices, GvHD flag, chemo (sim/therapy/companions.py)
        # product lot, QC, cold chain, infusions, suicide switch (lattice model only)
        "therapy": model.therapy.summary() if hasattr(model, "therapy") else None,
        # the kernel parameters the run started from (resolution + lot) and the declared time-varying effects
        "kernel_parameters": model.p_nk_base._asdict() if hasattr(model, "p_nk_base") else None,
        "modulators": model.modulation.describe() if hasattr(model, "modulation") else [],
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

    Each arm is the scenario's document with the arm's `set` as one more resolution layer, so an arm
    runs exactly what the same overrides give when run alone. Each arm is written to `out/<arm>/`;
    with `out`, a side-by-side figure goes to `out/compare.png`."""
    eff = resolve(scenario, overrides)
    results = {}
    for name, arm_eff in arm_effectives(eff):
        results[name] = run(arm_eff, seed=seed, out=None if out is None else Path(out) / name, progress=progress, days=days)
    if out is not None:
        from .compare import write_comparison

        write_comparison(results, Path(out))
    return results


def warm_up() -> None:
    """Compile (or load from cache) every Numba kernel once, on a tiny model."""
    m = TumorImmuneModel({"domain": {"size_um": [200.0]}, "tumor": {"init": {"count": 20}}, "nk": {"dose": {"cells": 5}}}, rng=0)
    for _ in range(10):
        m.step()
