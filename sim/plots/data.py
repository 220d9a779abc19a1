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
    """Outputs of a run or a sweep: long time series, per-run summary, swept parameters; a sweep's
    untreated control runs (no design point) are kept apart in `control`."""

    kind: str  # "run", "sweep" or "control"
    root: Path
    timeseries: pd.DataFrame
    summary: pd.DataFrame
    params: list[str] = field(default_factory=list)
    manifest: dict | None = None
    sensitivity: pd.DataFrame | None = None
    run_dirs: dict[str, Path] = field(default_factory=dict)
    control: "Results | None" = None  # the sweep's untreated control (sim/sweep/spec.py), None when it has none

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

    def scenario(self) -> dict:
        """The resolved scenario of the first run (summary.json), {} when none is readable."""
        for rid in self.summary["run_id"]:
            d = self.run_dirs.get(rid)
            if d is not None and (d / "summary.json").is_file():
                try:
                    return dict(json.loads((d / "summary.json").read_text()).get("scenario") or {})
                except (OSError, ValueError):
                    return {}
        return {}

    @property
    def antigen(self) -> str:
        """The target antigen's name (tumor.antigen.name: CD19, HER2, ...), 'antigen' if unknown."""
        return antigen_name(self.scenario())

    def snapshot_runs(self) -> list[tuple[str, Path]]:
        """(run_id, folder) of runs with snapshots, in design order."""
        out = []
        for rid in self.summary["run_id"]:
            d = self.run_dirs.get(rid)
            if d is not None and any((d / "snapshots").glob("*.npz")):
                out.append((rid, d))
        return out


def antigen_name(scenario: dict | None) -> str:
    """tumor.antigen.name of a resolved scenario dict ('antigen' when absent)."""
    try:
        name = str(((scenario or {}).get("tumor") or {}).get("antigen", {}).get("name") or "")
    except AttributeError:
        name = ""
    return name or "antigen"


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


def _split_control(root: Path, summary: pd.DataFrame, ts: pd.DataFrame, params: list[str], manifest: dict,
                   run_dirs: dict) -> tuple[pd.DataFrame, pd.DataFrame, Results | None]:
    """The design runs (typed as in a sweep without a control) and the untreated control runs apart."""
    if "control" not in summary.columns or not summary["control"].any():
        return summary, ts, None
    ids = set(summary.loc[summary["control"], "run_id"])
    in_ts = ts["run_id"].isin(ids) if len(ts) else pd.Series(False, index=ts.index)
    control = Results("control", root, ts[in_ts].reset_index(drop=True), summary[summary["control"]].reset_index(drop=True),
                      [], manifest, None, run_dirs)
    design, ts = summary[~summary["control"]].reset_index(drop=True), ts[~in_ts].reset_index(drop=True)
    for df in (design, ts):  # no empty cells left: Int64/boolean back to int64/bool
        for c in ("point", *params):
            if c in df and isinstance(df[c].dtype, pd.api.extensions.ExtensionDtype) and not df[c].isna().any():
                df[c] = df[c].astype(df[c].dtype.numpy_dtype)
    return design, ts, control


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
        summary, ts, control = _split_control(root, summary, ts, params, manifest, run_dirs)
        if summary.empty:
            raise PlotError(f"{root}: the sweep has no finished runs yet")
        return Results("sweep", root, ts, summary, params, manifest, sens, run_dirs, control)
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

#: How path components read in labels (acronyms and symbols; anything else loses its underscores).
_WORDS = {"il15": "IL-15", "ifng": "IFN-γ", "tgfb": "TGF-β", "tgfbr2": "TGF-βR2", "mhc_i": "MHC-I", "nk": "NK",
          "car": "CAR", "cd16": "CD16", "nkg2d": "NKG2D", "nkg2d_ligand": "NKG2D ligand", "adcc": "ADCC",
          "cart": "CAR-T", "dnr": "DNR", "um": "µm"}
_UNITS = {"day": "days", "-": ""}


@lru_cache(maxsize=1)
def _schema() -> dict[str, dict]:
    try:
        from sim.scenario import parameter_rows

        return {r["path"]: r for r in parameter_rows()}
    except Exception:  # pragma: no cover - plots must not depend on the schema being importable
        return {}


