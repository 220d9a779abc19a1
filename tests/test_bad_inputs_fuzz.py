"""Property tests (issue 11): random mutations of the shipped scenarios never crash the CLI.

Each example takes a scenario from scenarios/, applies one to three mutations (delete a key, duplicate a
line, retype or replace a value with an extreme or non-finite one, add a random key) and runs it through
`nksim check` (many examples) and a very short `nksim run` into a temporary folder (a few examples).
The properties: no traceback, exit status 0 or 2, exit 2 prints one line and leaves nothing behind.
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
DOCS = {p.stem: yaml.safe_load(p.read_text()) for p in SCENARIOS}
#: The run property runs each example, so it takes the scenarios that build in well under a second.
QUICK = ["quickstart", "invitro_cytotoxicity", "multi_dose_schedule", "manufacturing_variability",
         "cd19_lymphoma_cb_il15", "kuznetsov_wellmixed", "cd19_carnk_vs_cart"]

EXTREME = [True, False, None, "text", "", [], {}, [1, 2], {"a": 1}, 0, -1, 0.5, 3, 1e-300, 1e300, -1e300,
           math.inf, -math.inf, math.nan, 10**20, 2**31, 2**63, -(2**31), 1e15, 1e16, "1e6", "../../x", "/abs"]
RANDOM_KEYS = ["zzz", "nk", "tumor", "count", "days", "set", "0", "name", "sweep", "__source__"]


def _paths(node, prefix=()):
    """(path, value) of every mapping entry and list item."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((prefix + (k,), v))
            out.extend(_paths(v, prefix + (k,)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((prefix + (i,), v))
            out.extend(_paths(v, prefix + (i,)))
    return out


def _parent(doc, path):
    node = doc
    for k in path[:-1]:
        node = node[k]
    return node


@st.composite
def mutated(draw, names=tuple(DOCS)):
    """(YAML text, description) of a shipped scenario with 1–3 mutations."""
    name = draw(st.sampled_from(names))
    doc = copy.deepcopy(DOCS[name])
    what = []
    dup_line = None
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        kind = draw(st.sampled_from(["delete", "retype", "retype", "retype", "random_key", "duplicate"]))
        if not paths:
            kind = "random_key"
        if kind == "duplicate":
            dup_line = draw(st.integers(0, 10_000))
            what.append("duplicate a line")
            continue
        if kind == "random_key":
            maps = [doc] + [v for _, v in paths if isinstance(v, dict)]
            target = maps[draw(st.integers(0, len(maps) - 1))]
            key = draw(st.sampled_from(RANDOM_KEYS))
            target[key] = copy.deepcopy(draw(st.sampled_from(EXTREME)))
            what.append(f"add {key}")
            continue
        path, _ = paths[draw(st.integers(0, len(paths) - 1))]
        parent = _parent(doc, path)
        if kind == "delete":
            del parent[path[-1]]
            what.append(f"delete {path}")
        else:
            parent[path[-1]] = copy.deepcopy(draw(st.sampled_from(EXTREME)))
            what.append(f"set {path} = {parent[path[-1]]!r}")
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True) if doc is not None else ""
    if dup_line is not None:
        lines = text.splitlines(keepends=True)
        if lines:
            i = dup_line % len(lines)
            lines.insert(i, lines[i])
            text = "".join(lines)
    return text, f"{name}: " + "; ".join(what)


def _exercise(tmp_path: Path, capsys, text: str, argv_tail: list[str], command: str) -> int:
    for p in tmp_path.iterdir():  # hypothesis reuses the function-scoped tmp_path
        if p.is_dir():
            import shutil

            shutil.rmtree(p)
        else:
            p.unlink()
    f = tmp_path / "m.yaml"
    f.write_text(text, encoding="utf-8")
    capsys.readouterr()
    try:
        rc = main([command, str(f), *argv_tail])
    except SystemExit as e:  # argparse only; the arguments here are valid
        pytest.fail(f"SystemExit({e.code}) from valid arguments")
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert rc in (0, 2), err[-1000:]
    if rc == 2:
        lines = [x for x in err.splitlines() if x.strip() and not x.startswith("nksim: warning:")]
        assert len(lines) == 1 and lines[0].startswith("nksim: error: "), err[-1000:]
        left = sorted(p.name for p in tmp_path.iterdir() if p.name != f.name)
        assert not left, f"exit 2 left {left} behind"
    return rc


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutated())
def test_check_never_crashes_on_mutated_scenarios(tmp_path, capsys, case):
    text, _ = case
    _exercise(tmp_path, capsys, text, ["--max-memory", "4G"], "check")


@pytest.mark.timeout(240)
@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutated(names=tuple(QUICK)))
def test_short_run_never_crashes_on_mutated_scenarios(tmp_path, capsys, case):
    text, _ = case
    rc = _exercise(tmp_path, capsys, text, ["--out", str(tmp_path / "out"), "--quiet", "--days", "0.02",
                                            "--max-memory", "2G"], "run")
    if rc == 0:
        assert (tmp_path / "out").is_dir()
