"""Side-by-side comparison of treatment arms run on identical tumors (e.g. CAR-NK vs CAR-T), with the
untreated control (`sim.api.run_arms` adds it unless the scenario already has an arm without cells)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

ARM_METRICS = [
    "tumor_initial", "tumor_final", "tumor_reduction", "nadir", "nk_final", "kills_car", "kills_innate", "kills_adcc",
    "cytokine_peak_ng_ml_day", "crs_any_rate", "crs_grade3_rate", "icans_any_rate", "icans_grade3_rate", "gvhd_risk",
]
UNTREATED_ARM = "untreated"
#: Kill routes in greys with hatches, so no route shares a colour with an arm (arms: black + Dark2).
TOX_VISIBLE = 0.005  # a predicted rate below 0.5 % would be an invisible bar: the panel is left out
ROUTE_STYLE = (("kills_car", "CAR", "0.25", None), ("kills_innate", "innate (NKG2D)", "0.62", "//"),
               ("kills_adcc", "ADCC", "0.88", ".."))
TOX = (("crs_any_rate", "CRS any"), ("crs_grade3_rate", "CRS ≥3"), ("icans_any_rate", "ICANS any"),
       ("icans_grade3_rate", "ICANS ≥3"))


def arms_table(results: dict) -> pd.DataFrame:
    """One row per arm with the outcome and toxicity metrics."""
    return pd.DataFrame([{"arm": k, **{m: r.metrics.get(m) for m in ARM_METRICS}} for k, r in results.items()])


def _scenario(r) -> dict:
    summary = getattr(r, "summary", None)
    return dict(summary.get("scenario") or {}) if isinstance(summary, dict) else {}


def is_untreated(name: str, r) -> bool:
    """An arm with no therapy (`sim.scenario.resolve.is_untreated` on its resolved scenario; without a
    readable scenario, an arm named 'untreated')."""
    sc = _scenario(r)
    if sc:
        try:
            from sim.scenario import Scenario
            from sim.scenario.resolve import is_untreated as untreated

            return untreated(Scenario.model_validate(sc))
        except Exception:  # an older or foreign summary.json: fall back to the name
            pass
    return name == UNTREATED_ARM


def arm_colors(results: dict) -> dict:
    """Black for the untreated arm, Dark2 colours for the treated ones (kill routes use greys)."""
    import matplotlib

    cmap = matplotlib.colormaps["Dark2"]
    out, k = {}, 0
    for name, r in results.items():
        if is_untreated(name, r):
            out[name] = "k"
        else:
            out[name] = cmap(k % cmap.N)
            k += 1
    return out


def _effector_title(results: dict) -> str:
    kinds = []
    for name, r in results.items():
        if is_untreated(name, r):
            continue
        eff = _scenario(r).get("effector", "carnk")
        kinds.append("CAR-T" if eff == "cart" else "CAR-NK")
    kinds = list(dict.fromkeys(kinds)) or ["CAR-NK"]
    return " / ".join(kinds)


def _antigen(results: dict) -> str:
    from sim.plots.data import antigen_name

    for r in results.values():
        if _scenario(r):
            return antigen_name(_scenario(r))
    return "antigen"


def _section(results: dict) -> str:
    for r in results.values():
        sc = _scenario(r)
        if sc:
            d = sc.get("domain") or {}
            size = d.get("size_um") or []
            dims = int(d.get("dims", len(size) or 2))
            dims_txt = "2D section" if dims == 2 else "3D volume"
            return f"one simulated {dims_txt} ({' × '.join(f'{float(x):g}' for x in size)} µm)" if size else f"one simulated {dims_txt}"
    return "one simulated section"


def compare_figure(results: dict):
    """Tumor burden (antigen− dashed), effector counts, kills by route and — when any arm has a
    non-zero index — predicted CRS/ICANS rates, with the untreated arm in black."""
    from matplotlib.figure import Figure  # no pyplot: library code never picks the backend

    names = list(results)
    colors = arm_colors(results)
    tox_max = max((float(results[n].metrics.get(k) or 0) for n in names for k, _ in TOX), default=0.0)
    tox = tox_max >= TOX_VISIBLE
    npanel = 4 if tox else 3
    fig = Figure(figsize=(4.4 * npanel + 1.0, 4.3), layout="constrained")
    ax = fig.subplots(1, npanel)
    ag = _antigen(results)
    effector = _effector_title(results)
    for name, r in results.items():
        ts, col = r.timeseries, colors[name]
        d = ts["time_h"] / 24.0
        ax[0].plot(d, ts["tumor"], color=col, lw=1.7, label=name)
        ax[0].plot(d, ts["tumor_ag_neg"], color=col, ls="--", lw=1)
        if not is_untreated(name, r):
            ax[1].plot(d, ts["nk_live"], color=col, lw=1.7, label=name)
    ax[0].set(xlabel="time (days)", ylabel="tumor cells", title=f"tumor (solid: all; dashed: {ag}−)")
    ax[0].set_ylim(bottom=0)
    ax[0].legend(frameon=False, fontsize=8, title="arm", title_fontsize=8)
    ax[1].set(xlabel="time (days)", ylabel="effector cells in tissue", title=f"{effector} in tissue")
    ax[1].set_ylim(bottom=0)

    bottom = [0.0] * len(names)
    for route, label, col, hatch in ROUTE_STYLE:
        vals = [float(results[n].metrics.get(route) or 0) for n in names]
        if route == "kills_adcc" and not any(vals):
            continue
        ax[2].bar(range(len(names)), vals, 0.6, bottom=bottom, color=col, hatch=hatch, edgecolor="k", lw=0.5, label=label)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax[2].set_xticks(range(len(names)), names, rotation=15)
    for t, n in zip(ax[2].get_xticklabels(), names):
        t.set_color(colors[n])
    for i, (n, b) in enumerate(zip(names, bottom)):
        ax[2].text(i, b, f"{b:,.0f}", ha="center", va="bottom", fontsize=7)
    ax[2].set(ylabel="tumor cells killed", title="kills by route (greys: routes)", ylim=(0, max(bottom + [1.0]) * 1.08))
    ax[2].legend(frameon=False, fontsize=8, title="route", title_fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))

    notes = []
    if tox:
        treated = [n for n in names if not is_untreated(n, results[n])]
        width = 0.8 / max(1, len(treated))
        for k, name in enumerate(treated):
            m = results[name].metrics
            ax[3].bar([i + k * width for i in range(len(TOX))], [100 * float(m.get(x) or 0) for x, _ in TOX], width,
                      color=colors[name], label=name)
        ax[3].set_xticks([i + width * (len(treated) - 1) / 2 for i in range(len(TOX))], [t for _, t in TOX])
        ax[3].set(ylabel="predicted patients (%)", title="toxicity index", ylim=(0, 100))
        ax[3].legend(frameon=False, fontsize=8)
        ax[3].text(0.5, -0.22, f"Index from {_section(results)}'s cytokine release,\ncalibrated on one CAR-T trial "
                   "(docs/therapy.md): a relative index, not a trial estimate.", transform=ax[3].transAxes,
                   ha="center", va="top", fontsize=7, color="0.3")
    else:
        notes.append(f"toxicity panel omitted: no arm has a predicted CRS or ICANS rate of {100 * TOX_VISIBLE:g} % or more "
                     f"(largest {100 * tox_max:.2g} %)")
    title = f"{effector} arms on identical tumors and seeds" + (" (black: untreated control)" if "k" in colors.values() else "")
    fig.suptitle(title + (f"\n{'; '.join(notes)}" if notes else ""), fontsize=10)
    return fig


def write_comparison(results: dict, out: Path) -> None:
    """Write `arms.csv` and `compare.png` into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    arms_table(results).to_csv(out / "arms.csv", index=False)
    fig = compare_figure(results)
    fig.savefig(out / "compare.png", dpi=110, bbox_inches="tight", pad_inches=0.08)
