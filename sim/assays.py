"""In vitro cytotoxicity assay: % specific lysis against time and E:T, and kills per NK cell.

Runs `scenarios/invitro_cytotoxicity.yaml` (a 2D well of scattered targets, no proliferation)
through `sim.api.run` with overrides for the E:T ratio, the product (CAR-NK or non-transduced NK,
`nk.receptors.car_expression: 0`) and the targets (antigen+ or antigen−). Specific lysis is
kills / initial targets (there is no spontaneous death in the model, so no background to subtract).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import api, data
from .scenario import load_scenario
from .output import write_json_atomic

SCENARIO = data.path("invitro_cytotoxicity.yaml")  # package data (scenarios/ links to it)
ET_RATIOS = (1.0, 2.5, 5.0, 10.0)


def assay_overrides(et: float, product: str = "car", targets: str = "pos", n_targets: int | None = None,
                    extra: dict | None = None) -> dict:
    """Dotted overrides for one well: NK dose from E:T, CAR level for the product, antigen+/− targets."""
    if product not in ("car", "nt"):
        raise ValueError(f"product must be 'car' or 'nt', got {product!r}")
    if targets not in ("pos", "neg"):
        raise ValueError(f"targets must be 'pos' or 'neg', got {targets!r}")
    n_t = n_targets if n_targets is not None else load_scenario(SCENARIO).tumor.init.count
    ov = {"nk.dose.cells": int(round(et * n_t)), "tumor.antigen.negative_fraction": 1.0 if targets == "neg" else 0.0}
    if n_targets is not None:
        ov["tumor.init.count"] = n_targets
    if product == "nt":
        ov["nk.receptors.car_expression"] = 0.0
    ov.update(extra or {})
    return ov


def run_well(et: float, product: str = "car", targets: str = "pos", seed: int = 0, hours: float | None = None,
             extra: dict | None = None, scenario: str | Path = SCENARIO) -> dict:
    """One well: lysis (%) per output time, kills-per-NK histogram and the single-cell fractions."""
    res = api.run(scenario, seed=seed, days=None if hours is None else hours / 24.0,
                  overrides=assay_overrides(et, product, targets, extra=extra))
    ts = res.timeseries
    kills = (ts["kills_car"] + ts["kills_innate"] + ts["kills_adcc"]).to_numpy()
    hist = np.array(res.metrics["kills_per_nk_hist"], dtype=np.int64)
    return {"et": et, "product": product, "targets": targets, "seed": seed,
            "time_h": ts["time_h"].to_numpy(), "lysis_pct": 100.0 * kills / ts["tumor"].iloc[0], "hist": hist}


def single_cell_stats(hist: np.ndarray, serial_min: int = 2) -> dict:
    """From a kills-per-NK histogram: fraction that never kill, fraction of serial killers
    (≥ serial_min kills) and the share of all kills they made."""
    hist = np.asarray(hist, dtype=float)
    k = np.arange(hist.size)
    n, total = hist.sum(), (k * hist).sum()
    serial = hist[serial_min:].sum() / n if n else 0.0
    return {"n_nk": int(n), "fraction_no_kill": float(hist[0] / n) if n else 0.0,
            "fraction_serial": float(serial), "serial_share_of_kills": float((k * hist)[serial_min:].sum() / total) if total else 0.0,
            "max_kills": int(k[hist > 0].max()) if n else 0, "mean_kills": float(total / n) if n else 0.0}


def pooled_hist(wells: list[dict]) -> np.ndarray:
    """Sum kills-per-NK histograms of replicate wells."""
    out = np.zeros(max(w["hist"].size for w in wells), dtype=np.int64)
    for w in wells:
        out[: w["hist"].size] += w["hist"]
    return out


def validate_cytotoxicity(out: str | Path, replicates: int = 3, hours: float = 12.0) -> dict:
    """The full assay grid (CAR/NT × antigen+/− × E:T) plus perforin-deficient NK; figures + JSON."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # independent seeds per arm, so equal lysis of CAR and NT on antigen− targets is a measured match
    wells = [run_well(et, prod, tg, seed=1 + r + 100 * i + 1000 * j, hours=hours)
             for i, prod in enumerate(("car", "nt")) for j, tg in enumerate(("pos", "neg"))
             for et in ET_RATIOS for r in range(replicates)]
    perf = [run_well(1.0, "car", "pos", seed=1 + r, hours=hours, extra={"nk.killing.perforin": False}) for r in range(replicates)]
    excess = [run_well(0.2, "car", "pos", seed=501 + r, hours=hours) for r in range(replicates)]  # targets in excess
    rows = []
    for w in wells:
        for t, l in zip(w["time_h"], w["lysis_pct"]):
            rows.append({"product": w["product"], "targets": w["targets"], "et": w["et"], "seed": w["seed"], "time_h": t, "lysis_pct": l})
    df = pd.DataFrame(rows)
    df.to_csv(out / "cytotoxicity_lysis.csv", index=False)
    mean = df.groupby(["product", "targets", "et", "time_h"])["lysis_pct"].mean()
    at = lambda p, tg, et, h: float(mean.loc[(p, tg, et)].iloc[np.argmin(np.abs(mean.loc[(p, tg, et)].index - h))])
    lysis = {f"{p}/{tg}/{et:g}:1": {"4h": at(p, tg, et, 4.0), "12h": at(p, tg, et, hours)}
             for p in ("car", "nt") for tg in ("pos", "neg") for et in ET_RATIOS}
    sc = {"car_1to1": single_cell_stats(pooled_hist([w for w in wells if w["product"] == "car" and w["targets"] == "pos" and w["et"] == 1.0])),
          "nt_1to1": single_cell_stats(pooled_hist([w for w in wells if w["product"] == "nt" and w["targets"] == "pos" and w["et"] == 1.0])),
          "perforin_deficient_1to1": single_cell_stats(pooled_hist(perf)),
          "car_1to5": single_cell_stats(pooled_hist(excess))}
    hists = {"car": pooled_hist([w for w in wells if w["product"] == "car" and w["targets"] == "pos" and w["et"] == 1.0]),
             "nt": pooled_hist([w for w in wells if w["product"] == "nt" and w["targets"] == "pos" and w["et"] == 1.0]),
             "perforin−": pooled_hist(perf)}
    _plot(df, hists, out / "cytotoxicity.png", replicates, sc["car_1to5"]["fraction_no_kill"])
    report = {"replicates": replicates, "hours": hours, "lysis_pct": lysis, "single_cell": sc,
              "kills_per_nk_hist_1to1": {k: v.tolist() for k, v in hists.items()},
              "summary": {"CAR-NK lysis % at 4 h, Ag+, E:T 1/2.5/5/10": [round(lysis[f"car/pos/{e:g}:1"]["4h"], 1) for e in ET_RATIOS],
                          "NT-NK lysis % at 4 h, Ag+, E:T 1/2.5/5/10": [round(lysis[f"nt/pos/{e:g}:1"]["4h"], 1) for e in ET_RATIOS],
                          "CAR/NT lysis % at 4 h, Ag−, E:T 1": [round(lysis["car/neg/1:1"]["4h"], 1), round(lysis["nt/neg/1:1"]["4h"], 1)],
                          "CAR-NK 1:1, 12 h: no kill / serial (≥2) / serial share": [round(sc["car_1to1"][k], 2) for k in ("fraction_no_kill", "fraction_serial", "serial_share_of_kills")],
                          "CAR-NK 1:5 (targets in excess), 12 h: no kill": round(sc["car_1to5"]["fraction_no_kill"], 2),
                          "perforin-deficient max kills per NK": sc["perforin_deficient_1to1"]["max_kills"]}}
    write_json_atomic(out / "cytotoxicity.json", report)
    return report


