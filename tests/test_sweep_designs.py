"""Sweep designs, replicate seeds, run ids and the sweep block's validation (no simulations)."""
import re
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sim.config import ScenarioError
from sim.sweep import designs as D
from sim.sweep.seeds import canonical_json, design_seed, replicate_seeds, run_id
from sim.sweep.spec import load_sweep

from helpers import write_sweep

BASE = {
    "name": "tiny", "seed": 7,
    "domain": {"dims": 2, "size_um": [400.0, 400.0]},
    "time": {"days": 0.25, "output_every_h": 2.0, "snapshot_every_h": 0.0},
    "tumor": {"init": {"count": 60}},
    "nk": {"dose": {"cells": 20}},
    "output": {"snapshots": False, "figure": False},
}


write = partial(write_sweep, default_base=BASE)


# ------------------------------------------------------------------------------------ designs


def test_grid_is_full_factorial_last_parameter_fastest():
    pts = D.grid({"a": [1, 2], "b": ["x", "y", "z"]})
    assert len(pts) == 6
    assert pts[:3] == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"}]
    assert {(p["a"], p["b"]) for p in pts} == {(a, b) for a in (1, 2) for b in "xyz"}


def test_zip_pairs_values_and_refuses_unequal_lengths():
    assert D.zip_points({"a": [1, 2, 3], "b": [4, 5, 6]}) == [{"a": 1, "b": 4}, {"a": 2, "b": 5}, {"a": 3, "b": 6}]
    with pytest.raises(ValueError):
        D.zip_points({"a": [1, 2], "b": [1]})


def test_lhs_counts_bounds_and_one_point_per_stratum():
    d = D.lhs({"a": D.Range(2.0, 4.0), "b": D.Range(-1.0, 1.0)}, 10, seed=3)
    X = np.array([[p["a"], p["b"]] for p in d.points])
    assert X.shape == (10, 2) and d.X.shape == (10, 2)
    assert (X[:, 0] >= 2).all() and (X[:, 0] <= 4).all() and (X[:, 1] >= -1).all() and (X[:, 1] <= 1).all()
    for j, (lo, hi) in enumerate([(2, 4), (-1, 1)]):  # Latin: each of the 10 strata holds one point
        strata = np.floor((X[:, j] - lo) / (hi - lo) * 10).astype(int)
        assert sorted(strata) == list(range(10))
    assert D.lhs({"a": D.Range(2.0, 4.0), "b": D.Range(-1.0, 1.0)}, 10, seed=3).points == d.points


def test_sobol_and_morris_sizes_follow_salib():
    ranges = {"a": D.Range(0.0, 1.0), "b": D.Range(5.0, 6.0), "c": D.Range(1.0, 9.0, integer=True)}
    s = D.sobol(ranges, 8, seed=1)
    assert len(s) == 8 * (3 + 2) and s.problem["names"] == ["a", "b", "c"]
    m = D.morris(ranges, 4, seed=1, levels=4)
    assert len(m) == 4 * (3 + 1)
    for d in (s, m):
        assert all(isinstance(p["c"], int) and 1 <= p["c"] <= 9 for p in d.points)
        assert all(0 <= p["a"] <= 1 and 5 <= p["b"] <= 6 for p in d.points)


@settings(max_examples=40, deadline=None)
@given(lo=st.floats(-50, 50), width=st.floats(0.5, 100), n=st.integers(1, 30), seed=st.integers(0, 2**31),
       kind=st.sampled_from(["lhs", "sobol", "morris"]), integer=st.booleans())
def test_sampling_designs_respect_bounds_and_round_integers(lo, width, n, seed, kind, integer):
    assume(not integer or np.ceil(lo) <= np.floor(lo + width))
    r = D.Range(lo, lo + width, integer)
    d = D.make_design(kind, {"x": r, "y": D.Range(0.0, 1.0)}, samples=n, seed=seed)
    xs = [p["x"] for p in d.points]
    assert len(xs) == {"lhs": n, "sobol": n * 4, "morris": n * 3}[kind]
    if integer:
        assert all(isinstance(x, int) for x in xs)
        assert all(np.ceil(r.low) <= x <= np.floor(r.high) for x in xs)
    else:
        assert all(r.low - 1e-9 <= x <= r.high + 1e-9 for x in xs)


