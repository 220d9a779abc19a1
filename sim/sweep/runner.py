"""Sweep execution: Dask workers (a local process cluster or a remote scheduler), isolation, resume.

Workers run one simulation each and send the run's files back; only this process writes the
output folder, each run atomically as ``runs/<run_id>/``, so a killed sweep resumes where it stopped
and the final parquet files are rebuilt from the run folders, identical to an uninterrupted sweep.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import importlib
import json
import logging
import os
import shutil
import socket
import tempfile
import time
import traceback
import uuid
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sim.output import read_parquet
from sim.provenance import provenance
from sim.scenario.resolve import resolve

from .spec import LIST_METRICS, Plan, load_sweep

RUN_FILES = ("summary.json", "timeseries.parquet")
MAX_ATTEMPTS = 2  # a failing run is retried once per invocation
MANIFEST_EVERY_S = 2.0

log = logging.getLogger(__name__)


class SweepError(RuntimeError):
    """A sweep could not start or finish for a reason other than bad YAML (e.g. folder locked)."""


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
# Worker side
# ---------------------------------------------------------------------------------------------


def resolve_runner(spec: str | Callable | None) -> Callable | None:
    """A runner callable from ``"module:attr"`` (a class is instantiated with no arguments)."""
    if spec is None or callable(spec):
        return spec
    mod, _, attr = str(spec).partition(":")
    if not attr:
        raise SweepError(f"runner must look like module:attr, got {spec!r}")
    obj = getattr(importlib.import_module(mod), attr)
    return obj() if isinstance(obj, type) else obj


def _default_runner() -> Callable:
    from sim.api import run

    return run


def warm_up() -> None:
    """Compile/load the Numba kernels once (sim.api.warm_up, if the engine has it)."""
    try:
        import sim.api as api
    except ImportError:
        return
    fn = getattr(api, "warm_up", None)
    if callable(fn):
        fn()


def _write_result(result: Any, out: Path) -> None:
    """Write a Result's timeseries and summary when the runner did not write the folder itself."""
    out.mkdir(parents=True, exist_ok=True)
    result.timeseries.to_parquet(out / "timeseries.parquet", index=False)
    (out / "summary.json").write_text(json.dumps(result.summary, indent=1, default=_json_default))


def _collect(folder: Path) -> dict[str, bytes]:
    """All files under a folder as {posix relative path: bytes}."""
    files = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            files[p.relative_to(folder).as_posix()] = p.read_bytes()
    return files


