"""Metamorphic tests over every file in scenarios/: two routes to the same run agree bit for bit.

- an arm equals the same scenario run alone with the arm's `set` as overrides;
- a sweep point (through the sweep worker) equals `sim.run` with the same overrides and seed;
- a sweep's untreated control (through the sweep worker) equals `sim.run` of `untreated_effective` and the
  comparisons' untreated arm with the same seed;
- `mesa.batch_run` on `TumorImmuneModel` equals `sim.run`.
A scenario added to scenarios/ later is covered without editing this file. Runs are short (a few
output intervals) because what is tested is that the routes run the same scenario, not biology."""
from __future__ import annotations

import io
import json
from pathlib import Path

import mesa
import pandas as pd
import pytest

from sim import api
from sim.model import TumorImmuneModel
from sim.scenario import load_raw, resolve
from sim.scenario.resolve import is_untreated, untreated_effective
from sim.sweep.runner import execute_run
from sim.sweep.spec import load_sweep

SCEN = Path(__file__).resolve().parents[1] / "scenarios"
#: every scenario file (cohort, sweep and calibration files that name a `base:` are not scenarios)
FILES = sorted(p for p in SCEN.glob("*.yaml") if "base" not in load_raw(p))


def short_days(path: Path) -> float:
    """Long enough for three output rows and one tumor/field step, short enough for the suite."""
    cfg = resolve(path).scenario
    return round(max(3 * cfg.time.output_every_h / 24.0, 0.1), 6)


def document(path: Path) -> dict:
    raw = load_raw(path)
    raw.pop("__source__", None)
    raw.pop("sweep", None)
    raw["output"] = {**raw.get("output", {}), "snapshots": False, "figure": False}
    return raw


@pytest.mark.slow
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_arm_equals_its_overrides_run_alone(path):
    doc = document(path)
    arms = doc.get("arms") or [{"name": "as_written", "set": {}}]
    doc["arms"] = arms
    days = short_days(path)
    via_arms = api.run_arms(doc, days=days)
    alone_doc = {k: v for k, v in doc.items() if k != "arms"}
    for arm in arms:
        alone = api.run(alone_doc, overrides=arm["set"], days=days)
        a = via_arms[arm["name"]]
        assert a.timeseries.equals(alone.timeseries), arm["name"]
        assert a.summary["metrics"] == alone.summary["metrics"], arm["name"]
        assert a.summary["scenario"] == alone.summary["scenario"], arm["name"]


@pytest.mark.slow
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_sweep_point_equals_run_with_the_same_overrides(path, tmp_path):
    base = tmp_path / "base.yaml"
    import yaml

    doc = document(path)
    doc.pop("arms", None)
    base.write_text(yaml.safe_dump(doc))
    days = short_days(path)
    value = resolve(doc).scenario.tumor.doubling_time_h
    spec = tmp_path / "sweep.yaml"
    spec.write_text(yaml.safe_dump({"base": str(base), "design": "grid", "replicates": 1,
                                    "overrides": {"time.days": days},
                                    "parameters": {"tumor.doubling_time_h": [value, value * 2]}}))
    plan = load_sweep(spec)
    for rs in (r for r in plan.runs if not r.control):  # the control: test_sweep_control_equals_the_untreated_run_and_arm
        rec = execute_run({"run_id": rs.run_id, "document": plan.document, "layer": plan.layers[rs.point], "seed": rs.seed})
        assert rec["ok"], rec.get("error")
        swept = pd.read_parquet(io.BytesIO(rec["files"]["timeseries.parquet"]))
        alone = api.run(doc, seed=rs.seed, overrides={"tumor.doubling_time_h": plan.overrides[rs.point]["tumor.doubling_time_h"]},
                        days=days)
        assert swept.equals(alone.timeseries), rs.point


@pytest.mark.slow
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_sweep_control_equals_the_untreated_run_and_arm(path, tmp_path):
    import yaml

    doc = document(path)
    doc.pop("arms", None)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(doc))
    days = short_days(path)
    spec = tmp_path / "sweep.yaml"
    spec.write_text(yaml.safe_dump({"base": "base.yaml", "replicates": 2, "overrides": {"time.days": days},
                                    "parameters": {"tumor.doubling_time_h": [resolve(doc).scenario.tumor.doubling_time_h]}}))
    plan = load_sweep(spec)
    control = [rs for rs in plan.runs if rs.control]
    assert len(control) == (0 if is_untreated(resolve(doc).scenario) else 2)  # none for an untreated base
    for rs in control:
        rec = execute_run({"run_id": rs.run_id, **plan.task(rs)})
        assert rec["ok"], rec.get("error")
        swept = pd.read_parquet(io.BytesIO(rec["files"]["timeseries.parquet"]))
        alone = api.run(untreated_effective(resolve(doc, {"time.days": days}, "sweep")), seed=rs.seed)
        arm = api.run_arms(doc, seed=rs.seed, days=days)["untreated"]
        assert swept.equals(alone.timeseries) and swept.equals(arm.timeseries), rs.replicate
        summary = json.loads(rec["files"]["summary.json"])
        assert summary["scenario"] == alone.summary["scenario"] == arm.summary["scenario"]
        assert summary["metrics"] == alone.summary["metrics"] == arm.summary["metrics"]


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in FILES if resolve(p).scenario.domain.space == "lattice"],
                         ids=[p.stem for p in FILES if resolve(p).scenario.domain.space == "lattice"])
def test_batch_run_equals_sim_run(path):
    doc = document(path)
    doc.pop("arms", None)
    eff = resolve(doc)
    days = short_days(path)
    steps = int(round(days * 1440 / eff.scenario.time.dt_min))
    res = mesa.batch_run(TumorImmuneModel, parameters={"config": [doc], "rng": [eff.scenario.seed]},
                         max_steps=steps, number_processes=1, data_collection_period=-1,
                         display_progress=False)
    alone = api.run(doc, days=days)
    last = alone.timeseries.iloc[-1]
    row = res[-1]
    for col in ("tumor", "tumor_ag_pos", "nk_live", "kills_car", "kills_innate", "kills_adcc", "mean_ifng_ng_ml", "nk_blood"):
        assert row[col] == last[col], col