# ------------------------------------------------------------------------------------ seeds


def test_replicate_seeds_reproducible_distinct_and_prefix_stable():
    a = replicate_seeds(2026, 5)
    assert a == replicate_seeds(2026, 5)
    assert replicate_seeds(2026, 3) == a[:3]  # replicate r's seed does not depend on the sweep size
    assert len(set(a)) == 5 and all(0 <= s < 2**63 for s in a)
    assert set(a).isdisjoint(replicate_seeds(2027, 5))
    assert design_seed(2026) not in a


def test_replicate_streams_are_uncorrelated():
    seeds = replicate_seeds(1, 4)
    draws = np.array([np.random.default_rng(s).standard_normal(4000) for s in seeds])
    c = np.corrcoef(draws)
    assert np.abs(c[np.triu_indices(4, 1)]).max() < 0.06


def test_run_id_is_a_content_hash():
    base = {"a": 1, "b": {"c": 2.0}}
    rid = run_id(base, {"x": 7.0}, 5)
    assert len(rid) == 16 and int(rid, 16) >= 0
    assert rid == run_id({"b": {"c": 2.0}, "a": 1}, {"x": 7.0}, 5)  # key order does not matter
    assert rid != run_id(base, {"x": 7.5}, 5) and rid != run_id(base, {"x": 7.0}, 6)
    assert rid != run_id({"a": 2, "b": {"c": 2.0}}, {"x": 7.0}, 5)
    assert canonical_json({"b": np.float64(1.5), "a": np.int64(2)}) == '{"a":2,"b":1.5}'


# ------------------------------------------------------------------------------------ the plan


def test_plan_pairs_seeds_across_points_and_hashes_resolved_values(tmp_path):
    plan = load_sweep(write(tmp_path, {"parameters": {"nk.persistence.half_life_days": [3, 7],
                                                      "nk.il15.mode": ["none", "secreted"]}, "replicates": 3}))
    assert len(plan.runs) == 12 + 3 and len({r.run_id for r in plan.runs}) == 15  # + the untreated control per seed
    assert plan.seed == 7 and plan.seeds == replicate_seeds(7, 3)
    for r in plan.runs:
        assert r.seed == plan.seeds[r.replicate]
    assert plan.overrides[0] == {"nk.persistence.half_life_days": 3.0, "nk.il15.mode": "none"}
    assert plan.param_kinds == {"nk.persistence.half_life_days": "float", "nk.il15.mode": "str"}
    # 3 and 3.0 resolve to the same typed value, so the same run ids: resume is not fooled by YAML spelling
    again = load_sweep(write(tmp_path, {"parameters": {"nk.persistence.half_life_days": [3.0, 7.0],
                                                       "nk.il15.mode": ["none", "secreted"]}, "replicates": 3}, "t.yaml"))
    assert [r.run_id for r in again.runs] == [r.run_id for r in plan.runs]


def test_integer_parameters_are_rounded_from_the_schema_type(tmp_path):
    plan = load_sweep(write(tmp_path, {"design": "lhs", "samples": 6,
                                       "parameters": {"nk.dose.cells": {"low": 10, "high": 40},
                                                      "nk.persistence.half_life_days": {"low": 2, "high": 9}}}))
    cells = [o["nk.dose.cells"] for o in plan.overrides]
    assert all(isinstance(c, int) and 10 <= c <= 40 for c in cells)
    assert not all(float(o["nk.persistence.half_life_days"]).is_integer() for o in plan.overrides)
    assert plan.param_kinds["nk.dose.cells"] == "int"


def test_sweep_file_with_base_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    p = tmp_path / "sw.yaml"
    p.write_text(yaml.safe_dump({"base": "base.yaml", "design": "zip", "replicates": 2, "seed": 11,
                                 "overrides": {"time.days": 0.5},
                                 "parameters": {"nk.dose.cells": [10, 20], "nk.persistence.half_life_days": [2, 4]}}))
    plan = load_sweep(p)
    assert plan.base["time"]["days"] == 0.5 and plan.seed == 11
    assert [o["nk.dose.cells"] for o in plan.overrides] == [10, 20]
    assert plan.base_path == tmp_path / "base.yaml"


