"""Sweep execution: Dask workers (a local process cluster or a remote scheduler), isolation, resume.

Workers run one simulation each and send the run's files back; only this process writes the
output folder, each run atomically as ``runs/<run_id>/``, so a killed sweep resumes where it stopped
and the final parquet files are rebuilt from the run folders, identical to an uninterrupted sweep.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sim.provenance import provenance
from sim.safe_io import rewrite_in_place, sha256_file

from .aggregate import write_outputs
from .executors import _Dask, _Inline
from .spec import Plan, load_sweep
from .store import SweepError, _json_default, _load_manifest, _locked, _now, atomic_write_bytes, commit_run, default_out, is_done, verify_run  # noqa: F401 (SweepError, is_done re-exported)
from .worker import execute_run, resolve_runner, warm_up  # noqa: F401  (re-exported)

MAX_ATTEMPTS = 2  # a failing run is retried once per invocation
MANIFEST_EVERY_S = 2.0

log = logging.getLogger(__name__)


@dataclass
class SweepOutcome:
    """What run_sweep did: counts and the files it wrote."""

    out: Path
    runs: int
    unique: int
    done: int
    failed: int
    executed: int
    reused: int
    files: list[Path] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.done == self.unique


# ---------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------


class _State:
    """Per-run bookkeeping (attempts, errors, status) carried across invocations via the manifest."""

    def __init__(self, plan: Plan, runs_dir: Path, old: dict):
        self.plan = plan
        self.runs_dir = runs_dir
        prev = {r["run_id"]: r for r in old.get("runs", []) if isinstance(r, dict) and "run_id" in r}
        self.info: dict[str, dict] = {}
        for rs in plan.runs:
            if rs.run_id in self.info:
                continue
            p = prev.get(rs.run_id, {})
            why = verify_run(runs_dir, rs.run_id)
            errors = list(p.get("errors", []))
            if why is not None and (runs_dir / rs.run_id).exists():  # damaged since it was written: run it again
                log.warning("run %s does not verify (%s); running it again", rs.run_id, why)
                errors.append({"attempt": None, "at": _now(), "worker": None,
                               "error": f"run folder did not verify on resume ({why}); run again"})
            self.info[rs.run_id] = {
                "status": "done" if why is None else "pending",
                "attempts": int(p.get("attempts", 0)),
                "errors": errors,
                "wall_time_s": p.get("wall_time_s"),
                "worker": p.get("worker"),
                "finished_at": p.get("finished_at"),  # Unix time the run ended on its worker
            }
        self.invocations = list(old.get("invocations", []))

    def counts(self) -> dict:
        st = [v["status"] for v in self.info.values()]
        return {
            "runs": len(self.plan.runs),
            "unique": len(self.info),
            "done": st.count("done"),
            "failed": st.count("failed"),
            "pending": st.count("pending") + st.count("running"),
        }

    def manifest(self, status: str, extra: dict | None = None, running: set[str] = frozenset()) -> dict:
        plan = self.plan
        runs = []
        for rs in plan.runs:
            i = dict(self.info[rs.run_id])
            if rs.run_id in running and i["status"] == "pending":
                i["status"] = "running"
            runs.append({**plan.run_fields(rs), **i})
        m = {
            "nksim_version": provenance()["version"],
            "provenance": provenance(),  # version, git commit, library versions, platform
            "status": status,
            "spec_file": str(plan.spec_path),
            "base_scenario": str(plan.base_path),
            **plan.manifest_fields(),
            "counts": self.counts(),
            "invocations": self.invocations,
            "runs": runs,
        }
        if extra:
            m.update(extra)
        return m


def run_sweep(
    spec_path: str | Path,
    out: str | Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = True,
    runner: Callable | str | None = None,
) -> SweepOutcome:
    """Run (or resume) a sweep; write manifest.json, summary/timeseries(/sensitivity).parquet.

    scheduler: None = local worker processes (dask LocalCluster, `workers` of them, default all
    cores); "tcp://host:port" = an existing Dask scheduler; "inline" = this process, one by one.
    runner: a sim.api.run-compatible callable (or "module:attr"); default sim.api.run.
    """
    plan = load_sweep(spec_path)
    out = Path(out) if out is not None else default_out(spec_path)
    return run_plan(plan, out, write_outputs, workers, scheduler, progress, runner)


def run_plan(plan, out: Path, aggregate: Callable, workers: int | None = None, scheduler: str | None = None,
             progress: bool = True, runner: Callable | str | None = None) -> SweepOutcome:
    """Run (or resume) any plan of runs (a sweep, a cohort) into `out`, then `aggregate(plan, out)`.

    A plan has `runs` (each with run_id and seed), `task(run)` (the document, layer and seed a worker
    resolves), `run_meta(run)`, `run_fields(run)` and `manifest_fields()`, and a `label` for the bar."""
    runner = resolve_runner(runner)
    out.mkdir(parents=True, exist_ok=True)
    runs_dir = out / "runs"
    runs_dir.mkdir(exist_ok=True)
    with _locked(out):
        for leftover in list(runs_dir.glob(".tmp-*")) + list(out.glob(".*.tmp-*")):  # from a killed sweep: never complete
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        state = _State(plan, runs_dir, _load_manifest(out / "manifest.json"))
        todo = [rid for rid, i in state.info.items() if i["status"] != "done"]
        reused = len(state.info) - len(todo)
        inv = {"started": _now(), "finished": None, "executor": None, "executed": 0, "reused": reused, "failed": 0}
        state.invocations.append(inv)
        _write_manifest(out, state, "running")
        status, extra = "failed", {}
        try:
            if todo:
                _execute(plan, state, out, todo, workers, scheduler, progress, runner, inv)
            c = state.counts()
            files, notes = aggregate(plan, out)
            extra = {"outputs": {f.name: sha256_file(f) for f in files}}  # what `nksim plot` checks
            if notes:
                extra["sensitivity_skipped"] = notes
            status = "complete" if c["done"] == c["unique"] else "incomplete"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        except BaseException as e:
            extra = {"error": f"{type(e).__name__}: {e}"}
            raise
        finally:
            inv["finished"] = _now()
            _final_manifest(out, state, status, extra)
        files.insert(0, out / "manifest.json")
    return SweepOutcome(out, c["runs"], c["unique"], c["done"], c["failed"], inv["executed"], reused, files)


def _write_manifest(out: Path, state: _State, status: str, extra: dict | None = None, running: set[str] = frozenset()) -> None:
    data = json.dumps(state.manifest(status, extra, running), indent=1, default=_json_default)
    atomic_write_bytes(out / "manifest.json", data.encode())


def _final_manifest(out: Path, state: _State, status: str, extra: dict) -> None:
    """The manifest's last word for this invocation. If the sweep is failing anyway (a full disk),
    a manifest that cannot be written atomically is rewritten in place rather than left 'running'."""
    import sys

    failing = sys.exc_info()[0] is not None
    try:
        _write_manifest(out, state, status, extra)
    except OSError:
        if not failing:
            raise
        data = json.dumps(state.manifest(status, extra), indent=1, default=_json_default).encode()
        try:
            rewrite_in_place(out / "manifest.json", data)
        except OSError as e:
            log.error("could not record status %r in %s: %s", status, out / "manifest.json", e)


def _execute(plan, state, out, todo, workers, scheduler, progress, runner, inv) -> None:
    from tqdm.auto import tqdm

    first = {}
    for rs in plan.runs:
        first.setdefault(rs.run_id, rs)
    def task_for(rid: str, attempt: int) -> dict:
        rs = first[rid]
        return {"run_id": rid, **plan.task(rs), "attempt": attempt, "runner": runner}

    ex: Any = None
    bar = None
    done = failed = 0
    last = time.monotonic()
    try:
        if scheduler == "inline":
            ex = _Inline()
        else:
            if runner is None and not scheduler:
                from sim.precompile import ensure_precompiled

                ensure_precompiled()  # here, once: the local workers then load the kernels, not each compile them
            ex = _Dask(workers, scheduler, len(todo), warm=runner is None)
        inv["executor"] = ex.label
        inv["workers"] = ex.threads()
        bar = tqdm(total=len(todo), desc=plan.label, unit="run", disable=not progress, dynamic_ncols=True)
        for rid in todo:
            ex.submit(task_for(rid, 1))
        bar.set_postfix(done=0, failed=0, running=min(ex.inflight(), ex.threads()))
        for task, rec in ex.results():
            rid = task["run_id"]
            info = state.info[rid]
            info["attempts"] += 1
            info["wall_time_s"] = rec.get("wall_time_s")
            info["worker"] = rec.get("worker")
            info["finished_at"] = rec.get("finished_at")
            if rec["ok"]:
                try:
                    rs = first[rid]
                    meta = {"run_id": rid, "seed": rs.seed, **plan.run_meta(rs), "attempt": task["attempt"]}
                    commit_run(state.runs_dir, rid, rec["files"], meta)
                    info["status"] = "done"
                    done += 1
                    inv["executed"] += 1
                except RuntimeError as e:
                    rec = {"ok": False, "error": f"{e}"}
            if not rec["ok"]:
                info["errors"].append({"attempt": task["attempt"], "at": _now(), "worker": rec.get("worker"), "error": rec["error"]})
                if task["attempt"] < MAX_ATTEMPTS:
                    log.info("run %s failed (attempt %d); retrying", rid, task["attempt"])
                    if progress:
                        bar.write(f"sweep: run {rid} failed (attempt {task['attempt']}), retrying; traceback in the manifest")
                    ex.submit(task_for(rid, task["attempt"] + 1))
                else:
                    info["status"] = "failed"
                    failed += 1
                    inv["failed"] += 1
            bar.set_postfix(done=done, failed=failed, running=min(ex.inflight(), ex.threads()), refresh=False)
            bar.update(done + failed - bar.n)
            if time.monotonic() - last > MANIFEST_EVERY_S:
                _write_manifest(out, state, "running", running=ex.running_ids())
                last = time.monotonic()
    finally:  # run_sweep records the status ("interrupted", "failed") whatever stopped us
        if bar is not None:
            bar.close()
        if ex is not None:
            ex.close()
