"""The one place nksim writes files and folders: atomically, following the umask, and never over
anything it did not make.

* Files (`atomic_write_bytes`, `atomic_write_text`, `write_json_atomic`, `atomic_file` for writers that
  want a path) go to a hidden sibling ``.NAME.tmp-PID-RAND`` that is fsynced and renamed over NAME; on
  any error or interrupt the temporary file is removed.
* Folders (`atomic_dir`) are built in a hidden sibling ``.NAME.tmp-PID-RAND`` and renamed into place
  when complete. The target is checked first (`check_target`): nksim replaces only a folder it made
  itself (marked by a ``.nksim-run`` file) and only when asked (`overwrite`); it refuses files, devices,
  FIFOs, symbolic links, mount points, the working directory and its parents, and folders holding
  anything else. A replaced folder is swapped in one step (``renameat2(RENAME_EXCHANGE)`` where the
  file system has it), so the old one stays whole until the new one is complete.
* Leftovers of killed processes (``.NAME.tmp-PID-*``, ``.NAME.old-PID-*`` whose PID is gone) are
  removed by the next write to the same place (`clean_leftovers`).

Permissions come from the umask (``os.mkdir(…, 0o777)``, ``os.open(…, 0o666)``), never 0600/0700 from
`tempfile`. Low-level helpers raise OSError; `atomic_dir` and `check_target` raise OutputError for
targets the user must change.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import OutputError

MARKER = ".nksim-run"
#: entries of a run folder written before folders were marked (accepted as nksim's own with --overwrite)
_LEGACY_RUN_ENTRIES = {"summary.json", "timeseries.parquet", "snapshots", "tumor_nk.png"}
#: what `nksim plot RUN` adds to a run folder by default: regenerated, so it may go with --overwrite
_PLOTS = "plots"


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def tmp_sibling(path: str | Path, tag: str = "tmp") -> Path:
    """A fresh hidden name next to `path`: ``.NAME.<tag>-PID-RAND`` (PID lets a later run clean it up)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}")