def published_points() -> dict[str, pd.DataFrame]:
    """The packaged tables the assay is compared with: sim/data/invitro_lysis.csv (% lysis at 4 h by
    E:T) and sim/data/invitro_kills_per_nk.csv (single-cell fractions at 12 h, 1:1); value ± uncertainty
    (read as one standard deviation, as the tables' headers say)."""
    out = {}
    for key, name in (("lysis", "invitro_lysis.csv"), ("single_cell", "invitro_kills_per_nk.csv")):
        t = pd.read_csv(data.path(name), comment="#")
        if key == "lysis":
            t["et"] = t["condition"].str.replace("et", "", regex=False).astype(float)
        out[key] = t
    return out


def replot(folder: str | Path, path: str | Path | None = None) -> Path:
    """Redraw cytotoxicity.png from a folder's cytotoxicity_lysis.csv and cytotoxicity.json (no simulation)."""
    import json

    folder = Path(folder)
    df = pd.read_csv(folder / "cytotoxicity_lysis.csv")
    rep = json.loads((folder / "cytotoxicity.json").read_text())
    hists = {k: np.asarray(v, dtype=np.int64) for k, v in rep["kills_per_nk_hist_1to1"].items()}
    out = Path(path) if path is not None else folder / "cytotoxicity.png"
    _plot(df, hists, out, int(rep.get("replicates", 3)), rep["single_cell"].get("car_1to5", {}).get("fraction_no_kill"))
    return out


