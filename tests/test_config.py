"""Scenario validation: every class of bad input gives exit 2 and one message naming the YAML path."""
import subprocess
import sys
from pathlib import Path

import pytest

from sim import config
from sim.cli import main

# calibration files (base: + calibrate:, tests/test_calibration.py) are not scenarios
SCENARIOS = sorted(p for p in Path(__file__).resolve().parents[1].joinpath("scenarios").glob("*.yaml")
                   if not p.name.startswith("calibrate_"))

BAD = {
    "unknown_key": ("nk:\n  persistence:\n    half_life_dayz: 7\n", "nk.persistence.half_life_dayz", "did you mean 'half_life_days'", 3),
    "unknown_top": ("tumour:\n  count: 3\n", "tumour", "did you mean 'tumor'", 1),
    "wrong_type": ("tumor:\n  doubling_time_h: fast\n", "tumor.doubling_time_h", "valid number", 2),
    "negative_rate": ("nk:\n  activation:\n    attach_rate_per_min: -0.2\n", "nk.activation.attach_rate_per_min", "greater than or equal to 0", 3),
    "fraction_above_one": ("tumor:\n  antigen:\n    negative_fraction: 1.5\n", "tumor.antigen.negative_fraction", "less than or equal to 1", 3),
    "bad_choice": ("nk:\n  il15:\n    mode: sometimes\n", "nk.il15.mode", "'membrane_bound' or 'exogenous'", 3),
    "dims_mismatch": ("domain:\n  dims: 3\n  size_um: [100, 100]\n", "domain", "dims is 3", 1),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_names_the_yaml_path_and_line(case, tmp_path, capsys):
    text, path, hint, line = BAD[case]
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    out = tmp_path / "out"
    rc = main(["run", str(f), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert path in err and hint in err, err
    assert f"bad.yaml:{line}: " in err  # file:line: dotted.path: message
    assert "Traceback" not in err
    assert not out.exists()  # nothing written


def test_malformed_yaml_and_missing_file(tmp_path, capsys):
    f = tmp_path / "m.yaml"
    f.write_text("tumor:\n  antigen: {mean: 1.0\nnk: 3\n")
    assert main(["check", str(f)]) == 2
    assert "malformed YAML" in capsys.readouterr().err
    assert main(["check", str(tmp_path / "nope.yaml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_cli_exit_status_is_2_in_a_real_process(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("nk:\n  persistence:\n    half_life_days: -1\n")
    p = subprocess.run([sys.executable, "-m", "sim", "check", str(f)], capture_output=True, text=True)
    assert p.returncode == 2
    assert "nk.persistence.half_life_days" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenarios_validate(path):
    """Every file in scenarios/ loads: scenarios directly, cohort files (with base:) as cohort plans."""
    if "base" in config.load_raw(path):
        from sim.cohort import load_cohort

        assert load_cohort(path).runs
    else:
        assert config.load_scenario(path).name


def test_overrides_by_dotted_path():
    raw = {"nk": {"persistence": {"half_life_days": 7}}}
    s = config.validate(config.apply_overrides(raw, {"nk.persistence.half_life_days": 14, "tumor.init.count": 5}))
    assert s.nk.persistence.half_life_days == 14 and s.tumor.init.count == 5
    with pytest.raises(config.ScenarioError, match="did you mean 'nk.persistence'"):
        config.apply_overrides(raw, {"nk.persistance.half_life_days": 3})


def test_every_parameter_has_a_unit_and_a_source():
    rows = config.parameter_rows()
    assert len(rows) > 60
    for r in rows:
        if r["path"] in ("name", "description") or isinstance(r["default"], (bool, str)):
            continue
        assert r["declared"], f"{r['path']}: declare it with P(default, unit, source, ...)"
        assert r["source"] not in ("", "-") or r["path"] == "seed", r["path"]


def test_parameter_table_in_docs_is_up_to_date():
    doc = Path(__file__).resolve().parents[1] / "docs" / "parameters.md"
    assert doc.read_text(encoding="utf-8") == config.parameter_table_markdown(), "run: nksim params --out docs/parameters.md"