def _units() -> dict[str, str]:
    return {p: r["unit"] for p, r in _schema().items()}


@lru_cache(maxsize=1)
def _ambiguous_leaves() -> set[str]:
    """Leaf keys that occur under more than one block (mean, cv, diffusion_um2_min, ...)."""
    seen: dict[str, set] = {}
    for p in _schema():
        parts = p.split(".")
        seen.setdefault(parts[-1], set()).add(".".join(parts[:-1]))
    return {k for k, v in seen.items() if len(v) > 1}


def _words(key: str) -> str:
    return _WORDS.get(key, key.replace("_", " "))


def short(param: str) -> str:
    """The last two components of a dotted path (enough to tell parameters apart)."""
    return ".".join(param.split(".")[-2:])


def human(param: str) -> str:
    """A readable name for a parameter from the schema's description (no unit), e.g.
    'nk.persistence.half_life_days' → 'in vivo half-life without IL-15 support',
    'nk.il15.mode' → 'IL-15 mode', 'tumor.antigen.mean' → 'antigen mean level'."""
    parts = param.split(".")
    row = _schema().get(param)
    desc = (row or {}).get("description", "") or ""
    label = desc
    for sep in ("; ", ": ", " (", ", "):
        head = label.split(sep)[0]
        if len(head.split()) >= 2:
            label = head
    if len(label.split()) < 2 or len(label) > 60 or ";" in desc.split(" (")[0][:20]:
        label = " ".join(_words(k) for k in parts[-2:])  # option lists ('none; secreted; ...') and blanks
    elif (parts[-1] in _ambiguous_leaves() and len(parts) > 1 and len(label.split()) <= 3
          and _words(parts[-2]).lower() not in label.lower()):
        label = f"{_words(parts[-2])} {label}"
    return label


def unit(param: str) -> str:
    u = _units().get(param, "-") or "-"
    return _UNITS.get(u, u)


def param_label(param: str) -> str:
    """Axis label for a parameter: its readable name and unit from the schema
    (e.g. 'in vivo half-life without IL-15 support (days)')."""
    u = unit(param)
    return f"{human(param)} ({u})" if u else human(param)


def value_label(param: str, v) -> str:
    """'IL-15 mode: secreted' or 'in vivo half-life without IL-15 support: 7 days'."""
    u = unit(param)
    return f"{human(param)}: {fmt(v)}" + (f" {u}" if u and is_number(v) else "")


def is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if np.isfinite(f) and (abs(f) >= 1000 or (f == round(f) and abs(f) >= 1)):
            return f"{f:,.0f}"
        return f"{f:.3g}"
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return f"{int(v):,}"
    return str(v)


def is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def band_spec(n: int) -> tuple[float, float, str] | None:
    """The replicate band to draw around a median, named for what it is: none below 3 runs, the
    min–max range below 20, the 5–95 % range from 20 runs on."""
    if n < 3:
        return None
    if n < 20:
        return 0.0, 1.0, "min–max range"
    return 0.05, 0.95, "5–95 % range"


def band_note(ns, pooled: bool = False) -> str:
    """'median of 4 replicates; band: min–max range' for the run counts of the curves drawn
    (`pooled`: the curves pool runs of several design points, so they are 'runs', not replicates)."""
    ns = sorted({int(n) for n in ns})
    if not ns:
        return ""
    if ns == [1]:
        return "one run per curve (no band)"
    reps = f"{ns[0]}" if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"
    specs = {band_spec(n)[2] if band_spec(n) else None for n in ns}
    kinds = ", ".join(sorted(k for k in specs if k))
    word = "runs (pooled design points)" if pooled else "replicates"
    return f"median of {reps} {word}" + (f"; band: {kinds}" if kinds else "; no band below 3 runs")


def curves_note(gs) -> str:
    """`band_note` for the groups actually drawn."""
    gs = list(gs)
    return band_note([len(g.run_ids) for g in gs], pooled=any(g.pooled for g in gs))


UNTREATED = "untreated (no CAR-NK)"
LINESTYLES = ("-", "--", ":", "-.")


@dataclass
class Group:
    """Runs drawn as one curve: a legend label, their run ids and a colour (and line style)."""

    label: str
    run_ids: list[str]
    value: object = None
    color: object = None
    ls: str = "-"
    color_key: str | None = None  # the value the colour stands for (two-legend style)
    ls_key: str | None = None  # the value the line style stands for (two-legend style)
    pooled: bool = False  # runs of several design points (tertiles, top values), not replicates of one


