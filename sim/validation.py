"""Validation against published work: the Kuznetsov 1994 and de Pillis 2005 ODEs in the well-mixed limit.

`nksim validate kuznetsov --out DIR` writes overlay figures (ODE vs agent mean with a 95 % band
over replicates) and `kuznetsov.json` with the error metrics; `nksim validate depillis` does the
same for the NK-only model of de Pillis 2005 (`depillis.png`, `depillis.json`), which uses the Hill
recruitment T²/(h + T²). docs/validation.md shows them.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from . import api, data
from .output import write_json_atomic
from .reference import depillis as dp
from .reference import kuznetsov as kz

SCENARIO = data.path("kuznetsov_wellmixed.yaml")  # package data (scenarios/ links to it)
DEPILLIS_SCENARIO = data.path("depillis_wellmixed.yaml")
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


# ------------------------------------------------------------------ de Pillis 2005, NK-only model
def depillis_ensemble(replicates: int, seed0: int = 0, days: float | None = None, omega: float | None = None,
                      overrides: dict | None = None) -> dict:
    """Replicate runs of `depillis_wellmixed.yaml` (package data); t (days) and N, T arrays
    (replicates × times) in ODE cells, with the effective parameters the ODE needs."""
    ov = dict(overrides or {})
    if omega is not None:
        ov["wellmixed.omega"] = omega
    cfg = api.coerce(DEPILLIS_SCENARIO, ov)
    w = cfg.wellmixed
    Ns, Ts = [], []
    for r in range(replicates):
        ts = api.run(DEPILLIS_SCENARIO, seed=seed0 + r, days=days, overrides=ov).timeseries
        Ns.append(ts["nk_live"].to_numpy(float) / w.omega)
        Ts.append(ts["tumor"].to_numpy(float) / w.omega)
        t = ts["time_h"].to_numpy() / 24.0
    return {"t": t, "N": np.array(Ns), "T": np.array(Ts), "omega": w.omega, "dt_min": cfg.time.dt_min,
            "N0": w.effector_cells, "T0": w.tumor_cells, "params": depillis_params_of(cfg)}


def depillis_params_of(cfg) -> dp.DePillisParams:
    """The de Pillis parameters a well-mixed scenario encodes (h = gⁿ with n = 2)."""
    w = cfg.wellmixed
    if w.proliferation_hill != 2.0:
        raise ValueError("the de Pillis model needs wellmixed.proliferation_hill: 2")
    return dp.DePillisParams(a=w.growth_per_day, b=w.inverse_capacity_per_cell, c=w.kill_per_cell_day,
                             sigma=w.influx_cells_day, f=w.death_per_day, g=w.proliferation_per_day,
                             h=w.proliferation_half_cells ** 2, p=w.inactivation_per_cell_day)


def depillis_ode_on(ens: dict) -> tuple[np.ndarray, np.ndarray]:
    """The ODE solution (N, T) on the ensemble's output times."""
    t = ens["t"]
    _, N, T = dp.solve(ens["N0"], ens["T0"], float(t[-1]), ens["params"], t_eval=t)
    return N, T


