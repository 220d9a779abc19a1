"""What produced a result: nksim version, git commit (when run from a checkout), library versions and
platform. Recorded in every summary.json and sweep manifest; `ENGINE` keys sweep run ids."""
from __future__ import annotations

import functools
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from . import __version__

#: Libraries whose version can change a result.
LIBRARIES = ("numpy", "numba", "scipy", "mesa", "pydantic", "pandas", "pyarrow")

def source_digest(root: Path | None = None) -> str:
    """A digest of the package's own code and data (every file under sim/, or `root`, but caches): any
    edit to a rule, a default or a packaged table changes it."""
    import hashlib

    root = Path(__file__).resolve().parent if root is None else Path(root)
    h = hashlib.blake2b(digest_size=8)
    for f in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"):
        h.update(f.relative_to(root).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


#: Engine identity for sweep run ids: the version and the code digest, so that results of another engine
#: (another release, or the same version with edited rules or defaults) are never reused as current.
ENGINE = f"nksim-{__version__}+{source_digest()}"


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the checkout nksim is imported from (with '+dirty' for local edits), else None."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "sim"],
                               capture_output=True, text=True, timeout=5)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


@functools.lru_cache(maxsize=1)
def provenance() -> dict:
    """{version, commit, libraries, python, platform} of this process."""
    libs = {}
    for name in LIBRARIES:
        try:
            libs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            libs[name] = None
    return {"version": __version__, "commit": git_commit(), "libraries": libs,
            "python": sys.version.split()[0], "platform": platform.platform()}