def _antigen() -> str:
    try:
        return load_scenario(SCENARIO).tumor.antigen.name or "antigen"
    except Exception:  # pragma: no cover - the packaged scenario always loads
        return "antigen"


def cytotoxicity_figure(df: pd.DataFrame, hists: dict, replicates: int, antigen: str | None = None,
                        excess_no_kill: float | None = None):
    """Lysis against time (antigen+ and antigen− targets), lysis against E:T at 4 h, kills per NK and the
    single-cell fractions (plus the no-kill fraction with targets in excess, E:T 1:5, if given), with the
    published points of `published_points()` overlaid (black, ±1 SD)."""
    from matplotlib.figure import Figure  # no pyplot: library code never picks the backend

    ag = antigen or _antigen()
    pub = published_points()
    lys, sc_pub = pub["lysis"], pub["single_cell"]
    fig = Figure(figsize=(19, 3.9), layout="constrained")
    ax = fig.subplots(1, 5)
    colors = dict(zip(ET_RATIOS, ["tab:blue", "tab:orange", "tab:green", "tab:red"]))
    m = df.groupby(["product", "targets", "et", "time_h"])["lysis_pct"].mean()
    pub_kw = {"fmt": "D", "color": "k", "ms": 5, "capsize": 3, "lw": 1.2, "zorder": 5}
    for i, tg in enumerate(("pos", "neg")):
        for et in ET_RATIOS:
            for prod, ls in (("car", "-"), ("nt", "--")):
                if (prod, tg, et) not in m.index.droplevel(-1):
                    continue
                s = m.loc[(prod, tg, et)]
                ax[i].plot(s.index, s.values, ls, color=colors[et], label=f"{'CAR-NK' if prod == 'car' else 'NT NK'} {et:g}:1")
        ax[i].set(xlabel="time (h)", ylabel="% specific lysis", ylim=(0, 100),
                  title=f"{ag}{'+' if tg == 'pos' else '−'} targets (model, mean of {replicates} wells)")
    for _, r in lys.iterrows():  # published 4 h release-assay values sit on the antigen+ time course
        ax[0].errorbar([float(r["time"])], [float(r["value"])], yerr=[float(r["uncertainty"])], mfc=colors.get(float(r["et"]), "w"),
                       **pub_kw)
    ax[0].errorbar([], [], yerr=[], label="published, 4 h (±1 SD)", mfc="w", **pub_kw)
    h, lab = ax[0].get_legend_handles_labels()
    fig.legend(h, lab, loc="outside lower left", ncol=len(lab), frameon=False, fontsize=7)
    for prod, mk in (("car", "o-"), ("nt", "s--")):
        v = [m.loc[(prod, "pos", et)].iloc[np.argmin(np.abs(m.loc[(prod, "pos", et)].index - 4.0))] for et in ET_RATIOS]
        ax[2].plot(ET_RATIOS, v, mk, label=f"model {'CAR-NK' if prod == 'car' else 'NT NK'}, {ag}+, 4 h")
    ax[2].errorbar(lys["et"], lys["value"], yerr=lys["uncertainty"], mfc="w",
                   label="published CAR-NK, 4 h: typical range\n(literature.md §9; middle ± half-width)", **pub_kw)
    ax[2].set(xscale="log", xlabel="E:T", ylabel="% specific lysis", ylim=(0, 100), title="lysis vs E:T at 4 h")
    ax[2].set_xticks(ET_RATIOS, [f"{e:g}:1" for e in ET_RATIOS])
    ax[2].minorticks_off()
    ax[2].legend(frameon=False, fontsize=6.5, loc="upper left")
    w = 0.27
    for j, (k, h) in enumerate(hists.items()):
        f = h / max(h.sum(), 1)
        ax[3].bar(np.arange(f.size) + (j - 1) * w, f, width=w, label={"car": "CAR-NK", "nt": "NT NK"}.get(k, k))
    excess = sc_pub[sc_pub["condition"] != "et1"]
    sc_pub = sc_pub[sc_pub["condition"] == "et1"]
    nk0 = sc_pub[sc_pub["observable"] == "fraction_no_kill"]
    if len(nk0):
        ax[3].errorbar([0 - w], nk0["value"], yerr=nk0["uncertainty"], mfc="w", label="published, no kill (±1 SD)", **pub_kw)
    ax[3].set(xlabel=f"kills per NK cell in 12 h (E:T 1:1, {ag}+)", ylabel="fraction of NK cells",
              title=f"single-cell killing ({replicates} wells pooled)")
    ax[3].legend(frameon=False, fontsize=7)
    st = single_cell_stats(np.asarray(hists.get("car", np.zeros(1)), dtype=float))
    obs = [("fraction_no_kill", "never kill", st["fraction_no_kill"]), ("fraction_serial", "serial killers\n(≥ 2 kills)", st["fraction_serial"]),
           ("serial_share", "share of kills\nby serial killers", st["serial_share_of_kills"])]
    x = np.arange(len(obs))
    ax[4].bar(x, [v for _, _, v in obs], 0.55, color="tab:blue", label="model CAR-NK, 1:1, 12 h")
    pv = sc_pub.set_index("observable")
    have = [i for i, (k, _, _) in enumerate(obs) if k in pv.index]
    ax[4].errorbar(x[have], [pv.loc[obs[i][0], "value"] for i in have], yerr=[pv.loc[obs[i][0], "uncertainty"] for i in have],
                   mfc="w", label="published (Vanherberghen 2013,\nencoded by nksim; ±1 SD)", **pub_kw)
    if excess_no_kill is not None:  # the same statement with targets in excess: non-killers are intrinsic
        xe = len(obs)
        ax[4].bar([xe], [excess_no_kill], 0.55, color="tab:cyan", label="model CAR-NK, 1:5 (targets in excess)")
        ex = excess[excess["observable"] == "fraction_no_kill"]
        if len(ex):
            ax[4].errorbar([xe], ex["value"], yerr=ex["uncertainty"], mfc="w", **pub_kw)
        x = np.append(x, xe)
        obs.append(("", "never kill,\n1:5", excess_no_kill))
    ax[4].set_xticks(x, [t for _, t, _ in obs], fontsize=7)
    ax[4].set(ylim=(0, 1), ylabel="fraction", title="single-cell fractions vs published")
    ax[4].legend(frameon=False, fontsize=6.5, loc="upper right")
    fig.suptitle("In vitro cytotoxicity: model (lines, bars) and the packaged published values it is compared with "
                 "(black diamonds; sim/data/invitro_lysis.csv, invitro_kills_per_nk.csv)", fontsize=10)
    return fig


def _plot(df: pd.DataFrame, hists: dict, path: Path, replicates: int, excess_no_kill: float | None = None) -> None:
    fig = cytotoxicity_figure(df, hists, replicates, excess_no_kill=excess_no_kill)
    fig.savefig(path, dpi=110, bbox_inches="tight", pad_inches=0.08)
