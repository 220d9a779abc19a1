"""Every bad input is refused clearly, before it costs anything (issue 11).

The rule: exit status 2, ONE line on stderr (``file:line: dotted.path: message`` where the input has a
place), no traceback, nothing written. Each case below is one small bad input run through the real CLI
(`sim.cli.main` in-process; a few in real subprocesses); scenario cases go through both `check` and
`run`, so `check` refuses everything `run` would.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sim.cli import main

ROOT = Path(__file__).resolve().parents[1]

#: A small, valid base (2D, 40×40 sites, 30 tumor cells, 5 NK) that the cases below break.
OK = (
    "name: ok\n"
    "domain: {dims: 2, size_um: [800, 800]}\n"
    "time: {days: 0.05, output_every_h: 1, snapshot_every_h: 0}\n"
    "tumor:\n  init: {count: 30}\n"
    "nk:\n  dose: {cells: 5}\n"
    "output: {snapshots: false, figure: false}\n"
)


def _alias_bomb(levels: int = 9) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _deep(n: int = 600) -> str:
    """A block-style mapping nested n levels deep (one key per line)."""
    return "".join("  " * i + f"k{i}:\n" for i in range(n)) + "  " * n + "x: 1\n"


# id: (file content, expected substring(s) of the one-line message, expected line or None, commands)
# commands: "both" = check and run; "check"/"run" = that command only.
SCENARIO_CASES: dict[str, tuple] = {
    # ---- loader / schema: types
    "bool_cells": ("nk:\n  dose:\n    cells: true\n", ["nk.dose.cells", "boolean"], 3, "both"),
    "bool_spacing": ("domain:\n  spacing_um: true\n", ["domain.spacing_um", "boolean"], 2, "both"),
    "bool_in_list": ("domain:\n  size_um: [true, 800]\n", ["domain.size_um"], 2, "both"),
    "bool_count": ("tumor:\n  init:\n    count: false\n", ["tumor.init.count", "boolean"], 3, "both"),
    "string_number": ("tumor:\n  doubling_time_h: '38.6'\n", ["tumor.doubling_time_h", "number"], 2, "both"),
    "fractional_int": ("tumor:\n  init:\n    count: 2.5\n", ["tumor.init.count", "integer"], 3, "both"),
    # ---- duplicate keys (both lines named)
    "dup_top": ("seed: 1\nname: a\nseed: 2\n", ["seed", "duplicate", "line 1"], 3, "both"),
    "dup_nested": ("nk:\n  dose:\n    cells: 5\n    cells: 6\n", ["nk.dose.cells", "duplicate", "line 3"], 4, "both"),
    "dup_flow": ("tumor: {doubling_time_h: 30, doubling_time_h: 40}\n", ["tumor.doubling_time_h", "duplicate"], 1, "both"),
    "dup_in_list": ("dosing:\n  infusions:\n    - {day: 0, dose: 1e6, day: 1}\n", ["dosing.infusions.0.day", "duplicate"], 3, "both"),
    # ---- empty documents
    "empty_file": ("", ["empty"], None, "both"),
    "only_comments": ("# nothing here\n\n", ["empty"], None, "both"),
    "only_null": ("~\n", ["empty"], None, "both"),
    "top_level_list": ("- a\n- b\n", ["mapping"], None, "both"),
    "top_level_scalar": ("hello\n", ["mapping"], None, "both"),
    "two_documents": ("seed: 1\n---\nseed: 2\n", ["single document"], 2, "both"),
    # ---- non-finite and absurd numbers, anywhere
    "inf_doubling": ("tumor:\n  doubling_time_h: .inf\n", ["tumor.doubling_time_h", "finite"], 2, "both"),
    "neg_inf_half_life": ("nk:\n  persistence:\n    half_life_days: -.inf\n", ["nk.persistence.half_life_days"], 3, "both"),
    "nan_speed": ("nk:\n  motility:\n    speed_um_min: .nan\n", ["nk.motility.speed_um_min", "finite"], 3, "both"),
    "nan_unbounded": ("product:\n  cold_chain:\n    excursions:\n      - {duration_h: 1, temperature_c: .nan}\n",
                      ["product.cold_chain.excursions.0.temperature_c", "finite"], 4, "both"),
    "huge_doubling": ("tumor:\n  doubling_time_h: 1.0e+308\n", ["tumor.doubling_time_h", "1e+15"], 2, "both"),
    "overflow_literal": ("tumor:\n  doubling_time_h: 1e999\n", ["tumor.doubling_time_h", "finite"], 2, "both"),
    "inf_dose": ("dosing:\n  infusions:\n    - {day: 0, dose: .inf}\n", ["dosing.infusions.0.dose", "finite"], 3, "both"),
    "huge_dose": ("dosing:\n  infusions:\n    - {day: 0, dose: 1.0e+300}\n", ["dosing.infusions.0.dose"], 3, "both"),
    "inf_infusion_day": ("dosing:\n  infusions:\n    - {day: .inf, dose: 1e6}\n", ["dosing.infusions.0.day", "finite"], 3, "both"),
    "nan_infusion_day": ("dosing:\n  infusions:\n    - {day: .nan, dose: 1e6}\n", ["dosing.infusions.0.day", "finite"], 3, "both"),
    "inf_lymphodepletion_start": ("dosing:\n  lymphodepletion:\n    regimen: cy_flu\n    start_day: -.inf\n",
                                  ["dosing.lymphodepletion.start_day", "finite"], 4, "both"),
    "inf_lymphodepletion_duration": ("dosing:\n  lymphodepletion:\n    regimen: cy_flu\n    duration_days: .inf\n",
                                     ["dosing.lymphodepletion.duration_days", "finite"], 4, "both"),
    "inf_in_arm_set": ("arms:\n  - name: a\n    set: {tumor.doubling_time_h: .inf}\n", ["tumor.doubling_time_h", "finite"], 3, "both"),
    "inf_in_sweep_block": ("sweep:\n  parameters:\n    nk.persistence.half_life_days: [1, .inf]\n",
                           ["sweep.parameters.nk.persistence.half_life_days.1", "finite"], 3, "both"),
    "huge_int": ("seed: 123456789012345678901234567890\n", ["seed"], 1, "both"),
    # ---- bytes
    "not_utf8": (b"name: ok\ndescription: caf\xe9\n", ["UTF-8"], 2, "both"),
    "nul_byte": (b"name: ok\nseed: 1\x00\n", ["NUL"], 2, "both"),
    "utf16": ("name: ok\n".encode("utf-16"), ["UTF-8"], 1, "both"),
    # ---- structure bombs
    "deep_block_nesting": (_deep(600), ["nested"], None, "both"),
    "deep_flow_nesting": ("description: " + "[" * 5000 + "]" * 5000 + "\n", ["nested"], None, "both"),
    "alias_bomb": (_alias_bomb(9), ["alias"], None, "both"),
    "many_aliases": ("a: &a 1\nb: [" + ", ".join(["*a"] * 500) + "]\n", ["alias"], None, "both"),
    "recursive_alias": ("a: &a [*a]\n", ["alias"], None, "both"),
    "too_large": ("name: ok\ndescription: '" + "x" * (1 << 20) + "'\n", ["MiB"], None, "both"),
    # ---- keys
    "int_key": ("seed: 1\n3: x\n", ["key", "string"], 2, "both"),
    "nested_int_key": ("nk:\n  dose:\n    3: 4\n", ["nk.dose", "key"], 3, "both"),
    "bool_key": ("nk:\n  on: 1\n", ["nk", "key"], 2, "both"),
    "null_key": ("~: 1\n", ["key"], 1, "both"),
    "complex_key": ("? [a, b]\n: 1\n", ["key"], 1, "both"),
    # ---- names used as folder names
    "name_absolute": ("name: /tmp/nksim_escape\n", ["name", "letters"], 1, "both"),
    "name_dotdot": ("name: ../../escape\n", ["name"], 1, "both"),
    "name_dot": ("name: '.'\n", ["name"], 1, "both"),
    "name_empty": ("name: ''\n", ["name"], 1, "both"),
    "name_space": ("name: my run\n", ["name"], 1, "both"),
    "name_not_string": ("name: 12\n", ["name"], 1, "both"),
    "arm_name_dotdot": ("arms:\n  - name: ../../escape\n    set: {}\n", ["arms.0.name"], 2, "both"),
    "arm_name_slash": ("arms:\n  - name: a/b\n    set: {}\n", ["arms.0.name"], 2, "both"),
    # ---- check refuses what run would (domain fit, lattice size, time steps)
    "tumor_exceeds_sites": ("domain: {dims: 2, size_um: [100, 100]}\ntumor:\n  init: {count: 1000}\n",
                            ["tumor.init.count", "domain.size_um"], 3, "both"),
    "nodule_does_not_fit": ("domain: {dims: 2, size_um: [20000, 20]}\ntumor:\n  init: {count: 500}\n",
                            ["tumor.init.count", "nodule"], 3, "both"),
    "lattice_full_no_room_for_nk": ("domain: {dims: 2, size_um: [100, 100]}\ntumor:\n  init: {shape: scattered, count: 25}\n"
                                    "nk:\n  dose: {cells: 5}\n", ["tumor.init.count"], 3, "both"),
    "lattice_300_digits": ("domain: {dims: 2, size_um: [1.0e+14, 1.0e+14], spacing_um: 1.0e-290}\n", ["domain"], 1, "both"),
    "lattice_beyond_int32": ("domain: {dims: 3, size_um: [40000, 40000, 40000], spacing_um: 20}\n", ["domain", "sites"], 1, "both"),
    "too_many_steps": ("time: {days: 3, dt_min: 1.0e-9}\n", ["time.dt_min", "steps"], 1, "both"),
    "too_many_days": ("time: {days: 1.0e+12}\n", ["time.days"], 1, "both"),
    "days_shorter_than_a_step": ("time: {days: 0.0001}\n", ["time.days", "step"], 1, "both"),
    "max_divisions_overflow": ("nk:\n  il15:\n    max_divisions: 5000\n", ["nk.il15.max_divisions"], 3, "both"),
    # ---- resources: memory estimate against the machine (or --max-memory)
    "tumor_1e9": ("domain: {dims: 3, size_um: [20000, 20000, 20000]}\ntumor:\n  init: {count: 900000000}\n",
                  ["memory", "GiB", "tumor"], None, "both"),
    "nk_1e9": ("nk:\n  dose: {cells: 1000000000}\n", ["memory", "GiB"], None, "both"),
    "sites_1e9": ("domain: {dims: 3, size_um: [20000, 20000, 20000]}\ntumor:\n  init: {count: 10}\n",
                  ["memory", "GiB", "lattice"], None, "both"),
    "vessels_1e10": ("dosing:\n  infusions: [{day: 0, dose: 1e6}]\n  vessels: {count: 10000000000}\n",
                     ["memory"], None, "both"),
    "infused_1e13": ("dosing:\n  unit: cells\n  tissue_fraction: 1\n  infusions: [{day: 0, dose: 1.0e+13}]\n",
                     ["memory"], None, "both"),
}

MAX_MEMORY_CASES = {  # (scenario text, --max-memory value): the limit the user gives is honoured
    "quickstart_in_1MiB": ((ROOT / "scenarios" / "quickstart.yaml").read_text(), "1M"),
    "sites_1e8_in_1GiB": ("domain: {dims: 3, size_um: [9300, 9300, 9300]}\ntumor:\n  init: {count: 10}\n", "1G"),
}

ARG_CASES = {  # (argv after `run <file>`, must name)
    "days_zero": (["--days", "0"], "--days"),
    "days_negative": (["--days", "-1"], "--days"),
    "days_nan": (["--days", "nan"], "--days"),
    "days_inf": (["--days", "inf"], "--days"),
    "days_text": (["--days", "three"], "--days"),
    "seed_negative": (["--seed", "-1"], "--seed"),
    "seed_float": (["--seed", "1.5"], "--seed"),
    "seed_huge": (["--seed", "1" + "0" * 30], "--seed"),
    "checkpoint_nan": (["--checkpoint-every-h", "nan"], "--checkpoint-every-h"),
    "checkpoint_zero": (["--checkpoint-every-h", "0"], "--checkpoint-every-h"),
    "checkpoint_negative": (["--checkpoint-every-h", "-2"], "--checkpoint-every-h"),
    "max_memory_text": (["--max-memory", "lots"], "--max-memory"),
    "max_memory_zero": (["--max-memory", "0"], "--max-memory"),
}

SWEEP_CASES = {  # (sweep block, must name)
    "replicates_1e8": ({"parameters": {"nk.persistence.half_life_days": [2, 4]}, "replicates": 100_000_000}, "sweep.replicates"),
    "samples_1e9": ({"design": "lhs", "samples": 1_000_000_000, "parameters": {"nk.persistence.half_life_days": {"low": 1, "high": 9}}},
                    "sweep.samples"),
    "grid_1e12_points": ({"parameters": {f"nk.receptors.{k}": [0.1 * i for i in range(1, 101)]
                                         for k in ("car_expression", "car_affinity", "nkg2d", "inhibitory", "cd16", )}
                          | {"nk.persistence.half_life_days": [1, 2]}}, "sweep.parameters"),
    "total_runs": ({"parameters": {"nk.persistence.half_life_days": [1 + i for i in range(1000)]}, "replicates": 1000}, "sweep"),
}


def _write(tmp_path: Path, content, name: str = "bad.yaml") -> Path:
    f = tmp_path / name
    f.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return f


def _one_line_error(err: str, *needles: str) -> str:
    assert "Traceback" not in err, err[-2000:]
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n" + "\n".join(lines[:10])
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"
    return lines[0]


def _nothing_written(tmp_path: Path, keep: set[str]) -> None:
    left = sorted(p.name for p in tmp_path.iterdir() if p.name not in keep)
    assert not left, f"a refused input left {left} behind"


@pytest.mark.parametrize("case", sorted(SCENARIO_CASES))
@pytest.mark.parametrize("command", ["check", "run"])
def test_bad_scenario_is_refused_in_one_line(case, command, tmp_path, capsys):
    content, needles, line, which = SCENARIO_CASES[case]
    if which not in ("both", command):
        pytest.skip(f"{case} is a {which} case")
    f = _write(tmp_path, content)
    argv = ["check", str(f)] if command == "check" else ["run", str(f), "--out", str(tmp_path / "out"), "--quiet"]
    rc = main(argv + ["--max-memory", "16G"])  # resource cases then do not depend on this machine's memory
    out, err = capsys.readouterr()
    assert rc == 2, f"exit {rc}; stdout: {out[-500:]}; stderr: {err[-500:]}"
    msg = _one_line_error(err, *needles)
    if line is not None:
        assert f"{f}:{line}:" in msg, msg
    _nothing_written(tmp_path, {f.name})


@pytest.mark.parametrize("case", sorted(MAX_MEMORY_CASES))
@pytest.mark.parametrize("command", ["check", "run"])
def test_max_memory_is_honoured(case, command, tmp_path, capsys):
    text, limit = MAX_MEMORY_CASES[case]
    f = _write(tmp_path, text)
    extra = ["--out", str(tmp_path / "out"), "--quiet"] if command == "run" else []
    rc = main([command, str(f), "--max-memory", limit, *extra])
    msg = _one_line_error(capsys.readouterr().err, "memory", "--max-memory")
    assert rc == 2, msg
    _nothing_written(tmp_path, {f.name})


@pytest.mark.parametrize("command", ["check", "run"])
def test_refused_against_the_memory_this_machine_has(command, tmp_path, capsys):
    f = _write(tmp_path, "nk:\n  dose: {cells: 10000000000}\n")  # ~3.7 TB of CAR-NK agents
    extra = ["--out", str(tmp_path / "out"), "--quiet"] if command == "run" else []
    assert main([command, str(f), *extra]) == 2
    _one_line_error(capsys.readouterr().err, "memory", "available")
    _nothing_written(tmp_path, {f.name})


@pytest.mark.parametrize("case", sorted(ARG_CASES))
def test_bad_cli_argument_is_refused_in_one_line(case, tmp_path, capsys):
    extra, needle = ARG_CASES[case]
    f = _write(tmp_path, OK, "ok.yaml")
    with pytest.raises(SystemExit) as e:
        main(["run", str(f), "--out", str(tmp_path / "out"), "--quiet", *extra])
    assert e.value.code == 2
    _one_line_error(capsys.readouterr().err, needle)
    _nothing_written(tmp_path, {f.name})


@pytest.mark.parametrize("which", ["kinetics", "depillis"])
@pytest.mark.parametrize("value", ["0", "-1", "2.5"])
def test_validate_refuses_a_bad_replicate_count_in_one_line(which, value, tmp_path, capsys):
    """`nksim validate --replicates` must be a whole number ≥ 1 (0 or negative used to end in a traceback)."""
    with pytest.raises(SystemExit) as e:
        main(["validate", which, "--replicates", value, "--out", str(tmp_path / "out")])
    assert e.value.code == 2
    _one_line_error(capsys.readouterr().err, "--replicates")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", sorted(SWEEP_CASES))
def test_oversized_sweep_is_refused_before_it_starts(case, tmp_path, capsys):
    block, needle = SWEEP_CASES[case]
    f = tmp_path / "sweep.yaml"
    f.write_text(OK + yaml.safe_dump({"sweep": block}, sort_keys=False))
    rc = main(["sweep", str(f), "--out", str(tmp_path / "out"), "--scheduler", "inline", "--no-progress"])
    assert rc == 2
    _one_line_error(capsys.readouterr().err, needle)
    _nothing_written(tmp_path, {f.name})


def test_check_prints_the_memory_estimate_and_output_volume(tmp_path, capsys):
    f = _write(tmp_path, OK, "ok.yaml")
    assert main(["check", str(f)]) == 0
    out = capsys.readouterr().out
    assert "ok:" in out and "memory" in out and "MiB" in out and "snapshot" in out


def test_check_warns_about_a_flood_of_snapshots(tmp_path, capsys):
    f = _write(tmp_path, OK.replace("snapshot_every_h: 0", "snapshot_every_h: 0.001").replace("snapshots: false", "snapshots: true")
               .replace("days: 0.05", "days: 2"), "many.yaml")
    assert main(["check", str(f)]) == 0
    cap = capsys.readouterr()
    assert "warning" in cap.err and "snapshot" in cap.err and "time.snapshot_every_h" in cap.err


def test_valid_base_runs(tmp_path, capsys):
    f = _write(tmp_path, OK, "ok.yaml")
    assert main(["check", str(f)]) == 0
    assert main(["run", str(f), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert (tmp_path / "out" / "summary.json").exists()


@pytest.mark.parametrize("case", ["alias_bomb", "deep_block_nesting", "name_absolute"])
def test_refused_in_a_real_process(case, tmp_path):
    content, needles, _, _ = SCENARIO_CASES[case]
    f = _write(tmp_path, content)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "sim", "run", str(f), "--out", str(tmp_path / "out"), "--quiet"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2, p.stderr[-2000:]
    _one_line_error(p.stderr, *needles)
    _nothing_written(tmp_path, {f.name})


def test_arguments_refused_in_a_real_process(tmp_path):
    f = _write(tmp_path, OK, "ok.yaml")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "sim", "run", str(f), "--days", "nan", "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2
    _one_line_error(p.stderr, "--days")
    _nothing_written(tmp_path, {f.name})
