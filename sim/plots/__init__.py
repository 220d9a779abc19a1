"""Figures from written outputs (a run folder or a sweep folder), never from a live model.

``plot_results(folder)`` draws every figure the outputs allow and returns the files written;
``nksim plot FOLDER`` is the same from the command line.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["PlotError", "Results", "add_plot_arguments", "cli_plot", "load_results", "plot_results"]


def __getattr__(name: str):
    """PlotError, Results and load_results load pandas lazily (keeps `nksim --help` fast)."""
    if name in ("PlotError", "Results", "load_results"):
        from . import data

        return getattr(data, name)
    raise AttributeError(name)


def plot_results(
    results_dir: str | Path,
    out: str | Path | None = None,
    formats: Sequence[str] = ("png", "svg"),
    snapshot_times_h: Sequence[float] | None = None,
    tcp_threshold: float = 0.5,
) -> list[Path]:
    """Write outcome curves, tumor control, dose–response, heatmap, kills per NK, kill routes,
    spatial snapshots (+ GIF) and sensitivity bars where the outputs allow; return the files."""
    from . import figures as F
    from . import spatial as S
    from .data import load_results

    if (Path(results_dir) / "arms.csv").is_file():
        return plot_arms(results_dir, out, formats, snapshot_times_h, tcp_threshold)
    res = load_results(results_dir)
    out = Path(out) if out is not None else res.root / "plots"
    out.mkdir(parents=True, exist_ok=True)
    formats = tuple(f.lower().lstrip(".") for f in formats)
    written: list[Path] = []

    def emit(fig, name: str) -> None:
        if fig is not None:
            written.extend(F.save(fig, out, name, formats))

    emit(F.outcome_curves(res), "outcome_curves")
    emit(F.tumor_control(res, tcp_threshold), "tumor_control")
    emit(F.kill_routes(res), "kill_routes")
    emit(F.kills_per_nk(res), "kills_per_nk")
    if res.kind == "sweep":
        emit(F.dose_response(res), "dose_response")
        emit(F.heatmap(res), "heatmap")
        emit(F.sensitivity_bars(res), "sensitivity")
    snap_runs = res.snapshot_runs()
    if snap_runs:
        rid, run_dir = snap_runs[0]
        snaps = S.load_snapshots(run_dir)
        title = _run_title(res, rid)
        emit(S.snapshot_figure(S.pick(snaps, snapshot_times_h), title=title), "snapshots")
        gif = S.animate(snaps, out / "snapshots.gif", title=title)
        if gif is not None:
            written.append(gif)
    return written


def plot_arms(results_dir: str | Path, out: str | Path | None = None, formats: Sequence[str] = ("png", "svg"),
              snapshot_times_h: Sequence[float] | None = None, tcp_threshold: float = 0.5) -> list[Path]:
    """A treatment-arms folder (`arms:` scenarios): the arms side by side, then each arm's own figures."""
    import json
    from types import SimpleNamespace

    import pandas as pd

    from sim.compare import compare_figure
    from sim.output import read_parquet

    from . import figures as F

    root = Path(results_dir)
    out = Path(out) if out is not None else root / "plots"
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in pd.read_csv(root / "arms.csv")["arm"].astype(str):
        d = root / name
        summary = json.loads((d / "summary.json").read_text())
        results[name] = SimpleNamespace(timeseries=read_parquet(d / "timeseries.parquet"), metrics=summary["metrics"])
    fig = compare_figure(results)
    written = F.save(fig, out, "arms_compare", tuple(f.lower().lstrip(".") for f in formats))
    for name in results:
        written += plot_results(root / name, out / name, formats, snapshot_times_h, tcp_threshold)
    return written


def _run_title(res, rid: str) -> str:
    """'run <id>: param=value, ... (replicate r)' for a sweep run; the folder name for a run."""
    if res.kind == "run":
        return res.root.name
    from .data import fmt, short

    row = res.summary[res.summary["run_id"] == rid].iloc[0]
    vals = ", ".join(f"{short(p)}={fmt(row[p])}" for p in res.params)
    return f"run {rid}: {vals} (replicate {int(row['replicate'])})"


def add_plot_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the plot command's arguments to a (sub)parser."""
    p.add_argument("results_dir", help="a run folder (nksim run) or a sweep folder (nksim sweep)")
    p.add_argument("--out", "-o", default=None, help="figure folder (default RESULTS_DIR/plots)")
    p.add_argument("--formats", default="png,svg", help="comma-separated image formats (default png,svg)")
    p.add_argument("--times", default=None, help="snapshot times in hours, comma-separated (default first/middle/last)")
    p.add_argument("--tcp-threshold", type=float, default=0.5, help="tumor control = below this fraction of the initial tumor (default 0.5)")
    return p


def cli_plot(args: argparse.Namespace) -> int:
    """`nksim plot`: 0 on success, 2 when the folder is not a run/sweep output."""
    times = getattr(args, "times", None)
    try:
        times_h = [float(x) for x in times.split(",")] if times else None
    except ValueError:
        print(f"nksim plot: error: --times must be hours separated by commas, got {times!r}", file=sys.stderr)
        return 2
    from . import data

    formats = [f for f in str(getattr(args, "formats", None) or "png,svg").split(",") if f]
    try:
        files = plot_results(args.results_dir, out=getattr(args, "out", None), formats=formats,
                             snapshot_times_h=times_h, tcp_threshold=getattr(args, "tcp_threshold", 0.5))
    except data.PlotError as e:
        print(f"nksim plot: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(files)} files to {files[0].parent if files else '-'}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m sim.plots FOLDER`."""
    p = add_plot_arguments(argparse.ArgumentParser(prog="python -m sim.plots", description="Plot run or sweep outputs."))
    return cli_plot(p.parse_args(argv))
