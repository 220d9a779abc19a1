"""Side-by-side comparison of treatment arms run on identical tumors (e.g. CAR-NK vs CAR-T)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

ARM_METRICS = [
    "tumor_initial", "tumor_final", "tumor_reduction", "nadir", "nk_final", "kills_car", "kills_innate", "kills_adcc",
    "cytokine_peak_ng_ml_day", "crs_any_rate", "crs_grade3_rate", "icans_any_rate", "icans_grade3_rate", "gvhd_risk",
]


def arms_table(results: dict) -> pd.DataFrame:
    """One row per arm with the outcome and toxicity metrics."""
    return pd.DataFrame([{"arm": k, **{m: r.metrics.get(m) for m in ARM_METRICS}} for k, r in results.items()])


def compare_figure(results: dict):
    """A 1×4 figure: tumor burden (antigen− dashed), effector counts, kills by route, predicted CRS/ICANS rates."""
    from matplotlib.figure import Figure  # no pyplot: library code never picks the backend

    fig = Figure(figsize=(17, 3.8))
    ax = fig.subplots(1, 4)
    names = list(results)
    for k, (name, r) in enumerate(results.items()):
        ts, col = r.timeseries, f"C{k}"
        d = ts["time_h"] / 24.0
        ax[0].plot(d, ts["tumor"], color=col, label=name)
        ax[0].plot(d, ts["tumor_ag_neg"], color=col, ls="--", lw=1)
        ax[1].plot(d, ts["nk_live"], color=col, label=name)
    ax[0].set(xlabel="day", ylabel="tumor cells (dashed: antigen−)", title="tumor")
    ax[1].set(xlabel="day", ylabel="effector cells", title="CAR-NK / CAR-T in tissue")
    ax[0].legend(frameon=False)
    bottom = [0.0] * len(names)
    for route, col in (("kills_car", "C0"), ("kills_innate", "C2"), ("kills_adcc", "C3")):
        vals = [results[n].metrics[route] for n in names]
        ax[2].bar(range(len(names)), vals, 0.6, bottom=bottom, color=col, label=route.split("_")[1])
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax[2].set_xticks(range(len(names)), names, rotation=15)
    ax[2].set(ylabel="tumor cells killed", title="kills by route")
    ax[2].legend(frameon=False)
    width = 0.8 / max(1, len(names))
    labels = ["CRS any", "CRS ≥3", "ICANS any", "ICANS ≥3"]
    keys = ["crs_any_rate", "crs_grade3_rate", "icans_any_rate", "icans_grade3_rate"]
    for k, name in enumerate(names):
        m = results[name].metrics
        ax[3].bar([i + k * width for i in range(4)], [100 * m[x] for x in keys], width, color=f"C{k}", label=name)
    ax[3].set_xticks([i + width * (len(names) - 1) / 2 for i in range(4)], labels)
    ax[3].set(ylabel="predicted patients (%)", title="toxicity index", ylim=(0, 100))
    fig.tight_layout()
    return fig


def write_comparison(results: dict, out: Path) -> None:
    """Write `arms.csv` and `compare.png` into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    arms_table(results).to_csv(out / "arms.csv", index=False)
    fig = compare_figure(results)
    fig.savefig(out / "compare.png", dpi=110)
