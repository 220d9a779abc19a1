"""Outcome figures from written outputs: curves with replicate bands, tumor control, dose–response,
heatmap, kills per NK, kill routes and sensitivity indices. matplotlib Figure objects (Agg), no pyplot.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .data import Results, facets, fmt, groups, is_numeric, param_label, short

KEY_METRICS = ("tumor_reduction", "nk_final", "kills_per_nk_mean")
METRIC_LABELS = {
    "tumor_reduction": "tumor reduction (fraction of initial)",
    "tumor_final": "final tumor (cells)",
    "nadir": "tumor nadir (cells)",
    "nadir_time_h": "time of nadir (h)",
    "eradicated": "eradicated (fraction of runs)",
    "nk_final": "final live CAR-NK (cells)",
    "nk_half_life_days_observed": "observed CAR-NK half-life (days)",
    "kills_car": "CAR kills (cells)",
    "kills_innate": "innate kills (cells)",
    "kills_adcc": "ADCC kills (cells)",
    "kills_per_nk_mean": "kills per CAR-NK, mean (cells)",
    "kills_per_nk_max": "kills per CAR-NK, max (cells)",
    "fraction_nk_no_kill": "CAR-NK without a kill (fraction)",
}


def metric_label(m: str) -> str:
    return METRIC_LABELS.get(m, m)


def save(fig: Figure, out: Path, name: str, formats: Sequence[str]) -> list[Path]:
    """Save a figure in each format; return the paths."""
    paths = []
    for ext in formats:
        p = out / f"{name}.{ext}"
        fig.savefig(p, dpi=120)
        paths.append(p)
    return paths


def _time_axis(ts: pd.DataFrame) -> tuple[float, str]:
    """Divide hours by this to get the axis unit: days for runs of 2 days or more."""
    tmax = float(ts["time_h"].max()) if len(ts) else 0.0
    return (24.0, "time (days)") if tmax >= 48 else (1.0, "time (h)")


def _colors(n: int) -> list:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "viridis"]
    return [cmap(i if n <= 10 else i / max(1, n - 1)) for i in range(n)]


def _band(ax, ts: pd.DataFrame, col: str, scale: float, color, label: str, n_runs: int) -> None:
    """Median over replicates with a 5–95 % band (band only with 3 or more runs)."""
    q = ts.groupby("time_h")[col].quantile([0.05, 0.5, 0.95]).unstack()
    t = q.index.to_numpy(dtype=float) / scale
    ax.plot(t, q[0.5].to_numpy(dtype=float), color=color, lw=1.6, label=f"{label} (n={n_runs})")
    if n_runs >= 3:
        ax.fill_between(t, q[0.05].to_numpy(dtype=float), q[0.95].to_numpy(dtype=float), color=color, alpha=0.18, lw=0)


def _facet_title(base: str, facet: str) -> str:
    return f"{base} — {facet}" if facet else base


def outcome_curves(res: Results) -> Figure:
    """Tumor burden and live CAR-NK against time: replicate median and 5–95 % band per sweep
    value (one row of panels per level of a categorical parameter when there are many curves)."""
    fs = facets(res)
    scale, xlabel = _time_axis(res.timeseries)
    fig = Figure(figsize=(10, 3.8 * len(fs)), layout="constrained")
    axes = fig.subplots(len(fs), 2, squeeze=False, sharex=True, sharey="col")
    for (facet, sub), row in zip(fs, axes):
        gs, title = groups(sub)
        for g in gs:
            t = sub.timeseries[sub.timeseries["run_id"].isin(g.run_ids)]
            _band(row[0], t, "tumor", scale, g.color, g.label, len(g.run_ids))
            _band(row[1], t, "nk_live", scale, g.color, g.label, len(g.run_ids))
        row[0].set(xlabel=xlabel, ylabel="tumor burden (cells)", title=_facet_title("Tumor", facet))
        row[1].set(xlabel=xlabel, ylabel="live CAR-NK (cells)", title=_facet_title("CAR-NK", facet))
        row[1].legend(title=title or None, fontsize=7, title_fontsize=7, frameon=False)
    for ax in axes[0]:  # after all rows, so the shared limits cover every facet
        ax.set_ylim(bottom=0)
    fig.suptitle("median over replicates, 5–95 % band" if res.kind == "sweep" else str(res.root.name))
    return fig


def tumor_control(res: Results, threshold: float = 0.5) -> Figure:
    """Tumor-control probability: Kaplan–Meier estimate (lifelines) of the time until the tumor
    first falls below `threshold` × its initial size; runs that never do are censored at the end."""
    from lifelines import KaplanMeierFitter

    fs = facets(res)
    scale, xlabel = _time_axis(res.timeseries)
    tend = float(res.timeseries["time_h"].max()) / scale
    fig = Figure(figsize=(6.2 * len(fs), 4.2), layout="constrained")
    axes = fig.subplots(1, len(fs), squeeze=False, sharey=True)[0]
    for (facet, sub), ax in zip(fs, axes):
        gs, title = groups(sub)
        ts = sub.timeseries
        for g in gs:
            durations, events = [], []
            for rid in g.run_ids:
                r = ts[ts["run_id"] == rid].drop_duplicates("time_h").sort_values("time_h")
                if r.empty:
                    continue
                t, y = r["time_h"].to_numpy(dtype=float), r["tumor"].to_numpy(dtype=float)
                below = np.flatnonzero(y <= threshold * y[0]) if y[0] > 0 else np.array([0])
                durations.append(t[below[0]] if below.size else t[-1])
                events.append(bool(below.size))
            if not durations:
                continue
            kmf = KaplanMeierFitter().fit(np.array(durations) / scale, np.array(events), label=g.label)
            cd = kmf.cumulative_density_
            x = np.r_[cd.index.to_numpy(dtype=float), tend]
            yv = np.r_[cd.iloc[:, 0].to_numpy(dtype=float), cd.iloc[-1, 0]]
            ax.step(x, yv, where="post", color=g.color, lw=1.6, label=f"{g.label} (n={len(durations)})")
            if len(durations) >= 3 and len(gs) <= 6:
                ci = kmf.confidence_interval_cumulative_density_
                ax.fill_between(ci.index.to_numpy(dtype=float), ci.iloc[:, 0], ci.iloc[:, 1], step="post",
                                color=g.color, alpha=0.12, lw=0)
        ax.set(xlabel=xlabel, ylabel="tumor-control probability", ylim=(-0.02, 1.02),
               title=_facet_title(f"tumor < {threshold:.0%} of initial (Kaplan–Meier)", facet))
        ax.legend(title=title or None, fontsize=7, title_fontsize=7, frameon=False)
    return fig


def dose_response(res: Results, metrics: Sequence[str] = KEY_METRICS) -> Figure | None:
    """A metric against each swept parameter: every replicate as a dot, medians joined; a
    categorical parameter (e.g. IL-15 mode) colours the points when there is a numeric one."""
    s = res.summary
    metrics = [m for m in metrics if m in s.columns and m != "kills_per_nk_hist"]
    if not res.params or not metrics:
        return None
    num = [p for p in res.params if is_numeric(s[p])]
    cat = [p for p in res.params if p not in num]
    xs = num[:3] if num else cat[:1]
    hue = next((p for p in cat if s[p].nunique() <= 6 and p not in xs), None)
    fig = Figure(figsize=(4.2 * len(xs), 3.2 * len(metrics)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(metrics), len(xs), squeeze=False))
    hues = list(pd.unique(s[hue])) if hue else [None]
    discrete = res.design in ("grid", "zip")  # join medians only where values repeat by design
    cols = _colors(len(hues))
    for i, m in enumerate(metrics):
        for j, p in enumerate(xs):
            ax = axes[i, j]
            for h, c in zip(hues, cols):
                sub = s if h is None else s[s[hue] == h]
                y = sub[m].astype(float)
                if is_numeric(s[p]):
                    x = sub[p].astype(float)
                    ax.scatter(x, y, s=10 if discrete else 16, color=c, alpha=0.5 if discrete else 0.8, lw=0,
                               label=None if discrete else (f"{short(hue)}={fmt(h)}" if hue else "runs"))
                    if discrete and sub[p].nunique() <= 12:
                        med = y.groupby(x).median()
                        ax.plot(med.index, med.to_numpy(), "-o", ms=4, color=c,
                                label=f"{short(hue)}={fmt(h)}" if hue else "median")
                else:
                    cats = list(pd.unique(s[p]))
                    pos = sub[p].map({v: k for k, v in enumerate(cats)}).astype(float)
                    ax.scatter(pos, y, s=10, color=c, alpha=0.5, lw=0)
                    med = y.groupby(pos).median()
                    ax.plot(med.index, med.to_numpy(), "o", ms=6, color=c, label="median")
                    ax.set_xticks(range(len(cats)), [fmt(v) for v in cats])
            ax.set(xlabel=param_label(p), ylabel=metric_label(m))
            if i == 0 and j == len(xs) - 1 and ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, frameon=False)
    fig.suptitle("dose–response (dots: runs; lines: median over replicates)" if discrete else "dose–response (dots: runs)")
    return fig


def heatmap(res: Results, metrics: Sequence[str] = ("tumor_reduction", "nk_final")) -> Figure | None:
    """Median metric over replicates on a two-parameter grid (only for 2-parameter grid sweeps)."""
    s = res.summary
    metrics = [m for m in metrics if m in s.columns]
    if res.design != "grid" or len(res.params) != 2 or not metrics:
        return None
    px, py = res.params[1], res.params[0]
    fig = Figure(figsize=(5.2 * len(metrics), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(metrics), squeeze=False)[0])
    for ax, m in zip(axes, metrics):
        tab = s.assign(_v=s[m].astype(float)).pivot_table(index=py, columns=px, values="_v", aggfunc="median")
        im = ax.imshow(tab.to_numpy(dtype=float), origin="lower", aspect="auto", cmap="viridis")
        ax.set_xticks(range(tab.shape[1]), [fmt(v) for v in tab.columns])
        ax.set_yticks(range(tab.shape[0]), [fmt(v) for v in tab.index])
        ax.set(xlabel=param_label(px), ylabel=param_label(py), title=f"median {m}")
        for (yi, xi), v in np.ndenumerate(tab.to_numpy(dtype=float)):
            if np.isfinite(v):
                ax.text(xi, yi, fmt(v), ha="center", va="center", fontsize=7, color="w")
        fig.colorbar(im, ax=ax, label=metric_label(m))
    return fig


def kills_per_nk(res: Results) -> Figure | None:
    """Distribution of kills per CAR-NK cell (pooled over replicates), one series per sweep value."""
    fs = facets(res)
    panels = []
    for facet, sub in fs:
        gs, title = groups(sub)
        hists = []
        for g in gs:
            total = np.zeros(0, dtype=np.int64)
            for rid in g.run_ids:
                h = np.asarray(res.kills_hist(rid), dtype=np.int64)
                if h.size > total.size:
                    total = np.pad(total, (0, h.size - total.size))
                total[: h.size] += h
            hists.append(total)
        panels.append((facet, gs, title, hists))
    if not any(h.sum() for _, _, _, hs in panels for h in hs):
        return None
    fig = Figure(figsize=(6.2 * len(fs), 4.2), layout="constrained")
    axes = fig.subplots(1, len(fs), squeeze=False, sharey=True)[0]
    for ax, (facet, gs, title, hists) in zip(axes, panels):
        for g, h in zip(gs, hists):
            if h.sum() == 0:
                continue
            frac = h / h.sum()
            x = np.arange(h.size)
            if len(gs) == 1:
                ax.bar(x, frac, width=0.8, color=g.color, label=f"{g.label} (n={len(g.run_ids)})")
            else:
                ax.plot(x, frac, "-o", ms=3, lw=1.3, color=g.color, label=f"{g.label} (n={len(g.run_ids)})")
        ax.set(xlabel="kills per CAR-NK cell (cells)", ylabel="fraction of CAR-NK cells",
               title=_facet_title("serial killing", facet))
        ax.legend(title=title or None, fontsize=7, title_fontsize=7, frameon=False)
    return fig


ROUTES = (("kills_car", "CAR"), ("kills_innate", "innate (NKG2D)"), ("kills_adcc", "ADCC"))


def kill_routes(res: Results) -> Figure | None:
    """CAR vs innate (and ADCC) kills against time; one panel per route, one curve per sweep value."""
    ts = res.timeseries
    routes = [(c, n) for c, n in ROUTES if c in ts.columns]
    if not routes:
        return None
    if "kills_adcc" in ts.columns and not ts["kills_adcc"].any():
        routes = [r for r in routes if r[0] != "kills_adcc"]
    fs = facets(res)
    scale, xlabel = _time_axis(ts)
    cumulative = all(bool(ts.groupby("run_id")[c].apply(lambda x: bool(np.all(np.diff(x.to_numpy()) >= 0))).all()) for c, _ in routes)
    fig = Figure(figsize=(4.2 * len(routes), 3.6 * len(fs)), layout="constrained")
    axes = fig.subplots(len(fs), len(routes), sharex=True, sharey=True, squeeze=False)
    for (facet, sub), row in zip(fs, axes):
        gs, title = groups(sub)
        for ax, (col, name) in zip(row, routes):
            for g in gs:
                _band(ax, sub.timeseries[sub.timeseries["run_id"].isin(g.run_ids)], col, scale, g.color, g.label, len(g.run_ids))
            ax.set(xlabel=xlabel, title=_facet_title(f"{name} kills", facet))
        row[0].set_ylabel(("cumulative kills" if cumulative else "kills per interval") + " (cells)")
        row[-1].legend(title=title or None, fontsize=7, title_fontsize=7, frameon=False)
    return fig


def sensitivity_bars(res: Results, max_metrics: int = 4) -> Figure | None:
    """Sobol S1/ST or Morris mu*/sigma per parameter, one panel per metric, with confidence bars."""
    df = res.sensitivity
    if df is None or df.empty:
        return None
    sobol = "S1" in df.columns
    pref = [m for m in ("tumor_reduction", "tumor_final", "nk_final", "kills_per_nk_mean") if m in set(df["metric"])]
    metrics = (pref + [m for m in pd.unique(df["metric"]) if m not in pref])[:max_metrics]
    fig = Figure(figsize=(4.5 * len(metrics), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(metrics), squeeze=False)[0])
    for ax, m in zip(axes, metrics):
        d = df[df["metric"] == m]
        x = np.arange(len(d))
        if sobol:
            ax.bar(x - 0.2, d["S1"], 0.4, yerr=d["S1_conf"], capsize=3, label="first order S1")
            ax.bar(x + 0.2, d["ST"], 0.4, yerr=d["ST_conf"], capsize=3, label="total ST")
            ax.set_ylabel("Sobol index (fraction of variance)")
        else:
            ax.bar(x - 0.2, d["mu_star"], 0.4, yerr=d["mu_star_conf"], capsize=3, label="μ* (mean |effect|)")
            ax.bar(x + 0.2, d["sigma"], 0.4, label="σ (interaction / nonlinearity)")
            ax.set_ylabel(f"elementary effect ({metric_label(m).split('(')[-1].rstrip(')')})")
        ax.set_xticks(x, [short(p) for p in d["parameter"]], rotation=30, ha="right", fontsize=8)
        ax.set_title(m)
        ax.axhline(0, color="k", lw=0.5)
    axes[0].legend(fontsize=7, frameon=False)
    fig.suptitle(("Sobol" if sobol else "Morris") + " sensitivity (replicate means)")
    return fig