def depillis_metrics(ens: dict) -> dict:
    """Errors of the replicate mean against the ODE.

    T spans five decades, so its error is pointwise relative: max over time of |mean − ODE|/ODE
    (`max_rel_err`), and the largest standard error of the mean on the same scale (`max_rel_se`).
    For both T and N also as fractions of the ODE peak (`max_err`, `rms_err`, as for Kuznetsov), and
    for N pointwise relative while the ODE's N is above 10 % of its peak (`max_rel_err_above_10pct`;
    after the collapse N is ~1 agent at Ω = 1e-2, where a relative error says nothing). Also the
    time T first reaches 90 % of 1/b (`t90_days`: ODE and every replicate).
    """
    No, To = depillis_ode_on(ens)
    R = ens["T"].shape[0]
    k = ens["params"]
    out = {"omega": ens["omega"], "dt_min": ens["dt_min"], "N0": ens["N0"], "T0": ens["T0"], "replicates": R,
           "days": float(ens["t"][-1]), "params": k.as_dict()}
    for name, X, ref in (("T", ens["T"], To), ("N", ens["N"], No)):
        mean = X.mean(0)
        se = X.std(0, ddof=1) / math.sqrt(R) if R > 1 else np.zeros_like(mean)
        peak = float(ref.max())
        rel = np.abs(mean - ref) / ref
        d = {"max_err": float(np.max(np.abs(mean - ref)) / peak), "rms_err": float(np.sqrt(np.mean(((mean - ref) / peak) ** 2))),
             "max_se": float(se.max() / peak), "peak_ode": peak, "peak_mean": float(mean.max()),
             "final_mean": float(mean[-1]), "final_ode": float(ref[-1])}
        if name == "T":
            i = int(np.argmax(rel))
            d.update(max_rel_err=float(rel.max()), max_rel_err_day=float(ens["t"][i]), max_rel_se=float(np.max(se / ref)))
        else:
            big = ref >= 0.1 * peak
            d.update(max_rel_err_above_10pct=float(rel[big].max()), day_peak_ode=float(ens["t"][int(np.argmax(ref))]))
        out[name] = d
    cap = 0.9 / k.b
    t = ens["t"]
    first = lambda T: float(t[np.argmax(T >= cap)]) if (T >= cap).any() else None  # noqa: E731
    out["t90_days"] = {"ode": first(To), "replicates": [first(T) for T in ens["T"]]}
    return out


def _depillis_overlay(ens: dict, path: Path, title: str) -> None:
    from matplotlib.figure import Figure  # no pyplot: library code never picks the backend

    No, To = depillis_ode_on(ens)
    t = ens["t"]
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, X, ref, lab, where in ((axes[0], ens["T"], To, "tumor cells T", "lower right"),
                                    (axes[1], ens["N"], No, "NK cells N", "lower left")):
        lo, hi = np.percentile(X, [2.5, 97.5], axis=0)
        ax.fill_between(t, lo, hi, color="tab:blue", alpha=0.25, lw=0, label="ABM 95 % band")
        ax.plot(t, X.mean(0), color="tab:blue", label=f"ABM mean (n={X.shape[0]})")
        ax.plot(t, ref, "k--", label="ODE (solve_ivp)")
        ax.set(xlabel="time (days)", ylabel=f"{lab} (cells)", yscale="log", xlim=(t[0], t[-1]))
        ax.legend(frameon=False, fontsize=7, loc=where)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=90)


