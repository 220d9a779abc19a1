"""Outcome figures from written outputs: curves with replicate bands, tumor control, dose–response,
heatmap, kills per NK, kill routes and sensitivity indices. matplotlib Figure objects (Agg), no pyplot.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sim.metrics import RESPONSE_FRACTION, TUMOR_METRICS, durable_control, durable_hold_h, time_to_progression, time_to_response

from .data import (UNTREATED, Group, Results, band_note, band_spec, control_group, curves_note, draw_legend, facets, fmt, groups,
                   human, is_numeric, ordered, param_label, style_pair, subset, value_label)

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
    "response_time_h": "time to response (h)",
    "progression_time_h": "time to progression (h)",
    "durable_control": "durably controlled (fraction of runs)",
}


def metric_label(m: str) -> str:
    return METRIC_LABELS.get(m, m)


def save(fig: Figure, out: Path, name: str, formats: Sequence[str]) -> list[Path]:
    """Save a figure in each format (tight bounding box: titles and outside legends are never cut); return the paths."""
    paths = []
    for ext in formats:
        p = out / f"{name}.{ext}"
        fig.savefig(p, dpi=120, bbox_inches="tight", pad_inches=0.08)
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


def _band(ax, ts: pd.DataFrame, col: str, scale: float, g: Group) -> None:
    """Median over replicates with the band `band_spec` names (min–max below 20 runs, 5–95 % from 20 on)."""
    n = len(g.run_ids)
    spec = band_spec(n)
    qs = [0.5] + ([spec[0], spec[1]] if spec else [])
    q = ts.groupby("time_h")[col].quantile(sorted(set(qs))).unstack()
    t = q.index.to_numpy(dtype=float) / scale
    label = g.label if g.ls_key is not None else f"{g.label} (n={n})"
    ax.plot(t, q[0.5].to_numpy(dtype=float), color=g.color, ls=g.ls, lw=1.6, label=label)
    if spec:
        ax.fill_between(t, q[spec[0]].to_numpy(dtype=float), q[spec[1]].to_numpy(dtype=float), color=g.color,
                        alpha=0.12, lw=0)


def _with_control(res: Results, gs: list[Group]) -> list[tuple[Group, pd.DataFrame]]:
    """(group, its runs' time series) for each design group, then the sweep's untreated control."""
    ts = res.timeseries
    out = [(g, ts[ts["run_id"].isin(g.run_ids)]) for g in gs]
    cg = control_group(res)
    if cg is not None:
        out.append((cg, res.control.timeseries))
    return out


def _facet_title(base: str, facet: str) -> str:
    return f"{base} — {facet}" if facet else base


def _note(res: Results) -> str:
    return band_note(res.summary.groupby("point").size().tolist()) if res.kind == "sweep" else ""


def outcome_curves(res: Results) -> Figure:
    """Tumor burden and live CAR-NK against time: replicate median and a band named by the number of
    replicates (`band_spec`) per sweep value, and the sweep's untreated control in black; a number
    crossed with an on/off condition shares one panel (colour = number, line style = condition);
    otherwise one row per level of a categorical parameter when there are many curves."""
    fs = facets(res)
    scale, xlabel = _time_axis(res.timeseries)
    fig = Figure(figsize=(10.5, 3.8 * len(fs)), layout="constrained")
    axes = fig.subplots(len(fs), 2, squeeze=False, sharex=True, sharey="col")
    ag = res.antigen
    drawn = []
    for (facet, sub), row in zip(fs, axes):
        gs, title = groups(sub)
        curves = _with_control(sub, gs)
        drawn += [g for g, _ in curves]
        for g, t in curves:
            _band(row[0], t, "tumor", scale, g)
            _band(row[1], t, "nk_live", scale, g)
        row[0].set(xlabel=xlabel, ylabel="tumor burden (cells)", title=_facet_title(f"Tumor ({ag} target)", facet))
        row[1].set(xlabel=xlabel, ylabel="live CAR-NK (cells)", title=_facet_title("CAR-NK", facet))
        draw_legend(row[1], [g for g, _ in curves], title, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    for ax in axes[0]:  # after all rows, so the shared limits cover every facet
        ax.set_ylim(bottom=0)
    fig.suptitle(curves_note(drawn) if res.kind == "sweep" else str(res.root.name), fontsize=10)
    return fig


def _km(durations, events, scale, tend, label):
    from lifelines import KaplanMeierFitter

    kmf = KaplanMeierFitter().fit(np.asarray(durations, dtype=float) / scale, np.asarray(events, dtype=bool), label=label)
    return kmf


def endpoints(res: Results, fraction: float = RESPONSE_FRACTION) -> Figure:
    """Tumor endpoints defined in sim.metrics, per sweep value: time to response (Kaplan–Meier,
    tumor ≤ `fraction` × initial), progression-free fraction (Kaplan–Meier, tumor ≥ 1.2 × its
    running nadir) and durable control (≤ `fraction` × initial through the final hold window), and
    the same for the sweep's untreated control. Runs without the event are censored at the end of the run."""
    fs = facets(res)
    scale, xlabel = _time_axis(res.timeseries)
    tend = float(res.timeseries["time_h"].max()) / scale
    fig = Figure(figsize=(15.5, 3.9 * len(fs)), layout="constrained")
    axes = fig.subplots(len(fs), 3, squeeze=False, sharey=False)
    hold_h = None
    drawn, ci_drawn = [], False
    for (facet, sub), row in zip(fs, axes):
        gs, title = groups(sub)
        curves = _with_control(sub, gs)
        drawn += [g for g, _ in curves]
        bars = []
        for g, ts in curves:
            resp, prog, durable = [], [], []
            for rid in g.run_ids:
                r = ts[ts["run_id"] == rid].drop_duplicates("time_h").sort_values("time_h")
                if r.empty:
                    continue
                t, y = r["time_h"].to_numpy(dtype=float), r["tumor"].to_numpy(dtype=float)
                tr, tp = time_to_response(t, y, fraction), time_to_progression(t, y)
                resp.append((t[-1] if tr is None else tr, tr is not None))
                prog.append((t[-1] if tp is None else tp, tp is not None))
                hold_h = durable_hold_h(t[-1] - t[0])
                durable.append(durable_control(t, y, fraction, hold_h))
            if not resp:
                continue
            n = len(resp)
            for ax, ev, surv in ((row[0], resp, False), (row[1], prog, True)):
                kmf = _km([d for d, _ in ev], [e for _, e in ev], scale, tend, g.label)
                tab = kmf.survival_function_ if surv else kmf.cumulative_density_
                x = np.r_[tab.index.to_numpy(dtype=float), tend]
                yv = np.r_[tab.iloc[:, 0].to_numpy(dtype=float), tab.iloc[-1, 0]]
                ax.step(x, yv, where="post", color=g.color, ls=g.ls, lw=1.6,
                        label=g.label if g.ls_key is not None else f"{g.label} (n={n})")
                if n >= 3 and len(curves) <= 4:
                    ci_drawn = True
                    ci = kmf.confidence_interval_survival_function_ if surv else kmf.confidence_interval_cumulative_density_
                    ax.fill_between(ci.index.to_numpy(dtype=float), ci.iloc[:, 0], ci.iloc[:, 1], step="post",
                                    color=g.color, alpha=0.1, lw=0)
            bars.append((g, int(sum(durable)), n))
        row[0].set(xlabel=xlabel, ylabel="fraction of runs responded", ylim=(-0.02, 1.02))
        row[0].set_title(_facet_title(f"time to response:\nfirst tumor ≤ {fraction:.0%} of initial", facet), fontsize=10)
        row[1].set(xlabel=xlabel, ylabel="progression-free fraction of runs", ylim=(-0.02, 1.02))
        row[1].set_title(_facet_title("time to progression:\ntumor ≥ 1.2 × its smallest earlier size", facet), fontsize=10)
        ax = row[2]
        y = np.arange(len(bars))[::-1]
        for yi, (g, k, n) in zip(y, bars):
            ax.barh(yi, k / n, color=g.color, edgecolor="k" if g.ls != "-" else g.color, lw=0.6,
                    hatch="//" if g.ls == "--" else (".." if g.ls == ":" else None), alpha=0.85)
            ax.text(k / n + 0.02, yi, f"{k}/{n} runs", va="center", fontsize=7)
        short_lab = [(f"{g.ls_key}, {g.color_key}" if g.ls_key is not None else g.label) for g, _, _ in bars]
        ax.set_yticks(y, short_lab, fontsize=7)
        hold = f"the last {hold_h / 24:.3g} days" if hold_h is not None and hold_h >= 24 else f"the last {hold_h or 0:.3g} h"
        ax.set_xlim(0, 1.22)
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.set_xlabel("fraction of runs durably controlled")
        ax.set_title(_facet_title(f"durable control:\ntumor ≤ {fraction:.0%} of initial for {hold}", facet), fontsize=10)
        if gs and gs[0].ls_key is not None:
            pc, pl = title.split(" × ")
            ax.set_ylabel(f"{pl.split(' (')[0]}, {pc}", fontsize=7)
        row[0].step([], [], color="none")  # the legend (right of the last panel) names the curves of all three
        h, lab = row[1].get_legend_handles_labels()
        if gs and gs[0].ls_key is None and h:
            row[2].legend(h, lab, title=title or None, fontsize=7, title_fontsize=7, frameon=False,
                          loc="upper left", bbox_to_anchor=(1.02, 1.0))
        else:
            draw_legend(row[2], [g for g, _ in curves], title, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ns = sorted({len(g.run_ids) for g in drawn}) or [1]
    fig.suptitle("Tumor endpoints (defined in sim.metrics); Kaplan–Meier over runs, censored at the end of the run; "
                 f"{'–'.join(map(str, [ns[0], ns[-1]] if len(ns) > 1 else ns))} run(s) per curve"
                 + ("; shaded: 95 % CI" if ci_drawn else ""), fontsize=10)
    return fig


def _control_median(res: Results, m: str) -> float | None:
    """The median of tumor metric `m` over the sweep's untreated control runs (None without a control, for a
    CAR-NK metric, which the control has no cells for, or without a finite value)."""
    if res.control is None or m not in TUMOR_METRICS or m not in res.control.summary:
        return None
    v = pd.to_numeric(res.control.summary[m].astype("float64"), errors="coerce").median()
    return float(v) if np.isfinite(v) else None


def dose_response(res: Results, metrics: Sequence[str] = KEY_METRICS) -> Figure | None:
    """A metric against each swept parameter: every replicate as a dot, medians joined; a
    categorical parameter (e.g. IL-15 mode) colours the points when there is a numeric one. The sweep's
    untreated control is a dashed black reference line at its median on the tumor metrics."""
    s = res.summary
    metrics = [m for m in metrics if m in s.columns and m != "kills_per_nk_hist"]
    if not res.params or not metrics:
        return None
    num = [p for p in res.params if is_numeric(s[p])]
    cat = [p for p in res.params if p not in num]
    xs = num[:3] if num else cat[:1]
    hue = next((p for p in cat if s[p].nunique() <= 6 and p not in xs), None)
    fig = Figure(figsize=(max(4.6 * len(xs), 6.4), 3.2 * len(metrics)), layout="constrained")
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
                hl = fmt(h) if hue else None
                if is_numeric(s[p]):
                    x = sub[p].astype(float)
                    ax.scatter(x, y, s=10 if discrete else 16, color=c, alpha=0.5 if discrete else 0.8, lw=0,
                               label=None if discrete else (hl if hue else "runs"))
                    if discrete and sub[p].nunique() <= 12:
                        med = y.groupby(x).median()
                        ax.plot(med.index, med.to_numpy(), "-o", ms=4, color=c, label=hl if hue else "median")
                else:
                    cats = list(pd.unique(s[p]))
                    pos = sub[p].map({v: k for k, v in enumerate(cats)}).astype(float)
                    ax.scatter(pos, y, s=10, color=c, alpha=0.5, lw=0)
                    med = y.groupby(pos).median()
                    ax.plot(med.index, med.to_numpy(), "o", ms=6, color=c, label=hl if hue else "median")
                    ax.set_xticks(range(len(cats)), [fmt(v) for v in cats])
            ref = _control_median(res, m)
            if ref is not None:
                ax.axhline(ref, color="k", ls="--", lw=1.2, label=f"{UNTREATED}, median (n={len(res.control.summary)})")
            ax.set(xlabel=param_label(p), ylabel=metric_label(m))
            if i == 0 and j == len(xs) - 1 and ax.get_legend_handles_labels()[0]:
                ax.legend(title=human(hue) if hue else None, fontsize=7, title_fontsize=7, frameon=False)
    n = _note(res).split(";")[0]
    fig.suptitle(f"Dose–response: dots = runs, lines = {n}" if discrete else "Dose–response: dots = runs", fontsize=10)
    return fig


def _value_text(v: float) -> str:
    """A heatmap value: counts with thousands separators, fractions to two decimals."""
    return f"{v:,.0f}" if abs(v) >= 10 else f"{v:.2f}"


def _text_color(rgba) -> str:
    """Black on light cells, white on dark ones (relative luminance, ITU-R BT.709)."""
    r, g, b = rgba[:3]
    return "k" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 else "w"


def heatmap(res: Results, metrics: Sequence[str] = ("tumor_reduction", "nk_final")) -> Figure | None:
    """Median metric over replicates on a two-parameter grid (only for 2-parameter grid sweeps); the
    untreated control's median in the panel title."""
    s = res.summary
    metrics = [m for m in metrics if m in s.columns]
    if res.design != "grid" or len(res.params) != 2 or not metrics:
        return None
    px, py = res.params[1], res.params[0]
    fig = Figure(figsize=(5.4 * len(metrics), 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(metrics), squeeze=False)[0])
    for ax, m in zip(axes, metrics):
        tab = s.assign(_v=s[m].astype(float)).pivot_table(index=py, columns=px, values="_v", aggfunc="median")
        vals = tab.to_numpy(dtype=float)
        im = ax.imshow(vals, origin="lower", aspect="auto", cmap="viridis")
        ax.set_xticks(range(tab.shape[1]), [fmt(v) for v in tab.columns])
        ax.set_yticks(range(tab.shape[0]), [fmt(v) for v in tab.index])
        ref = _control_median(res, m)
        ax.set(xlabel=param_label(px), ylabel=param_label(py), title=f"median {metric_label(m)}"
               + ("" if ref is None else f"\n{UNTREATED}: {_value_text(ref)}"))
        for (yi, xi), v in np.ndenumerate(vals):
            if np.isfinite(v):
                ax.text(xi, yi, _value_text(v), ha="center", va="center", fontsize=8, color=_text_color(im.cmap(im.norm(v))))
        fig.colorbar(im, ax=ax, label=metric_label(m))
    fig.suptitle(f"{_note(res).split(';')[0]} per cell", fontsize=10)
    return fig


def kills_per_nk(res: Results) -> Figure | None:
    """Distribution of kills per CAR-NK cell (pooled over replicates) as bars, one bar per sweep value
    side by side at each kill count; one panel per level of a condition when there are many values."""
    pair = style_pair(res)
    if pair is not None:  # bars side by side for the number, one panel per condition
        fs = [(value_label(pair[1], v), subset(res, pair[1], v)) for v in ordered(pd.unique(res.summary[pair[1]]))]
    else:
        fs = facets(res, combine=False)
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
    kmax = 0  # the largest kill count any group reaches with at least 0.2 % of its cells
    for _, _, _, hs in panels:
        for h in hs:
            if h.sum():
                big = np.flatnonzero(h / h.sum() >= 0.002)
                kmax = max(kmax, int(big[-1]) if big.size else 0)
    fig = Figure(figsize=(max(6.4, 0.5 * (kmax + 1) + 3) * len(fs) ** 0.8, 4.2), layout="constrained")
    axes = fig.subplots(1, len(fs), squeeze=False, sharey=True)[0]
    for ax, (facet, gs, title, hists) in zip(axes, panels):
        live = [(g, h) for g, h in zip(gs, hists) if h.sum()]
        w = 0.8 / max(len(live), 1)
        for j, (g, h) in enumerate(live):
            frac = (h / h.sum())[: kmax + 1]
            x = np.arange(frac.size) + (j - (len(live) - 1) / 2) * w
            ax.bar(x, frac, width=w, color=g.color, label=f"{g.label} (n={len(g.run_ids)})", lw=0)
        ax.set_xticks(range(kmax + 1))
        ax.set(xlabel="kills per NK cell", ylabel="fraction of CAR-NK cells", xlim=(-0.6, kmax + 0.6),
               title=_facet_title("serial killing (replicates pooled)", facet))
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
    fig = Figure(figsize=(4.2 * len(routes) + 2.5, 3.6 * len(fs)), layout="constrained")
    axes = fig.subplots(len(fs), len(routes), sharex=True, sharey=True, squeeze=False)
    drawn = []
    for (facet, sub), row in zip(fs, axes):
        gs, title = groups(sub)
        drawn += gs
        for ax, (col, name) in zip(row, routes):
            for g in gs:
                _band(ax, sub.timeseries[sub.timeseries["run_id"].isin(g.run_ids)], col, scale, g)
            ax.set(xlabel=xlabel, title=_facet_title(f"{name} kills", facet))
        row[0].set_ylabel(("cumulative kills" if cumulative else "kills per interval") + " (cells)")
        draw_legend(row[-1], gs, title, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    if res.kind == "sweep":
        fig.suptitle(curves_note(drawn), fontsize=10)
    return fig


def sensitivity_bars(res: Results, max_metrics: int = 4) -> Figure | None:
    """Sobol S1/ST or Morris mu*/sigma per parameter, one panel per metric, with confidence bars."""
    df = res.sensitivity
    if df is None or df.empty:
        return None
    sobol = "S1" in df.columns
    pref = [m for m in ("tumor_reduction", "tumor_final", "nk_final", "kills_per_nk_mean") if m in set(df["metric"])]
    metrics = (pref + [m for m in pd.unique(df["metric"]) if m not in pref])[:max_metrics]
    fig = Figure(figsize=(4.5 * len(metrics), 4.2), layout="constrained")
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
        ax.set_xticks(x, [human(p) for p in d["parameter"]], rotation=30, ha="right", fontsize=7)
        ax.set_title(metric_label(m), fontsize=9)
        ax.axhline(0, color="k", lw=0.5)
    axes[0].legend(fontsize=7, frameon=False)
    fig.suptitle(("Sobol" if sobol else "Morris") + " sensitivity (replicate means)")
    return fig
