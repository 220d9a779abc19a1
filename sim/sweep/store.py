"""The sweep output folder: atomic run folders, the lock, the manifest file."""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from sim import safe_io


class SweepError(RuntimeError):
    """A sweep could not start or finish for a reason other than bad YAML (e.g. folder locked)."""


def _json_default(o: Any) -> Any:
    return safe_io.json_default(o)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file atomically (sim.safe_io.atomic_write_bytes)."""
    safe_io.atomic_write_bytes(path, data)


def commit_run(runs_dir: Path, run_id: str, files: dict[str, bytes], meta: dict) -> Path:
    """Write a run's files to a temp folder and rename it to runs/<run_id> (atomic on POSIX).

    sweep_run.json records the SHA-256 of every file, so a damaged run folder is found on resume."""
    final = runs_dir / run_id
    missing = [f for f in RUN_FILES if f not in files]
    if missing:
        raise RuntimeError(f"run {run_id} returned no {', '.join(missing)}")
    if is_done(runs_dir, run_id):
        return final
    if os.path.lexists(final):  # not complete (or damaged): ours to replace, move it out of the way
        stale = runs_dir / f".tmp-stale-{run_id}-{uuid.uuid4().hex[:8]}"
        final.rename(stale)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = runs_dir / f".tmp-{run_id}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        safe_io.make_dir(tmp)
        for rel, data in files.items():
            p = (tmp / rel).resolve()
            if tmp.resolve() not in p.parents:
                raise RuntimeError(f"run {run_id} returned a file outside its folder: {rel}")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        meta = {**meta, "files": {rel: hashlib.sha256(data).hexdigest() for rel, data in sorted(files.items())}}
        (tmp / META).write_text(json.dumps(meta, indent=1, default=_json_default))
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not is_done(runs_dir, run_id):
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def verify_run(runs_dir: Path, run_id: str) -> str | None:
    """None if runs/<run_id> is complete and every file matches the SHA-256 recorded when it was
    written; else why not. Folders written before checksums were recorded are parsed instead."""
    folder = runs_dir / run_id
    if not all((folder / f).is_file() for f in RUN_FILES):
        return "missing " + ", ".join(f for f in RUN_FILES if not (folder / f).is_file())
    try:
        meta = json.loads((folder / META).read_text())
    except (OSError, ValueError):
        meta = None
    sums = meta.get("files") if isinstance(meta, dict) else None
    if not isinstance(sums, dict):  # an older sweep: the run files must at least parse
        try:
            import pyarrow.parquet as pq

            json.loads((folder / "summary.json").read_text())
            pq.read_metadata(folder / "timeseries.parquet")
        except Exception as e:  # noqa: BLE001
            return f"unreadable ({type(e).__name__})"
        return None
    for rel in RUN_FILES:
        if rel not in sums:
            return f"no checksum for {rel}"
    for rel, digest in sums.items():
        try:
            if safe_io.sha256_file(folder / rel) != digest:
                return f"{rel} does not match its checksum"
        except OSError:
            return f"{rel} is missing"
    return None


def is_done(runs_dir: Path, run_id: str) -> bool:
    """A run is complete iff its folder holds the run files and they verify (they only appear by an
    atomic rename, and their SHA-256 is recorded in sweep_run.json)."""
    return verify_run(runs_dir, run_id) is None


def lock_is_held(out: Path) -> bool:
    """Whether a sweep holds out/.lock now (read-only probe; creates nothing)."""
    import fcntl

    try:
        fh = open(out / ".lock", "rb")
    except OSError:
        return False
    try:
        fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False
    finally:
        fh.close()


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
META = "sweep_run.json"


def _load_manifest(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
