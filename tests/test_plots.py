"""Every plot kind renders from written outputs (a synthetic sweep, a Sobol/Morris sweep and a real
run folder) into valid, non-empty images; bad folders give exit code 2."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from sim.plots import plot_results
from sim.sweep import run_sweep
from sim.sweep.testing import FakeRunner

ROOT = Path(__file__).resolve().parents[1]
BASE = {
    "name": "tiny", "seed": 5,
    "domain": {"dims": 2, "size_um": [600.0, 600.0]},
    "time": {"days": 3.0, "output_every_h": 6.0, "snapshot_every_h": 24.0},
    "tumor": {"init": {"count": 300}},
    "nk": {"dose": {"cells": 120, "placement": "rim"}},
    "output": {"snapshots": True, "figure": False},
}


def _sweep(tmp_path: Path, sweep: dict, name: str, base: dict | None = None) -> Path:
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(yaml.safe_dump({**(base or BASE), "sweep": sweep}, sort_keys=False))
    out = tmp_path / name
    run_sweep(spec, out, scheduler="inline", progress=False, runner=FakeRunner())
    return out


def _check_images(files: list[Path]) -> None:
    for f in files:
        assert f.is_file() and f.stat().st_size > 500, f
        if f.suffix == ".svg":
            text = f.read_text()
            assert "<svg" in text and "</svg>" in text
        else:
            with Image.open(f) as im:
                im.verify()
            with Image.open(f) as im:
                assert im.size[0] > 100 and im.size[1] > 100
                assert len(im.getcolors(1 << 20) or range(99)) > 5, f"{f.name} looks blank"


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plots")
    return _sweep(tmp, {"parameters": {"nk.il15.mode": ["none", "secreted"], "nk.persistence.half_life_days": [2, 7, 21]},
                        "replicates": 3}, "grid")


def test_every_plot_kind_from_a_grid_sweep(grid_sweep, tmp_path):
    files = plot_results(grid_sweep, out=tmp_path / "figs", formats=("png", "svg"))
    names = {f.name for f in files}
    for kind in ("outcome_curves", "tumor_control", "kill_routes", "kills_per_nk", "dose_response", "heatmap", "snapshots"):
        assert {f"{kind}.png", f"{kind}.svg"} <= names, kind
    assert "snapshots.gif" in names and "sensitivity.png" not in names
    _check_images(files)
    with Image.open(tmp_path / "figs" / "snapshots.gif") as gif:
        assert gif.n_frames == 4  # 0, 24, 48, 72 h
    svg = (tmp_path / "figs" / "outcome_curves.svg").read_text()
    assert "half_life_days=21" in svg and "il15.mode=secreted" in svg  # legend names parameter and values
    assert "time (days)" in svg and "tumor burden (cells)" in svg
    assert "(ng/mL)" in (tmp_path / "figs" / "snapshots.svg").read_text()


def test_default_folder_and_snapshot_times(grid_sweep):
    files = plot_results(grid_sweep, formats=("png",), snapshot_times_h=[48.0])
    assert all(f.parent == grid_sweep / "plots" for f in files)
    _check_images([f for f in files if f.name.startswith("snapshots")])


@pytest.mark.parametrize("design", ["sobol", "morris", "lhs"])
def test_sampling_designs_plot_sensitivity_and_binned_curves(tmp_path, design):
    base = {**BASE, "output": {"snapshots": False, "figure": False}}
    out = _sweep(tmp_path, {"design": design, "samples": 8, "metrics": ["tumor_reduction", "tumor_final", "nk_final"],
                            "parameters": {"nk.persistence.half_life_days": {"low": 1, "high": 20},
                                           "nk.receptors.car_expression": {"low": 0.2, "high": 2.0}}}, design, base)
    files = plot_results(out, formats=("png",))
    names = {f.name for f in files}
    assert {"outcome_curves.png", "tumor_control.png", "dose_response.png"} <= names
    assert ("sensitivity.png" in names) == (design != "lhs")
    assert "heatmap.png" not in names and "snapshots.png" not in names
    _check_images(files)


def test_single_run_folder_from_the_engine(tmp_path):
    from sim import api

    cfg = {**BASE, "time": {"days": 0.5, "output_every_h": 2.0, "snapshot_every_h": 6.0}}
    api.run(cfg, seed=1, out=tmp_path / "run")
    files = plot_results(tmp_path / "run", formats=("png",))
    names = {f.name for f in files}
    assert {"outcome_curves.png", "tumor_control.png", "kill_routes.png", "kills_per_nk.png", "snapshots.png",
            "snapshots.gif"} <= names
    assert "dose_response.png" not in names
    _check_images(files)


def test_3d_snapshots_use_the_mid_plane(tmp_path):
    base = {**BASE, "domain": {"dims": 3, "size_um": [300.0, 300.0, 300.0]}, "time": {**BASE["time"], "days": 1.0}}
    out = _sweep(tmp_path, {"parameters": {"nk.persistence.half_life_days": [3]}}, "three_d", base)
    files = plot_results(out, formats=("svg",))
    text = next(f for f in files if f.name == "snapshots.svg").read_text()
    assert "µm slice" in text
    _check_images(files)


def test_cli_plot(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sim", "plot", str(tmp_path / "nothing")], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    base = {**BASE, "output": {"snapshots": False, "figure": False}}
    out = _sweep(tmp_path, {"parameters": {"nk.dose.cells": [50, 100], "nk.persistence.half_life_days": [2, 7]}}, "cli", base)
    r = subprocess.run([sys.executable, "-m", "sim", "plot", str(out), "--out", str(tmp_path / "f"), "--formats", "png"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "f" / "heatmap.png").is_file()
