"""The untreated control of a sweep (issue 14): one control run per replicate seed, resolved by
`resolve.untreated_effective` (the comparisons' control), stored, resumed and content-addressed like a
design point, its own labelled rows in the tables, and never seen by the sensitivity indices
(`control: "maybe"` is refused in test_sweep_designs with the other bad sweep blocks)."""
import json
from functools import partial
from pathlib import Path

import pandas as pd
import pytest

from sim.scenario.resolve import is_untreated, resolve, untreated_effective, untreated_overrides
from sim.output import read_parquet as read
from sim.sweep import run_sweep
from sim.sweep.runner import is_done
from sim.sweep.spec import load_sweep
from sim.sweep.testing import FakeRunner

from helpers import tiny_sweep_base, write_sweep

BASE = tiny_sweep_base(seed=7)
GRID = {"parameters": {"nk.persistence.half_life_days": [3, 14], "nk.il15.mode": ["none", "secreted"]}, "replicates": 3}


write = partial(write_sweep, default_base=BASE)




def sweep(tmp_path: Path, block: dict, name: str, base: dict | None = None) -> Path:
    out = tmp_path / name
    run_sweep(write(tmp_path, block, f"{name}.yaml", base), out, scheduler="inline", progress=False, runner=FakeRunner())
    return out


def test_plan_adds_one_control_run_per_replicate_seed(tmp_path):
    plan = load_sweep(write(tmp_path, {**GRID, "overrides": {"tumor.init.count": 80}}))
    points = [r for r in plan.runs if not r.control]
    ctrl = [r for r in plan.runs if r.control]
    assert len(points) == 4 * 3 and plan.runs[: len(points)] == points  # design runs first, in their usual order
    assert [(r.point, r.replicate, r.seed) for r in ctrl] == [(None, k, s) for k, s in enumerate(plan.seeds)]
    for r in points:  # paired: replicate r of every point and the control share one seed
        assert r.seed == ctrl[r.replicate].seed
    # the comparisons' control of the base scenario (constant overrides included), nothing else
    base = resolve(plan.document, plan.spec.overrides, "sweep")
    assert plan.control_scenario == untreated_effective(base).scenario.model_dump()
    assert plan.control_scenario["tumor"]["init"]["count"] == 80 and plan.control_scenario["nk"]["dose"]["cells"] == 0
    task = plan.task(ctrl[0])
    assert task["document"] is plan.document and task["untreated"] is True and task["seed"] == plan.seeds[0]
    # content-addressed like the points: distinct, and the same ids when the sweep is planned again
    assert len({r.run_id for r in plan.runs}) == len(plan.runs)
    again = load_sweep(write(tmp_path, {**GRID, "overrides": {"tumor.init.count": 80}}, "again.yaml"))
    assert [r.run_id for r in again.runs] == [r.run_id for r in plan.runs]
    m = plan.manifest_fields()["control"]
    assert m["runs"] == 3 and m["overrides"] == untreated_overrides(base.scenario) and m["reason"] is None


@pytest.mark.parametrize("block, base, reason", [
    ({**GRID, "control": False}, None, "control: false"),
    ({"parameters": {"nk.dose.cells": [0, 20]}, "replicates": 2}, None, "design point 0 is untreated"),
    (GRID, {**BASE, "nk": {"dose": {"cells": 0}}}, "design point 0 is untreated"),
])
def test_no_control_when_off_or_already_untreated(tmp_path, block, base, reason):
    plan = load_sweep(write(tmp_path, block, base=base))
    assert not any(r.control for r in plan.runs) and plan.control_scenario is None
    assert len(plan.runs) == len(plan.design.points) * plan.spec.replicates
    assert plan.manifest_fields()["control"] == {"runs": 0, "overrides": None, "reason": reason}


def test_dose_sweep_over_an_untreated_base_gets_its_control(tmp_path):
    """An untreated base whose design points are all treated still needs the untreated control."""
    plan = load_sweep(write(tmp_path, {"parameters": {"nk.dose.cells": [20, 40]}, "replicates": 2},
                            base={**BASE, "nk": {"dose": {"cells": 0}}}))
    assert sum(r.control for r in plan.runs) == 2 and plan.manifest_fields()["control"]["reason"] is None


