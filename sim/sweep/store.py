"""The sweep output folder: atomic run folders, the lock, the manifest file."""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np


class SweepError(RuntimeError):
    """A sweep could not start or finish for a reason other than bad YAML (e.g. folder locked)."""


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


RUN_FILES = ("summary.json", "timeseries.parquet")


def _load_manifest(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
