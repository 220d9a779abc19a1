"""Python API mirroring the CLI: `load_scenario(path)`, `run(scenario) -> Result`, `run_arms`."""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from . import checkpoint as ckpt
from . import safe_io
from .interrupts import interrupts_between_steps
from .guard import NumericGuard
from .metrics import outcome_metrics
from .model import TumorImmuneModel
from .output import TIMESERIES_COLUMNS, LazySnapshots, SnapshotSink, atomic_dir, write_run
from .provenance import provenance
from .scenario import Scenario, ScenarioError, coerce, load_scenario  # noqa: F401  (re-exported)
from .scenario.resolve import UNTREATED_ARM, arm_effectives, is_untreated, resolve, untreated_effective
from .therapy.companions import therapy_metrics
from .units import MIN_PER_DAY
from .wellmixed import WellMixedModel


@dataclass
class Result:
    """One finished run: its time series, summary (metrics, seed, resolved scenario) and snapshots
    (read from the run folder when asked for if the run was written, else kept in memory)."""

    timeseries: pd.DataFrame
    summary: dict
    snapshots: Sequence[dict] = field(default_factory=list)
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
        checkpoint: str | Path | None = None, checkpoint_every_h: float | None = None,
        overwrite: bool = False, restart: bool = False, on_resume: Callable[[float], None] | None = None) -> Result:
    """Run a scenario (YAML path, dict, Scenario or resolved Effective) and return its Result; write it to
    `out` if given. `seed`, `days` and `overrides` are layers of the one resolution step (`resolve`).

    `out` must be a new folder, an empty one, or (with `overwrite`) an earlier nksim run folder; anything
    else raises OutputError before the run starts (sim/safe_io.py). The folder is built next to `out`
    (snapshots are streamed into it as they are taken) and appears only when complete.

    With `checkpoint`, the state is saved there every `checkpoint_every_h` simulated hours, and a run
    whose checkpoint already exists resumes from it (bit-identical to an uninterrupted run) if it was
    written by this scenario, seed and nksim version; otherwise CheckpointError, unless `restart`
    (which deletes it and starts afresh). `on_resume(t_h)` is called when a checkpoint is resumed.
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
    if out is not None:
        out = Path(out)
        safe_io.check_target(out, overwrite=overwrite, name=cfg.name)  # before anything is touched
    checkpoint = None if checkpoint is None else Path(checkpoint)
    if checkpoint is not None:
        safe_io.check_file_target(checkpoint)  # a folder, FIFO or link there is refused before the lock
    # one run per checkpoint: a second process on the same path is refused before it touches anything
    with (ckpt.exclusive(checkpoint) if checkpoint is not None else nullcontext()):
        return _run_checked(eff, cfg, seed, days, out, overwrite, progress, checkpoint, checkpoint_every_h, restart,
                            on_resume, snap_every, t0)


def _run_checked(eff, cfg, seed, days, out, overwrite, progress, checkpoint, checkpoint_every_h, restart, on_resume,
                 snap_every, t0) -> Result:
    """`run` once its input is checked and its checkpoint (if any) is held."""
    if checkpoint is not None:
        safe_io.clean_leftovers(checkpoint)
        ckpt.check_snapshot_store(checkpoint)  # nksim's own or absent (and dropped without its checkpoint)
        if restart and checkpoint.exists():
            checkpoint.unlink()
            ckpt.remove_snapshot_store(checkpoint)
    with (atomic_dir(out, overwrite=overwrite, name=cfg.name) if out is not None else nullcontext(None)) as tmp:
        snaps = SnapshotSink(None if tmp is None else tmp / "snapshots")
        if checkpoint is not None and checkpoint.exists():
            model, _ = ckpt.load(checkpoint, expect=(cfg, seed), snapshot_sink=snaps)
            if on_resume is not None:
                on_resume(model.now_min / 60.0)
        elif cfg.domain.space == "well_mixed":
            model = WellMixedModel(eff, rng=seed)  # no positions to snapshot
        else:
            model = TumorImmuneModel(eff, rng=seed)
            if snap_every:
                snaps.add(model.snapshot())
        guard = NumericGuard(model)
        guard.check_all()
        n_steps = int(round(days * MIN_PER_DAY / model.dt))
        done = int(round(model.now_min / model.dt))
        ck_every = int(round(checkpoint_every_h * 60 / model.dt)) if checkpoint and checkpoint_every_h else 0
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_steps, initial=done, unit="step", desc=cfg.name, dynamic_ncols=True, mininterval=0.5)
        next_snap = (len(snaps)) * snap_every if snap_every else None
        try:
            with interrupts_between_steps() as stop:  # Ctrl-C/SIGTERM stop the run between two steps
                for k in range(done, n_steps):
                    model.step()
                    guard.after_step()
                    if snap_every and model.now_min + 1e-9 >= next_snap:
                        snaps.add(model.snapshot())  # straight to the temporary run folder
                        next_snap += snap_every
                    if ck_every and (k + 1) % ck_every == 0 and k + 1 < n_steps:
                        ckpt.save(model, checkpoint, snaps.items, file_sums=snaps.sha256)
                    if bar is not None and (k % 50 == 0 or k == n_steps - 1):
                        bar.set_postfix_str(f"t={model.now_min / MIN_PER_DAY:.2f} d tumor={model.tumor_count()} NK={model.nk_live()}",
                                            refresh=False)
                        bar.update(k + 1 - bar.n)  # redraws at most every `mininterval` seconds
                    stop.check()
        finally:
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
                        **therapy_metrics(model),  # + toxicity indices, GvHD flag, chemo (sim/therapy/companions.py)
                        # tumor at the domain boundary, fill fraction, crowded-out immune cells (lattice model only)
                        **(model.domain_watch.metrics() if hasattr(model, "domain_watch") else {})},
            # product lot, QC, cold chain, infusions, suicide switch (lattice model only)
            "therapy": model.therapy.summary() if hasattr(model, "therapy") else None,
            # the kernel parameters the run started from (resolution + lot) and the declared time-varying effects
            "kernel_parameters": model.p_nk_base._asdict() if hasattr(model, "p_nk_base") else None,
            "modulators": model.modulation.describe() if hasattr(model, "modulation") else [],
        }
        if tmp is not None:
            write_run(tmp, ts, summary, [], figure=cfg.output.figure)
    if out is not None:
        result = Result(ts, summary, LazySnapshots(out / "snapshots"), out)
    else:
        result = Result(ts, summary, snaps.items)
    if checkpoint is not None:
        if checkpoint.exists():
            checkpoint.unlink()
        ckpt.remove_snapshot_store(checkpoint)  # after the checkpoint: a store alone is dropped by the next run
    return result


def run_arms(scenario: Any, seed: int | None = None, out: str | Path | None = None, progress: bool = False,
             days: float | None = None, overrides: dict | None = None, overwrite: bool = False,
             untreated: bool = True) -> dict[str, Result]:
    """Run every arm of a scenario (`arms:`) with the same seed, so the tumors start identical.

    With `untreated` (the default) an untreated control arm named 'untreated' runs first (no cells,
    infusions, lymphodepletion or drugs: `resolve.untreated_overrides`, one more layer like an arm's
    `set`), unless an arm is untreated already or an arm has that name.

    Each arm is the scenario's document with the arm's `set` as one more resolution layer, so an arm
    runs exactly what the same overrides give when run alone. Each arm is written to `out/<arm>/`;
    with `out`, a side-by-side figure goes to `out/compare.png`. `out` follows the rules of `run`
    (a new or empty folder, or an earlier nksim arms folder with `overwrite`); it appears when every
    arm is complete."""
    eff = resolve(scenario, overrides)
    arms = list(arm_effectives(eff))
    if untreated and not any(name == UNTREATED_ARM or is_untreated(a.scenario) for name, a in arms):
        arms.insert(0, (UNTREATED_ARM, untreated_effective(eff)))
    if out is None:
        return {name: run(arm_eff, seed=seed, progress=progress, days=days) for name, arm_eff in arms}
    from .compare import write_comparison

    out = Path(out)
    results = {}
    with atomic_dir(out, overwrite=overwrite, kind="arms", name=eff.scenario.name) as tmp:
        for name, arm_eff in arms:
            results[name] = run(arm_eff, seed=seed, out=tmp / name, progress=progress, days=days)
        write_comparison(results, tmp)
    for name, r in results.items():  # the arms now live in `out`
        r.out = out / name
        r.snapshots = LazySnapshots(out / name / "snapshots")
    return results


def warm_up() -> None:
    """Compile (or load from cache) every Numba kernel once, on a tiny model."""
    m = TumorImmuneModel({"domain": {"size_um": [200.0]}, "tumor": {"init": {"count": 20}}, "nk": {"dose": {"cells": 5}}}, rng=0)
    for _ in range(10):
        m.step()
