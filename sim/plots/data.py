"""Read a run folder or a sweep folder into one shape for plotting (written outputs only).

A single run is treated as a one-run sweep, so every figure has a single code path.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from sim.output import read_parquet

MAX_GROUPS = 8


class PlotError(ValueError):
    """The folder is not a run or sweep output (message says what is missing)."""


@dataclass
class Results:
    """Outputs of a run or a sweep: long time series, per-run summary, swept parameters."""

    kind: str  # "run" or "sweep"
    root: Path
    timeseries: pd.DataFrame
    summary: pd.DataFrame
    params: list[str] = field(default_factory=list)
    manifest: dict | None = None
    sensitivity: pd.DataFrame | None = None
    run_dirs: dict[str, Path] = field(default_factory=dict)

    @property
    def design(self) -> str:
        return (self.manifest or {}).get("design", "run")

    def kills_hist(self, run_id: str) -> list[int]:
        """The kills-per-NK histogram of a run (summary column or the run's summary.json)."""
        if "kills_per_nk_hist" in self.summary:
            row = self.summary.loc[self.summary["run_id"] == run_id, "kills_per_nk_hist"]
            if len(row) and row.iloc[0] is not None:
                return [int(x) for x in row.iloc[0]]
        d = self.run_dirs.get(run_id)
        if d is not None and (d / "summary.json").is_file():
            return [int(x) for x in json.loads((d / "summary.json").read_text())["metrics"].get("kills_per_nk_hist", [])]
        return []

    def snapshot_runs(self) -> list[tuple[str, Path]]:
        """(run_id, folder) of runs with snapshots, in design order."""
        out = []
        for rid in self.summary["run_id"]:
            d = self.run_dirs.get(rid)
            if d is not None and any((d / "snapshots").glob("*.npz")):
                out.append((rid, d))
        return out


def _check_sweep(root: Path, manifest: dict) -> None:
    """Refuse a sweep folder whose tables are not the ones its manifest describes: a sweep still
    running (or killed while running), or summary.parquet from another invocation."""
    from sim.safe_io import sha256_file
    from sim.sweep.store import lock_is_held

    if manifest.get("status") == "running":
        if lock_is_held(root):
            raise PlotError(f"{root}: the sweep is still running (manifest.json says running); plot it when it has finished")
        raise PlotError(f"{root}: the sweep stopped while running (manifest.json still says running); "
                        f"rerun nksim sweep on this folder to finish it, then plot")
    outputs = manifest.get("outputs")
    if isinstance(outputs, dict) and outputs:
        for name in ("summary.parquet", "timeseries.parquet", "sensitivity.parquet"):
            if name in outputs and (root / name).is_file() and sha256_file(root / name) != outputs[name]:
                raise PlotError(f"{root}: {name} does not match manifest.json (it was written by another run of "
                                f"the sweep); rerun nksim sweep on this folder to rebuild it")
        return
    import pyarrow.parquet as pq

    done = {r.get("run_id") for r in manifest.get("runs", []) if isinstance(r, dict) and r.get("status") == "done"}
    have = set(pq.read_table(root / "summary.parquet", columns=["run_id"], use_threads=False).column("run_id").to_pylist())
    if have != done:
        raise PlotError(f"{root}: summary.parquet does not match manifest.json ({len(have)} runs in the table, "
                        f"{len(done)} done in the manifest); rerun nksim sweep on this folder to rebuild it")


def load_results(path: str | Path) -> Results:
    """Load a run folder (summary.json + timeseries.parquet) or a sweep folder (manifest.json)."""
    root = Path(path)
    if not root.is_dir():
        raise PlotError(f"{root}: no such folder (give a run or sweep output folder)")
    if (root / "manifest.json").is_file() and (root / "summary.parquet").is_file():
        try:
            manifest = json.loads((root / "manifest.json").read_text())
        except (OSError, ValueError):
            raise PlotError(f"{root}: manifest.json is unreadable; rerun nksim sweep on this folder to rebuild it") from None
        _check_sweep(root, manifest)
        summary = read_parquet(root / "summary.parquet")
        ts = read_parquet(root / "timeseries.parquet") if (root / "timeseries.parquet").is_file() else pd.DataFrame()
        sens = read_parquet(root / "sensitivity.parquet") if (root / "sensitivity.parquet").is_file() else None
        params = [p for p in manifest.get("parameters", {}) if p in summary.columns]
        run_dirs = {rid: root / "runs" / rid for rid in summary["run_id"]}
        if summary.empty:
            raise PlotError(f"{root}: the sweep has no finished runs yet")
        return Results("sweep", root, ts, summary, params, manifest, sens, run_dirs)
    if (root / "summary.json").is_file() and (root / "timeseries.parquet").is_file():
        s = json.loads((root / "summary.json").read_text())
        ts = read_parquet(root / "timeseries.parquet")
        rid = root.name
        ts.insert(0, "run_id", rid)
        ts.insert(1, "point", 0)
        ts.insert(2, "replicate", 0)
        metrics = dict(s.get("metrics", {}))
        hist = metrics.pop("kills_per_nk_hist", None)
        summary = pd.DataFrame([{"run_id": rid, "point": 0, "replicate": 0, "seed": s.get("seed"), **metrics}])
        summary["kills_per_nk_hist"] = [hist]
        return Results("run", root, ts, summary, [], None, None, {rid: root})
    raise PlotError(f"{root}: not a run folder (summary.json + timeseries.parquet) or a sweep folder (manifest.json + summary.parquet)")


# ---------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _units() -> dict[str, str]:
    try:
        from sim.scenario import parameter_rows

        return {r["path"]: r["unit"] for r in parameter_rows()}
    except Exception:  # pragma: no cover - plots must not depend on the schema being importable
        return {}


def short(param: str) -> str:
    """The last two components of a dotted path (enough to tell parameters apart)."""
    return ".".join(param.split(".")[-2:])


def param_label(param: str) -> str:
    """Axis label for a parameter with its unit from the schema (e.g. 'persistence.half_life_days (day)')."""
    unit = _units().get(param, "-")
    return f"{short(param)} ({unit})" if unit not in ("-", "", None) else short(param)


def fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.3g}"
    return str(v)


