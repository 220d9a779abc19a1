"""Aggregation: summary/timeseries/sensitivity Parquet tables rebuilt from the run folders."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from sim.output import read_parquet
from sim.safe_io import atomic_file

from sim.metrics import LIST_METRICS

from .spec import Plan
from .store import is_done


def _write_parquet(df, path: Path) -> None:
    """Deterministic parquet: no index, fixed compression, written atomically (sim.safe_io)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp, compression="snappy")


_PARAM_DTYPES = {"bool": "bool", "int": "int64", "float": "float64", "str": "object"}
#: The same, where the untreated control's rows leave the column empty (it is no design point).
_NULLABLE_DTYPES = {"bool": "boolean", "int": "Int64", "float": "float64", "str": "object"}


def _metric_series(values: list):
    import pandas as pd

    vals = [None if (isinstance(v, float) and np.isnan(v)) else v for v in values]
    present = [v for v in vals if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pd.Series(vals, dtype="boolean" if len(present) < len(vals) else "bool")
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present) and len(present) == len(vals):
        return pd.Series(vals, dtype="int64")
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pd.Series([np.nan if v is None else float(v) for v in vals], dtype="float64")
    return pd.Series(vals, dtype="object")


def write_outputs(plan: Plan, out: Path) -> tuple[list[Path], dict]:
    """Rebuild summary.parquet, timeseries.parquet and sensitivity.parquet from runs/ folders.

    The untreated control's rows come last, `control` True, with no design point or parameter values.
    Returns the files written and {metric: why its sensitivity indices were skipped}.
    """
    import pandas as pd

    runs_dir = out / "runs"
    names = plan.names
    rows, ts_frames = [], []
    cache: dict[str, tuple[dict, Any]] = {}
    for rs in plan.runs:
        if not is_done(runs_dir, rs.run_id):
            continue
        if rs.run_id not in cache:
            summ = json.loads((runs_dir / rs.run_id / "summary.json").read_text())
            ts = read_parquet(runs_dir / rs.run_id / "timeseries.parquet")
            cache[rs.run_id] = (summ.get("metrics", {}), ts)
        metrics, ts = cache[rs.run_id]
        rows.append((rs, metrics))
        ts_frames.append(ts)

    dtypes = _NULLABLE_DTYPES if any(r.control for r, _ in rows) else _PARAM_DTYPES
    cols: dict[str, Any] = {
        "run_id": pd.Series([r.run_id for r, _ in rows], dtype="object"),
        "point": pd.Series([r.point for r, _ in rows], dtype=dtypes["int"]),
        "replicate": pd.Series([r.replicate for r, _ in rows], dtype="int64"),
        "seed": pd.Series([r.seed for r, _ in rows], dtype="int64"),
        "control": pd.Series([r.control for r, _ in rows], dtype="bool"),
    }
    for p in names:
        cols[p] = pd.Series([None if r.control else plan.overrides[r.point][p] for r, _ in rows],
                            dtype=dtypes[plan.param_kinds[p]])
    asked = plan.spec.metrics is not None
    for m in plan.metrics:
        if not asked and rows and all(m not in mm for _, mm in rows):
            continue  # a metric of a component this sweep does not use (e.g. chemo counters)
        if m in LIST_METRICS:
            cols[m] = pd.Series([list(map(int, mm.get(m) or [])) for _, mm in rows], dtype="object")
        else:
            cols[m] = _metric_series([mm.get(m) for _, mm in rows])
    summary = pd.DataFrame(cols)
    files = [out / "summary.parquet", out / "timeseries.parquet"]
    _write_parquet(summary, files[0])

    front = ["run_id", "point", "replicate", "seed", "control", *names]  # each run's summary row, repeated on its rows
    if ts_frames:
        tsdf = pd.concat(ts_frames, ignore_index=True)
        which = np.repeat(np.arange(len(rows)), [len(t) for t in ts_frames])
        for k, c in enumerate(front):
            tsdf.insert(k, c, cols[c].take(which).reset_index(drop=True))
    else:
        tsdf = pd.DataFrame({c: pd.Series(dtype=cols[c].dtype) for c in front})
    _write_parquet(tsdf, files[1])

    notes: dict = {}
    if plan.design.kind in ("sobol", "morris"):
        sens, notes = sensitivity(plan, summary)
        if sens is not None:
            p = out / "sensitivity.parquet"
            _write_parquet(sens, p)
            files.append(p)
    return files, notes


def sensitivity(plan: Plan, summary) -> tuple[Any, dict]:
    """Sobol (S1, ST) or Morris (mu*, sigma) indices per parameter and metric, replicate means.

    Returns (DataFrame or None, {metric: reason skipped}). Needs every design point to have results;
    the untreated control is no design point and is left out.
    """
    import pandas as pd

    notes: dict[str, str] = {}
    summary = summary[~summary["control"]]
    summary = summary.assign(point=summary["point"].astype("int64"))
    n_points = len(plan.design.points)
    if summary.empty or summary["point"].nunique() < n_points:
        return None, {"*": f"{n_points - summary['point'].nunique()} design points have no finished run"}
    problem = plan.design.problem
    rows = []
    seed = plan.seed % (2**32)
    for m in plan.metrics:
        if m in LIST_METRICS or m not in summary:
            continue
        y = pd.to_numeric(summary[m].astype("float64"), errors="coerce")
        Y = y.groupby(summary["point"]).mean().reindex(range(n_points)).to_numpy(dtype=float)
        if not np.all(np.isfinite(Y)):
            notes[m] = "metric has missing or non-finite values"
            continue
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            if plan.design.kind == "sobol":
                from SALib.analyze import sobol as sa

                res = sa.analyze(problem, Y, calc_second_order=False, seed=seed, print_to_console=False)
                for j, name in enumerate(problem["names"]):
                    rows.append({"parameter": name, "metric": m, "S1": float(res["S1"][j]), "S1_conf": float(res["S1_conf"][j]),
                                 "ST": float(res["ST"][j]), "ST_conf": float(res["ST_conf"][j])})
            else:
                from SALib.analyze import morris as ma

                res = ma.analyze(problem, plan.design.X, Y, num_levels=plan.design.options.get("num_levels", 4), seed=seed,
                                 print_to_console=False)
                for j, name in enumerate(problem["names"]):
                    rows.append({"parameter": name, "metric": m, "mu": float(res["mu"][j]), "mu_star": float(res["mu_star"][j]),
                                 "mu_star_conf": float(res["mu_star_conf"][j]), "sigma": float(res["sigma"][j])})
    if not rows:
        return None, notes
    return pd.DataFrame(rows), notes
