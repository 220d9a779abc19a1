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
          "perforin_deficient_1to1": single_cell_stats(pooled_hist(perf))}
    hists = {"car": pooled_hist([w for w in wells if w["product"] == "car" and w["targets"] == "pos" and w["et"] == 1.0]),
             "nt": pooled_hist([w for w in wells if w["product"] == "nt" and w["targets"] == "pos" and w["et"] == 1.0]),
             "perforin−": pooled_hist(perf)}
    _plot(df, hists, out / "cytotoxicity.png", replicates)
    report = {"replicates": replicates, "hours": hours, "lysis_pct": lysis, "single_cell": sc,
              "kills_per_nk_hist_1to1": {k: v.tolist() for k, v in hists.items()},
              "summary": {"CAR-NK lysis % at 4 h, Ag+, E:T 1/2.5/5/10": [round(lysis[f"car/pos/{e:g}:1"]["4h"], 1) for e in ET_RATIOS],
                          "NT-NK lysis % at 4 h, Ag+, E:T 1/2.5/5/10": [round(lysis[f"nt/pos/{e:g}:1"]["4h"], 1) for e in ET_RATIOS],
                          "CAR/NT lysis % at 4 h, Ag−, E:T 1": [round(lysis["car/neg/1:1"]["4h"], 1), round(lysis["nt/neg/1:1"]["4h"], 1)],
                          "CAR-NK 1:1, 12 h: no kill / serial (≥2) / serial share": [round(sc["car_1to1"][k], 2) for k in ("fraction_no_kill", "fraction_serial", "serial_share_of_kills")],
                          "perforin-deficient max kills per NK": sc["perforin_deficient_1to1"]["max_kills"]}}
    write_json_atomic(out / "cytotoxicity.json", report)
    return report


def _plot(df: pd.DataFrame, hists: dict, path: Path, replicates: int) -> None:
    from matplotlib.figure import Figure  # no pyplot: library code never picks the backend

    fig = Figure(figsize=(13, 3.2), layout="constrained")
    ax = fig.subplots(1, 4)
    colors = dict(zip(ET_RATIOS, ["tab:blue", "tab:orange", "tab:green", "tab:red"]))
    m = df.groupby(["product", "targets", "et", "time_h"])["lysis_pct"].mean()
    for i, tg in enumerate(("pos", "neg")):
        for et in ET_RATIOS:
            for prod, ls in (("car", "-"), ("nt", "--")):
                s = m.loc[(prod, tg, et)]
                ax[i].plot(s.index, s.values, ls, color=colors[et], label=f"{'CAR' if prod == 'car' else 'NT'} {et:g}:1")
        ax[i].set(xlabel="time (h)", ylabel="% specific lysis", ylim=(0, 100), title=f"antigen{'+' if tg == 'pos' else '−'} targets")
    ax[0].legend(frameon=False, fontsize=6, ncol=2)
    for prod, mk in (("car", "o-"), ("nt", "s--")):
        for h in (4.0,):
            v = [m.loc[(prod, "pos", et)].iloc[np.argmin(np.abs(m.loc[(prod, "pos", et)].index - h))] for et in ET_RATIOS]
            ax[2].plot(ET_RATIOS, v, mk, label=f"{'CAR-NK' if prod == 'car' else 'NT NK'}, Ag+, {h:g} h")
    ax[2].set(xscale="log", xlabel="E:T", ylabel="% specific lysis", ylim=(0, 100), title="Lysis vs E:T")
    ax[2].set_xticks(ET_RATIOS, [f"{e:g}:1" for e in ET_RATIOS])
    ax[2].legend(frameon=False, fontsize=7)
    w = 0.27
    for j, (k, h) in enumerate(hists.items()):
        f = h / max(h.sum(), 1)
        ax[3].bar(np.arange(f.size) + (j - 1) * w, f, width=w, label=k)
    ax[3].set(xlabel="kills per NK in 12 h (E:T 1:1, Ag+)", ylabel="fraction of NK", title=f"Single-cell killing ({replicates} wells)")
    ax[3].legend(frameon=False, fontsize=7)
    fig.savefig(path, dpi=80)
