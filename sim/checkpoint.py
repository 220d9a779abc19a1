"""Checkpoints for long runs: the complete model state (arrays, clock, RNG, recorded series) in one
.npz written atomically, so an interrupted run resumes bit-identically.

The snapshot files a run has written so far go beside it, in `snapshot_store(path)` (for
``run.checkpoint.npz``, the folder ``run.checkpoint.snapshots``): each enters once, as a hard link to
the run's own file where the file system allows (else a copy), and the checkpoint lists each with its
SHA-256, so a checkpoint costs the same on day 28 as on day 1 (it used to carry every snapshot so far).

A checkpoint records what it belongs to: a SHA-256 of the effective scenario (canonical JSON of
``model.config.model_dump(mode="json")``), the seed and the nksim version, plus a SHA-256 of every
array it holds. `load` with `expect` refuses anything that differs or does not verify with one
CheckpointError ("checkpoint X does not match this run (…); delete it or use --restart"), never a
zip or pickle error.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import warnings
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import mesa

from . import safe_io
from .kernels.step import NK_EMPTY
from .model import TumorImmuneModel
from .errors import CheckpointError, DomainEdgeWarning, OutputError
from .interrupts import interrupt_in_chain
from .scenario.resolve import Effective, resolve

_ARRAYS = ("occ", "vox_tumor", "vox_stroma", "tstats", "counters", "next_ids", "section_state")
FORMAT = 5  # 3: cell ids (populations' cell_id, the model's next_ids); 4: the tumor outside a sample (sim/section.py);
# 5: snapshot files in the snapshot store beside the checkpoint, not inside it


_STORE_MARKER = ".nksim-checkpoint-snapshots"  # what makes a snapshot store nksim's own: it names its checkpoint
#: the only files nksim puts in a store: snapshot files (`output.snapshot_name`) and their temporary copies
_STORE_FILE = re.compile(r"(t\d+\.\d{2}h\.npz|\.t\d+\.\d{2}h\.npz\.tmp-\d+-[0-9a-f]+)")


def lock_file(path: str | Path) -> Path:
    """The lock beside a checkpoint that the run using it holds (`exclusive`): ``.<name>.nksim-lock``."""
    path = Path(path)
    return path.with_name(f".{path.name}.nksim-lock")


@contextmanager
def exclusive(path: str | Path) -> Iterator[None]:
    """Hold the checkpoint `path` for one run: a second nksim process given the same path is refused
    with a CheckpointError naming the holder's pid, before it touches anything. Otherwise the two runs
    take turns replacing the checkpoint, and each prunes the other's snapshot files from the store.

    An advisory lock (`flock`) on `lock_file(path)`, so it ends with its process, kill -9 included;
    the file is removed on the way out if it is still the one held. Where the platform or filesystem
    has no `flock`, runs are not locked."""
    path = Path(path)
    lock = lock_file(path)
    safe_io.check_file_target(lock, what="checkpoint lock", fix="remove it or choose another checkpoint path")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)  # as the run folder and checkpoint would make it
    except OSError as e:
        raise OutputError(f"cannot use {path} for the checkpoint: {e.strerror}") from None
    fd = _lock(lock, path)
    try:
        yield
    finally:
        if fd is not None:
            _unlock(lock, fd)


def _lock(lock: Path, path: Path) -> int | None:
    """`exclusive`'s acquisition: the held descriptor of `lock`, or None where there is no flock. The
    descriptor is closed on every way out but success (a Ctrl-C in between included)."""
    try:
        import fcntl
    except ImportError:  # Windows
        return None
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as e:
            raise OutputError(f"cannot use {path} for the checkpoint: {e.strerror}") from None
        ok = False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                who = f" (pid {holder})" if holder.isdigit() else ""
                raise CheckpointError(f"checkpoint {path} is in use by another nksim run{who}; wait for it to "
                                      f"finish, or give this run another checkpoint path (nksim run: another --out)") from None
            except OSError:  # a filesystem without flock (some network mounts): not locked
                _remove_if_same(lock, fd)
                return None
            # a holder that finished between our open and flock removed this file: lock the new one
            if _same_file(lock, fd):
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
                ok = True
                return fd
        finally:
            if not ok:
                os.close(fd)


def _same_file(lock: Path, fd: int) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(lock, follow_symlinks=False))
    except FileNotFoundError:
        return False


def _remove_if_same(lock: Path, fd: int) -> None:
    """Remove `lock` if it is still the file open as `fd` (never another run's newer lock)."""
    try:
        if _same_file(lock, fd):
            os.unlink(lock)
    except OSError:
        pass


def _unlock(lock: Path, fd: int) -> None:
    try:
        _remove_if_same(lock, fd)  # while still held, so no run can take this file in between
    finally:
        os.close(fd)


def snapshot_store(path: str | Path) -> Path:
    """The folder beside checkpoint `path` that holds the snapshot files it covers."""
    path = Path(path)
    stem = path.name[: -len(".npz")] if path.name.endswith(".npz") else path.name
    return path.with_name(f"{stem}.snapshots")


def _is_store(store: Path, path: Path) -> bool:
    """Whether `store` is the snapshot store nksim made for checkpoint `path` (its marker names it:
    ``ck`` and ``ck.npz`` map to the same folder, and neither may take the other's)."""
    if not store.is_dir() or store.is_symlink():
        return False
    try:
        return json.loads((store / _STORE_MARKER).read_text(encoding="utf-8")).get("checkpoint") == path.name
    except (OSError, ValueError, AttributeError):
        return False


def _foreign(store: Path, path: Path) -> OutputError:
    return OutputError(f"refusing to keep the checkpoint's snapshot files in {store}: it is not the folder nksim made "
                       f"for {path.name}; move it, or choose another folder with --out")


def check_snapshot_store(path: str | Path) -> None:
    """Refuse a checkpoint whose snapshot-store path holds something other than its own store (before
    anything is touched), and remove its store if found without the checkpoint (a run killed before
    its first one)."""
    path, store = Path(path), snapshot_store(path)
    safe_io.clean_leftovers(store)  # a store being created when its process died
    if not os.path.lexists(store):
        return
    if not _is_store(store, path):
        raise _foreign(store, path)
    if not path.exists():
        remove_snapshot_store(path)


def _own_files(store: Path) -> list[Path]:
    return [f for f in store.iterdir() if _STORE_FILE.fullmatch(f.name) and f.is_file() and not f.is_symlink()]


def remove_snapshot_store(path: str | Path) -> None:
    """Delete checkpoint `path`'s snapshot store: only what nksim put there (snapshot files, their
    temporary copies, the marker); a folder that also holds anything else is left in place."""
    path = Path(path)
    store = snapshot_store(path)
    if not _is_store(store, path):
        return
    for f in _own_files(store):
        safe_io._unlink_quiet(f)
    if {f.name for f in store.iterdir()} == {_STORE_MARKER}:  # else the user's files keep it, still marked as this store
        safe_io._unlink_quiet(store / _STORE_MARKER)
        try:
            store.rmdir()
        except OSError:
            pass


def _make_store(path: Path) -> None:
    """Create the store of checkpoint `path` complete with its marker, in one rename: a kill or a full
    disk never leaves an unmarked folder that would block the next run."""
    store = snapshot_store(path)
    tmp = safe_io.tmp_sibling(store)
    try:
        tmp.mkdir()
        safe_io.atomic_write_text(tmp / _STORE_MARKER, json.dumps({"nksim": "checkpoint snapshots", "checkpoint": path.name}) + "\n")
        os.rename(tmp, store)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    safe_io._fsync_path(store.parent, directory=True)


def _holds(dst: Path, f: Path, sha: str) -> bool:
    """Whether the store's `dst` is the file `f` (a link to it, or the same bytes)."""
    try:
        return dst.is_file() and not dst.is_symlink() and (os.path.samefile(f, dst) or safe_io.sha256_file(dst) == sha)
    except OSError:
        return False


def _store_files(path: Path, files: list[Path], sums: dict[str, str]) -> list[list[str]]:
    """Put the snapshot `files` into the store of checkpoint `path` (those not there yet); their
    [name, sha256] in order. `sums` caches each file's SHA-256 by name (computed once per file)."""
    store = snapshot_store(path)
    if not os.path.lexists(store):
        _make_store(path)
    elif not _is_store(store, path):
        raise _foreign(store, path)
    listed = []
    for f in files:
        f = Path(f)
        known = f.name in sums  # placed (or restored) by this run
        if not known:
            sums[f.name] = safe_io.sha256_file(f)
        dst = store / f.name
        if not known and os.path.lexists(dst) and not _holds(dst, f, sums[f.name]):
            safe_io._unlink_quiet(dst)  # left by a run killed after its last checkpoint, and not this file
        if not dst.exists():  # a link is safe: snapshot files are written once each, never rewritten (`SnapshotSink`)
            safe_io.link_or_copy(f, dst)
        listed.append([f.name, sums[f.name]])
    safe_io._fsync_path(store, directory=True)
    return listed


def _prune_store(path: Path, listed: list[list[str]]) -> None:
    """Remove nksim's store files the checkpoint no longer lists (taken after it, by a run killed before
    its next checkpoint); anything else in the folder is left alone."""
    keep = {name for name, _ in listed}
    for f in _own_files(snapshot_store(path)):
        if f.name not in keep:
            safe_io._unlink_quiet(f)


def scenario_sha256(config: Any) -> str:
    """SHA-256 of the canonical JSON of an effective scenario (a Scenario or its model_dump(mode="json"))."""
    d = config if isinstance(config, dict) else config.model_dump(mode="json")
    return hashlib.sha256(json.dumps(d, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _array_sha256(a: np.ndarray) -> str:
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _write_npz(path: Path, entries: Iterator[tuple[str, np.ndarray]]) -> None:
    """An uncompressed .npz (what np.savez writes), streamed entry by entry, atomically."""
    with safe_io.atomic_file(path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, arr in entries:
                with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)


def save(model, path: str | Path, snapshots: Iterable[dict | Path] | None = None,
         file_sums: dict[str, str] | None = None) -> None:
    """Write the model's full state to `path` atomically, with the snapshots taken so far: dicts go
    inside it, .npz files of a run folder into its snapshot store (`file_sums`: their SHA-256 by name,
    filled in as computed, so each file is hashed once per run)."""
    from . import __version__

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshots = list(snapshots or [])
    files = [Path(s) for s in snapshots if isinstance(s, (str, Path))]
    snapshots = [s for s in snapshots if not isinstance(s, (str, Path))]
    listed: list[list[str]] = []
    arrays = {f"m_{k}": getattr(model, k) for k in _ARRAYS}
    for pop_name in ("tumor", "nk"):
        pop = getattr(model, pop_name)
        n = pop.used
        for k in pop.FIELDS:
            arrays[f"{pop_name}_{k}"] = getattr(pop, k)[:n]
        if pop_name == "tumor":
            arrays["tumor_free_slots"] = pop.free_slots[: pop.n_free]
    arrays["fields_values"] = model.fields.values
    arrays["fields_sources"] = model.fields.sources  # secretion accumulated since the last field step
    checksums: dict[str, str] = {}

    def entries() -> Iterator[tuple[str, np.ndarray]]:
        for k, v in arrays.items():
            checksums[k] = _array_sha256(np.asarray(v))
            yield k, v
        for i, snap in enumerate(snapshots):
            for name, v in snap.items():
                k = f"snap{i}__{name}"
                v = np.asarray(v)
                checksums[k] = _array_sha256(v)
                yield k, v
        meta = _meta(model, len(snapshots) + len(listed), checksums, __version__)
        meta["snapshot_files"] = listed
        yield "meta", np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)

    try:
        if files:
            listed[:] = _store_files(path, files, {} if file_sums is None else file_sums)
        _write_npz(path, entries())
    except BaseException:
        if not path.exists():  # the first checkpoint failed (a full disk): no store without its checkpoint
            remove_snapshot_store(path)
        raise
    if _is_store(snapshot_store(path), path):
        _prune_store(path, listed)


def _meta(model, n_snapshots: int, checksums: dict, version: str) -> dict:
    config = model.config.model_dump(mode="json")
    return {
        "format": FORMAT,
        "nksim_version": version,
        "scenario_sha256": scenario_sha256(config),
        "seed": model.seed,
        "arrays_sha256": checksums,
        "config": config,
        "document": model.effective.document,  # what the user wrote + its override layers: resolved again on load
        "layers": [list(layer) for layer in model.effective.layers],
        "now_min": model.now_min,
        "steps": model.steps,
        "next_output": model._next_output,
        "nk_exposure_min": model.nk_exposure_min,
        "rng": model.rng.bit_generator.state,
        "random": list(model.random.getstate()[1]) + [model.random.getstate()[0], model.random.getstate()[2]],
        "model_vars": model.datacollector.model_vars,
        "n_snapshots": n_snapshots,
        "dead_kills": np.concatenate(model._dead_kills).tolist() if model._dead_kills else [],
        "therapy": model.therapy.state_dict(),
        "therapy_state": getattr(model, "therapy_state", {}),
        "domain_watch": model.domain_watch.state_dict(),
    }


def _reraise_interrupt(e: Exception) -> None:
    """A Ctrl-C that Numba code turned into a SystemError while a checkpoint was read is an interrupt,
    not a damaged checkpoint (which the refusal would tell the user to delete)."""
    stop = interrupt_in_chain(e)
    if stop is not None:
        raise stop from None


def _refuse(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {path} does not match this run ({why}); delete it or use --restart "
                           f"(restart=True in Python)")


def _read_meta(z, path: Path) -> dict:
    meta = json.loads(bytes(z["meta"]).decode())
    if not isinstance(meta, dict):
        raise ValueError("not a checkpoint")
    fmt = meta.get("format")
    if isinstance(fmt, int) and fmt < FORMAT:  # an nksim checkpoint from before a format change
        raise _refuse(path, f"it is in an older checkpoint format ({fmt}; this nksim reads {FORMAT})")
    if fmt != FORMAT:
        raise ValueError("not a checkpoint of this format")
    return meta


def read_meta(path: str | Path) -> dict:
    """The JSON metadata of a checkpoint (without verifying its arrays); CheckpointError if unreadable."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return _read_meta(z, path)
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001  (zip, npy, JSON or format errors all mean the same to the user)
        _reraise_interrupt(e)
        raise _refuse(path, "it is damaged or not an nksim checkpoint") from None


def _flat(d: Any, prefix: str = "") -> dict:
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def _differences(have: dict, want: dict, n: int = 3) -> str:
    a, b = _flat(have), _flat(want)
    diff = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    shown = ", ".join(f"{k} {a.get(k)!r} → {b.get(k)!r}" for k in diff[:n])
    return shown + (f" and {len(diff) - n} more" if len(diff) > n else "") if diff else "the scenario differs"


def _check(path: Path, meta: dict, expect: tuple[Any, int] | None) -> None:
    from . import __version__

    if meta.get("nksim_version") != __version__:
        raise _refuse(path, f"written by nksim {meta.get('nksim_version')}, this is nksim {__version__}")
    if expect is None:
        return
    config, seed = expect
    want = config if isinstance(config, dict) else config.model_dump(mode="json")
    if meta.get("seed") != int(seed):
        raise _refuse(path, f"it is for seed {meta.get('seed')}, this run has seed {int(seed)}")
    if meta.get("scenario_sha256") != scenario_sha256(want):
        raise _refuse(path, f"it was written for another scenario: {_differences(meta.get('config', {}), want)}")


def load(path: str | Path, expect: tuple[Any, int] | None = None, snapshot_sink=None):
    """Rebuild a model (and its snapshots) from a checkpoint written by `save`.

    expect: (effective scenario, seed) of the run that wants to resume; a checkpoint of any other
    scenario, seed or nksim version, or one that does not verify, raises CheckpointError.
    snapshot_sink: a sim.output.SnapshotSink to receive the snapshots (as files); without it they are
    returned as a list of dicts.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = _read_meta(z, path)
            _check(path, meta, expect)
            sums = meta["arrays_sha256"]
            if set(sums) != set(z.files) - {"meta"}:
                raise ValueError("entries missing")
            data = {}
            for k in z.files:
                if k == "meta":
                    continue
                v = z[k]
                if _array_sha256(v) != sums[k]:
                    raise ValueError(f"{k} does not verify")
                data[k] = v
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001
        _reraise_interrupt(e)
        raise _refuse(path, "it is damaged or not an nksim checkpoint") from None
    stored = _stored_snapshots(path, meta.get("snapshot_files", []))
    try:
        model, snaps = _rebuild(meta, data)
    except Exception as e:  # noqa: BLE001  (verified arrays, but metadata this nksim cannot restore)
        _reraise_interrupt(e)
        raise _refuse(path, f"it cannot be restored by this nksim: {type(e).__name__}") from None
    if scenario_sha256(model.config) != meta["scenario_sha256"]:
        raise _refuse(path, "it resolves to another scenario in this nksim")
    if snapshot_sink is not None and snapshot_sink.folder is not None:
        for f, sha in stored:
            snapshot_sink.add_existing(f, sha)
    else:
        snaps = [_read_snapshot(f) for f, _ in stored] + snaps
    if snapshot_sink is not None:
        for snap in snaps:
            snapshot_sink.add(snap)
        return model, snapshot_sink.items
    return model, snaps


def _stored_snapshots(path: Path, listed: list) -> list[tuple[Path, str]]:
    """The snapshot files checkpoint `path` lists, each verified against its SHA-256."""
    store, out = snapshot_store(path), []
    ours = not listed or _is_store(store, path)
    for name, sha in listed:
        f = store / name
        try:
            ok = ours and f.is_file() and not f.is_symlink() and safe_io.sha256_file(f) == sha
        except OSError:
            ok = False
        if not ok:
            raise _refuse(path, f"it is damaged: its snapshot {f} is missing or does not verify")
        out.append((f, sha))
    return out


def _read_snapshot(f: Path) -> dict:
    with np.load(f, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _rebuild(meta: dict, data: dict):
    eff: Effective = resolve(meta["document"])
    for origin, overrides in meta["layers"]:
        eff = eff.with_layer(origin, overrides)
    with warnings.catch_warnings():  # the set-up tumor is replaced by the arrays; the watch's state comes from meta
        warnings.simplefilter("ignore", DomainEdgeWarning)
        model = TumorImmuneModel(eff.with_layer("checkpoint", {"nk.dose.cells": 0}), rng=meta["seed"])  # cells come from the arrays
    model.config, model.effective = eff.scenario, eff
    for k in _ARRAYS:
        getattr(model, k)[...] = data[f"m_{k}"]

    for pop_name in ("tumor", "nk"):
        pop = getattr(model, pop_name)
        n = data[f"{pop_name}_site"].shape[0]
        pop.used = 0
        pop.ensure(n)
        pop.used = n
        for k in pop.FIELDS:
            if k == "free_slots":
                continue
            getattr(pop, k)[:n] = data[f"{pop_name}_{k}"]
            getattr(pop, k)[n:] = pop.FIELDS[k][1]
        if pop_name == "tumor":
            fs = data["tumor_free_slots"]
            pop.free_slots[: fs.size] = fs
            pop.n_free = int(fs.size)
    model.pack_bitmaps()  # and the per-site immune counts, from the restored positions
    model.fields.values[...] = data["fields_values"]
    model.fields.refresh_nonzero()
    if "fields_sources" in data:
        model.fields.sources[...] = data["fields_sources"]
    for a in list(model.agents):
        mesa.Agent.remove(a)  # deregister only (remove() would kill the cell)
    model._nk_agents = []
    for i in np.flatnonzero(model.nk.state[: model.nk.used] != NK_EMPTY):
        model._new_agent(int(i))
    model.now_min = meta["now_min"]
    model.steps = meta["steps"]
    model._next_output = meta["next_output"]
    model.nk_exposure_min = meta["nk_exposure_min"]
    model.rng.bit_generator.state = meta["rng"]
    r = meta["random"]
    model.random.setstate((r[-2], tuple(r[:-2]), r[-1]))
    model.datacollector.model_vars = {k: list(v) for k, v in meta["model_vars"].items()}
    model._dead_kills = [np.asarray(meta["dead_kills"], dtype=np.int64)] if meta["dead_kills"] else []
    model.therapy.load_state_dict(meta.get("therapy") or {})
    model.therapy_state = meta.get("therapy_state", {})  # drug occupancies, cytokine exposure (sim/therapy)
    model.domain_watch.load_state_dict(meta.get("domain_watch") or {})
    snaps = []
    for i in range(meta["n_snapshots"]):
        pre = f"snap{i}__"
        snap = {k[len(pre):]: v for k, v in data.items() if k.startswith(pre)}
        if snap:
            snaps.append(snap)
    snaps.sort(key=lambda s: float(s["time_h"]))
    return model, snaps
