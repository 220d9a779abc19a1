"""Snapshots with ids and phenotypes, sim.load_run on a real run folder, and nksim export (VTK, Zarr)
read back with meshio and zarr."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import sim
from sim.cli import main
from sim.errors import RunFolderError
from sim.kernels import step as K
from sim.model import TumorImmuneModel

SNAP_RUN = {
    "name": "io", "seed": 5,
    "domain": {"dims": 2, "size_um": [600.0, 600.0], "field_coarsen": 2},
    "time": {"days": 0.5, "output_every_h": 2.0, "snapshot_every_h": 6.0},
    "tumor": {"init": {"count": 150}},
    "nk": {"dose": {"cells": 60, "placement": "rim"}, "persistence": {"half_life_days": 0.5},
           "il15": {"mode": "secreted", "proliferation_per_day": 2.0}},
    "output": {"snapshots": True, "figure": False},
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "io"
    sim.run(SNAP_RUN, out=out)
    return out


def test_cell_ids_are_unique_and_survive_compaction():
    cfg = {"domain": {"size_um": [600.0]}, "tumor": {"init": {"count": 50}},
           "time": {"snapshot_every_h": 0.0},
           "nk": {"dose": {"cells": 2000}, "persistence": {"half_life_days": 0.2},
                  "il15": {"mode": "secreted", "proliferation_per_day": 3.0}}}
    m = TumorImmuneModel(cfg, rng=2)
    first = m.snapshot()
    assert np.array_equal(np.sort(first["nk_id"]), np.arange(2000))
    assert np.array_equal(np.sort(first["tumor_id"]), np.arange(50))
    from sim.agents import CARNKCell

    m.run_days(0.5)  # deaths and daughters
    assert m.nk_counts.nk_births > 0 and m.nk_counts.nk_deaths > 0
    before = {a.cell_id: (a, a.site, a.kills) for a in m.agents_by_type[CARNKCell]}
    used = m.nk.used
    m._compact_nk()  # slots renumbered: ids and agents move with their cells
    assert m.nk.used < used
    after = {a.cell_id: (a, a.site, a.kills) for a in m.agents_by_type[CARNKCell]}
    assert after == before
    snap = m.snapshot()
    ids = snap["nk_id"]
    assert ids.size == np.unique(ids).size == m.nk_live() and (ids >= 0).all()
    assert set(ids) == set(after) and ids.max() < m.next_ids[1] == 2000 + m.nk_counts.nk_births
    t_ids = snap["tumor_id"]
    assert t_ids.size == np.unique(t_ids).size == m.tumor_count()
    assert m.next_ids[0] == 50 + m.tumor_stats.births


def test_snapshots_carry_ids_phenotypes_and_fields(small_scenario):
    m = TumorImmuneModel(small_scenario, rng=1)
    m.run_days(0.25)
    s = m.snapshot()
    t, nk = m.tumor, m.nk
    live = np.flatnonzero(nk.state[: nk.used] != K.NK_EMPTY)
    for key in ("tumor_id", "tumor_antigen", "tumor_mhc_i", "tumor_ligand", "tumor_coat", "tumor_doomed"):
        assert len(s[key]) == m.tumor_count(), key
    for key in ("nk_id", "nk_state", "nk_car", "nk_granules", "nk_stimulations", "nk_divisions", "nk_exhausted",
                "nk_kills"):
        assert len(s[key]) == live.size, key
    assert np.array_equal(s["nk_granules"], nk.granules[live]) and np.array_equal(s["nk_car"], nk.car[live])
    assert set(np.unique(s["nk_state"])) <= {K.NK_FREE, K.NK_KILLING, K.NK_BOUND}
    for f in s["field_names"]:
        assert s[str(f)].shape == m.fields.shape


def test_load_run_reads_a_real_run_folder(run_dir):
    run = sim.load_run(run_dir)
    assert isinstance(run.timeseries, pd.DataFrame) and list(run.timeseries["time_h"])[:2] == [0.0, 2.0]
    assert run.summary["seed"] == 5 and run.metrics == json.loads((run_dir / "summary.json").read_text())["metrics"]
    assert run.times_h == [0.0, 6.0, 12.0] and len(run.snapshots) == 3
    snap = run.snapshots[1]
    assert {"tumor_id", "nk_id", "tumor_mhc_i", "nk_granules", "ifng"} <= set(snap)
    tumor, nk = run.cells(1, "tumor"), run.cells(1, "nk")
    assert len(tumor) == len(snap["tumor_xyz"]) and len(nk) == len(snap["nk_xyz"])
    assert {"id", "x", "y", "z", "x_um", "antigen", "mhc_i", "ligand", "coat", "doomed"} <= set(tumor.columns)
    assert {"id", "state", "car", "granules", "kills", "exhausted"} <= set(nk.columns)
    assert set(nk["state"].dropna()) <= {"free", "killing", "bound"}
    assert np.array_equal(tumor["x_um"], snap["tumor_xyz"][:, 0] * snap["spacing_um"])
    # cells can be tracked between snapshots by id: survivors keep their site (tumor cells do not move;
    # their antigen level may change on division, tumor.expression_memory_generations)
    t0, t2 = run.cells(0, "tumor").set_index("id"), run.cells(2, "tumor").set_index("id")
    both = t0.index.intersection(t2.index)
    assert len(both) > 0 and np.array_equal(t0.loc[both, ["x", "y", "z"]], t2.loc[both, ["x", "y", "z"]])
    assert run.fields(2)["il15"].shape == snap["il15"].shape
    with pytest.raises(IndexError):
        run.cells(3)


def test_load_run_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(RunFolderError, match="not a folder"):
        sim.load_run(tmp_path / "nothing")
    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(RunFolderError, match="timeseries.parquet"):
        sim.load_run(tmp_path)


def test_export_vtk_round_trip(run_dir, tmp_path, capsys):
    import meshio

    out = tmp_path / "vtk"
    assert main(["export", str(run_dir), "--format", "vtk", "--out", str(out)]) == 0
    run = sim.load_run(run_dir)
    series = json.loads((out / "tumor.vtu.series").read_text())
    assert [f["time"] for f in series["files"]] == run.times_h
    for k in range(len(run.snapshots)):
        snap = run.snapshots[k]
        sp = float(snap["spacing_um"])
        for kind in ("tumor", "nk"):
            mesh = meshio.read(out / f"{kind}_{k:04d}.vtu")
            assert np.allclose(mesh.points, snap[f"{kind}_xyz"] * sp)
            assert np.array_equal(mesh.point_data["id"], snap[f"{kind}_id"])
            attr = "antigen" if kind == "tumor" else "granules"
            assert np.array_equal(mesh.point_data[attr], snap[f"{kind}_{attr}"])
        img = meshio.read(out / f"fields_{k:04d}.vtk")  # legacy STRUCTURED_POINTS: image data
        co = int(snap["field_coarsen"])
        centres = img.points[img.cells[0].data].mean(axis=1)
        for name in ("ifng", "tgfb", "il15"):
            grid = snap[name]
            assert np.array_equal(img.cell_data[name][0].ravel(), grid.ravel(order="F").astype(np.float32))
        # the first voxel's centre is the centre of the sites it covers
        assert np.allclose(centres[0][:2], (co - 1) / 2 * sp)
    assert (out / ".nksim-run").is_file()


def test_export_zarr_round_trip(run_dir, tmp_path):
    import zarr

    out = tmp_path / "run.zarr"
    assert main(["export", str(run_dir), "--format", "zarr", "--out", str(out)]) == 0
    run = sim.load_run(run_dir)
    root = zarr.open_group(str(out), mode="r")
    assert root.attrs["times_h"] == run.times_h and root.attrs["spacing_um"] == 20.0
    ifng = root["fields/ifng"][:]
    assert ifng.shape[0] == len(run.snapshots)
    for k in range(len(run.snapshots)):
        snap = run.snapshots[k]
        assert np.array_equal(ifng[k], snap["ifng"].transpose(2, 1, 0))
        for kind in ("tumor", "nk"):
            g = root[f"{kind}/{k:04d}"]
            assert np.array_equal(g["xyz"][:], snap[f"{kind}_xyz"])
            assert np.array_equal(g["id"][:], snap[f"{kind}_id"])
        assert np.array_equal(root[f"tumor/{k:04d}/mhc_i"][:], snap["tumor_mhc_i"])
        assert np.array_equal(root[f"nk/{k:04d}/kills"][:], snap["nk_kills"])


def test_export_bad_input_is_one_line_and_exit_2(run_dir, tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing"), "--format", "vtk"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nksim: error:") and "\n" not in err
    assert main(["export", str(run_dir), "--format", "zarr", "--out", str(run_dir / "z")]) == 2  # inside the run
    assert "outside the run" in capsys.readouterr().err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert main(["export", str(run_dir), "--format", "vtk", "--out", str(tmp_path / "mine")]) == 2
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    assert main(["export", str(run_dir), "--format", "vtk", "--out", str(tmp_path / "v")]) == 0
    assert main(["export", str(run_dir), "--format", "vtk", "--out", str(tmp_path / "v")]) == 2  # exists
    assert main(["export", str(run_dir), "--format", "vtk", "--out", str(tmp_path / "v"), "--overwrite"]) == 0
    with pytest.raises(SystemExit) as e:
        main(["export", str(run_dir), "--format", "obj"])
    assert e.value.code == 2
    assert not any(p.name.startswith(".") and "tmp" in p.name for p in tmp_path.iterdir())  # no leftovers
