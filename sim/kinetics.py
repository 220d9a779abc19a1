"""Cellular kinetics of infused products in blood against published descriptions (`nksim validate
kinetics`): IL-15-armored cord-blood CAR-NK (Liu 2020), non-armored peripheral-blood NK (Zhang 2007)
and the CAR-T comparator (tisagenlecleucel, Stein 2019). Only the blood compartment is solved (no
tissue step), so a year of follow-up takes a second per replicate; the band is over product lots."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import data
from .safe_io import write_json_atomic
from .units import MIN_PER_DAY

#: Follow-up grid (days): dense over the first month, then weekly to a year.
DAYS = np.unique(np.concatenate([np.arange(0.0, 28.0, 0.25), np.arange(28.0, 366.0, 7.0), [365.0]]))

#: qPCR detection limit for "detectable" persistence (copies/µg genomic DNA). Assumed: tisagenlecleucel
#: assays quantify from tens of copies/µg; Liu 2020 reports detection by qPCR without a number here.
DETECTION_COPIES_PER_UG = 10.0

BASE = "cd19_lymphoma_cb_il15.yaml"

#: Each product as overrides of the CD19 lymphoma scenario (lot variability on: the band is over lots).
PRODUCTS: dict[str, dict] = {
    "CB CAR-NK + IL-15 (Liu 2020)": {},
    "PB NK, no IL-15 (Zhang 2007)": {"product.type": "peripheral_blood", "nk.il15.mode": "none"},
    "CAR-T comparator (Stein 2019)": {"effector": "cart", "product.type": "none", "nk.il15.mode": "none"},
}

#: What the sources describe, as the checks `kinetic_metrics` are judged against.
TARGETS = {
    "CB CAR-NK + IL-15 (Liu 2020)": {"peak_day_max": 14.0, "detectable_day_365": True},
    "PB NK, no IL-15 (Zhang 2007)": {"decline_half_life_days_max": 10.0},
    "CAR-T comparator (Stein 2019)": {"doubling_days": 0.78, "decline_half_life_days": 4.3,
                                      "terminal_half_life_days": 220.0},
}


def blood_curve(overrides: dict, seed: int, days: np.ndarray = DAYS) -> dict:
    """Blood CAR cells and transgene copies/µg on `days` for one lot (seed); no tissue step is run."""
    from .model import TumorImmuneModel
    from .scenario.resolve import resolve

    eff = resolve(data.path(BASE), {"product.lot.enabled": overrides.get("product.type") != "none",
                                    "seed": int(seed), **overrides})
    th = TumorImmuneModel(eff).therapy
    t = days * MIN_PER_DAY
    return {"days": days, "cells": np.array([th.blood.blood(x) for x in t]),
            "copies_per_ug": np.array([th.transgene_copies_per_ug(x) for x in t])}


def _log_slope(days: np.ndarray, y: np.ndarray, d0: float, d1: float, floor: float) -> float:
    """Slope (1/day) of a log-linear fit of y over [d0, d1], on points above `floor`; nan if < 2 points."""
    m = (days >= d0) & (days <= d1) & (y > floor)
    if m.sum() < 2:
        return float("nan")
    return float(np.polyfit(days[m], np.log(y[m]), 1)[0])


def _half_life(slope: float) -> float:
    """Half-life (days) of a declining log slope; +inf where it does not decline, nan without a fit."""
    if not np.isfinite(slope):
        return float("nan")
    return float(np.log(2.0) / -slope) if slope < 0 else float("inf")


def kinetic_metrics(curve: dict) -> dict:
    """Peak day, expansion doubling time (day 1 to half the peak), initial decline half-life (peak to
    peak + 14 d), terminal half-life (days 180-365, above the detection limit) and whether copies/µg stay above the detection limit at day 365."""
    d, y, cp = curve["days"], curve["cells"], curve["copies_per_ug"]
    after = d >= 1.0  # the distribution phase (blood → organs in hours) is not expansion
    i = int(np.flatnonzero(after)[np.argmax(y[after])])
    peak = float(d[i])
    # expansion: from day 1 to the last point below half the peak (the approach to the peak bends)
    rising = np.flatnonzero((d >= 1.0) & (d <= peak) & (y <= 0.5 * y[i]))
    s_up = _log_slope(d, y, 1.0, float(d[rising[-1]]), 0.0) if rising.size >= 2 else float("nan")
    # terminal phase: only while the level is measurable (above the detection limit)
    s_end = _log_slope(d, cp, 180.0, 365.0, DETECTION_COPIES_PER_UG)
    return {"peak_day": peak, "peak_cells": float(y[i]), "peak_copies_per_ug": float(cp[i]),
            "doubling_days": float(np.log(2.0) / s_up) if s_up > 0 else float("nan"),
            "decline_half_life_days": _half_life(_log_slope(d, y, peak, peak + 14.0, 0.0)),
            "terminal_half_life_days": _half_life(s_end),
            "copies_per_ug_day_365": float(curve["copies_per_ug"][-1]),
            "detectable_day_365": bool(curve["copies_per_ug"][-1] >= DETECTION_COPIES_PER_UG)}


def kinetics_ensemble(replicates: int = 8, seed0: int = 4000) -> dict:
    """Curves and metrics of every product over `replicates` lots."""
    out = {}
    for name, ov in PRODUCTS.items():
        curves = [blood_curve(ov, seed0 + r) for r in range(replicates)]
        out[name] = {"curves": curves, "metrics": [kinetic_metrics(c) for c in curves]}
    return out


def _figure(ens: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(ens), figsize=(4.6 * len(ens), 3.8), sharey=True, constrained_layout=True)
    for ax, (name, e) in zip(axes, ens.items()):
        c = np.array([x["copies_per_ug"] for x in e["curves"]])
        d = e["curves"][0]["days"]
        with np.errstate(divide="ignore"):
            if np.ptp(c, axis=0).max() > 0:
                ax.fill_between(d, c.min(0), c.max(0), color="C0", alpha=0.3, lw=0, label=f"model, min–max of {len(c)} lots")
            ax.plot(d, np.median(c, 0), color="C0", lw=1.6, label="model, median lot" if np.ptp(c, axis=0).max() > 0
                    else "model (no lot variability: one curve)")
        ax.axhline(DETECTION_COPIES_PER_UG, color="0.4", ls=":", lw=1, label=f"detection limit (assumed {DETECTION_COPIES_PER_UG:g})")
        tg = TARGETS[name]
        if "peak_day_max" in tg:
            ax.axvspan(0, tg["peak_day_max"], color="C2", alpha=0.12, label="published: expansion within 2 weeks")
        if tg.get("detectable_day_365"):
            ax.plot([365], [DETECTION_COPIES_PER_UG * 3], marker="v", color="C2", ls="none", ms=8, label="published: detectable at 12 months")
        med = np.median(c, 0)
        ip = int(np.argmin(abs(d - np.median([x["peak_day"] for x in e["metrics"]]))))
        if "doubling_days" in tg:  # the published slopes drawn through the model's peak
            tt = np.array([max(1.0, d[ip] - 6 * tg["doubling_days"]), d[ip]])
            ax.plot(tt, med[ip] * 2.0 ** ((tt - d[ip]) / tg["doubling_days"]), color="C1", lw=2.5, alpha=0.8,
                    label=f"published doubling {tg['doubling_days']:g} d (slope)")
        if "decline_half_life_days" in tg:
            tt = np.array([d[ip], d[ip] + 14.0])
            ax.plot(tt, med[ip] * 0.5 ** ((tt - d[ip]) / tg["decline_half_life_days"]), color="C3", lw=2.5, alpha=0.8,
                    label=f"published initial decline t½ {tg['decline_half_life_days']:g} d (slope)")
        if "decline_half_life_days_max" in tg:
            tt = np.array([d[ip], d[ip] + 28.0])
            ax.plot(tt, med[ip] * 0.5 ** ((tt - d[ip]) / tg["decline_half_life_days_max"]), color="C3", lw=2, ls="--",
                    alpha=0.8, label=f"published bound: t½ < {tg['decline_half_life_days_max']:g} d (slower than the model)")
        if "terminal_half_life_days" in tg:
            t0 = 180.0
            y0 = float(np.interp(t0, d, med))
            tt = np.array([t0, 365.0])
            ax.plot(tt, y0 * 0.5 ** ((tt - t0) / tg["terminal_half_life_days"]), color="C2", lw=2.5, alpha=0.7,
                    label=f"published terminal t½ {tg['terminal_half_life_days']:g} d (slope)")
        m = e["metrics"]

        def fmt(k, f):
            v = float(np.median([x[k] for x in m]))
            return "—" if not np.isfinite(v) else f"{v:{f}} d"
        txt = "\n".join([f"model (median lot): peak day {fmt('peak_day', '.1f')[:-2]}",
                         f"doubling {fmt('doubling_days', '.2f')}", f"initial decline t½ {fmt('decline_half_life_days', '.1f')}",
                         f"terminal t½ {fmt('terminal_half_life_days', '.0f')} (above detection)"])
        ax.text(0.97, 0.97, txt, transform=ax.transAxes, ha="right", va="top", fontsize=8,
                bbox=dict(boxstyle="round", fc="white", ec="0.8"))
        ax.set_yscale("log")
        ax.set_ylim(1e-2, 1e6)
        ax.set_xlim(0, 375)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("days after infusion")
        ax.legend(fontsize=7, loc="lower left")
    axes[0].set_ylabel("transgene copies / µg genomic DNA (blood)")
    fig.savefig(path, dpi=130)
    plt.close(fig)


def validate_kinetics(out: str | Path, replicates: int = 8) -> dict:
    """Blood kinetics of the three products for a year; writes kinetics.png and kinetics.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ens = kinetics_ensemble(replicates)
    report = {}
    for name, e in ens.items():
        med = {k: float(np.median([m[k] for m in e["metrics"]])) for k in e["metrics"][0] if k != "detectable_day_365"}
        med["detectable_day_365_fraction"] = float(np.mean([m["detectable_day_365"] for m in e["metrics"]]))
        report[name] = {"overrides": PRODUCTS[name], "median": med, "published": TARGETS[name]}
    _figure(ens, out / "kinetics.png")
    write_json_atomic(out / "kinetics.json", {"base": BASE, "replicates": replicates,
                                              "detection_copies_per_ug": DETECTION_COPIES_PER_UG, "products": report})
    return report
