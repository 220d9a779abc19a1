"""Run outputs: time series (Parquet), summary (JSON), snapshots (.npz) and a figure, written
atomically: everything goes to a temporary sibling folder that is renamed when complete (the writer
itself is sim/safe_io.py)."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import safe_io

#: The columns every run's timeseries.parquet starts with (therapy and modulator columns follow).
TIMESERIES_COLUMNS = (
    "time_h", "tumor", "tumor_ag_pos", "tumor_ag_neg", "tumor_ag_low", "nk_live", "nk_exhausted",
    "kills_car", "kills_innate", "kills_adcc", "mean_ifng_ng_ml", "mean_tgfb_ng_ml", "mean_il15_ng_ml",
    "nk_blood",
)


def atomic_dir(final: str | Path, overwrite: bool = False, kind: str = "run", name: str | None = None):
    """A temporary folder next to `final`, moved into place when complete (see sim.safe_io.atomic_dir:
    only nksim's own run folders are ever replaced, and only with `overwrite`)."""
    return safe_io.atomic_dir(final, overwrite=overwrite, kind=kind, name=name)


def read_parquet(path: str | Path) -> pd.DataFrame:
    """Read a Parquet file into pandas through pyarrow's path reader.

    `pandas.read_parquet` on a local path hands Arrow a Python file object; with Arrow's thread
    pool that aborts the interpreter at exit in a few % of processes on this platform
    ("terminate called without an active exception", pandas 2.3 + pyarrow 21–26), so nksim reads
    through `pyarrow.parquet.read_table(path)` instead (0 aborts in 100 processes).
    """
    import pyarrow.parquet as pq

    return pq.read_table(str(path), use_threads=False).to_pandas()


def write_json_atomic(path: str | Path, obj) -> None:
    """Write JSON to `path` atomically (sim.safe_io)."""
    safe_io.write_json_atomic(path, obj, default=_json_default)


def _json_default(o):
    return safe_io.json_default(o)


def snapshot_name(snap: dict) -> str:
    return f"t{float(snap['time_h']):08.2f}h.npz"


class SnapshotSink:
    """Where a run's snapshots go as they are taken: .npz files in `folder` (the temporary run folder),
    or, without one, a list in memory."""

    def __init__(self, folder: Path | None):
        self.folder = None if folder is None else Path(folder)
        self.items: list = []  # Paths (with a folder) or dicts
        self.sha256: dict[str, str] = {}  # of the files, by name, once a checkpoint has needed it

    def add(self, snap: dict) -> None:
        if self.folder is None:
            self.items.append(snap)
            return
        self.folder.mkdir(exist_ok=True)
        p = self.folder / snapshot_name(snap)
        # a new file each time, never one rewritten in place: a checkpoint's snapshot store may link to it
        with safe_io.atomic_file(p, fsync=False) as tmp, open(tmp, "xb") as fh:
            np.savez_compressed(fh, **snap)
        self.items.append(p)  # names never repeat: `time.snapshot_every_h` is refused below 0.01 h + one step

    def add_existing(self, src: Path, sha256: str) -> None:
        """A snapshot file carried over from a checkpoint's snapshot store: a hard link, else a copy."""
        self.folder.mkdir(exist_ok=True)
        p = self.folder / src.name
        safe_io.link_or_copy(src, p, fsync=False)  # the run folder is made durable when it is published
        self.sha256[p.name] = sha256
        self.items.append(p)

    def __len__(self) -> int:
        return len(self.items)


class LazySnapshots(Sequence):
    """A run's snapshots read from its folder when asked for (`Result.snapshots`), not kept in memory."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.names = sorted(p.name for p in self.folder.glob("*.npz")) if self.folder.is_dir() else []

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        with np.load(self.folder / self.names[i], allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def __repr__(self) -> str:
        return f"LazySnapshots({self.folder}, {len(self)} files)"


def write_run(folder: Path, timeseries: pd.DataFrame, summary: dict, snapshots: list[dict], figure: bool) -> None:
    """Write one run's files into `folder` (expected to be a fresh temporary folder)."""
    timeseries.to_parquet(folder / "timeseries.parquet", index=False)
    with open(folder / "summary.json", "w") as fh:
        json.dump(summary, fh, indent=2, default=_json_default)
    if snapshots:  # snapshots not streamed while the run ran (api.run streams them into the folder)
        sink = SnapshotSink(folder / "snapshots")
        for snap in snapshots:
            sink.add(snap)
    if figure:
        sc = summary.get("scenario", {}) or {}
        plot_tumor_nk(timeseries, folder / "tumor_nk.png", title=sc.get("name", ""),
                      antigen=((sc.get("tumor") or {}).get("antigen") or {}).get("name") or "antigen")


def plot_tumor_nk(ts: pd.DataFrame, path: Path, title: str = "", antigen: str = "antigen") -> None:
    """The default run figure: tumor (e.g. CD19+/−) and CAR-NK counts against time."""
    from matplotlib.figure import Figure  # no pyplot: library code never picks the backend

    t = ts["time_h"] / 24.0
    fig = Figure(figsize=(9, 3.5), layout="constrained")
    ax = fig.subplots(1, 2)
    ax[0].plot(t, ts["tumor"], label="all", color="k")
    ax[0].plot(t, ts["tumor_ag_pos"], label=f"{antigen}+", color="tab:red")
    ax[0].plot(t, ts["tumor_ag_neg"], label=f"{antigen}−", color="tab:blue")
    ax[0].set(xlabel="time (days)", ylabel="tumor cells", title="Tumor")
    ax[0].legend(frameon=False)
    ax[1].plot(t, ts["nk_live"], label="live", color="tab:green")
    ax[1].plot(t, ts["nk_exhausted"], label="exhausted", color="tab:olive")
    ax[1].set(xlabel="time (days)", ylabel="CAR-NK cells", title="CAR-NK")
    ax[1].legend(frameon=False)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=120, bbox_inches="tight", pad_inches=0.08)
