"""Sweep execution: outputs, seeds recorded, resume after kill -9 (byte-identical parquet),
failure isolation on a local process cluster, sensitivity indices, CLI errors, and
mesa.batch_run giving the same numbers as `nksim sweep` for the same seeds."""
import json
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from sim.output import read_parquet as read
from sim.sweep import run_sweep
from sim.sweep.runner import is_done
from sim.sweep.spec import load_sweep
from sim.sweep.testing import FakeRunner

from helpers import tiny_sweep_base, write_sweep

ROOT = Path(__file__).resolve().parents[1]
BASE = tiny_sweep_base(seed=7)


write = partial(write_sweep, default_base=BASE)




GRID = {"parameters": {"nk.il15.mode": ["none", "secreted"], "nk.persistence.half_life_days": [3, 7, 14]}, "replicates": 4}


def test_inline_sweep_outputs_and_recorded_seeds(tmp_path):
    spec = write(tmp_path, GRID)
    res = run_sweep(spec, tmp_path / "out", scheduler="inline", progress=False, runner=FakeRunner())
    # 6 points x 4 replicates, then the untreated control once per replicate seed (tests/test_sweep_control.py)
    assert (res.runs, res.done, res.failed, res.executed, res.reused) == (28, 28, 0, 28, 0) and res.complete
    out = tmp_path / "out"
    summ, ts = read(out / "summary.parquet"), read(out / "timeseries.parquet")
    man = json.loads((out / "manifest.json").read_text())
    assert list(summ.columns[:7]) == ["run_id", "point", "replicate", "seed", "control", "nk.il15.mode",
                                      "nk.persistence.half_life_days"]
    assert {"tumor_final", "tumor_reduction", "eradicated", "kills_per_nk_hist"} <= set(summ.columns)
    assert summ["eradicated"].dtype == bool and summ["tumor_final"].dtype == np.int64
    design = summ[~summ["control"]]
    assert list(zip(design["point"], design["replicate"])) == [(p, r) for p in range(6) for r in range(4)]
    assert list(summ["replicate"][24:]) == [0, 1, 2, 3] and summ["point"][24:].isna().all()
    # seeds: one per replicate, shared by every design point (paired curves), recorded everywhere
    assert man["replicate_seeds"] == load_sweep(spec).seeds
    assert (summ.groupby("replicate")["seed"].nunique() == 1).all()
    assert list(summ.groupby("replicate")["seed"].first()) == man["replicate_seeds"]
    for row in summ.itertuples():
        assert json.loads((out / "runs" / row.run_id / "summary.json").read_text())["seed"] == row.seed
    assert [r["seed"] for r in man["runs"]] == list(summ["seed"])
    assert man["status"] == "complete" and man["design"] == "grid" and man["nksim_version"]
    assert all(r["status"] == "done" and r["attempts"] == 1 for r in man["runs"])
    # tidy long time series: every run's rows, parameters repeated, no wall-clock values in the parquet files
    n_t = int(BASE["time"]["days"] * 24 / BASE["time"]["output_every_h"]) + 1
    assert len(ts) == 28 * n_t and ts.groupby("run_id").size().eq(n_t).all()
    assert {"time_h", "tumor", "nk_live", "kills_car", "nk.il15.mode"} <= set(ts.columns)
    assert not any("wall" in c for c in list(summ.columns) + list(ts.columns))
    # a second call reuses everything and rewrites identical files
    before = [(out / f).read_bytes() for f in ("summary.parquet", "timeseries.parquet")]
    again = run_sweep(spec, out, scheduler="inline", progress=False, runner=FakeRunner())
    assert (again.executed, again.reused) == (0, 28)
    assert [(out / f).read_bytes() for f in ("summary.parquet", "timeseries.parquet")] == before
    # a run folder missing a file is never taken as complete: that run runs again
    victim = summ["run_id"].iloc[5]
    (out / "runs" / victim / "timeseries.parquet").unlink()
    third = run_sweep(spec, out, scheduler="inline", progress=False, runner=FakeRunner())
    assert (third.executed, third.reused) == (1, 27) and is_done(out / "runs", victim)
    assert [(out / f).read_bytes() for f in ("summary.parquet", "timeseries.parquet")] == before


