"""Worker side of a sweep: run one simulation in a private temp folder and return its files."""
from __future__ import annotations

import importlib
import json
import os
import shutil
import socket
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable


from sim.interrupts import interrupt_in_chain
from sim.scenario.resolve import resolve, untreated_effective

from .store import SweepError, _json_default


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
    """Run one simulation in a private temp folder and return its files (raises only on Ctrl-C/SIGTERM)."""
    t0 = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix=f"nksim-{task['run_id']}-"))
    try:
        eff = resolve(task["document"], task["layer"], task.get("origin", "sweep"))  # the one resolution step
        scenario = (untreated_effective(eff) if task.get("untreated") else eff).scenario  # a sweep's untreated control
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
    except Exception as e:
        stop = interrupt_in_chain(e)  # Ctrl-C seen inside C code (a Numba dispatcher's SystemError): not a failed run
        if stop is not None:
            raise stop from None
        return {"ok": False, "error": traceback.format_exc(), "wall_time_s": time.perf_counter() - t0, "worker": worker,
                "finished_at": time.time()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