def _palette(n: int, sequential: bool) -> list:
    import matplotlib

    if sequential:
        cmap = matplotlib.colormaps["viridis"]
        return [cmap(0.05 + 0.8 * i / max(1, n - 1)) for i in range(n)]
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def style_pair(res: Results, max_groups: int = 12) -> tuple[str, str] | None:
    """(colour parameter, line-style parameter) when a sweep is a numeric parameter crossed with a
    categorical one of at most 4 levels (e.g. half-life × IL-15 on/off): one panel, colour along the
    number, line style for the condition. None otherwise."""
    s = res.summary
    if len(res.params) != 2:
        return None
    num = [p for p in res.params if is_numeric(s[p])]
    cat = [p for p in res.params if p not in num]
    if len(num) == 2:  # two numbers: the one with fewer levels (at most 4) takes the line style
        a, b = sorted(num, key=lambda q: s[q].nunique())
        num, cat = [b], [a]
    if len(num) != 1 or len(cat) != 1:
        return None
    if s[cat[0]].nunique() > len(LINESTYLES) or s[num[0]].nunique() > 8 or len(s.groupby(res.params)) > max_groups:
        return None
    return num[0], cat[0]


def _untreated(p: str, v) -> bool:
    return p in ("nk.dose.cells",) and is_number(v) and float(v) == 0


def groups(res: Results, max_groups: int = MAX_GROUPS) -> tuple[list[Group], str]:
    """Runs grouped by design value (replicates together); tertiles of the first numeric parameter
    when there are too many distinct values. Colours run along a single numeric parameter; a numeric
    parameter crossed with an on/off condition gets colours for the number and line styles for the
    condition (`style_pair`). A point with no CAR-NK (nk.dose.cells = 0) is the untreated control,
    drawn in black. Returns (groups, legend title)."""
    s = res.summary
    if not res.params:
        g = Group("run" if res.kind == "run" else "all runs", list(s["run_id"]))
        g.color = _palette(1, False)[0]
        return [g], ""
    pair = style_pair(res)
    combos = s.groupby(res.params, sort=True, dropna=False)["run_id"].apply(list)
    if pair is not None:
        pc, pl = pair
        cvals, lvals = ordered(pd.unique(s[pc])), ordered(pd.unique(s[pl]))
        cols = dict(zip(cvals, _palette(len(cvals), True)))
        lss = dict(zip(lvals, LINESTYLES))
        out = []
        for key, rids in combos.items():
            kv = dict(zip(res.params, key if isinstance(key, tuple) else (key,)))
            g = Group(", ".join(value_label(p, kv[p]) for p in (pl, pc)), list(rids), key, cols[kv[pc]], lss[kv[pl]],
                      fmt(kv[pc]), fmt(kv[pl]))
            out.append(g)
        _mark_untreated(out, res.params)
        return out, f"{param_label(pc)} × {param_label(pl)}"
    if len(combos) <= max_groups:
        out = []
        for key, rids in combos.items():
            key = key if isinstance(key, tuple) else (key,)
            label = ", ".join(value_label(p, v) for p, v in zip(res.params, key)) if len(res.params) > 1 else fmt(key[0])
            out.append(Group(label, list(rids), key))
        seq = len(res.params) == 1 and is_numeric(s[res.params[0]])
        for g, c in zip(out, _palette(len(out), seq)):
            g.color = c
        _mark_untreated(out, res.params)
        return out, param_label(res.params[0]) if len(res.params) == 1 else ""
    num = [p for p in res.params if is_numeric(s[p])]
    p = num[0] if num else res.params[0]
    if not num:
        top = s[p].value_counts().index[:max_groups]
        out = [Group(fmt(v), list(s.loc[s[p] == v, "run_id"]), v, pooled=True) for v in top]
        for g, c in zip(out, _palette(len(out), False)):
            g.color = c
        return out, param_label(p)
    edges = np.unique(np.quantile(s[p].to_numpy(dtype=float), [0, 1 / 3, 2 / 3, 1]))
    if len(edges) < 2:
        out = [Group(fmt(edges[0]), list(s["run_id"]), pooled=True)]
    else:
        bins = pd.cut(s[p].astype(float), edges, include_lowest=True)
        out = []
        for iv in bins.cat.categories:
            rids = list(s.loc[bins == iv, "run_id"])
            if rids:
                out.append(Group(f"[{fmt(iv.left)}, {fmt(iv.right)}]", rids, iv.mid, pooled=True))
    for g, c in zip(out, _palette(len(out), True)):
        g.color = c
    others = "; other parameters pooled" if len(res.params) > 1 else ""
    return out, f"{param_label(p)} (tertiles{others})"


