"""Start-up stays lean (issue 10: `nksim run`'s first step ≤ 3 s with a warm Numba cache): the modules a
single run does not need are not imported before it needs them. `sys.modules` checks in fresh
interpreters, not timings (docs/performance.md has the measurements)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "scenarios" / "quickstart.yaml")

#: Imported only by the commands and functions that use them (figures, sweeps, cohorts, calibration,
#: export, the viewer) or by scipy parts a run reaches late: each costs 0.1-0.5 s of start-up.
HEAVY = ("matplotlib", "dask", "distributed", "pyabc", "lifelines", "solara", "SALib", "meshio", "zarr",
         "scipy.stats", "scipy.integrate", "scipy.optimize")
#: What `nksim run` builds no parser for (and so does not import).
OTHER_COMMANDS = ("sim.sweep", "sim.cohort", "sim.calibration", "sim.view")


def _imported(code: str) -> set[str]:
    """The names in sys.modules after running `code` in a fresh interpreter (or the list `code` leaves
    in `MODULES`)."""
    code = "MODULES = None\n" + code + ("\nimport sys, json\n"
                                        "print('MODULES ' + json.dumps(sorted(sys.modules) if MODULES is None else MODULES))\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr[-3000:]
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("MODULES ")][-1]
    return set(json.loads(line[len("MODULES "):]))


def _offenders(mods: set[str], names) -> list[str]:
    return sorted(n for n in names if n in mods)


def test_import_sim_api_leaves_out_the_heavy_optional_libraries():
    mods = _imported("import sim.api")
    assert _offenders(mods, HEAVY) == []
    assert _offenders(mods, OTHER_COMMANDS) == []


def test_nksim_run_builds_only_its_own_parser():
    mods = _imported("from sim.cli import _command_word, build_parser\n"
                     "argv = ['run', 'x.yaml', '--quiet']\n"
                     "assert build_parser(only=_command_word(argv)).parse_args(argv).scenario == 'x.yaml'")
    assert _offenders(mods, HEAVY) == []
    assert _offenders(mods, OTHER_COMMANDS) == []


def test_nksim_run_has_imported_nothing_heavy_by_its_first_step(tmp_path):
    """What the start-up benchmark times (benchmarks/cases.py `startup`): `nksim run` up to its first step."""
    out = tmp_path / "run"
    mods = _imported(
        "import sys\n"
        "import sim.model as sm\n"
        "orig = sm.TumorImmuneModel.step\n"
        "def step(self):\n"
        "    global MODULES\n"
        "    orig(self)\n"
        "    if MODULES is None:  # the first step's modules, not those the writing of the outputs adds\n"
        "        MODULES = sorted(sys.modules)\n"
        "sm.TumorImmuneModel.step = step\n"
        "from sim.cli import main\n"
        f"assert main(['run', {QUICK!r}, '--days', '0.0014', '--quiet', '--out', {str(out)!r}]) == 0\n")
    assert _offenders(mods, HEAVY) == []
    assert _offenders(mods, OTHER_COMMANDS) == []
