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


def guard() -> bool:
    """Drop the cached kernels if the kernel sources changed since they were cached; True if dropped."""
    path = getattr(getattr(_probe, "_cache", None), "_cache_path", None)
    if not path:
        return False
    folder = Path(path)
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
    """Whether the batch step's compiled code is on disk (else the first step compiles it, ~20 s)."""
    path = getattr(getattr(_probe, "_cache", None), "_cache_path", None)
    return bool(path) and any(Path(path).glob("step.nk_step-*.nbi"))