def control_group(res: Results) -> Group | None:
    """The sweep's untreated control runs as one black curve labelled like an untreated design point."""
    if res.control is None or res.control.summary.empty:
        return None
    return Group(UNTREATED, list(res.control.summary["run_id"]), color="k")


def _mark_untreated(gs: list[Group], params: list[str]) -> None:
    for g in gs:
        key = g.value if isinstance(g.value, tuple) else (g.value,)
        if any(_untreated(p, v) for p, v in zip(params, key)):
            g.label, g.color, g.color_key = (UNTREATED if len(params) == 1 else f"{UNTREATED}, {g.label}"), "k", None


def draw_legend(ax, gs: list[Group], title: str, n_note: bool = True, **kw) -> None:
    """One legend entry per group, or — for the colour × line-style sweeps — one legend for the
    colours (the number) and one for the line styles (the condition)."""
    from matplotlib.lines import Line2D

    kw = {"fontsize": 7, "title_fontsize": 7, "frameon": False, **kw}
    if any(g.ls_key is not None for g in gs):
        pc_title, _, pl_title = title.partition(" × ")
        col = {g.color_key: g.color for g in gs if g.color_key is not None}
        lss = {g.ls_key: g.ls for g in gs if g.ls_key is not None}  # the sweep's control has no condition
        blank = Line2D([], [], color="none")
        handles = [blank] + [Line2D([], [], color=c, lw=1.8) for c in col.values()]
        labels = [pc_title] + list(col)
        if any(g.color == "k" for g in gs):
            handles.append(Line2D([], [], color="k", lw=1.8))
            labels.append(UNTREATED)
        handles += [blank] + [Line2D([], [], color="0.25", lw=1.5, ls=ls) for ls in lss.values()]
        labels += [pl_title] + list(lss)
        leg = ax.legend(handles, labels, handlelength=2.2, **kw)
        for h, t in zip(leg.legend_handles, leg.get_texts()):
            if t.get_text() in (pc_title, pl_title):
                t.set_fontweight("bold")
                t.set_position((-30, 0))
        return
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(title=title or None, **kw)


def subset(res: Results, param: str, value) -> Results:
    """The runs with `param == value`, with that parameter no longer counted as swept (the untreated
    control, the reference of every panel, stays)."""
    keep = res.summary[param] == value
    s = res.summary[keep].reset_index(drop=True)
    ids = set(s["run_id"])
    ts = res.timeseries[res.timeseries["run_id"].isin(ids)]
    return Results(res.kind, res.root, ts, s, [p for p in res.params if p != param], res.manifest, None, res.run_dirs,
                   res.control)


def facets(res: Results, max_groups: int = MAX_GROUPS, combine: bool = True) -> list[tuple[str, Results]]:
    """Split a sweep into panels by its parameter with the fewest levels (at most 4) when there
    are too many combinations for one panel; otherwise one panel with everything. With `combine`,
    a number crossed with an on/off condition (`style_pair`) stays in one panel."""
    s = res.summary
    if len(res.params) < 2 or (combine and style_pair(res) is not None):
        return [("", res)]
    n_combos = len(s.groupby(res.params, dropna=False))
    if n_combos <= min(max_groups, 6):
        return [("", res)]
    levels = {p: s[p].nunique() for p in res.params}
    p = min(res.params, key=lambda q: (levels[q], is_numeric(s[q])))
    if levels[p] > 4:
        return [("", res)]
    return [(value_label(p, v), subset(res, p, v)) for v in ordered(pd.unique(s[p]))]


def ordered(values) -> list:
    """Values in natural order (numbers by value, anything else as text)."""
    vals = list(values)
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)
