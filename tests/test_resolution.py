"""One resolution step for every entry point (issue 10, defect 1).

Product presets and dosing defaults used to be lost in arms and sweeps, because "set by the user" was
read from pydantic's `model_fields_set` after a full `model_dump()` had been re-validated. These tests
pin the effective values through every route, and the origin recorded for each."""
from __future__ import annotations

from pathlib import Path

import pytest

from sim import api
from sim.scenario import arm_effectives, load_raw, resolve
from sim.sweep.runner import execute_run
from sim.sweep.spec import load_sweep

SCEN = Path(__file__).resolve().parents[1] / "scenarios"
LYMPHOMA = SCEN / "cd19_lymphoma_cb_il15.yaml"


def ipsc_egfr_3d() -> dict:
    """The issue's second case: 3D EGFR nodule, iPSC product, two scheduled infusions, an anti-NKG2A arm."""
    return {
        "name": "egfr3d_ipsc", "seed": 4,
        "domain": {"dims": 3, "size_um": [300.0, 300.0, 300.0], "spacing_um": 20.0},
        "time": {"days": 1.0, "output_every_h": 6.0, "snapshot_every_h": 0},
        "tumor": {"init": {"count": 300}, "antigen": {"name": "EGFR"}},
        "product": {"type": "ipsc"},
        "dosing": {"unit": "cells", "tissue_fraction": 1.0, "infusions": [{"day": 0.0, "dose": 400}, {"day": 0.5, "dose": 400}]},
        "output": {"snapshots": False, "figure": False},
        "arms": [{"name": "alone", "set": {}},
                 {"name": "anti_nkg2a", "set": {"drugs.anti_nkg2a": {"doses": [{"day": 0, "mg_per_kg": 10}]}}}],
    }


def key_values(sc) -> tuple:
    n = sc.nk
    return (n.dose.cells, n.persistence.half_life_days, n.receptors.cd16, n.il15.max_divisions)


def test_lymphoma_preset_direct_arm_and_sweep_agree():
    """Direct: cord-blood preset gives max_divisions 5 and cd16 0.8; an arm and a sweep point must too."""
    direct = resolve(LYMPHOMA)
    assert direct.scenario.nk.il15.max_divisions == 5 and direct.scenario.nk.receptors.cd16 == 0.8
    assert direct.origins["nk.il15.max_divisions"] == "preset:cord_blood"
    assert direct.origins["nk.receptors.cd16"] == "preset:cord_blood"

    raw = load_raw(LYMPHOMA)
    raw["arms"] = [{"name": "same", "set": {}}, {"name": "longer", "set": {"nk.persistence.half_life_days": 14.0}}]
    arms = dict(arm_effectives(resolve(raw)))
    assert arms["same"].scenario.nk.il15.max_divisions == 5 and arms["same"].scenario.nk.receptors.cd16 == 0.8
    assert arms["longer"].scenario.nk.persistence.half_life_days == 14.0
    assert arms["longer"].origins["nk.persistence.half_life_days"] == "arm:longer"
    assert arms["longer"].origins["nk.receptors.cd16"] == "preset:cord_blood"
    assert arms["same"].scenario.model_dump() == direct.scenario.model_dump() | {"arms": []}