def validate_depillis(out: str | Path, replicates: int = 32) -> dict:
    """The de Pillis 2005 NK-only model from N0 = σ/f, T0 = 1e4 for 40 days; writes depillis.png and depillis.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ens = depillis_ensemble(replicates, seed0=3000)
    report = depillis_metrics(ens)
    _depillis_overlay(ens, out / "depillis.png",
                      f"de Pillis 2005 NK-only model, N0=σ/f, T0={ens['T0']:.0e}, Ω={ens['omega']:g}, "
                      f"dt={ens['dt_min']:g} min ({replicates} replicates)")
    write_json_atomic(out / "depillis.json", report)
    return report


#: Untreated disseminated blasts on a marrow-like 2D sample (10,000 sites), the cd19_leukemia geometry.
SECTION_CASE = {"domain": {"dims": 2, "size_um": [2000, 2000], "spacing_um": 20.0, "field_coarsen": 2},
                "tumor": {"init": {"count": 1500, "shape": "scattered"}, "doubling_time_h": 38.6},
                "nk": {"dose": {"cells": 0}}, "fields": {"stroma": {"enabled": False}},
                "time": {"days": 10.0, "output_every_h": 6.0}, "output": {"snapshots": False}}


def validate_section(out: str | Path, replicates: int = 4) -> dict:
    """Closed against open sample boundary on untreated blasts (`sim/section.py`): the closed section
    stops at its 10,000 sites, the open sample's section + outside follows N0·2^(t/Td); and the shipped
    lymphoma sample, untreated, against the birth-death mean of its sourced cycle and cell loss.
    Writes section.png and section.json."""
    import warnings

    from .errors import DomainEdgeWarning
    from .scenario import Domain

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = {"closed": [], "open": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DomainEdgeWarning)  # the closed run's cap is what this figure shows
        for b in runs:
            for k in range(replicates):
                cfg = {**SECTION_CASE, "domain": {**SECTION_CASE["domain"], "section": {"represents": "sample", "boundary": b}}}
                runs[b].append(api.run(cfg, seed=100 + k).timeseries)
    lymphoma = lymphoma_untreated(replicates)
    t = runs["open"][0]["time_h"].to_numpy() / 24.0
    n0 = SECTION_CASE["tumor"]["init"]["count"]
    td = SECTION_CASE["tumor"]["doubling_time_h"] / 24.0
    expo = n0 * 2.0 ** (t / td)
    closed = np.array([ts["tumor"].to_numpy() for ts in runs["closed"]])
    sec = np.array([ts["tumor"].to_numpy() for ts in runs["open"]])
    total = np.array([ts["tumor_total"].to_numpy() for ts in runs["open"]])
    n_sites = int(np.prod(Domain.model_validate(SECTION_CASE["domain"]).lattice_shape()))
    report = {"replicates": replicates, "sites": n_sites, "days": float(t[-1]), "doubling_days": td,
              "closed_final_median": float(np.median(closed[:, -1])), "open_total_final_median": float(np.median(total[:, -1])),
              "exponential_final": float(expo[-1]),
              "open_total_max_rel_shortfall": float(np.max(np.abs(total.mean(0) / expo - 1.0))),
              "lymphoma": {k: v for k, v in lymphoma.items() if not isinstance(v, np.ndarray)}}
    from matplotlib.figure import Figure  # no pyplot: library code never picks the backend

    fig = Figure(figsize=(11.5, 4.0), layout="constrained")
    ax, bx = fig.subplots(1, 2)
    ax.plot(t, expo, "k--", label=f"N0·2^(t/Td), Td = {td * 24:.1f} h")
    for X, colour, lw, ls, lab in ((closed, "tab:red", 4.0, "-", "closed section (caps growth)"),
                                   (sec, "tab:blue", 1.5, "--", "open sample: the section itself (full)"),
                                   (total, "tab:green", 1.5, "-", "open sample: section + outside (patient level)")):
        ax.fill_between(t, X.min(0), X.max(0), color=colour, alpha=0.25, lw=0)
        ax.plot(t, np.median(X, 0), color=colour, lw=lw, ls=ls, alpha=0.6 if lw > 2 else 1.0,
                label=f"{lab}, median of {replicates}")
    ax.axhline(n_sites, color="grey", lw=0.8, ls=":", label=f"lattice capacity ({n_sites} sites)")
    ax.set(xlabel="time (days)", ylabel="tumor cells (section units)", yscale="log",
           title="a  Untreated blasts: closed section vs open sample", xlim=(0, t[-1]))
    ax.title.set_fontsize(10)
    ax.legend(frameon=False, fontsize=7)
    _lymphoma_panel(bx, lymphoma, replicates)
    fig.savefig(out / "section.png", dpi=90)
    write_json_atomic(out / "section.json", report)
    return report


def lymphoma_untreated(replicates: int, days: float = 28.0) -> dict:
    """The shipped lymphoma sample (`cd19_lymphoma_cb_il15.yaml`) without NK cells (no infusions), as shipped (open, cell loss)
    and as it was before 2026-12-03 (closed, no loss), with the linear birth-death mean and SD of the
    shipped cycle and loss, λ = ln2/Tpot and μ (the reference `tests/test_section.py` holds it to)."""
    import warnings

    from .errors import DomainEdgeWarning
    from .scenario import resolve

    path = data.path("cd19_lymphoma_cb_il15.yaml")
    quiet = {"dosing.infusions": [], "output.snapshots": False, "output.figure": False}
    before = {**quiet, "domain.section": {"represents": "lesion", "boundary": "closed"}, "tumor.death_per_day": 0.0}
    sc = resolve(path).scenario
    lam, mu = math.log(2.0) * 24.0 / sc.tumor.doubling_time_h, sc.tumor.death_per_day
    shipped = [api.run(path, days=days, seed=2020 + k, overrides=quiet).timeseries for k in range(replicates)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DomainEdgeWarning)  # the closed lesion reaching its edge is the "before"
        closed = [api.run(path, days=days, seed=2020 + k, overrides=before).timeseries for k in range(replicates)]
    t = shipped[0]["time_h"].to_numpy() / 24.0
    total = np.array([ts["tumor_total"].to_numpy() for ts in shipped])
    closed_cells = np.array([ts["tumor"].to_numpy() for ts in closed])
    n0 = float(total[0, 0])
    g = np.exp((lam - mu) * t)
    sd = np.sqrt(n0 * (lam + mu) / (lam - mu) * g * (g - 1.0))
    half = np.searchsorted(t, days / 2.0)  # the net doubling over the second half, past the packed start
    net_doubling = math.log(2.0) * (t[-1] - t[half]) / np.log(np.median(total[:, -1]) / np.median(total[:, half]))
    return {"t": t, "total": total, "closed": closed_cells,
            "expected": n0 * g, "sd": sd, "n0": n0, "replicates": replicates, "lam_per_day": lam, "mu_per_day": mu,
            "cell_loss_factor": mu / lam, "potential_doubling_days": math.log(2.0) / lam,
            "expected_net_doubling_days": math.log(2.0) / (lam - mu),
            "measured_net_doubling_days": float(net_doubling),
            "final_median": float(np.median(total[:, -1])), "expected_final": float(n0 * g[-1]),
            "final_sd": float(sd[-1]), "outside_final_median": float(np.median([ts["tumor_outside"].iloc[-1] for ts in shipped])),
            "closed_no_loss_final_median": float(np.median(closed_cells[:, -1]))}


def _lymphoma_panel(ax, ly: dict, replicates: int) -> None:
    t = ly["t"]
    ax.plot(t, ly["n0"] * 2.0 ** (t / ly["potential_doubling_days"]), ":", color="grey",
            label=f"no loss: N0·2^(t/Tpot), Tpot {ly['potential_doubling_days']:.1f} d (Erlanson 1995)")
    ax.fill_between(t, ly["expected"] - 2 * ly["sd"], ly["expected"] + 2 * ly["sd"], color="k", alpha=0.12, lw=0)
    ax.plot(t, ly["expected"], "k--", label=f"birth-death mean ± 2 SD, loss φ = {ly['cell_loss_factor']:.2f} (Iversen 1974)")
    for X, colour, lab in ((ly["total"], "tab:green", "shipped: open sample, cell loss; section + outside"),
                           (ly["closed"], "tab:red", "before 2026-12-03: closed, no cell loss")):
        ax.fill_between(t, X.min(0), X.max(0), color=colour, alpha=0.25, lw=0)
        ax.plot(t, np.median(X, 0), color=colour, lw=1.5, label=f"{lab}, median of {replicates}")
    ax.set(xlabel="time (days)", ylabel="tumor cells (section units)", yscale="log", xlim=(0, t[-1]),
           ylim=(ly["n0"] * 0.8, None),
           title=f"b  Untreated lymphoma sample: net doubling {ly['measured_net_doubling_days']:.1f} d "
                 f"({ly['expected_net_doubling_days']:.1f} expected)")
    ax.title.set_fontsize(10)
    ax.legend(frameon=False, fontsize=7, loc="upper left")
