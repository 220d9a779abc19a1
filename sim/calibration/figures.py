"""Calibration figures as matplotlib `Figure` objects (no pyplot: library code never picks the backend):
posterior marginals against the prior, pairwise posterior, and the posterior predictive check."""
from __future__ import annotations


import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .spec import Plan


def _logaxis(ax, which: str) -> None:
    """Log scale with plain tick labels at 1, 2, 5 × 10^k (no 4×10⁰ clutter)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _short(path: str) -> str:
    return ".".join(path.split(".")[-2:])


def _grid(plan: Plan, p: str, post: pd.DataFrame, n: int = 200) -> np.ndarray:
    """x values spanning the prior's central 99 % (within its bounds) and every posterior particle."""
    pr = plan.spec.parameters[p]
    x = post[p].to_numpy(dtype=float)
    if pr.prior in ("uniform", "loguniform"):
        lo, hi = pr.low, pr.high
    else:
        loc, scale = pr.fit_loc_scale()
        lo, hi = pr.to_natural(loc - 2.6 * scale), pr.to_natural(loc + 2.6 * scale)
        lo = max(lo, pr.low) if pr.low is not None else lo
        hi = min(hi, pr.high) if pr.high is not None else hi
    lo, hi = min(lo, x.min()), max(hi, x.max())
    return np.geomspace(lo, hi, n) if pr.log and lo > 0 else np.linspace(lo, hi, n)


def _kde(x: np.ndarray, w: np.ndarray, grid: np.ndarray, log: bool) -> np.ndarray:
    """Weighted Gaussian KDE (in ln space for log-scale parameters), as a density in natural units."""
    from scipy.stats import gaussian_kde

    if np.unique(x).size < 2:
        return np.zeros_like(grid)
    if log:
        k = gaussian_kde(np.log(x), weights=w)
        return k(np.log(grid)) / grid
    return gaussian_kde(x, weights=w)(grid)


def marginals_figure(plan: Plan, post: pd.DataFrame, params: dict, truth: dict | None = None) -> Figure:
    """One panel per parameter: weighted posterior histogram + KDE, prior density, median, 90 % interval,
    the base scenario's value and (for synthetic data) the true value."""
    names = plan.names
    fig = Figure(figsize=(4.6 * len(names), 5.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(names)))
    w = post["weight"].to_numpy()
    for ax, p in zip(axes, names):
        pr = plan.spec.parameters[p]
        x = post[p].to_numpy(dtype=float)
        g = _grid(plan, p, post)
        bins = np.geomspace(g[0], g[-1], 30) if pr.log and g[0] > 0 else np.linspace(g[0], g[-1], 30)
        ax.hist(x, bins=bins, weights=w, density=True, color="tab:blue", alpha=0.35, label="posterior (particles)")
        ax.plot(g, _kde(x, w, g, pr.log), color="tab:blue", lw=1.8, label="posterior (KDE)")
        ax.plot(g, pr.natural_pdf(g), color="0.45", ls="--", lw=1.3, label=f"prior: {pr.describe()}")
        s = params[p]
        ax.axvspan(s["q05"], s["q95"], color="tab:blue", alpha=0.10, label=f"90 % interval {s['q05']:.3g}–{s['q95']:.3g}")
        ax.axvline(s["median"], color="tab:blue", lw=1, label=f"median {s['median']:.3g}")
        if plan.base_values.get(p) is not None:
            ax.axvline(plan.base_values[p], color="tab:orange", lw=1.3, ls=":", label=f"current default {plan.base_values[p]:g}")
        if truth and p in truth:
            ax.axvline(truth[p], color="tab:red", lw=1.6, label=f"true value {truth[p]:g}")
        if pr.log:
            _logaxis(ax, "x")
        ax.set(xlabel=p, ylabel="density", title=_short(p))
        ax.legend(frameon=False, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1)
    fig.suptitle(f"{plan.name}: posterior marginals", fontsize=10)
    return fig


