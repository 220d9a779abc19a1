"""Validation against published work: the Kuznetsov 1994 ODE in the well-mixed limit.

`nksim validate kuznetsov --out DIR` writes overlay figures (ODE vs agent mean with a 95 % band
over replicates) and `kuznetsov.json` with the error metrics; docs/validation.md shows them.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import api, data
from .output import write_json_atomic
from .reference import kuznetsov as kz

SCENARIO = data.path("kuznetsov_wellmixed.yaml")  # package data (scenarios/ links to it)
E0 = 3.2e5  # Kuznetsov 1994 example initial effectors (cells)


def kuznetsov_ensemble(omega: float, T0: float, days: float, replicates: int, seed0: int = 0,
                       E0: float = E0, dt_min: float = 30.0) -> dict:
    """Replicate well-mixed runs; returns t (days) and E, T arrays (replicates × times) in ODE cells."""
    base = {"domain": {"space": "well_mixed"}, "time": {"dt_min": dt_min, "output_every_h": 24, "snapshot_every_h": 0},
            "output": {"figure": False, "snapshots": False}}
    ov = {"wellmixed.omega": omega, "wellmixed.tumor_cells": T0, "wellmixed.effector_cells": E0}
    Es, Ts = [], []
    for r in range(replicates):
        ts = api.run(base, seed=seed0 + r, days=days, overrides=ov).timeseries
        Es.append(ts["nk_live"].to_numpy(float) / omega)
        Ts.append(ts["tumor"].to_numpy(float) / omega)
        t = ts["time_h"].to_numpy() / 24.0
    return {"t": t, "E": np.array(Es), "T": np.array(Ts), "omega": omega, "T0": T0, "E0": E0}


def ode_on(ens: dict) -> tuple[np.ndarray, np.ndarray]:
    """The ODE solution (E, T) on the ensemble's output times."""
    t = ens["t"]
    _, E, T = kz.solve(ens["E0"], ens["T0"], float(t[-1]), t_eval=t)
    return E, T


def error_metrics(ens: dict) -> dict:
    """Errors of the replicate mean against the ODE, as fractions of the ODE trajectory's peak.

    max_err: max over time of |mean − ODE|/peak; rms_err: root-mean-square of the same;
    single_rms_err: RMS deviation of single runs from the ODE (∝ Ω^-1/2 by van Kampen);
    max_se: max over time of the mean's standard error (sd/√R)/peak.
    """
    Eo, To = ode_on(ens)
    out = {"omega": ens["omega"], "T0": ens["T0"], "E0": ens["E0"], "replicates": int(ens["T"].shape[0]),
           "days": float(ens["t"][-1]), "agents_initial": float(ens["omega"] * (To[0] + Eo[0])),
           "agents_final": float(ens["omega"] * (To[-1] + Eo[-1])), "agents_peak": float(ens["omega"] * (To + Eo).max())}
    R = ens["T"].shape[0]
    for name, X, ref in (("T", ens["T"], To), ("E", ens["E"], Eo)):
        peak = float(ref.max())
        err = np.abs(X.mean(0) - ref) / peak
        se = X.std(0, ddof=1) / math.sqrt(R) / peak if R > 1 else np.zeros_like(err)
        single = float(np.sqrt(np.mean((X - ref) ** 2))) / peak
        out[name] = {"max_err": float(err.max()), "rms_err": float(np.sqrt(np.mean(err ** 2))), "single_rms_err": single,
                     "max_se": float(se.max()), "peak_ode": peak,
                     "final_mean": float(X[:, -1].mean()), "final_ode": float(ref[-1])}
    return out


def outcome(E: float, T: float, fps: list[dict] | None = None) -> str:
    """'escape' above the middle saddle's tumor size, 'cleared' at T = 0, else 'dormant'."""
    fps = fps or kz.fixed_points()
    saddle_T = [p["T"] for p in fps if p["type"] == "saddle" and p["T"] > 0][0]
    if T <= 0:
        return "cleared"
    return "escape" if T > saddle_T else "dormant"


def _overlay(ens: dict, path: Path, title: str) -> None:
    from matplotlib.figure import Figure  # no pyplot: library code never picks the backend

    Eo, To = ode_on(ens)
    t = ens["t"]
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, X, ref, lab in ((axes[0], ens["T"], To, "tumor T"), (axes[1], ens["E"], Eo, "effector E")):
        lo, hi = np.percentile(X, [2.5, 97.5], axis=0)
        ax.fill_between(t, lo, hi, color="tab:blue", alpha=0.25, lw=0, label="ABM 95 % band")
        ax.plot(t, X.mean(0), color="tab:blue", label=f"ABM mean (n={X.shape[0]})")
        ax.plot(t, ref, "k--", label="ODE (solve_ivp)")
        ax.set(xlabel="time (days)", ylabel=f"{lab} (cells)", yscale="log")
        ax.legend(frameon=False, fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=90)


def _convergence_plot(rows: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure  # no pyplot: library code never picks the backend

    om = [r["omega"] for r in rows]
    fig = Figure(figsize=(4, 3.2), layout="constrained")
    ax = fig.subplots()
    for k, c in (("T", "tab:red"), ("E", "tab:green")):
        ax.loglog(om, [r[k]["rms_err"] for r in rows], "o-", color=c, label=f"{k}: replicate mean")
        ax.loglog(om, [r[k]["single_rms_err"] for r in rows], "s:", color=c, label=f"{k}: single run")
    ref = rows[0]["T"]["single_rms_err"] * (np.array(om) / om[0]) ** -0.5
    ax.loglog(om, ref, "k--", lw=0.8, label="Ω^-1/2")
    ax.set(xlabel="system size Ω (agents per cell)", ylabel="RMS error / ODE peak", title="Convergence, 60 days")
    ax.legend(frameon=False, fontsize=7)
    fig.savefig(path, dpi=90)


def validate_kuznetsov(out: str | Path, omegas=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2), replicates: int = 16,
                       days: float = 60.0, escape_days: float = 30.0) -> dict:
    """Fixed points, dormancy and escape, and convergence in Ω; writes figures and kuznetsov.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fps = kz.fixed_points()
    report = {"fixed_points": [{**p, "eigenvalues": [[z.real, z.imag] for z in p["eigenvalues"]]} for p in fps]}
    main_omega = 1e-3
    cases = {}
    for label, T0, d in (("dormancy", 1e6, 150.0), ("escape", 1e9, escape_days)):
        ens = kuznetsov_ensemble(main_omega, T0, d, replicates, seed0=1000)
        Eo, To = ode_on(ens)
        cases[label] = {
            "T0": T0, "days": d, "ode_outcome": outcome(Eo[-1], To[-1], fps),
            "abm_outcomes": [outcome(e, t, fps) for e, t in zip(ens["E"][:, -1], ens["T"][:, -1])],
            "metrics": error_metrics(ens),
        }
        _overlay(ens, out / f"kuznetsov_{label}.png",
                 f"Kuznetsov 1994, E0=3.2e5, T0={T0:.0e}, Ω={main_omega:g} ({replicates} replicates)")
    report["cases"] = cases
    rows = [error_metrics(kuznetsov_ensemble(om, 1e6, days, replicates, seed0=2000)) for om in omegas]
    report["convergence"] = rows
    _convergence_plot(rows, out / "kuznetsov_convergence.png")
    write_json_atomic(out / "kuznetsov.json", report)
    return report
