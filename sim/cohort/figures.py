"""The figures oncologists read from a cohort: waterfall of best change in burden, swimmer plot,
Kaplan–Meier progression-free survival per arm (lifelines), forest plot of response-rate differences.
matplotlib Figure objects (no pyplot), saved by `sim.plots.figures.save`."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

COLORS = {"CR": "#1a9850", "PR": "#91cf60", "SD": "#fee08b", "PD": "#d73027", "NE": "#bdbdbd"}


def _arms(patients: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(patients["arm"]))


def waterfall(patients: pd.DataFrame, disease: str, criteria) -> Figure:
    """Best change from baseline per patient, sorted, one panel per arm, coloured by best response."""
    arms = _arms(patients)
    fig = Figure(figsize=(4.2 * len(arms), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(arms), sharey=True))
    what = "tumor burden" if disease == "heme" else "lesion diameter"
    for ax, arm in zip(axes, arms):
        d = patients[patients["arm"] == arm].sort_values("best_change", ascending=False)
        y = 100 * d["best_change"].clip(upper=2.0).to_numpy()
        ax.bar(np.arange(len(d)), y, color=[COLORS[c] for c in d["best_response"]], width=0.85)
        ax.axhline(0, color="k", lw=0.6)
        pr = criteria.heme_pr_reduction if disease == "heme" else criteria.recist_pr_decrease
        ax.axhline(-100 * pr, color="k", lw=0.6, ls="--")
        ax.axhline(100 * (criteria.heme_progression_increase if disease == "heme" else criteria.progression_increase), color="k", lw=0.6, ls=":")
        ax.set(title=f"{arm} (n = {len(d)})", xlabel="patients (sorted)", xticks=[])
    axes[0].set_ylabel(f"best change in {what} (%)\n(capped at +200 %)")
    fig.legend(handles=[Patch(color=COLORS[k], label=k) for k in ("CR", "PR", "SD", "PD")], loc="outside right center",
               frameon=False, title="best response")
    return fig


def swimmer(patients: pd.DataFrame, assessment_day: float) -> Figure:
    """One bar per patient and arm: time on study until progression (×) or the end (→), coloured by best response."""
    arms = _arms(patients)
    n = patients.groupby("arm")["patient"].nunique().max()
    fig = Figure(figsize=(4.2 * len(arms), max(2.5, 0.12 * n + 1.2)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(arms), sharey=True))
    for ax, arm in zip(axes, arms):
        d = patients[patients["arm"] == arm].sort_values("pfs_days")
        y = np.arange(len(d))
        ax.barh(y, d["pfs_days"], color=[COLORS[c] for c in d["best_response"]], height=0.8)
        prog = d["progressed"].to_numpy()
        ax.plot(d["pfs_days"][prog], y[prog], "kx", ms=4, label="progression")
        ax.plot(d["pfs_days"][~prog], y[~prog], "k>", ms=3, label="no progression (censored)")
        ax.axvline(assessment_day, color="k", lw=0.6, ls="--", label=f"assessment (day {assessment_day:g})")
        ax.set(title=f"{arm} (n = {len(d)})", xlabel="days since infusion", yticks=[])
    axes[0].set_ylabel("patients (sorted by progression-free time)")
    marks, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles=[Patch(color=COLORS[k], label=k) for k in ("CR", "PR", "SD", "PD")] + marks,
               labels=["CR", "PR", "SD", "PD"] + labels, loc="outside right center", frameon=False,
               title="best response", fontsize=8)
    return fig


def km_pfs(patients: pd.DataFrame) -> Figure:
    """Kaplan–Meier progression-free survival per arm with 95 % bands (lifelines)."""
    from lifelines import KaplanMeierFitter

    fig = Figure(figsize=(5.2, 3.6), layout="constrained")
    ax = fig.subplots()
    for arm in _arms(patients):
        d = patients[patients["arm"] == arm]
        KaplanMeierFitter().fit(d["pfs_days"], d["progressed"], label=f"{arm} (n = {len(d)})").plot_survival_function(ax=ax, ci_show=True)
    ax.set(xlabel="days since infusion", ylabel="progression-free", ylim=(-0.02, 1.02), title="Progression-free survival")
    ax.legend(frameon=False, fontsize=8)
    return fig


def forest(rates: pd.DataFrame, differences: pd.DataFrame) -> Figure:
    """Left: ORR per arm with Wilson 95 % CIs. Right: paired ORR difference to the first arm with 95 % CIs."""
    fig = Figure(figsize=(8.5, 0.5 * len(rates) + 1.6), layout="constrained")
    a, b = fig.subplots(1, 2, sharey=True)
    rates = rates.reset_index(drop=True)
    orr, lo, hi = (100 * rates[k].to_numpy(float) for k in ("orr", "orr_lo", "orr_hi"))
    y = np.arange(len(rates))[::-1]
    a.errorbar(orr, y, xerr=[orr - lo, hi - orr], fmt="o", color="k", capsize=3)
    a.set(yticks=y, yticklabels=[f"{r.arm} (n = {r.n})" for r in rates.itertuples()], xlim=(-3, 103),
          xlabel="objective response rate, % (Wilson 95 % CI)", title="Response rate")
    pos = {arm: yy for arm, yy in zip(rates["arm"], y)}
    if len(differences):
        yd = [pos[x] for x in differences["arm"]]
        dd, dlo, dhi = (100 * differences[k].to_numpy(float) for k in ("orr_difference", "lo", "hi"))
        b.errorbar(dd, yd, xerr=[dd - dlo, dhi - dd], fmt="s", color="tab:blue", capsize=3)
        b.set_title(f"Difference vs {differences['reference'].iloc[0]} (paired)")
    else:
        b.set_title("one arm: no difference")
    b.axvline(0, color="k", lw=0.6)
    b.set(xlabel="ORR difference, percentage points (95 % CI)", ylim=(-0.7, len(rates) - 0.3))
    return fig