def pairs_figure(plan: Plan, post: pd.DataFrame, truth: dict | None = None) -> Figure:
    """Corner plot: marginal histograms on the diagonal, weighted particles below it."""
    names = plan.names
    k = len(names)
    fig = Figure(figsize=(2.8 * k + 0.6, 2.8 * k), layout="constrained")
    axes = np.array(fig.subplots(k, k, squeeze=False))
    w = post["weight"].to_numpy()
    for i, pi in enumerate(names):
        for j, pj in enumerate(names):
            ax = axes[i, j]
            if j > i:
                ax.set_axis_off()
                continue
            logj = plan.spec.parameters[pj].log
            if i == j:
                x = post[pj].to_numpy(dtype=float)
                bins = np.geomspace(x.min(), x.max(), 25) if logj and x.min() > 0 and x.max() > x.min() else 25
                ax.hist(x, bins=bins, weights=w, color="tab:blue", alpha=0.6)
                if truth and pj in truth:
                    ax.axvline(truth[pj], color="tab:red", lw=1.4)
                ax.set_yticks([])
            else:
                sc = ax.scatter(post[pj], post[pi], s=6 + 400 * w, c=w, cmap="viridis", alpha=0.7, lw=0)
                if truth and pi in truth and pj in truth:
                    ax.plot([truth[pj]], [truth[pi]], "x", color="tab:red", ms=9, mew=2, label="true value")
                    ax.legend(frameon=False, fontsize=7)
                if plan.spec.parameters[pi].log:
                    _logaxis(ax, "y")
                ax.set_ylabel(_short(pi) if j == 0 else "")
            if logj:
                _logaxis(ax, "x")
            ax.set_xlabel(_short(pj) if i == k - 1 else "")
    if k > 1:
        fig.colorbar(sc, ax=axes[1:, 0].tolist(), label="particle weight", shrink=0.8, location="left", pad=0.15)
    gens = sorted(set(post["generation"]))
    fig.suptitle(f"{plan.name}: posterior ({len(post)} particles, generation{'s' if len(gens) > 1 else ''} "
                 f"{', '.join(str(g) for g in gens)})", fontsize=10)
    return fig


def predictive_figure(plan: Plan, pred: pd.DataFrame, data: pd.DataFrame) -> Figure:
    """Data (± uncertainty) with the 90 % posterior predictive band: one panel per observable; time
    courses for time-series observables, one interval per condition for end-of-run metrics."""
    obs = list(dict.fromkeys(data["observable"]))
    fig = Figure(figsize=(max(6.5, 4.3 * len(obs)), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(obs)))
    conds = list(dict.fromkeys(data["condition"]))
    colors = {c: f"C{i % 10}" for i, c in enumerate(conds)}
    n = int(pred["draw"].nunique()) if len(pred) else 0
    for ax, o in zip(axes, obs):
        spec = plan.spec.observables[o]
        d = data[data["observable"] == o]
        if spec.kind == "series":
            for c in dict.fromkeys(d["condition"]):
                pc = pred[(pred["condition"] == c) & (pred["observable"] == o)] if n else pred
                if n:
                    q = pc.groupby("time")["value"].quantile([0.05, 0.5, 0.95]).unstack()
                    ax.fill_between(q.index, q[0.05], q[0.95], color=colors[c], alpha=0.2, lw=0)
                    ax.plot(q.index, q[0.5], color=colors[c], lw=1.2, label=f"{c}: predictive median, 90 % band")
                dc = d[d["condition"] == c]
                ax.errorbar(dc["time"], dc["value"], yerr=dc["uncertainty"], fmt="o", color=colors[c], ms=5, capsize=3,
                            mec="k", mew=0.6, label=f"{c}: data ± 1 SD")
            ax.set(xlabel="time (h)", ylabel=o)
        else:
            xs = np.arange(len(d))
            ys = []
            for x, r in zip(xs, d.itertuples()):
                if n:
                    v = pred[(pred["condition"] == r.condition) & (pred["observable"] == o)]["value"]
                    lo, med, hi = np.quantile(v, [0.05, 0.5, 0.95])
                    ax.add_patch(_rect(x - 0.25, lo, 0.5, hi - lo, colors[r.condition]))
                    ax.plot([x - 0.25, x + 0.25], [med, med], color=colors[r.condition], lw=1.5)
                    ys += [lo, hi]
                ax.errorbar([x], [r.value], yerr=[r.uncertainty], fmt="o", color=colors[r.condition], ms=5, capsize=3,
                            mec="k", mew=0.6)
                ys += [r.value - r.uncertainty, r.value + r.uncertainty]
            span = max(ys) - min(ys) or 1.0
            ax.set_ylim(min(ys) - 0.05 * span, max(ys) + 0.35 * span)  # room for the legend above the data
            ax.set_xticks(xs, [f"{r.condition}\n{r.time:g} h" for r in d.itertuples()], fontsize=8)
            ax.set_xlim(-0.7, len(d) - 0.3)
            ax.set(ylabel=o)
            ax.plot([], [], "o", color="0.3", mec="k", label="data ± 1 SD")
            ax.add_patch(_rect(0, 0, 0, 0, "0.5", label="90 % predictive band (bar: median)"))
        ax.set_title(o, fontsize=9)
        if spec.kind == "series":  # curves fill the panel: the legend goes beside it
            ax.legend(frameon=False, fontsize=6.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
        else:
            ax.legend(frameon=False, fontsize=6.5, loc="upper left")
    fig.suptitle(f"{plan.name}: posterior predictive check ({n} posterior draws)", fontsize=10)
    return fig


def _rect(x, y, w, h, color, label=None):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, color=color, alpha=0.25, lw=0, label=label)
