"""Every plot kind renders from written outputs (a synthetic sweep, a Sobol/Morris sweep and a real
run folder) into valid, non-empty images; bad folders give exit code 2. Also the arms comparison
(compare.png) and the cytotoxicity validation figure, and the labels the figures promise."""
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
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
                px = np.asarray(im.convert("L"), dtype=float)
                assert px.std() > 8.0, f"{f.name}: pixel variance too low ({px.std():.1f})"
                assert (px < 128).mean() > 0.002, f"{f.name}: almost nothing drawn"


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("plots")
    return _sweep(tmp, {"parameters": {"nk.il15.mode": ["none", "secreted"], "nk.persistence.half_life_days": [2, 7, 21]},
                        "replicates": 3}, "grid")


def test_every_plot_kind_from_a_grid_sweep(grid_sweep, tmp_path):
    files = plot_results(grid_sweep, out=tmp_path / "figs", formats=("png", "svg"))
    names = {f.name for f in files}
    for kind in ("outcome_curves", "endpoints", "kill_routes", "kills_per_nk", "dose_response", "heatmap", "snapshots"):
        assert {f"{kind}.png", f"{kind}.svg"} <= names, kind
    assert "snapshots.gif" in names and "sensitivity.png" not in names and "tumor_control.png" not in names
    _check_images(files)
    with Image.open(tmp_path / "figs" / "snapshots.gif") as gif:
        assert gif.n_frames == 4  # 0, 24, 48, 72 h
    svg = (tmp_path / "figs" / "outcome_curves.svg").read_text()
    # one panel: colour = half-life, line style = IL-15 mode; readable names with units, no dotted paths
    assert "in vivo half-life without IL-15 support (days)" in svg and "IL-15 mode" in svg and "secreted" in svg
    assert "nk.persistence" not in svg and "half_life_days" not in svg
    assert "time (days)" in svg and "tumor burden (cells)" in svg
    assert "median of 3 replicates; band: min–max range" in svg and "5–95" not in svg
    ends = (tmp_path / "figs" / "endpoints.svg").read_text()
    assert "time to response" in ends and "time to progression" in ends and "durable control" in ends
    assert "tumor-control probability" not in ends
    kills = (tmp_path / "figs" / "kills_per_nk.svg").read_text()
    assert "kills per NK cell" in kills and "IL-15 mode: secreted" in kills  # one panel per IL-15 condition
    snap = (tmp_path / "figs" / "snapshots.svg").read_text()
    assert "(ng/mL)" in snap and "CD19 level" in snap and "antigen+" not in snap


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
    assert {"outcome_curves.png", "endpoints.png", "dose_response.png"} <= names
    assert ("sensitivity.png" in names) == (design != "lhs")
    assert "heatmap.png" not in names and "snapshots.png" not in names
    _check_images(files)