def _wait_for_runs(runs: Path, n: int, proc, timeout: float = 90) -> int:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        done = [p for p in runs.glob("*") if not p.name.startswith(".")] if runs.is_dir() else []
        if len(done) >= n:
            return len(done)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    raise AssertionError("sweep made no progress")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def test_resume_after_kill_9_is_byte_identical(tmp_path):
    """kill -9 a real `python -m sim.sweep` (local worker processes) mid-way, rerun the same
    command: only the missing runs run, and the final parquet files equal an uninterrupted sweep's."""
    spec = write(tmp_path, GRID)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "sim.sweep", str(spec), "--out", str(out), "--workers", "2", "--no-progress",
           "--runner", "sim.sweep.testing:FakeRunner"]
    env = {**os.environ, "NKSIM_FAKE_SLEEP_S": "0.25"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        n_before = _wait_for_runs(out / "runs", 5, proc)
        os.kill(proc.pid, signal.SIGKILL)  # the sweep process only; its workers exit when it dies
        proc.wait(timeout=30)
        t0 = time.monotonic()
        while _group_alive(proc.pid) and time.monotonic() - t0 < 20:
            time.sleep(0.1)
        assert not _group_alive(proc.pid), "worker processes outlived the killed sweep"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        try:  # any worker of ours still alive (the group we started)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    done_at_kill = [p.name for p in (out / "runs").iterdir() if not p.name.startswith(".")]
    assert 5 <= len(done_at_kill) < 28, n_before  # 24 design runs + 4 untreated control runs
    assert not (out / "summary.parquet").exists()
    # debris of a half-written run and a truncated manifest must not be taken as complete
    rid = next(r.run_id for r in load_sweep(spec).runs if r.run_id not in done_at_kill)
    junk = out / "runs" / f".tmp-{rid}-999-deadbeef"
    junk.mkdir(parents=True)
    (junk / "summary.json").write_text('{"metrics": {"tumor_fi')
    (out / "manifest.json").write_text((out / "manifest.json").read_text()[:50])

    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr[-3000:]
    man = json.loads((out / "manifest.json").read_text())
    last = man["invocations"][-1]
    assert last["reused"] == len(done_at_kill) and last["executed"] == 28 - len(done_at_kill)
    assert not junk.exists() and man["status"] == "complete"

    ref = tmp_path / "uninterrupted"
    run_sweep(spec, ref, scheduler="inline", progress=False, runner=FakeRunner())
    for f in ("summary.parquet", "timeseries.parquet"):
        assert (out / f).read_bytes() == (ref / f).read_bytes(), f


def test_failures_are_isolated_recorded_and_retried_once(tmp_path):
    """On local worker processes: a run that raises is retried once then recorded as failed; a run
    whose worker process dies (os._exit) is retried and succeeds; the other runs (and the untreated
    control runs) all finish."""
    spec = write(tmp_path, {"parameters": {"nk.persistence.half_life_days": [3, 5, 13, 20]}, "replicates": 2})
    runner = FakeRunner(fail_if={"nk.persistence.half_life_days": 13.0}, crash_if={"nk.persistence.half_life_days": 5.0},
                        marker_dir=str(tmp_path / "markers"))
    out = tmp_path / "out"
    res = run_sweep(spec, out, workers=2, progress=False, runner=runner)
    assert (res.unique, res.done, res.failed) == (10, 8, 2) and not res.complete
    man = json.loads((out / "manifest.json").read_text())
    assert [r["status"] for r in man["runs"] if r["control"]] == ["done", "done"]
    by_hl = {}
    for r in (r for r in man["runs"] if not r["control"]):
        by_hl.setdefault(man["points"][r["point"]]["nk.persistence.half_life_days"], []).append(r)
    for r in by_hl[13.0]:
        assert r["status"] == "failed" and r["attempts"] == 2 and len(r["errors"]) == 2
        assert "failing on purpose" in r["errors"][0]["error"] and "Traceback" in r["errors"][0]["error"]
    for r in by_hl[5.0]:
        assert r["status"] == "done" and r["attempts"] == 2
        assert "died" in r["errors"][0]["error"] or "KilledWorker" in r["errors"][0]["error"]
    for hl in (3.0, 20.0):
        assert all(r["status"] == "done" and r["attempts"] == 1 for r in by_hl[hl])
    assert man["status"] == "incomplete" and man["counts"]["failed"] == 2
    summ = read(out / "summary.parquet")
    assert len(summ) == 8 and 13.0 not in set(summ["nk.persistence.half_life_days"])
    # the next invocation retries only the failed runs (here they now pass)
    res2 = run_sweep(spec, out, scheduler="inline", progress=False, runner=FakeRunner())
    assert (res2.executed, res2.reused, res2.failed) == (2, 8, 0) and res2.complete
    man = json.loads((out / "manifest.json").read_text())
    assert [r["attempts"] for r in man["runs"]
            if not r["control"] and man["points"][r["point"]]["nk.persistence.half_life_days"] == 13.0] == [3, 3]
    assert len(read(out / "summary.parquet")) == 10


@pytest.mark.parametrize("design, cols", [("sobol", ["S1", "S1_conf", "ST", "ST_conf"]),
                                          ("morris", ["mu", "mu_star", "mu_star_conf", "sigma"])])
def test_sensitivity_indices(tmp_path, design, cols):
    spec = write(tmp_path, {"design": design, "samples": 8, "metrics": ["tumor_reduction", "nk_final", "eradicated"],
                            "overrides": {"time.days": 4.0, "nk.dose.cells": 400},
                            "parameters": {"nk.persistence.half_life_days": {"low": 1, "high": 20},
                                           "nk.receptors.car_expression": {"low": 0.2, "high": 2.0}}})
    out = tmp_path / design
    run_sweep(spec, out, scheduler="inline", progress=False, runner=FakeRunner())
    sens = read(out / "sensitivity.parquet")
    assert list(sens.columns) == ["parameter", "metric", *cols]
    nk = sens[sens["metric"] == "nk_final"].set_index("parameter")
    assert set(nk.index) == {"nk.persistence.half_life_days", "nk.receptors.car_expression"}
    # the synthetic NK count depends on the half-life, not on CAR expression
    key = "ST" if design == "sobol" else "mu_star"
    assert nk.loc["nk.persistence.half_life_days", key] > 5 * abs(nk.loc["nk.receptors.car_expression", key])
    summ = read(out / "summary.parquet")
    assert len(summ) == 8 * (4 if design == "sobol" else 3) + 1 and summ["control"].sum() == 1  # + the untreated control


def test_cli_bad_input_exits_2_with_one_line(tmp_path):
    spec = write(tmp_path, {"parameters": {"nk.persistence.half_life_dayz": [3]}})
    r = subprocess.run([sys.executable, "-m", "sim", "sweep", str(spec), "--out", str(tmp_path / "o")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "sweep.parameters.nk.persistence.half_life_dayz" in r.stderr
    assert not (tmp_path / "o").exists()


def test_mesa_batch_run_matches_sweep_for_the_same_seeds(tmp_path):
    """mesa.batch_run(TumorImmuneModel, parameters=..., rng=seeds) reproduces the sweep's numbers."""
    import mesa

    from sim.model import TumorImmuneModel

    spec = write(tmp_path, {"parameters": {"nk.persistence.half_life_days": [3.0, 14.0]}, "replicates": 2})
    out = tmp_path / "real"
    res = run_sweep(spec, out, scheduler="inline", progress=False)
    assert res.complete
    plan = load_sweep(spec)
    summ, ts = read(out / "summary.parquet"), read(out / "timeseries.parquet")
    n_steps = int(round(BASE["time"]["days"] * 1440 / plan.base["time"]["dt_min"]))
    batch = mesa.batch_run(
        TumorImmuneModel, parameters={"config": [plan.base], "nk.persistence.half_life_days": [3.0, 14.0]},
        rng=plan.seeds, max_steps=n_steps, data_collection_period=-1, number_processes=1, display_progress=False,
    )
    assert len(batch) == 4
    seed_of = dict(enumerate(plan.seeds))
    for b in batch:
        seed = seed_of[b["iteration"]]
        row = summ[(summ["seed"] == seed) & (summ["nk.persistence.half_life_days"] == b["nk.persistence.half_life_days"])]
        assert len(row) == 1
        row = row.iloc[0]
        assert (b["tumor"], b["nk_live"]) == (row["tumor_final"], row["nk_final"])
        assert (b["kills_car"], b["kills_innate"], b["kills_adcc"]) == (row["kills_car"], row["kills_innate"], row["kills_adcc"])
        last = ts[ts["run_id"] == row["run_id"]].iloc[-1]
        for col in ("time_h", "tumor", "tumor_ag_pos", "tumor_ag_neg", "nk_live", "nk_exhausted", "mean_ifng_ng_ml", "mean_tgfb_ng_ml"):
            assert b[col] == pytest.approx(last[col], rel=1e-12, abs=1e-12), col
        assert is_done(out / "runs", row["run_id"])
