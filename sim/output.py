"""Run outputs: time series (Parquet), summary (JSON), snapshots (.npz) and a figure, written
atomically: everything goes to a temporary sibling folder that is renamed when complete."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

#: The columns every run's timeseries.parquet starts with (therapy and modulator columns follow).
TIMESERIES_COLUMNS = (
    "time_h", "tumor", "tumor_ag_pos", "tumor_ag_neg", "nk_live", "nk_exhausted",
    "kills_car", "kills_innate", "kills_adcc", "mean_ifng_ng_ml", "mean_tgfb_ng_ml", "mean_il15_ng_ml",
    "nk_blood",
)


@contextmanager
def atomic_dir(final: str | Path):
    """Yield a temporary folder next to `final`; on success replace `final` with it in one rename."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


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
    """Write JSON to `path` via a temporary file and os.replace."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump(obj, fh, indent=2, default=_json_default)
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def write_run(folder: Path, timeseries: pd.DataFrame, summary: dict, snapshots: list[dict], figure: bool) -> None:
    """Write one run's files into `folder` (expected to be a fresh temporary folder)."""
    timeseries.to_parquet(folder / "timeseries.parquet", index=False)
    with open(folder / "summary.json", "w") as fh:
        json.dump(summary, fh, indent=2, default=_json_default)
    if snapshots:
        sd = folder / "snapshots"
        sd.mkdir()
        for snap in snapshots:
            np.savez_compressed(sd / f"t{float(snap['time_h']):08.2f}h.npz", **snap)
    if figure:
        plot_tumor_nk(timeseries, folder / "tumor_nk.png", title=summary.get("scenario", {}).get("name", ""))


def plot_tumor_nk(ts: pd.DataFrame, path: Path, title: str = "") -> None:
    """The default run figure: tumor (antigen+/−) and CAR-NK counts against time."""
    from matplotlib.figure import Figure  # no pyplot: library code never picks the backend

    t = ts["time_h"] / 24.0
    fig = Figure(figsize=(9, 3.5), layout="constrained")
    ax = fig.subplots(1, 2)
    ax[0].plot(t, ts["tumor"], label="all", color="k")
    ax[0].plot(t, ts["tumor_ag_pos"], label="antigen+", color="tab:red")
    ax[0].plot(t, ts["tumor_ag_neg"], label="antigen−", color="tab:blue")
    ax[0].set(xlabel="time (days)", ylabel="tumor cells", title="Tumor")
    ax[0].legend(frameon=False)
    ax[1].plot(t, ts["nk_live"], label="live", color="tab:green")
    ax[1].plot(t, ts["nk_exhausted"], label="exhausted", color="tab:olive")
    ax[1].set(xlabel="time (days)", ylabel="CAR-NK cells", title="CAR-NK")
    ax[1].legend(frameon=False)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=120)
