"""Layering rules a newcomer can rely on: every module imports on its own (no import cycle hidden by
function-level imports), library code never picks the matplotlib backend, and the package does not
read the checkout's scenarios/ folder (what it needs ships as package data)."""
from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import sim

ROOT = Path(sim.__file__).resolve().parent


def test_every_module_imports_first():
    """Each module imported first, in a fresh set of sim.* modules: a cycle shows up as an ImportError."""
    names = [m.name for m in pkgutil.walk_packages([str(ROOT)], prefix="sim.") if not m.name.endswith("__main__")]
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n"
            "    for k in [k for k in sys.modules if k == 'sim' or k.startswith('sim.')]:\n"
            "        del sys.modules[k]\n"
            "    importlib.import_module(name)\n"
            "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(names) > 40


def test_library_code_never_sets_the_matplotlib_backend():
    offenders = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py") if "matplotlib.use(" in p.read_text(encoding="utf-8")]
    assert offenders == []


def test_package_does_not_read_the_checkout_scenarios_folder():
    offenders = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
                 if '"scenarios"' in p.read_text(encoding="utf-8") or "'scenarios'" in p.read_text(encoding="utf-8")]
    assert offenders == []
    from sim import data

    assert data.path("invitro_cytotoxicity.yaml").is_file()
