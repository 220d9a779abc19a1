"""Issue 15: `nksim compile` fills the Numba cache once (the Makefile's install step runs it), `nksim run`
says it is compiling within a second instead of waiting silently, and sweeps, cohorts and calibrations
compile in the parent before starting workers instead of in every worker at once."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sim.cli import COMPILE_NOTICE
from sim.kernels import cache_guard
from sim.precompile import shipped_scenarios
from sim.scenario import arm_effectives, resolve

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "scenarios" / "quickstart.yaml"


def _py(code: str, cache: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


STATE = "from sim.kernels.cache_guard import kernels_cached, precompiled; print(kernels_cached(), precompiled())"


@pytest.mark.slow
def test_compile_fills_a_cold_cache_that_a_later_run_loads(tmp_path):
    """In an empty cache: nothing cached; the precompile (here on the quickstart alone, to keep one cold
    compile) fills it and marks it; then `nksim run` prints no notice and `nksim compile` has nothing to do."""
    cache = tmp_path / "cache"
    assert _py(STATE, cache).stdout.split() == ["False", "False"]
    fill = ("import sim.precompile as p; from pathlib import Path; "
            f"p.shipped_scenarios = lambda: [Path({str(QUICK)!r})]; p.precompile(days=0.05)")
    r = _py(fill, cache)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _py(STATE, cache).stdout.split() == ["True", "True"]
    run = _py("import sys; from sim.cli import main; sys.exit(main(['run', %r, '--days', '0.02', '--quiet', '--out', %r]))"
              % (str(QUICK), str(tmp_path / "run")), cache)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "compiling" not in run.stderr
    again = _py("import sys; from sim.cli import main; sys.exit(main(['compile']))", cache)
    assert again.returncode == 0 and "already compiled" in again.stdout


def test_the_notice_comes_before_the_model_is_imported(tmp_path):
    """On a cold cache `nksim run` prints the notice once the scenario is checked and before the 1.5 s
    import of the model and Mesa, so it appears within a second of the start."""
    code = f"""
import os, sys
import sim.kernels.cache_guard as g
g.kernels_cached = lambda: False  # a cold cache, without compiling anything


class Err:
    def write(self, s):
        if "compiling kernels" in s:
            print("model imported:", "sim.model" in sys.modules, flush=True)
            os._exit(0)

    def flush(self):
        pass