def test_single_run_folder_from_the_engine(tmp_path):
    from sim import api

    cfg = {**BASE, "time": {"days": 0.5, "output_every_h": 2.0, "snapshot_every_h": 6.0}}
    api.run(cfg, seed=1, out=tmp_path / "run")
    files = plot_results(tmp_path / "run", formats=("png",))
    names = {f.name for f in files}
    assert {"outcome_curves.png", "endpoints.png", "kill_routes.png", "kills_per_nk.png", "snapshots.png",
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


def test_snapshots_of_a_chosen_run(grid_sweep, tmp_path):
    """--run RUN_ID or --point/--replicate picks the run whose snapshots are drawn; a secreted-IL-15
    run shows the IL-15 field; an unknown run is a one-line error (exit 2)."""
    from sim.plots.data import load_results

    s = load_results(grid_sweep).summary
    row = s[(s["nk.il15.mode"] == "secreted") & (s["replicate"] == 1)].iloc[0]
    files = plot_results(grid_sweep, out=tmp_path / "a", formats=("svg",), point=int(row["point"]), replicate=1)
    snap = next(f for f in files if f.name == "snapshots.svg").read_text()
    assert f"run {row['run_id']}" in snap and "IL-15 mode: secreted" in snap
    files = plot_results(grid_sweep, out=tmp_path / "b", formats=("png",), run=str(row["run_id"]))
    _check_images(files)
    r = subprocess.run([sys.executable, "-m", "sim", "plot", str(grid_sweep), "--out", str(tmp_path / "c"), "--run", "nope"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "no run 'nope'" in r.stderr and "Traceback" not in r.stderr


def test_labels_and_number_formats():
    from sim.plots.data import band_note, band_spec, fmt, human, param_label, value_label
    from sim.plots.figures import _text_color

    assert param_label("nk.persistence.half_life_days") == "in vivo half-life without IL-15 support (days)"
    assert human("nk.il15.mode") == "IL-15 mode" and human("tumor.antigen.mean") == "antigen mean level"
    assert param_label("nk.dose.cells") == "CAR-NK cells at t = 0 (cells)"
    assert value_label("nk.il15.mode", "secreted") == "IL-15 mode: secreted"
    assert fmt(1240.0) == "1,240" and fmt(12400) == "12,400" and fmt(0.5) == "0.5" and fmt(7.0) == "7"
    assert band_spec(2) is None and band_spec(4)[2] == "min–max range" and band_spec(20)[2] == "5–95 % range"
    assert band_note([4, 4]) == "median of 4 replicates; band: min–max range"
    assert _text_color((0.99, 0.9, 0.14, 1)) == "k" and _text_color((0.27, 0.0, 0.33, 1)) == "w"  # viridis ends


def _arm(ts_scale: float, cells: int, effector: str = "carnk", tox: float = 0.0, il15: str = "secreted"):
    t = np.arange(0, 49, 4.0)
    tumor = (1500 * np.exp(-ts_scale * t / 48)).astype(int)
    ts = pd.DataFrame({"time_h": t, "tumor": tumor, "tumor_ag_neg": np.full(t.size, 15), "nk_live": np.full(t.size, cells)})
    metrics = {"kills_car": int(1500 - tumor[-1]) * (cells > 0), "kills_innate": 40 * (cells > 0), "kills_adcc": 0,
               "crs_any_rate": tox, "crs_grade3_rate": tox / 3, "icans_any_rate": tox / 2, "icans_grade3_rate": tox / 4}
    scen = {"effector": effector, "nk": {"dose": {"cells": cells}, "il15": {"mode": il15}},
            "tumor": {"antigen": {"name": "HER2"}}, "domain": {"dims": 2, "size_um": [1400.0, 1400.0]}}
    return SimpleNamespace(timeseries=ts, metrics=metrics, summary={"scenario": scen, "metrics": metrics})


def test_compare_figure_untreated_colours_and_toxicity_panel(tmp_path):
    """compare.png: the untreated arm in black; routes in greys (no arm colour); 'CAR-NK' alone in the
    title of CAR-NK-only comparisons; no toxicity panel when every index is zero; the caveat under it
    when there is one."""
    import matplotlib.colors as mcolors

    from sim.compare import compare_figure, write_comparison

    res = {"untreated": _arm(-0.2, 0, il15="none"), "carnk": _arm(0.5, 300), "carnk_dnr": _arm(1.0, 300)}
    fig = compare_figure(res)
    assert len(fig.axes) == 3  # no toxicity panel: all zero
    text = fig.texts[0].get_text() if fig.texts else fig._suptitle.get_text()
    assert "CAR-NK arms" in text and "CAR-T" not in text and "toxicity panel omitted" in text
    assert fig.axes[0].lines[0].get_color() == "k"
    assert fig.axes[0].get_title() == "tumor (solid: all; dashed: HER2−)"
    arm_cols = {mcolors.to_hex(line.get_color()) for line in fig.axes[0].lines}
    route_cols = {mcolors.to_hex(p.get_facecolor()) for p in fig.axes[2].patches}
    assert not arm_cols & route_cols
    res["cart"] = _arm(1.5, 300, effector="cart", tox=0.58, il15="none")
    fig = compare_figure(res)
    assert len(fig.axes) == 4 and "CAR-NK / CAR-T" in fig._suptitle.get_text()
    assert "not a trial estimate" in " ".join(t.get_text() for t in fig.axes[3].texts)
    write_comparison(res, tmp_path)
    _check_images([tmp_path / "compare.png"])


def test_cytotoxicity_figure_overlays_the_published_points(tmp_path):
    from sim.assays import ET_RATIOS, _plot, published_points

    rows = [{"product": p, "targets": tg, "et": et, "seed": 1, "time_h": t, "lysis_pct": min(100.0, et * t * (3 if p == "car" else 0.5))}
            for p in ("car", "nt") for tg in ("pos", "neg") for et in ET_RATIOS for t in np.arange(0, 13, 1.0)]
    hists = {"car": np.array([50, 30, 15, 5]), "nt": np.array([90, 10]), "perforin−": np.array([40, 60])}
    pub = published_points()
    assert set(pub["lysis"]["et"]) == {1.0, 10.0} and "fraction_no_kill" in set(pub["single_cell"]["observable"])
    from sim.assays import cytotoxicity_figure

    fig = cytotoxicity_figure(pd.DataFrame(rows), hists, 3, antigen="CD19")
    assert len(fig.axes) == 5 and fig.axes[0].get_title().startswith("CD19+ targets")
    n_err = sum(len(ax.containers) for ax in fig.axes)  # errorbar containers (and bar containers)
    assert n_err >= 5
    _plot(pd.DataFrame(rows), hists, tmp_path / "cytotoxicity.png", 3)
    _check_images([tmp_path / "cytotoxicity.png"])
    # with the no-kill fraction of a well with targets in excess: a fourth bar and its published point
    fig = cytotoxicity_figure(pd.DataFrame(rows), hists, 3, antigen="CD19", excess_no_kill=0.45)
    labels = [t.get_text() for t in fig.axes[4].get_xticklabels()]
    assert len(labels) == 4 and "1:5" in labels[-1]
    _plot(pd.DataFrame(rows), hists, tmp_path / "cytotoxicity_excess.png", 3, 0.45)
    _check_images([tmp_path / "cytotoxicity_excess.png"])


def test_a_sweep_point_without_cells_is_the_untreated_control(tmp_path):
    base = {**BASE, "output": {"snapshots": False, "figure": False}}
    out = _sweep(tmp_path, {"parameters": {"nk.dose.cells": [0, 60, 120]}, "replicates": 2}, "dose", base)
    files = plot_results(out, formats=("svg", "png"))
    svg = next(f for f in files if f.name == "outcome_curves.svg").read_text()
    assert "untreated (no CAR-NK)" in svg and "CAR-NK cells at t = 0 (cells)" in svg and "one run" not in svg
    assert "median of 2 replicates; no band below 3 runs" in svg
    _check_images([f for f in files if f.suffix == ".png"])


def test_a_sweep_draws_its_untreated_control(tmp_path):
    """A sweep without a dose-0 point draws its control runs (one per replicate seed) in black as
    'untreated (no CAR-NK)': a curve with its band in the time courses, curves and a bar in the
    endpoints, a reference line on dose–response; `control: false` draws none."""
    import matplotlib.colors as mcolors

    from sim.plots import figures as F
    from sim.plots.data import UNTREATED, load_results

    base = {**BASE, "output": {"snapshots": False, "figure": False}}
    block = {"parameters": {"nk.persistence.half_life_days": [2, 7, 21]}, "replicates": 3}
    out = _sweep(tmp_path, block, "ctrl", base)
    res = load_results(out)
    assert len(res.control.summary) == 3 and res.summary["point"].notna().all()
    assert set(res.summary["run_id"]).isdisjoint(res.control.summary["run_id"])
    assert set(res.timeseries["run_id"]) == set(res.summary["run_id"])  # design curves never include the control
    fig = F.outcome_curves(res)
    tumor = fig.axes[0]
    line = next(ln for ln in tumor.lines if ln.get_label().startswith(UNTREATED))
    assert mcolors.to_hex(line.get_color()) == "#000000" and line.get_label() == f"{UNTREATED} (n=3)"
    assert len(tumor.collections) == 4  # three design bands and the control's
    files = plot_results(out, formats=("svg", "png"))
    for kind in ("outcome_curves", "endpoints", "dose_response"):
        assert UNTREATED in (out / "plots" / f"{kind}.svg").read_text(), kind
    _check_images([f for f in files if f.suffix == ".png"])
    off = _sweep(tmp_path, {**block, "control": False}, "off", base)
    assert load_results(off).control is None
    for f in plot_results(off, formats=("svg",)):
        assert UNTREATED not in f.read_text(), f.name