def is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


@dataclass
class Group:
    """Runs drawn as one curve: a legend label, their run ids and a colour."""

    label: str
    run_ids: list[str]
    value: object = None
    color: object = None


def _palette(n: int, sequential: bool) -> list:
    import matplotlib

    if sequential:
        cmap = matplotlib.colormaps["viridis"]
        return [cmap(0.05 + 0.85 * i / max(1, n - 1)) for i in range(n)]
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def groups(res: Results, max_groups: int = MAX_GROUPS) -> tuple[list[Group], str]:
    """Runs grouped by design value (replicates together); tertiles of the first numeric parameter
    when there are too many distinct values. Colours run along a single numeric parameter.
    Returns (groups, legend title)."""
    s = res.summary
    if not res.params:
        g = Group("run" if res.kind == "run" else "all runs", list(s["run_id"]))
        g.color = _palette(1, False)[0]
        return [g], ""
    combos = s.groupby(res.params, sort=True, dropna=False)["run_id"].apply(list)
    if len(combos) <= max_groups:
        out = []
        for key, rids in combos.items():
            key = key if isinstance(key, tuple) else (key,)
            out.append(Group(", ".join(f"{short(p)}={fmt(v)}" for p, v in zip(res.params, key)), list(rids), key))
        seq = len(res.params) == 1 and is_numeric(s[res.params[0]])
        for g, c in zip(out, _palette(len(out), seq)):
            g.color = c
        return out, " / ".join(res.params)
    num = [p for p in res.params if is_numeric(s[p])]
    p = num[0] if num else res.params[0]
    if not num:
        top = s[p].value_counts().index[:max_groups]
        out = [Group(f"{short(p)}={fmt(v)}", list(s.loc[s[p] == v, "run_id"]), v) for v in top]
        for g, c in zip(out, _palette(len(out), False)):
            g.color = c
        return out, p
    edges = np.unique(np.quantile(s[p].to_numpy(dtype=float), [0, 1 / 3, 2 / 3, 1]))
    if len(edges) < 2:
        out = [Group(f"{short(p)}={fmt(edges[0])}", list(s["run_id"]))]
    else:
        bins = pd.cut(s[p].astype(float), edges, include_lowest=True)
        out = []
        for iv in bins.cat.categories:
            rids = list(s.loc[bins == iv, "run_id"])
            if rids:
                out.append(Group(f"{short(p)} in [{fmt(iv.left)}, {fmt(iv.right)}]", rids, iv.mid))
    for g, c in zip(out, _palette(len(out), True)):
        g.color = c
    others = "; other parameters pooled" if len(res.params) > 1 else ""
    return out, f"{p} (tertiles{others})"


def subset(res: Results, param: str, value) -> Results:
    """The runs with `param == value`, with that parameter no longer counted as swept."""
    keep = res.summary[param] == value
    s = res.summary[keep].reset_index(drop=True)
    ids = set(s["run_id"])
    ts = res.timeseries[res.timeseries["run_id"].isin(ids)]
    return Results(res.kind, res.root, ts, s, [p for p in res.params if p != param], res.manifest, None, res.run_dirs)


def facets(res: Results, max_groups: int = MAX_GROUPS) -> list[tuple[str, Results]]:
    """Split a sweep into panels by its parameter with the fewest levels (at most 4) when there
    are too many combinations for one panel; otherwise one panel with everything."""
    s = res.summary
    if len(res.params) < 2:
        return [("", res)]
    n_combos = len(s.groupby(res.params, dropna=False))
    if n_combos <= min(max_groups, 6):
        return [("", res)]
    levels = {p: s[p].nunique() for p in res.params}
    p = min(res.params, key=lambda q: (levels[q], is_numeric(s[q])))
    if levels[p] > 4:
        return [("", res)]
    return [(f"{short(p)}={fmt(v)}", subset(res, p, v)) for v in ordered(pd.unique(s[p]))]


def ordered(values) -> list:
    """Values in natural order (numbers by value, anything else as text)."""
    vals = list(values)
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)