def test_control_rows_in_the_tables_and_manifest_apart_from_the_design(tmp_path):
    out = sweep(tmp_path, GRID, "with")
    off = sweep(tmp_path, {**GRID, "control": False}, "without")
    plan = load_sweep(tmp_path / "with.yaml")
    summ, ts, man = read(out / "summary.parquet"), read(out / "timeseries.parquet"), json.loads((out / "manifest.json").read_text())
    assert list(summ.columns[:7]) == ["run_id", "point", "replicate", "seed", "control",
                                      "nk.persistence.half_life_days", "nk.il15.mode"]
    ctrl = summ[summ["control"]]
    assert list(ctrl["seed"]) == plan.seeds and list(ctrl["replicate"]) == [0, 1, 2]
    assert ctrl["point"].isna().all() and ctrl["nk.persistence.half_life_days"].isna().all() and ctrl["nk.il15.mode"].isna().all()
    assert (ctrl["nk_initial"] == 0).all() and (ctrl["kills_car"] == 0).all()
    # the design rows are exactly those of the same sweep without its control
    design = summ[~summ["control"]].drop(columns="control").reset_index(drop=True)
    ref = read(off / "summary.parquet")
    assert not ref["control"].any()
    pd.testing.assert_frame_equal(design, ref.drop(columns="control"), check_dtype=False)
    assert list(ts.loc[ts["control"], "run_id"].unique()) == list(ctrl["run_id"])
    runs = [r for r in man["runs"] if r["control"]]
    assert [(r["point"], r["seed"], r["status"]) for r in runs] == [(None, s, "done") for s in plan.seeds]
    assert man["counts"]["runs"] == 15 and man["control"]["runs"] == 3
    meta = json.loads((out / "runs" / runs[0]["run_id"] / "sweep_run.json").read_text())
    assert meta["control"] is True
    run_sc = json.loads((out / "runs" / runs[0]["run_id"] / "summary.json").read_text())["scenario"]
    assert is_untreated(resolve(run_sc).scenario)


def test_resume_reuses_the_control_runs(tmp_path):
    out = sweep(tmp_path, GRID, "out")
    spec = tmp_path / "out.yaml"
    before = [(out / f).read_bytes() for f in ("summary.parquet", "timeseries.parquet")]
    again = run_sweep(spec, out, scheduler="inline", progress=False, runner=FakeRunner())
    assert (again.runs, again.executed, again.reused) == (15, 0, 15)
    victim = next(r.run_id for r in load_sweep(spec).runs if r.control)
    (out / "runs" / victim / "summary.json").unlink()
    third = run_sweep(spec, out, scheduler="inline", progress=False, runner=FakeRunner())
    assert (third.executed, third.reused) == (1, 14) and is_done(out / "runs", victim)
    assert [(out / f).read_bytes() for f in ("summary.parquet", "timeseries.parquet")] == before
    # turning the control off later keeps every design run; turning it on again reuses the control
    off = run_sweep(write(tmp_path, {**GRID, "control": False}, "out.yaml"), out, scheduler="inline", progress=False,
                    runner=FakeRunner())
    assert (off.runs, off.executed) == (12, 0)
    on = run_sweep(write(tmp_path, GRID, "out.yaml"), out, scheduler="inline", progress=False, runner=FakeRunner())
    assert (on.runs, on.executed) == (15, 0)


@pytest.mark.parametrize("design", ["sobol", "morris"])
def test_sensitivity_indices_do_not_see_the_control(tmp_path, design):
    block = {"design": design, "samples": 4, "replicates": 2, "metrics": ["tumor_reduction", "nk_final"],
             "parameters": {"nk.persistence.half_life_days": {"low": 1, "high": 20},
                            "nk.receptors.car_expression": {"low": 0.2, "high": 2.0}}}
    with_ctrl = sweep(tmp_path, block, "with")
    without = sweep(tmp_path, {**block, "control": False}, "without")
    assert read(with_ctrl / "summary.parquet")["control"].sum() == 2
    assert (with_ctrl / "sensitivity.parquet").read_bytes() == (without / "sensitivity.parquet").read_bytes()
    assert "sensitivity_skipped" not in json.loads((with_ctrl / "manifest.json").read_text())
