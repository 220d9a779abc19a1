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
    response_fraction: float = 0.5,
    run: str | None = None,
    point: int | None = None,
    replicate: int | None = None,
) -> list[Path]:
    """Write outcome curves, tumor endpoints (time to response, time to progression, durable
    control; sim.metrics), dose–response, heatmap, kills per NK, kill routes, spatial snapshots
    (+ GIF) and sensitivity bars where the outputs allow; return the files.

    Snapshots are drawn for one run: `run` (its id), or the run at design `point` and `replicate`
    (either may be given; the other defaults to 0), else the first run with snapshots."""
    from . import figures as F
    from . import spatial as S
    from .data import PlotError, load_results

    if (Path(results_dir) / "arms.csv").is_file():
        return plot_arms(results_dir, out, formats, snapshot_times_h, response_fraction)
    res = load_results(results_dir)
    out = Path(out) if out is not None else res.root / "plots"
    out.mkdir(parents=True, exist_ok=True)
    formats = tuple(f.lower().lstrip(".") for f in formats)
    written: list[Path] = []

    def emit(fig, name: str) -> None:
        if fig is not None:
            written.extend(F.save(fig, out, name, formats))

    emit(F.outcome_curves(res), "outcome_curves")
    emit(F.endpoints(res, response_fraction), "endpoints")
    emit(F.kill_routes(res), "kill_routes")
    emit(F.kills_per_nk(res), "kills_per_nk")
    if res.kind == "sweep":
        emit(F.dose_response(res), "dose_response")
        emit(F.heatmap(res), "heatmap")
        emit(F.sensitivity_bars(res), "sensitivity")
    snap_runs = dict(res.snapshot_runs())
    chosen = _choose_run(res, run, point, replicate)
    if chosen is not None and chosen not in snap_runs:
        raise PlotError(f"run {chosen} has no snapshots (output.snapshots: true and time.snapshot_every_h > 0 "
                        f"keep them); runs with snapshots: {', '.join(list(snap_runs)[:8]) or 'none'}")
    if snap_runs:
        rid = chosen or next(iter(snap_runs))
        snaps = S.load_snapshots(snap_runs[rid])
        title = _run_title(res, rid)
        if chosen is None and len(snap_runs) > 1:
            title += "\n(the first run; choose another with nksim plot --run RUN_ID, or --point N --replicate R)"
        emit(S.snapshot_figure(S.pick(snaps, snapshot_times_h), title=title, antigen=res.antigen), "snapshots")
        gif = S.animate(snaps, out / "snapshots.gif", title=title, antigen=res.antigen)
        if gif is not None:
            written.append(gif)
    return written


def _choose_run(res, run: str | None, point: int | None, replicate: int | None) -> str | None:
    """The run id asked for by id or by (design point, replicate); None when nothing was asked."""
    from .data import PlotError

    s = res.summary
    if run is not None:
        if run not in set(s["run_id"]):
            raise PlotError(f"no run {run!r} in {res.root} (run ids are the folder names under runs/; "
                            f"e.g. {', '.join(list(s['run_id'])[:4])})")
        return run
    if point is None and replicate is None:
        return None
    p, r = int(point or 0), int(replicate or 0)
    hit = s[(s["point"] == p) & (s["replicate"] == r)]
    if hit.empty:
        raise PlotError(f"no run at design point {p}, replicate {r} (points 0–{int(s['point'].max())}, "
                        f"replicates 0–{int(s['replicate'].max())})")
    return str(hit["run_id"].iloc[0])


def plot_arms(results_dir: str | Path, out: str | Path | None = None, formats: Sequence[str] = ("png", "svg"),
              snapshot_times_h: Sequence[float] | None = None, response_fraction: float = 0.5) -> list[Path]:
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
        results[name] = SimpleNamespace(timeseries=read_parquet(d / "timeseries.parquet"), metrics=summary["metrics"],
                                        summary=summary)
    fig = compare_figure(results)
    written = F.save(fig, out, "arms_compare", tuple(f.lower().lstrip(".") for f in formats))
    for name in results:
        written += plot_results(root / name, out / name, formats, snapshot_times_h, response_fraction)
    return written


def _run_title(res, rid: str) -> str:
    """'run <id>: param=value, ... (replicate r)' for a sweep run; the folder name for a run."""
    if res.kind == "run":
        return res.root.name
    from .data import value_label

    row = res.summary[res.summary["run_id"] == rid].iloc[0]
    vals = ", ".join(value_label(p, row[p]) for p in res.params)
    return f"run {rid}: {vals} (replicate {int(row['replicate'])})"


def add_plot_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the plot command's arguments to a (sub)parser."""
    p.add_argument("results_dir", help="a run folder (nksim run) or a sweep folder (nksim sweep)")
    p.add_argument("--out", "-o", default=None, help="figure folder (default RESULTS_DIR/plots)")
    p.add_argument("--formats", default="png,svg", help="comma-separated image formats (default png,svg)")
    p.add_argument("--times", default=None, help="snapshot times in hours, comma-separated (default first/middle/last)")
    p.add_argument("--response-fraction", type=float, default=0.5,
                   help="response and durable control = tumor at or below this fraction of its initial size (default 0.5)")
    p.add_argument("--run", default=None, metavar="RUN_ID", help="draw the snapshots of this sweep run (default: the first run)")
    p.add_argument("--point", type=int, default=None, help="draw the snapshots of the run at this design point (with --replicate)")
    p.add_argument("--replicate", type=int, default=None, help="replicate of --point (default 0)")
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

    frac = getattr(args, "response_fraction", 0.5)
    if not (0.0 < frac < 1.0):
        print(f"nksim plot: error: --response-fraction must be between 0 and 1 (exclusive), got {frac:g}", file=sys.stderr)
        return 2
    formats = [f for f in str(getattr(args, "formats", None) or "png,svg").split(",") if f]
    try:
        files = plot_results(args.results_dir, out=getattr(args, "out", None), formats=formats,
                             snapshot_times_h=times_h, response_fraction=getattr(args, "response_fraction", 0.5),
                             run=getattr(args, "run", None), point=getattr(args, "point", None),
                             replicate=getattr(args, "replicate", None))
    except data.PlotError as e:
        print(f"nksim plot: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(files)} files to {files[0].parent if files else '-'}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m sim.plots FOLDER`."""
    p = add_plot_arguments(argparse.ArgumentParser(prog="python -m sim.plots", description="Plot run or sweep outputs."))
    return cli_plot(p.parse_args(argv))
