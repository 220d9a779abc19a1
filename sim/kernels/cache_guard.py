"""Keep Numba's on-disk cache of the kernels in step with their source.

Numba invalidates a cached function only when the file that defines it changes, but the batch
kernels inline mechanism functions from the other kernel modules (`inline="always"`). Edit
`lattice.py` alone and `step.nk_step` would be loaded from the cache with the old rule. So on
import this module hashes the source of every kernel module and, if the hash differs from the one
stamped in the cache folder, deletes that folder's cached kernels before anything loads them.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from numba import njit

from sim.safe_io import atomic_write_text

STAMP = "nksim-kernels.sha256"
PRECOMPILED = "nksim-precompiled.sha256"  # `nksim compile` finished for the sources named in STAMP


@njit(cache=True)
def _probe():
    """Never called: its cache locator tells where Numba keeps this folder's cached kernels."""
    return 0


def source_hash(folder: Path) -> str:
    """SHA-256 over the names and contents of the kernel modules (*.py) in `folder`."""
    h = hashlib.sha256()
    for p in sorted(folder.glob("*.py")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def cache_folder() -> Path | None:
    """The folder Numba caches the kernels in (NUMBA_CACHE_DIR or __pycache__ beside the sources), None if none."""
    path = getattr(getattr(_probe, "_cache", None), "_cache_path", None)
    return Path(path) if path else None


def guard() -> bool:
    """Drop the cached kernels if the kernel sources changed since they were cached; True if dropped."""
    folder = cache_folder()
    if folder is None:
        return False
    digest = source_hash(Path(__file__).parent)
    stamp = folder / STAMP
    try:
        if stamp.read_text().strip() == digest:
            return False
    except OSError:
        pass
    dropped = False
    modules = {p.stem for p in Path(__file__).parent.glob("*.py")}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for f in folder.iterdir():
            if f.suffix in (".nbi", ".nbc") and f.name.split(".", 1)[0] in modules:
                f.unlink(missing_ok=True)
                dropped = True
        atomic_write_text(stamp, digest)
    except OSError:  # read-only install: numba falls back to its own checks
        return dropped
    return dropped


def kernels_cached() -> bool:
    """Whether the batch step's compiled code is on disk (else the first step compiles it: 40-80 s on 2 cores)."""
    folder = cache_folder()
    return folder is not None and any(folder.glob("step.nk_step-*.nbi"))


def _precompiled_mark(folder: Path) -> str:
    """What `mark_precompiled` writes: the source stamp (which `guard` renews on an edit) and the Numba
    and Python versions (a cache of another version is ignored by Numba)."""
    import sys

    import numba

    return f"{(folder / STAMP).read_text()} numba {numba.__version__} python {sys.version_info[0]}.{sys.version_info[1]}"


def precompiled() -> bool:
    """Whether `nksim compile` finished for the current kernel sources and this Numba and Python."""
    folder = cache_folder()
    try:
        return folder is not None and (folder / PRECOMPILED).read_text() == _precompiled_mark(folder)
    except OSError:
        return False


def mark_precompiled() -> bool:
    """Record that every kernel the shipped scenarios use is in the cache; False if there is no writable one."""
    folder = cache_folder()
    try:
        atomic_write_text(folder / PRECOMPILED, _precompiled_mark(folder))
    except (OSError, TypeError):  # TypeError: no cache folder
        return False
    return True