def _fsync_path(path: Path, directory: bool = False) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def _unlink_quiet(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


@contextlib.contextmanager
def atomic_file(path: str | Path, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to `path` for any writer; on success fsync it and rename it over
    `path`, on any error (or Ctrl-C) remove it. The writer must create the file itself."""
    path = Path(path)
    tmp = tmp_sibling(path)
    try:
        yield tmp
        if fsync:
            _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quiet(tmp)
        raise
    if fsync:
        _fsync_path(path.parent, directory=True)


def link_or_copy(src: str | Path, dst: str | Path, fsync: bool = True) -> None:
    """`dst` as a hard link to `src` (no bytes written), else (another file system, or one without
    links) an atomic copy; with `fsync`, durable either way."""
    try:
        os.link(src, dst)
    except OSError:
        with atomic_file(dst, fsync=fsync) as tmp:
            shutil.copyfile(src, tmp)
        return
    if fsync:
        _fsync_path(Path(dst))


def atomic_write_bytes(path: str | Path, data: bytes, fsync: bool = True) -> None:
    """Write `data` to `path` via a temporary sibling and os.replace: never seen half-written."""
    with atomic_file(path, fsync=fsync) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # mode from the umask
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())


def atomic_write_text(path: str | Path, text: str, fsync: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def write_json_atomic(path: str | Path, obj: Any, indent: int | None = 2, default: Callable | None = None) -> None:
    """JSON to `path` atomically (numpy scalars/arrays and paths are converted)."""
    atomic_write_text(path, json.dumps(obj, indent=indent, default=default or json_default))


def json_default(o: Any) -> Any:
    """json.dumps `default` for numpy scalars and arrays and paths."""
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def rewrite_in_place(path: str | Path, data: bytes) -> None:
    """Last resort when no temporary file fits (full disk): truncate `path` and write `data` into the
    blocks it frees. Not atomic; callers use it only to replace a status that would otherwise lie."""
    with open(path, "r+b") as fh:
        fh.truncate(0)
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


# ---------------------------------------------------------------------------------------------
# Leftovers of killed processes
# ---------------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: someone else's live process
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        _unlink_quiet(path)


def clean_leftovers(target: str | Path) -> list[Path]:
    """Remove ``.NAME.tmp-PID-*`` next to `target` left by processes that no longer run; restore a
    ``.NAME.old-PID-*`` folder (an earlier run being replaced when its process died) if NAME is
    missing, else remove it. Returns what was removed or restored."""
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    pat = re.compile(rf"^\.{re.escape(target.name)}\.(tmp|old)-(\d+)(?:-[0-9a-f]+)?$")
    done = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return done
    for e in entries:
        m = pat.match(e.name)
        if not m or _pid_alive(int(m.group(2))):
            continue
        p = Path(e.path)
        if m.group(1) == "old" and not os.path.lexists(target):
            with contextlib.suppress(OSError):
                os.rename(p, target)
                done.append(p)
                continue
        _remove(p)
        done.append(p)
    return done


# ---------------------------------------------------------------------------------------------
# Folders
# ---------------------------------------------------------------------------------------------


def _kind_of(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "not a folder"


def read_marker(folder: str | Path) -> dict | None:
    """The JSON line of `folder`/.nksim-run, or None if it has none (or it does not parse)."""
    try:
        with open(Path(folder) / MARKER, encoding="utf-8") as fh:
            d = json.loads(fh.readline())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return d if isinstance(d, dict) and "nksim" in d else None


def _walk(folder: Path) -> set[str]:
    """Every file and folder under `folder` as posix paths relative to it."""
    out = set()
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        for n in dirs + files:
            out.add((rel / n).as_posix())
    return out


def _legacy_run(folder: Path, entries: list[str]) -> bool:
    """A run folder of an nksim from before run folders were marked."""
    if not entries or not set(entries) <= _LEGACY_RUN_ENTRIES or "summary.json" not in entries:
        return False
    try:
        s = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    snaps = folder / "snapshots"
    if snaps.exists() and (not snaps.is_dir() or any(not p.name.endswith(".npz") for p in snaps.iterdir())):
        return False
    return isinstance(s, dict) and "scenario" in s and "seed" in s


def _suggest(target: Path, name: str | None) -> str:
    if name:
        base = Path("results") / name
        cand = base
        k = 2
        while os.path.lexists(cand) and k < 100:
            cand = Path(f"{base}-{k}")
            k += 1
        return str(cand)
    cand = target.with_name(f"{target.name}-run") if target.name else Path("results") / "run"
    return str(cand)


def check_target(target: str | Path, overwrite: bool = False, name: str | None = None, flag: str = "--out") -> None:
    """Raise OutputError unless nksim may put a folder at `target`: it does not exist, or is an empty
    folder, or (with `overwrite`) holds an nksim run folder and nothing the user added to it."""
    target = Path(target)
    how = f"choose another folder with {flag} (out= in Python), e.g. {flag} {_suggest(target, name)}"
    target_abs = Path(os.path.abspath(target))
    cwd = Path(os.getcwd())
    try:
        real = Path(os.path.realpath(target_abs))
        real_cwd = Path(os.path.realpath(cwd))
    except OSError:
        real, real_cwd = target_abs, cwd
    if real == real_cwd:
        raise OutputError(f"refusing to write a run to {target}: it is the working directory, and nksim replaces "
                          f"only folders it made itself; {how}")
    if real in real_cwd.parents:
        raise OutputError(f"refusing to write a run to {target}: it contains the working directory; {how}")
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise OutputError(f"refusing to write a run to {target}: a part of that path is a file; {how}") from None
    except OSError as e:
        raise OutputError(f"cannot use {target}: {e.strerror}; {how}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise OutputError(f"refusing to write a run to {target}: it is {_kind_of(st.st_mode)}, not a folder, and nksim "
                          f"never replaces files or devices; {how}")
    if os.path.ismount(target):
        raise OutputError(f"refusing to write a run to {target}: it is a mount point; {how}")
    try:
        entries = sorted(os.listdir(target))
    except OSError as e:
        raise OutputError(f"cannot read {target}: {e.strerror}; {how}") from None
    if not entries:
        return
    marker = read_marker(target)
    if marker is None and not _legacy_run(target, entries):
        shown = ", ".join(entries[:4]) + (f" and {len(entries) - 4} more" if len(entries) > 4 else "")
        raise OutputError(f"refusing to write a run to {target}: the folder holds files nksim did not write "
                          f"({shown}); {how}")
    what = "an earlier nksim arms run" if (marker or {}).get("kind") == "arms" else "an earlier nksim run"
    if not overwrite:
        raise OutputError(f"{target} holds {what}; add --overwrite (overwrite=True in Python) to replace it, or {how}")
    known = set(marker.get("files", [])) if marker else _walk(target)
    extra = sorted(p for p in _walk(target) - known - {MARKER}
                   if p != _PLOTS and not p.startswith(_PLOTS + "/"))
    if extra:
        shown = ", ".join(extra[:4]) + (f" and {len(extra) - 4} more" if len(extra) > 4 else "")
        raise OutputError(f"refusing to replace {target}: it holds files nksim did not write ({shown}); move them "
                          f"out first, or {how}")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def make_dir(path: str | Path) -> Path:
    """mkdir with the umask's permissions (unlike tempfile.mkdtemp's 0700)."""
    os.mkdir(path, 0o777)
    return Path(path)


def publish_dir(tmp: Path, final: Path, replace: bool = False) -> None:
    """Move the complete folder `tmp` to `final`. Without `replace`, `final` must not exist (or be an
    empty folder); with it, an existing `final` is swapped out in one step and then removed."""
    if not replace or not os.path.lexists(final):
        try:
            os.rename(tmp, final)
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise OutputError(f"{final} appeared while nksim was writing it; nothing was replaced") from None
            raise
        return
    if _exchange(tmp, final):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the replaced folder
        return
    old = tmp_sibling(final, "old")
    os.rename(final, old)  # a crash between the two renames is undone by clean_leftovers
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    for root, dirs, files in os.walk(folder):
        for n in files:
            _fsync_path(Path(root) / n)
        _fsync_path(Path(root), directory=True)


@contextlib.contextmanager
def atomic_dir(final: str | Path, overwrite: bool = False, kind: str = "run", name: str | None = None,
               flag: str = "--out") -> Iterator[Path]:
    """Check `final` (`check_target`), then yield a new hidden folder next to it (created now, so an
    unwritable target fails before any work); when the block ends normally, mark the folder as
    nksim's (``.nksim-run``) and move it to `final`, replacing an earlier run only with `overwrite`.
    On any error or interrupt the hidden folder is removed and `final` is untouched."""
    final = Path(final)
    check_target(final, overwrite=overwrite, name=name, flag=flag)
    how = f"choose another folder with {flag}"
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the folder for {final}: {e.strerror}; {how}") from None
    clean_leftovers(final)
    tmp = tmp_sibling(final)
    try:
        make_dir(tmp)
    except OSError as e:
        raise OutputError(f"cannot write the run to {final}: {e.strerror}; {how}") from None
    try:
        yield tmp
        files = sorted(_walk(tmp) | {MARKER})
        from . import __version__

        line = json.dumps({"nksim": __version__, "kind": kind, "created": _now(), "files": files})
        fd = os.open(tmp / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "w") as fh:
            fh.write(line + "\n")
        _fsync_tree(tmp)
        if os.path.lexists(final):
            check_target(final, overwrite=overwrite, name=name, flag=flag)  # it may have changed meanwhile
        publish_dir(tmp, final, replace=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_path(final.parent, directory=True)


def check_file_target(path: str | Path, what: str = "checkpoint", fix: str = "choose another folder with --out") -> None:
    """Refuse a path for a file nksim keeps replacing (a checkpoint) if something other than a regular
    file is there (a folder, a FIFO, a device, a link)."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise OutputError(f"cannot use {path} for the {what}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"refusing to write the {what} to {path}: it is {_kind_of(st.st_mode) if not stat.S_ISDIR(st.st_mode) else 'a folder'}; "
                          f"{fix}")
