"""Read a run folder that `nksim run` (or `sim.run(..., out=)`) wrote: `sim.load_run(path)`.

    run = sim.load_run("results/quickstart")
    run.timeseries            # pandas DataFrame, one row per output time (timeseries.parquet)
    run.summary               # dict (summary.json): metrics, seed, effective scenario, provenance
    run.snapshots             # sequence of dicts of NumPy arrays, read from snapshots/*.npz on access
    run.times_h               # the snapshot times (h)
    run.cells(i, "tumor")     # snapshot i's tumor cells as a DataFrame (id, x, y, z, antigen, ...)
    run.cells(i, "nk")        # snapshot i's CAR-NK cells (id, x, y, z, state, car, granules, kills, ...)
    run.fields(i)             # snapshot i's fields: {"ifng": array (fx, fy, fz), ...} in ng/mL

The snapshot keys are listed in docs/outputs.md. Reading never writes anything.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import RunFolderError
from .output import LazySnapshots, read_parquet

_SNAP_NAME = re.compile(r"^t(\d+(?:\.\d+)?)h\.npz$")
#: nk_state codes in snapshots (kernels/step.py) and their names in `Run.cells(i, "nk")`
NK_STATES = {0: "free", 1: "killing", 2: "bound"}


@dataclass
class Run:
    """One run folder's outputs (see the module docstring)."""

    path: Path
    timeseries: pd.DataFrame
    summary: dict
    snapshots: LazySnapshots

    @property
    def metrics(self) -> dict:
        return self.summary.get("metrics", {})

    @property
    def times_h(self) -> list[float]:
        """Snapshot times (h), from the file names (no file is opened)."""
        return [float(_SNAP_NAME.match(n).group(1)) for n in self.snapshots.names]

    def _snap(self, i: int) -> dict:
        n = len(self.snapshots)
        if not -n <= i < n:
            raise IndexError(f"{self.path} has {n} snapshots; index {i} is out of range")
        return self.snapshots[i]

    def cells(self, i: int, kind: str = "tumor") -> pd.DataFrame:
        """The live cells of snapshot `i` (`kind` "tumor" or "nk") as a DataFrame: `id` (run-wide,
        stable between snapshots; absent in runs written before ids), lattice coordinates x, y, z,
        `x_um`, `y_um`, `z_um`, then one column per per-cell array of the snapshot."""
        if kind not in ("tumor", "nk"):
            raise ValueError(f"kind must be 'tumor' or 'nk', got {kind!r}")
        s = self._snap(i)
        if f"{kind}_xyz" not in s:
            raise RunFolderError(f"{self.path}: snapshot {i} holds no cell positions (a well-mixed run)")
        xyz = s[f"{kind}_xyz"]
        cols: dict[str, np.ndarray] = {}
        if f"{kind}_id" in s:
            cols["id"] = s[f"{kind}_id"]
        sp = float(s["spacing_um"])
        for a, name in enumerate("xyz"):
            cols[name] = xyz[:, a]
        for a, name in enumerate("xyz"):
            cols[f"{name}_um"] = xyz[:, a] * sp
        pre = f"{kind}_"
        for k, v in s.items():
            if k.startswith(pre) and k not in (f"{kind}_xyz", f"{kind}_id") and np.ndim(v) == 1 and len(v) == len(xyz):
                cols[k[len(pre):]] = v
        df = pd.DataFrame(cols)
        if kind == "nk" and "state" in df:
            df["state"] = pd.Categorical(df["state"].map(NK_STATES), categories=list(NK_STATES.values()))
        return df

    def fields(self, i: int) -> dict[str, np.ndarray]:
        """The fields of snapshot `i`: name → total concentration (ng/mL) on the field grid (fx, fy, fz);
        voxel (a, b, c) covers lattice sites a·coarsen … a·coarsen + coarsen − 1 (`field_coarsen`)."""
        s = self._snap(i)
        return {str(n): s[str(n)] for n in s.get("field_names", [])}

    def __repr__(self) -> str:
        return (f"Run({self.path}, {len(self.timeseries)} time points, {len(self.snapshots)} snapshots, "
                f"scenario {self.summary.get('scenario', {}).get('name', '?')!r})")


def load_run(path: str | Path) -> Run:
    """Read the run folder at `path` (what `nksim run` writes: timeseries.parquet, summary.json,
    snapshots/*.npz); RunFolderError (a ValueError) if it is not one. For a treatment-arms folder,
    load each arm's folder; for a sweep, use `sim.plots.load_results`."""
    p = Path(path)
    if not p.is_dir():
        raise RunFolderError(f"{p} is not a folder (expected a run folder written by nksim run)")
    if (p / "arms.csv").is_file():
        arms = sorted(d.name for d in p.iterdir() if d.is_dir() and (d / "summary.json").is_file())
        hint = f", e.g. sim.load_run('{p / arms[0]}')" if arms else ""
        raise RunFolderError(f"{p} is a treatment-arms folder (arms: {', '.join(arms)}): load one arm's folder{hint}")
    if (p / "manifest.json").is_file() and (p / "summary.parquet").is_file():
        raise RunFolderError(f"{p} is a sweep folder: read it with sim.plots.load_results, or load one run's folder")
    missing = [n for n in ("timeseries.parquet", "summary.json") if not (p / n).is_file()]
    if missing:
        raise RunFolderError(f"{p} is not an nksim run folder: {' and '.join(missing)} missing")
    try:
        summary = json.loads((p / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise RunFolderError(f"{p / 'summary.json'} does not read as JSON ({' '.join(str(e).split())})") from None
    try:
        ts = read_parquet(p / "timeseries.parquet")
    except Exception as e:  # noqa: BLE001  (Arrow raises several types for a damaged file)
        raise RunFolderError(f"{p / 'timeseries.parquet'} does not read as Parquet ({' '.join(str(e).split())})") from None
    snaps = LazySnapshots(p / "snapshots")
    snaps.names = [n for n in snaps.names if _SNAP_NAME.match(n)]
    return Run(p, ts, summary, snaps)