def execute_run(task: dict) -> dict:
    """Run one simulation in a private temp folder and return its files (never raises)."""
    t0 = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix=f"nksim-{task['run_id']}-"))
    try:
        scenario = resolve(task["document"], task["layer"], "sweep").scenario  # the one resolution step
        runner = task.get("runner") or _default_runner()
        out = tmp / "run"
        result = runner(scenario, seed=task["seed"], out=out, progress=False)
        if not (out / "summary.json").is_file() or not (out / "timeseries.parquet").is_file():
            if result is None:
                raise RuntimeError("the runner wrote no summary.json/timeseries.parquet and returned no Result")
            _write_result(result, out)
        files = _collect(out)
        return {"ok": True, "files": files, "wall_time_s": time.perf_counter() - t0, "worker": worker,
                "finished_at": time.time()}
    except Exception:
        return {"ok": False, "error": traceback.format_exc(), "wall_time_s": time.perf_counter() - t0, "worker": worker,
                "finished_at": time.time()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Output folder: atomic run folders, manifest, lock
# ---------------------------------------------------------------------------------------------


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file via a temp file in the same folder and os.replace: never seen half-written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def commit_run(runs_dir: Path, run_id: str, files: dict[str, bytes], meta: dict) -> Path:
    """Write a run's files to a temp folder and rename it to runs/<run_id> (atomic on POSIX)."""
    final = runs_dir / run_id
    missing = [f for f in RUN_FILES if f not in files]
    if missing:
        raise RuntimeError(f"run {run_id} returned no {', '.join(missing)}")
    if is_done(runs_dir, run_id):
        return final
    if final.exists():  # not made by us (only a rename creates it): move it out of the way
        shutil.rmtree(final.rename(runs_dir / f".tmp-stale-{run_id}-{uuid.uuid4().hex[:8]}"), ignore_errors=True)
    tmp = runs_dir / f".tmp-{run_id}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    for rel, data in files.items():
        p = (tmp / rel).resolve()
        if tmp.resolve() not in p.parents:
            raise RuntimeError(f"run {run_id} returned a file outside its folder: {rel}")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (tmp / "sweep_run.json").write_text(json.dumps(meta, indent=1, default=_json_default))
    try:
        os.rename(tmp, final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def is_done(runs_dir: Path, run_id: str) -> bool:
    """A run is complete iff its folder holds the run files: it only appears by an atomic rename."""
    return all((runs_dir / run_id / f).is_file() for f in RUN_FILES)


@contextlib.contextmanager
def _locked(out: Path):
    """Hold an exclusive flock on out/.lock (released by the kernel even on kill -9)."""
    import fcntl

    fh = open(out / ".lock", "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise SweepError(f"another sweep is writing to {out} (lock {out / '.lock'} is held)") from None
    try:
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def default_out(spec_path: str | Path) -> Path:
    """results/<stem> (…_sweep unless the file name already says sweep)."""
    stem = Path(spec_path).stem
    return Path("results") / (stem if "sweep" in stem else f"{stem}_sweep")


# ---------------------------------------------------------------------------------------------
# Executors
# ---------------------------------------------------------------------------------------------


class _Inline:
    """Runs tasks one by one in this process (debugging; a crash stops the sweep)."""

    label = "inline"

    def __init__(self):
        self.queue: deque = deque()

    def threads(self) -> int:
        return 1

    def submit(self, task: dict) -> None:
        self.queue.append(task)

    def results(self):
        while self.queue:
            task = self.queue.popleft()
            yield task, execute_run(task)

    def inflight(self) -> int:
        return len(self.queue)

    def running_ids(self) -> set[str]:
        return set()

    def close(self) -> None:
        pass


class _Dask:
    """Tasks on a Dask cluster: a local process cluster or a remote scheduler (tcp://...)."""

    def __init__(self, workers: int | None, scheduler: str | None, n_tasks: int, warm: bool):
        import dask
        from distributed import Client, LocalCluster, as_completed

        self._cluster = None
        if scheduler:
            self.label = scheduler
            try:
                self.client = Client(scheduler, timeout="15s")
            except (OSError, TimeoutError, ValueError) as e:
                raise SweepError(f"could not connect to the Dask scheduler at {scheduler}: {e}") from None
            if warm:
                with contextlib.suppress(Exception):
                    self.client.run(warm_up)
        else:
            n = max(1, min(workers or os.cpu_count() or 1, n_tasks))
            self.label = f"local dask cluster: {n} worker processes"
            env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
            env.setdefault("NUMBA_NUM_THREADS", "1")
            cfg = {
                # A worker death marks only the task it was running; our own retry handles it.
                "distributed.scheduler.allowed-failures": 0,
                "distributed.scheduler.worker-saturation": 1.0,
                "distributed.nanny.pre-spawn-environ": env,
                "distributed.admin.system-monitor.gil.enabled": False,
            }
            with dask.config.set(cfg):
                self._cluster = LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True,
                    dashboard_address=None, silence_logs=logging.ERROR, scheduler_port=0,
                )
                self.client = Client(self._cluster)
        self._ac = as_completed()
        self._tasks: dict[str, dict] = {}
        self._queue: deque = deque()
        self._threads = 1
        self._count_threads()

    def threads(self) -> int:
        return self._threads

    def _count_threads(self) -> int:
        try:
            self._threads = max(1, sum(self.client.nthreads().values()))
        except Exception:
            pass
        return self._threads

    def submit(self, task: dict) -> None:
        # retries go first; everything waits here until a worker thread is free (see _refill)
        (self._queue.appendleft if task["attempt"] > 1 else self._queue.append)(task)

    def _refill(self) -> None:
        """Keep at most one run per worker thread on the cluster, so a worker that dies takes only
        the run it was running with it (Dask would otherwise queue several runs on one worker)."""
        free = self._count_threads() - len(self._tasks)
        while self._queue and (free > 0 or not self._tasks):
            task = self._queue.popleft()
            key = f"nksim-{task['run_id']}-a{task['attempt']}-{uuid.uuid4().hex[:6]}"
            fut = self.client.submit(execute_run, task, key=key, pure=False, retries=0)
            self._tasks[fut.key] = task
            self._ac.add(fut)
            free -= 1

    def results(self):
        self._refill()
        for fut in self._ac:
            task = self._tasks.pop(fut.key)
            try:
                rec = fut.result()
            except Exception as e:  # KilledWorker (worker died), CancelledError, comm errors
                rec = {
                    "ok": False,
                    "error": f"{type(e).__name__}: {e}\n(the worker process died or was lost while running this run)\n"
                    + traceback.format_exc(),
                    "wall_time_s": None,
                    "worker": None,
                }
            fut.release()
            yield task, rec
            self._refill()

    def inflight(self) -> int:
        return len(self._tasks)

    def running_ids(self) -> set[str]:
        return {t["run_id"] for t in self._tasks.values()}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()


# ---------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------


def _load_manifest(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


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
            done = is_done(runs_dir, rs.run_id)
            self.info[rs.run_id] = {
                "status": "done" if done else "pending",
                "attempts": int(p.get("attempts", 0)),
                "errors": list(p.get("errors", [])),
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
            runs.append({"run_id": rs.run_id, "point": rs.point, "replicate": rs.replicate, "seed": rs.seed, **i})
        m = {
            "nksim_version": provenance()["version"],
            "provenance": provenance(),  # version, git commit, library versions, platform
            "status": status,
            "spec_file": str(plan.spec_path),
            "base_scenario": str(plan.base_path),
            "design": plan.design.kind,
            "design_options": plan.design.options,
            "parameters": plan.spec_dict()["parameters"],
            "parameter_kinds": plan.param_kinds,
            "samples": plan.spec.samples,
            "replicates": plan.spec.replicates,
            "seed": plan.seed,
            "replicate_seeds": plan.seeds,
            "metrics": plan.metrics,
            "overrides": plan.spec.overrides,
            "points": plan.overrides,
            "counts": self.counts(),
            "invocations": self.invocations,
            "runs": runs,
        }
        if plan.design.problem is not None:
            m["problem"] = plan.design.problem
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
    runner = resolve_runner(runner)
    out = Path(out) if out is not None else default_out(spec_path)
    out.mkdir(parents=True, exist_ok=True)
    runs_dir = out / "runs"
    runs_dir.mkdir(exist_ok=True)
    with _locked(out):
        for leftover in runs_dir.glob(".tmp-*"):  # from a killed sweep: never complete
            shutil.rmtree(leftover, ignore_errors=True)
        state = _State(plan, runs_dir, _load_manifest(out / "manifest.json"))
        todo = [rid for rid, i in state.info.items() if i["status"] != "done"]
        reused = len(state.info) - len(todo)
        inv = {"started": _now(), "finished": None, "executor": None, "executed": 0, "reused": reused, "failed": 0}
        state.invocations.append(inv)
        _write_manifest(out, state, "running")
        if todo:
            _execute(plan, state, out, todo, workers, scheduler, progress, runner, inv)
        c = state.counts()
        files, notes = write_outputs(plan, out)
        inv["finished"] = _now()
        extra = {"sensitivity_skipped": notes} if notes else None
        _write_manifest(out, state, "complete" if c["done"] == c["unique"] else "incomplete", extra)
        files.insert(0, out / "manifest.json")
    return SweepOutcome(out, c["runs"], c["unique"], c["done"], c["failed"], inv["executed"], reused, files)


def _write_manifest(out: Path, state: _State, status: str, extra: dict | None = None, running: set[str] = frozenset()) -> None:
    data = json.dumps(state.manifest(status, extra, running), indent=1, default=_json_default)
    atomic_write_bytes(out / "manifest.json", data.encode())


def _execute(plan, state, out, todo, workers, scheduler, progress, runner, inv) -> None:
    from tqdm.auto import tqdm

    first = {}
    for rs in plan.runs:
        first.setdefault(rs.run_id, rs)
    def task_for(rid: str, attempt: int) -> dict:
        rs = first[rid]
        return {"run_id": rid, "document": plan.document, "layer": plan.layers[rs.point], "seed": rs.seed,
                "attempt": attempt, "runner": runner}

    ex: Any = None
    bar = None
    done = failed = 0
    last = time.monotonic()
    try:
        if scheduler == "inline":
            ex = _Inline()
        else:
            if runner is None and not scheduler:
                warm_up()  # compile the Numba cache once so workers only load it
            ex = _Dask(workers, scheduler, len(todo), warm=runner is None)
        inv["executor"] = ex.label
        inv["workers"] = ex.threads()
        bar = tqdm(total=len(todo), desc="sweep", unit="run", disable=not progress, dynamic_ncols=True)
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
                    meta = {"run_id": rid, "seed": rs.seed, "overrides": plan.overrides[rs.point], "attempt": task["attempt"]}
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
    except BaseException:
        inv["finished"] = _now()
        _write_manifest(out, state, "interrupted")
        raise
    finally:
        if bar is not None:
            bar.close()
        if ex is not None:
            ex.close()


# ---------------------------------------------------------------------------------------------
# Final outputs
# ---------------------------------------------------------------------------------------------


def _write_parquet(df, path: Path) -> None:
    """Deterministic parquet: no index, fixed compression, temp file + os.replace."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp, compression="snappy")
    os.replace(tmp, path)


_PARAM_DTYPES = {"bool": "bool", "int": "int64", "float": "float64", "str": "object"}


def _metric_series(values: list):
    import pandas as pd

    vals = [None if (isinstance(v, float) and np.isnan(v)) else v for v in values]
    present = [v for v in vals if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pd.Series(vals, dtype="boolean" if len(present) < len(vals) else "bool")
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present) and len(present) == len(vals):
        return pd.Series(vals, dtype="int64")
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pd.Series([np.nan if v is None else float(v) for v in vals], dtype="float64")
    return pd.Series(vals, dtype="object")


def write_outputs(plan: Plan, out: Path) -> tuple[list[Path], dict]:
    """Rebuild summary.parquet, timeseries.parquet and sensitivity.parquet from runs/ folders.

    Returns the files written and {metric: why its sensitivity indices were skipped}.
    """
    import pandas as pd

    runs_dir = out / "runs"
    names = plan.names
    rows, ts_frames = [], []
    cache: dict[str, tuple[dict, Any]] = {}
    for rs in plan.runs:
        if not is_done(runs_dir, rs.run_id):
            continue
        if rs.run_id not in cache:
            summ = json.loads((runs_dir / rs.run_id / "summary.json").read_text())
            ts = read_parquet(runs_dir / rs.run_id / "timeseries.parquet")
            cache[rs.run_id] = (summ.get("metrics", {}), ts)
        metrics, ts = cache[rs.run_id]
        rows.append((rs, metrics))
        t = ts.copy()
        front = {"run_id": rs.run_id, "point": rs.point, "replicate": rs.replicate, "seed": rs.seed}
        front.update({p: plan.overrides[rs.point][p] for p in names})
        for k, (col, v) in enumerate(front.items()):
            t.insert(k, col, [v] * len(t))
        ts_frames.append(t)

    cols: dict[str, Any] = {
        "run_id": pd.Series([r.run_id for r, _ in rows], dtype="object"),
        "point": pd.Series([r.point for r, _ in rows], dtype="int64"),
        "replicate": pd.Series([r.replicate for r, _ in rows], dtype="int64"),
        "seed": pd.Series([r.seed for r, _ in rows], dtype="int64"),
    }
    for p in names:
        cols[p] = pd.Series([plan.overrides[r.point][p] for r, _ in rows], dtype=_PARAM_DTYPES[plan.param_kinds[p]])
    asked = plan.spec.metrics is not None
    for m in plan.metrics:
        if not asked and rows and all(m not in mm for _, mm in rows):
            continue  # a metric of a component this sweep does not use (e.g. chemo counters)
        if m in LIST_METRICS:
            cols[m] = pd.Series([list(map(int, mm.get(m) or [])) for _, mm in rows], dtype="object")
        else:
            cols[m] = _metric_series([mm.get(m) for _, mm in rows])
    summary = pd.DataFrame(cols)
    files = [out / "summary.parquet", out / "timeseries.parquet"]
    _write_parquet(summary, files[0])

    if ts_frames:
        tsdf = pd.concat(ts_frames, ignore_index=True)
        for p in names:
            tsdf[p] = tsdf[p].astype(_PARAM_DTYPES[plan.param_kinds[p]])
        tsdf["point"] = tsdf["point"].astype("int64")
        tsdf["replicate"] = tsdf["replicate"].astype("int64")
        tsdf["seed"] = tsdf["seed"].astype("int64")
    else:
        tsdf = pd.DataFrame({k: pd.Series(dtype=v.dtype) for k, v in cols.items() if k in ("run_id", "point", "replicate", "seed", *names)})
    _write_parquet(tsdf, files[1])

    notes: dict = {}
    if plan.design.kind in ("sobol", "morris"):
        sens, notes = sensitivity(plan, summary)
        if sens is not None:
            p = out / "sensitivity.parquet"
            _write_parquet(sens, p)
            files.append(p)
    return files, notes


def sensitivity(plan: Plan, summary) -> tuple[Any, dict]:
    """Sobol (S1, ST) or Morris (mu*, sigma) indices per parameter and metric, replicate means.

    Returns (DataFrame or None, {metric: reason skipped}). Needs every design point to have results.
    """
    import pandas as pd

    notes: dict[str, str] = {}
    n_points = len(plan.design.points)
    if summary.empty or summary["point"].nunique() < n_points:
        return None, {"*": f"{n_points - summary['point'].nunique()} design points have no finished run"}
    problem = plan.design.problem
    rows = []
    seed = plan.seed % (2**32)
    for m in plan.metrics:
        if m in LIST_METRICS or m not in summary:
            continue
        y = pd.to_numeric(summary[m].astype("float64"), errors="coerce")
        Y = y.groupby(summary["point"]).mean().reindex(range(n_points)).to_numpy(dtype=float)
        if not np.all(np.isfinite(Y)):
            notes[m] = "metric has missing or non-finite values"
            continue
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if plan.design.kind == "sobol":
                from SALib.analyze import sobol as sa

                res = sa.analyze(problem, Y, calc_second_order=False, seed=seed, print_to_console=False)
                for j, name in enumerate(problem["names"]):
                    rows.append({"parameter": name, "metric": m, "S1": float(res["S1"][j]), "S1_conf": float(res["S1_conf"][j]),
                                 "ST": float(res["ST"][j]), "ST_conf": float(res["ST_conf"][j])})
            else:
                from SALib.analyze import morris as ma

                res = ma.analyze(problem, plan.design.X, Y, num_levels=plan.design.options.get("num_levels", 4), seed=seed,
                                 print_to_console=False)
                for j, name in enumerate(problem["names"]):
                    rows.append({"parameter": name, "metric": m, "mu": float(res["mu"][j]), "mu_star": float(res["mu_star"][j]),
                                 "mu_star_conf": float(res["mu_star_conf"][j]), "sigma": float(res["sigma"][j])})
    if not rows:
        return None, notes
    return pd.DataFrame(rows), notes