@pytest.mark.parametrize("sweep, path, words", [
    ({"parameters": {"nk.persistence.half_life_dayz": [3]}}, "sweep.parameters.nk.persistence.half_life_dayz", "did you mean"),
    ({"parameters": {"nk.persistence.half_life_days": [0, 7]}}, "sweep.parameters.nk.persistence.half_life_days", "greater than 0"),
    ({"parameters": {"nk.persistence.half_life_days": {"low": 1, "hihg": 2}}, "design": "lhs", "samples": 2},
     "sweep.parameters.nk.persistence.half_life_days.hihg", "unknown key"),
    ({"parameters": {"nk.persistence.half_life_days": {"low": 3, "high": 1}}, "design": "lhs", "samples": 2},
     "sweep.parameters.nk.persistence.half_life_days", "greater than low"),
    ({"parameters": {"nk.persistence.half_life_days": {"low": 1, "high": 3}}}, "sweep.parameters.nk.persistence.half_life_days", "list"),
    ({"parameters": {"nk.persistence.half_life_days": [1, 2]}, "design": "sobol", "samples": 4},
     "sweep.parameters.nk.persistence.half_life_days", "range"),
    ({"parameters": {"nk.persistence.half_life_days": {"low": 1, "high": 3}}, "design": "morris"}, "sweep.samples", "required"),
    ({"parameters": {"nk.persistence.half_life_days": [1, 2], "nk.dose.cells": [5]}, "design": "zip"},
     "sweep.parameters.nk.dose.cells", "equal length"),
    ({"parameters": {"nk.persistence.half_life_days": [1]}, "replicates": 0}, "sweep.replicates", "greater than or equal"),
    ({"parameters": {"nk.persistence.half_life_days": [1]}, "metrics": ["tumor_reductin"]}, "sweep.metrics.0", "tumor_reduction"),
    ({"parameters": {"nk.persistence.half_life_days": [1]}, "desing": "grid"}, "sweep.desing", "unknown key"),
    ({"parameters": {"nk.persistence.half_life_days": [1]}, "control": "maybe"}, "sweep.control", "boolean"),
    ({"parameters": {"nk.persistence.half_life_days": [1]}, "design": "factorial"}, "sweep.design", "grid"),
    ({"parameters": {}}, "sweep.parameters", "at least 1"),
    ({"parameters": {"nk.persistence.half_life_days": []}}, "sweep.parameters.nk.persistence.half_life_days", "at least 1"),
    ({"parameters": {"nk.persistence.half_life_days": [1]}, "overrides": {"nk.dose.cels": 3}}, "sweep.overrides.nk.dose.cels", "unknown"),
])
def test_bad_sweep_blocks_name_the_yaml_path(tmp_path, sweep, path, words):
    with pytest.raises(ScenarioError) as e:
        load_sweep(write(tmp_path, sweep))
    assert e.value.path == path, str(e.value)
    assert words in str(e.value)
    assert re.search(r"s\.yaml:\d+: ", str(e.value)), str(e.value)  # file:line: dotted.path: message


def test_scenario_without_sweep_block_is_refused(tmp_path):
    p = tmp_path / "plain.yaml"
    p.write_text(yaml.safe_dump(BASE))
    with pytest.raises(ScenarioError, match="no sweep: block"):
        load_sweep(p)


def test_shipped_il15_sweep_plans():
    root = Path(__file__).resolve().parents[1]
    plan = load_sweep(root / "scenarios" / "il15_persistence_sweep.yaml")
    assert plan.design.kind == "grid" and plan.spec.replicates >= 3
    assert set(plan.names) == {"nk.il15.mode", "nk.persistence.half_life_days"}
    assert {o["nk.il15.mode"] for o in plan.overrides} == {"none", "secreted"}
    assert plan.base["tumor"]["antigen"]["name"] == "CD19"
