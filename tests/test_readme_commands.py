"""The README's two commands, end to end, in a copy of the repository (reusing this venv)."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

from sim.output import read_parquet

ROOT = Path(__file__).resolve().parents[1]


def _clone(tmp_path) -> Path:
    dst = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dst)], check=True)
    # carry the working tree's current files (the test may run before a commit)
    for sub in ("sim", "scenarios", "tests", "Makefile", "pyproject.toml", ".ci"):
        src = ROOT / sub
        if src.is_dir():
            shutil.copytree(src, dst / sub, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dst / sub)
    return dst


def _make(repo: Path, *args: str) -> subprocess.CompletedProcess:
    venv = Path(sys.prefix)
    (venv / ".installed").touch()
    return subprocess.run(["make", *args, f"VENV={venv}"], cwd=repo, capture_output=True, text=True, timeout=600)


def test_make_run_writes_results_and_a_figure(tmp_path):
    repo = _clone(tmp_path)
    p = _make(repo, "run")
    assert p.returncode == 0, p.stdout + p.stderr
    out = repo / "results" / "quickstart"
    ts = read_parquet(out / "timeseries.parquet")
    assert ts["time_h"].iloc[-1] == 72.0 and ts["tumor"].iloc[0] == 2000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 2026 and "metrics" in summary
    assert (out / "tumor_nk.png").stat().st_size > 1000
    assert not list((repo / "results").glob(".quickstart.tmp-*"))  # nothing half-written left


def test_make_test_runs_pytest_and_ci_calls_it(tmp_path):
    repo = _clone(tmp_path)
    p = _make(repo, "test", "PYTEST_ARGS=tests/test_config.py -k overrides")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "1 passed" in p.stdout
    assert "make test" in (ROOT / ".ci" / "run").read_text()