sys.stderr = Err()
from sim.cli import main
main(["run", {str(QUICK)!r}, "--days", "0.02", "--quiet", "--out", {str(tmp_path / "run")!r}])
"""
    r = _py(code, tmp_path / "cache")
    assert r.stdout.strip() == "model imported: False", r.stdout + r.stderr[-2000:]


def test_the_notice_is_printed_only_when_the_step_kernel_is_not_cached(monkeypatch, capsys):
    from sim import cli

    monkeypatch.setattr(cache_guard, "kernels_cached", lambda: False)
    cli._compile_notice()
    assert capsys.readouterr().err.strip() == COMPILE_NOTICE
    monkeypatch.setattr(cache_guard, "kernels_cached", lambda: True)
    cli._compile_notice()
    assert capsys.readouterr().err == ""


def test_the_precompiled_mark_follows_the_kernel_sources(tmp_path, monkeypatch):
    """The mark is the source stamp that `guard` renews when a kernel changes: an edit unmarks the cache."""
    monkeypatch.setattr(cache_guard, "cache_folder", lambda: tmp_path)
    (tmp_path / cache_guard.STAMP).write_text("digest-1")
    assert not cache_guard.precompiled()
    assert cache_guard.mark_precompiled() and cache_guard.precompiled()
    (tmp_path / cache_guard.STAMP).write_text("digest-2")  # what guard() writes after a kernel edit
    assert not cache_guard.precompiled()
    monkeypatch.setattr(cache_guard, "cache_folder", lambda: None)  # no cache at all: nothing to mark
    assert not cache_guard.mark_precompiled() and not cache_guard.precompiled()


def test_shipped_scenarios_are_the_run_scenarios_and_span_the_run_paths():
    """`make` compiles the checkout's scenarios/ (the folder it passes); they span every run path. Without
    a folder the package's own scenarios are used: the package never reads the checkout's folder."""
    from sim import data

    assert {f.parent for f in shipped_scenarios()} == {data.path("")}
    files = shipped_scenarios(ROOT / "scenarios")
    names = {f.stem for f in files}
    assert "quickstart" in names and not any(n.startswith(("cohort_", "calibrate_")) for n in names)
    effs = [resolve(f) for f in files]
    spaces = {e.scenario.domain.space for e in effs}
    dims = {e.scenario.domain.dims for e in effs if e.scenario.domain.space != "well_mixed"}
    effectors = {e.scenario.effector for e in effs} | {a.scenario.effector for e in effs for _, a in arm_effectives(e)}
    assert spaces == {"lattice", "well_mixed"} and dims == {2, 3} and {"carnk", "cart"} <= effectors


def test_the_makefile_install_step_compiles_the_kernels():
    """`make run`/`make test` install through $(STAMP); its recipe ends by compiling the kernels."""
    text = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", text, re.M).group(1).splitlines()
    install = next(i for i, ln in enumerate(recipe) if "pip install" in ln and "-e" in ln)
    compile_ = next(i for i, ln in enumerate(recipe) if re.search(r"nksim compile\b", ln))
    assert install < compile_ < len(recipe) - 1 and "touch $(STAMP)" in recipe[-1]


def test_a_local_sweep_precompiles_before_starting_its_workers(tmp_path, monkeypatch):
    """Two cold workers compiling the same kernels at once each take the whole compile (measured: 236 s
    each on a loaded 2-core machine, against 50-80 s for one): the parent compiles once, then starts them."""
    import sim.precompile
    import sim.sweep.runner as runner
    from sim.sweep import run_sweep

    from helpers import tiny_sweep_base, write_sweep

    calls = []
    monkeypatch.setattr(sim.precompile, "ensure_precompiled", lambda: calls.append("precompile"))

    class Started(Exception):
        pass

    def fake_dask(*a, **k):
        calls.append("workers")
        raise Started

    monkeypatch.setattr(runner, "_Dask", fake_dask)
    spec = write_sweep(tmp_path, {"parameters": {"nk.persistence.half_life_days": [3, 7]}, "replicates": 1},
                       default_base=tiny_sweep_base(seed=7))
    with pytest.raises(Started):
        run_sweep(spec, tmp_path / "out", workers=2, progress=False)
    assert calls == ["precompile", "workers"]


def test_a_local_calibration_precompiles_before_starting_its_workers(monkeypatch):
    import sim.precompile
    import sim.sweep.executors as executors
    from sim.calibration.run import _client

    calls = []
    monkeypatch.setattr(sim.precompile, "ensure_precompiled", lambda: calls.append("precompile"))

    class FakeDask:
        def __init__(self, *a, **k):
            calls.append("workers")
            self.client = self

        def run(self, fn):
            calls.append("warm")

        def close(self):
            pass

    monkeypatch.setattr(executors, "_Dask", FakeDask)
    with _client(2, None, 4):
        pass
    assert calls == ["precompile", "workers", "warm"]


def test_ensure_precompiled_compiles_only_an_unmarked_cache_and_says_so(monkeypatch, capsys):
    import sim.precompile as pre

    done = []
    monkeypatch.setattr(pre, "precompile", lambda: done.append(1))
    monkeypatch.setattr(cache_guard, "precompiled", lambda: True)
    pre.ensure_precompiled()
    assert done == [] and capsys.readouterr().err == ""
    monkeypatch.setattr(cache_guard, "precompiled", lambda: False)
    pre.ensure_precompiled()
    assert done == [1] and "compiling kernels once before starting the workers" in capsys.readouterr().err


def test_compile_of_a_bad_scenario_exits_2_with_one_line(tmp_path, capsys):
    from sim.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("nope: 1\n")
    assert main(["compile", str(bad)]) == 2
    out = capsys.readouterr()
    assert out.out == "" and len(out.err.strip().splitlines()) == 1 and "bad.yaml" in out.err