def test_lymphoma_preset_survives_a_sweep(tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(f"base: {LYMPHOMA}\ndesign: grid\nparameters:\n  tumor.init.count: [100, 200]\nreplicates: 1\n")
    plan = load_sweep(spec)
    for sc in plan.scenarios:  # what the plan hashes and records
        assert sc["nk"]["il15"]["max_divisions"] == 5 and sc["nk"]["receptors"]["cd16"] == 0.8
    seen = {}

    def spy(scenario, seed=None, out=None, progress=False):
        seen["sc"] = scenario
        raise RuntimeError("stop here")

    rs = plan.runs[0]
    execute_run({"run_id": rs.run_id, "document": plan.document, "layer": plan.layers[rs.point], "seed": rs.seed, "runner": spy})
    assert seen["sc"].nk.il15.max_divisions == 5 and seen["sc"].nk.receptors.cd16 == 0.8  # what the worker runs
    assert seen["sc"].model_dump() == plan.scenarios[rs.point]


def test_ipsc_infusions_and_arm_resolve_alike():
    """Alone: no cells at t = 0 (infusions scheduled), t½ 5.0 d, cd16 0.3 (iPSC preset); the same in every arm."""
    raw = ipsc_egfr_3d()
    alone = resolve({k: v for k, v in raw.items() if k != "arms"})
    assert key_values(alone.scenario) == (0, 5.0, 0.3, 3)
    assert alone.origins["nk.dose.cells"] == "rule:infusions_scheduled"
    for name, arm in arm_effectives(resolve(raw)):
        assert key_values(arm.scenario) == (0, 5.0, 0.3, 3), name
    cfgs = dict(arm_effectives(resolve(raw)))
    assert cfgs["anti_nkg2a"].scenario.drugs.anti_nkg2a.doses[0].mg_per_kg == 10


def test_ipsc_arm_runs_bit_identical_to_the_same_overrides_alone():
    raw = ipsc_egfr_3d()
    arms = api.run_arms(raw, days=0.75)
    alone_doc = {k: v for k, v in raw.items() if k != "arms"}
    alone = api.run(alone_doc, overrides=raw["arms"][1]["set"], days=0.75)
    a = arms["anti_nkg2a"]
    assert a.timeseries.equals(alone.timeseries)
    assert a.summary["metrics"] == alone.summary["metrics"]
    assert a.summary["scenario"] == alone.summary["scenario"]
    assert a.summary["origins"]["drugs.anti_nkg2a.doses"] == "arm:anti_nkg2a"
    assert alone.summary["origins"]["drugs.anti_nkg2a.doses"] == "override"


def test_explicit_values_beat_presets_in_every_layer():
    raw = ipsc_egfr_3d()
    raw["nk"] = {"receptors": {"cd16": 0.9}, "dose": {"cells": 50}}
    eff = resolve(raw)
    assert key_values(eff.scenario) == (50, 5.0, 0.9, 3)
    assert eff.origins["nk.receptors.cd16"] == "user" and eff.origins["nk.dose.cells"] == "user"
    swept = resolve(raw, {"nk.receptors.cd16": 0.1}, "sweep")
    assert swept.scenario.nk.receptors.cd16 == 0.1 and swept.origins["nk.receptors.cd16"] == "sweep"


def test_resolving_twice_is_the_identity_and_keeps_origins():
    eff = resolve(LYMPHOMA)
    again = resolve(eff.scenario)
    assert again is eff
    more = resolve(eff.scenario, {"seed": 3}, "run")
    assert more.scenario.seed == 3 and more.origins["seed"] == "run"
    assert more.origins["nk.receptors.cd16"] == "preset:cord_blood"
    # a copy is resolved afresh from what it holds: the same values
    copy = eff.scenario.model_copy(update={"seed": 3})
    assert resolve(copy).scenario.model_dump() == more.scenario.model_dump()


def test_summary_records_origins_and_provenance():
    res = api.run(LYMPHOMA, days=0.05, seed=2)
    s = res.summary
    assert s["origins"]["nk.il15.max_divisions"] == "preset:cord_blood"
    assert s["origins"]["seed"] == "run" and s["origins"]["time.days"] == "run"
    assert s["scenario"]["time"]["days"] == 0.05 and s["days"] == 0.05
    assert s["version"] and set(s["libraries"]) >= {"numpy", "numba", "scipy", "mesa", "pydantic"}
    assert s["platform"] and "commit" in s


def test_engine_id_changes_with_the_code(tmp_path):
    """Sweep and cohort run ids carry ENGINE: the version plus a digest of the package's code and data, so
    a run computed before an edit to a rule or a default is never reused as current (issue 10)."""
    import shutil
    from pathlib import Path

    import sim
    from sim.provenance import ENGINE, source_digest

    pkg = Path(sim.__file__).resolve().parent
    copy = tmp_path / "sim"
    shutil.copytree(pkg, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert ENGINE.endswith("+" + source_digest()) and source_digest(copy) == source_digest()
    rule = copy / "kernels" / "noise.py"
    rule.write_text(rule.read_text() + "\n# an edit\n")
    assert source_digest(copy) != source_digest()


def test_check_explain_prints_origins(capsys):
    from sim.cli import main

    assert main(["check", str(LYMPHOMA), "--explain"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("nk.il15.max_divisions "))
    assert line.split()[1] == "5" and line.split()[-1] == "preset:cord_blood"


@pytest.mark.parametrize("path", ["nk.persistence.half_life_daysx", "arms"])
def test_bad_layer_paths_are_refused(path):
    from sim.scenario import ScenarioError

    with pytest.raises(ScenarioError):
        raw = ipsc_egfr_3d()
        raw["arms"][1]["set"] = {path: 1}
        resolve(raw)
