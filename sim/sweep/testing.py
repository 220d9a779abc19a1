"""A fast synthetic stand-in for sim.api.run, for sweep/plot tests and demos.

It writes the same run folder (timeseries.parquet, summary.json, snapshots/*.npz) from a tiny
stochastic ODE, reacts to the usual parameters, and can sleep, raise or kill its worker on purpose.
It is importable by Dask workers anywhere the package is installed, unlike a test module.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.metrics import outcome_metrics
from sim.output import TIMESERIES_COLUMNS
from sim.scenario.base import dotted_get


@dataclass
class FakeResult:
    """Same shape as sim.api.Result: timeseries DataFrame, summary dict, output folder."""

    timeseries: pd.DataFrame
    summary: dict
    out: Path | None = None


def _matches(sc: dict, cond: dict | None) -> bool:
    return bool(cond) and all(dotted_get(sc, k) == v for k, v in cond.items())


@dataclass
class FakeRunner:
    """sim.api.run-compatible synthetic runner.

    sleep_s: seconds per run (default $NKSIM_FAKE_SLEEP_S or 0); fail_if: {path: value} raises;
    crash_if: {path: value} kills the worker process once (marker files in marker_dir).
    """

    sleep_s: float = field(default_factory=lambda: float(os.environ.get("NKSIM_FAKE_SLEEP_S", "0")))
    fail_if: dict | None = None
    crash_if: dict | None = None
    marker_dir: str | None = None

    def __call__(self, scenario: Any, seed: int | None = None, out: str | Path | None = None,
                 progress: bool = False, days: float | None = None) -> FakeResult:
        from sim.scenario import coerce

        sc = coerce(scenario).model_dump()
        if days is not None:
            sc["time"]["days"] = float(days)
        seed = int(sc["seed"] if seed is None else seed)
        t0 = time.perf_counter()
        if self.sleep_s:
            time.sleep(self.sleep_s)
        if _matches(sc, self.fail_if):
            raise RuntimeError(f"FakeRunner: failing on purpose for {self.fail_if}")
        if _matches(sc, self.crash_if):
            tag = hashlib.sha256(json.dumps(self.crash_if, sort_keys=True).encode()).hexdigest()[:8]
            marker = Path(self.marker_dir or ".") / f"crashed-{seed}-{tag}"
            if not marker.exists():
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text("1")
                os._exit(13)  # a hard worker death, as from a segfault or the OOM killer
        ts, metrics, snaps = simulate(sc, seed)
        summary = {"scenario": sc, "seed": seed, "version": "fake", "wall_time_s": time.perf_counter() - t0, "metrics": metrics}
        if out is not None:
            out = Path(out)
            out.mkdir(parents=True, exist_ok=True)
            ts.to_parquet(out / "timeseries.parquet", index=False)
            (out / "summary.json").write_text(json.dumps(summary, indent=1))
            if snaps:
                (out / "snapshots").mkdir(exist_ok=True)
                for k, snap in enumerate(snaps):
                    np.savez_compressed(out / "snapshots" / f"snap_{k:04d}.npz", **snap)
        return FakeResult(ts, summary, out)


def fake_run(scenario: Any, seed: int | None = None, out: str | Path | None = None, progress: bool = False,
             days: float | None = None) -> FakeResult:
    """FakeRunner() with defaults, as a plain function."""
    return FakeRunner()(scenario, seed=seed, out=out, progress=progress, days=days)


def simulate(sc: dict, seed: int) -> tuple[pd.DataFrame, dict, list[dict]]:
    """A small stochastic tumor/CAR-NK model on the scenario's clock (not the real engine)."""
    rng = np.random.default_rng(seed)
    days, every = sc["time"]["days"], sc["time"]["output_every_h"]
    n_out = int(math.floor(days * 24 / every + 1e-9)) + 1
    dt = 0.25
    nk_cfg, tu = sc["nk"], sc["tumor"]
    il15 = nk_cfg["il15"]["mode"] == "secreted"
    half_h = nk_cfg["persistence"]["half_life_days"] * 24 * (1 + (nk_cfg["il15"]["half_life_extension"] if il15 else 0))
    death = math.log(2) / half_h
    prolif = nk_cfg["il15"]["proliferation_per_day"] / 24 if il15 else 0.0
    g = math.log(2) / tu["doubling_time_h"]
    car = nk_cfg["receptors"]["car_expression"] * nk_cfg["receptors"]["car_affinity"]
    k_car, k_inn, k_adcc = 0.03 * car, 0.006 * nk_cfg["receptors"]["nkg2d"], 0.001 * nk_cfg["receptors"]["cd16"]
    n0 = tu["init"]["count"]
    neg = tu["antigen"]["negative_fraction"]
    pos, negc = float(round(n0 * (1 - neg))), float(n0 - round(n0 * (1 - neg)))
    nk, exh = float(nk_cfg["dose"]["cells"]), 0.0
    cap = 20.0 * max(n0, 1)
    kc = ki = ka = 0.0
    rows = []
    steps_per_out = max(1, int(round(every / dt)))
    for j in range(n_out):
        T = pos + negc
        rows.append((j * every, T, pos, negc, 0, nk, exh, kc, ki, ka, 0.05 * kc / max(1.0, j * every + 1), 2e-4 * T, (1e-4 * nk if il15 else 0.0), 0))  # nk_blood: no dosing here
        if j == n_out - 1:
            break
        for _ in range(steps_per_out):
            T = pos + negc
            sat = 1.0 / (1.0 + T / 2000.0)
            active = max(nk - exh, 0.0)
            dcar = rng.poisson(max(k_car * active * pos / max(T, 1) * (T * sat / 50) * dt, 0)) if pos > 0 else 0
            dinn = rng.poisson(max(k_inn * active * (T * sat / 50) * dt, 0)) if T > 0 else 0
            dadcc = rng.poisson(max(k_adcc * active * (T * sat / 50) * dt, 0)) if T > 0 else 0
            dcar = min(dcar, pos)
            fpos = pos / T if T > 0 else 0
            dinn_pos = min(round(dinn * fpos), pos - dcar)
            dinn_neg = min(dinn - dinn_pos, negc)
            dadcc = min(dadcc, pos - dcar - dinn_pos)
            growth = 1 - T / cap
            pos += rng.poisson(max(g * pos * growth * dt, 0)) - dcar - dinn_pos - dadcc
            negc += rng.poisson(max(g * negc * growth * dt, 0)) - dinn_neg
            pos, negc = max(pos, 0.0), max(negc, 0.0)
            kc += dcar
            ki += dinn_pos + dinn_neg
            ka += dadcc
            nk += rng.poisson(prolif * nk * dt) - rng.binomial(int(nk), min(death * dt, 1.0))
            exh = min(nk, exh + rng.binomial(int(max(nk - exh, 0)), min(0.002 * dt, 1.0)))
    ts = pd.DataFrame(rows, columns=list(TIMESERIES_COLUMNS))
    for c in ("tumor", "tumor_ag_pos", "tumor_ag_neg", "tumor_ag_low", "nk_live", "nk_exhausted", "kills_car", "kills_innate", "kills_adcc", "nk_blood"):
        ts[c] = ts[c].astype("int64")

    total_kills = int(ts["kills_car"].iat[-1] + ts["kills_innate"].iat[-1] + ts["kills_adcc"].iat[-1])
    n_cells = max(int(nk_cfg["dose"]["cells"]), 1)
    per_nk = rng.negative_binomial(1, n_cells / (n_cells + total_kills), size=n_cells) if total_kills else np.zeros(n_cells, int)
    nk_series = ts["nk_live"].to_numpy(dtype=float)
    obs = None
    if nk_series[0] > 0 and nk_series[-1] > 0 and nk_series[-1] < nk_series[0]:
        obs = float(ts["time_h"].iat[-1] / 24 * math.log(2) / math.log(nk_series[0] / nk_series[-1]))
    metrics = outcome_metrics(ts, per_nk, obs)  # the one definition of every outcome metric (sim.metrics)
    snaps = []
    every_snap = sc["time"]["snapshot_every_h"]
    if sc.get("output", {}).get("snapshots", False) and every_snap > 0:
        snaps = _snapshots(sc, ts, every_snap, rng)
    return ts, metrics, snaps


