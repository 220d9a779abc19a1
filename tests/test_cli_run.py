"""`nksim run --set key=value` (one more validated resolution layer) and the compile notice."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "scenarios" / "quickstart.yaml")


def test_set_overrides_are_a_layer_with_their_origin(tmp_path):
    """--set values reach the run as the `override` layer, typed as YAML, recorded with their origin."""
    out = tmp_path / "r"
    rc = main(["run", QUICK, "--quiet", "--days", "0.02", "--out", str(out),
               "--set", "nk.dose.cells=37", "--set", "nk.il15.mode=secreted"])
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["origins"]["nk.dose.cells"] == "override" and s["origins"]["nk.il15.mode"] == "override"
    assert s["scenario"]["nk"]["dose"]["cells"] == 37


@pytest.mark.parametrize("arg, needle", [
    ("nk.dose.cellz=3", "nk.dose.cellz"),
    ("nk.dose.cells=-4", "nk.dose.cells"),
    ("nodelimiter", "KEY=VALUE"),
])
def test_bad_set_exits_2_naming_the_key(arg, needle, tmp_path, capsys):
    rc = main(["run", QUICK, "--quiet", "--out", str(tmp_path / "r"), "--set", arg])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0]
    assert not (tmp_path / "r").exists()


def test_cold_cache_prints_the_compile_notice_first(tmp_path):
    """With an empty Numba cache the first line on stderr says kernels are being compiled (before the
    minutes of compilation, not after); with a warm cache nothing is said."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    code = ("import sys; from sim.cli import _compile_notice; _compile_notice()")
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "compiling kernels once" in p.stderr
    warm = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)
    assert "compiling" not in warm.stderr