def _snapshots(sc: dict, ts: pd.DataFrame, every_h: float, rng: np.random.Generator) -> list[dict]:
    """Synthetic spatial snapshots in the engine's npz layout: a nodule, NK around it, two fields."""
    from sim.scenario import Domain

    dom = Domain(**sc["domain"])
    shape = np.array(dom.lattice_shape())
    coarsen = dom.field_coarsen
    fshape = tuple(int(max(1, math.ceil(s / coarsen))) for s in shape)
    centre = (shape - 1) / 2.0
    snaps = []
    times = np.arange(0, ts["time_h"].iat[-1] + 1e-9, every_h)
    for t in times:
        row = ts.iloc[int(np.argmin(np.abs(ts["time_h"].to_numpy() - t)))]
        n_t, n_nk = min(int(row["tumor"]), 4000), min(int(row["nk_live"]), 1000)
        dims = 3 if shape[2] > 1 else 2
        r = (n_t / (math.pi if dims == 2 else 4 / 3 * math.pi)) ** (1 / dims) if n_t else 0.0
        pts = rng.normal(size=(n_t, 3))
        pts /= np.linalg.norm(pts, axis=1, keepdims=True) + 1e-12
        rad = r * rng.random(n_t) ** (1 / dims)
        xyz = centre + pts * rad[:, None]
        if dims == 2:
            xyz[:, 2] = 0
        txyz = np.clip(np.rint(xyz), 0, shape - 1).astype(np.int32)
        nxyz = np.stack([rng.integers(0, s, n_nk) for s in shape], axis=1).astype(np.int32)
        grid = np.stack(np.meshgrid(*[(np.arange(f) + 0.5) * coarsen for f in fshape], indexing="ij"), -1)
        d2 = ((grid - centre) ** 2).sum(-1)
        blob = np.exp(-d2 / (2 * max(r, 2.0) ** 2))
        snaps.append({
            "time_h": np.float64(t), "lattice_shape": shape.astype(np.int64), "spacing_um": np.float64(dom.spacing_um),
            "tumor_xyz": txyz, "tumor_antigen": rng.lognormal(0, 0.5, n_t).astype(np.float32),
            "nk_xyz": nxyz, "nk_exhausted": rng.random(n_nk) < 0.2,
            "field_names": np.array(["ifng", "tgfb", "il15"]),
            "ifng": (float(row["mean_ifng_ng_ml"]) * 5 * blob).astype(np.float32),
            "tgfb": (2.0 * blob).astype(np.float32),
            "il15": (float(row["mean_il15_ng_ml"]) * np.ones(fshape)).astype(np.float32),
            "field_coarsen": np.int64(coarsen),
        })
    return snaps
