"""Export a run folder to formats other tools open: VTK for ParaView, Zarr for napari.

`nksim export RUN --format vtk|zarr [--out DIR] [--overwrite]`, or `export_run(run, fmt, out)`.
The export is a new folder that nksim creates (next to the run by default: RUN-vtk/ or RUN.zarr/),
built in a hidden sibling and moved into place when complete (sim/safe_io.atomic_dir); the run
folder itself is only read.

VTK (ParaView, VisIt; also meshio):
    tumor_NNNN.vtu, nk_NNNN.vtu   one file per snapshot: cells as points (µm) with their attributes
                                  as point data (id, antigen, mhc_i, ligand, coat, doomed | state, car,
                                  granules, stimulations, divisions, exhausted, kills)
    fields_NNNN.vtk               the fields as image data (legacy VTK STRUCTURED_POINTS, one cell per
                                  field voxel, cell data ifng/tgfb/il15 in ng/mL)
    tumor.vtu.series, nk.vtu.series, fields.vtk.series
                                  ParaView file-series descriptions: open these for the time axis (h)
Zarr (napari, xarray, dask; Zarr format 2 for the widest reader support):
    fields/<name>                 float32 (t, z, y, x), ng/mL; attrs: scale_um, times_h (napari's order)
    tumor/<NNNN>/<attribute>, nk/<NNNN>/<attribute>
                                  one group per snapshot: `xyz` (n, 3) lattice coordinates, `id` and the
                                  per-cell attributes as 1-D arrays of length n
    root attrs                    times_h, spacing_um, lattice_shape, field_coarsen, field_names, run
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import safe_io
from .errors import RunFolderError
from .runs import load_run

FORMATS = ("vtk", "zarr")


def default_out(run: str | Path, fmt: str) -> Path:
    run = Path(run)
    return run.with_name(f"{run.name}-vtk" if fmt == "vtk" else f"{run.name}.zarr")


def _snapshots(run):
    """The run's snapshots with cell positions, or RunFolderError saying why there are none."""
    if len(run.snapshots) == 0:
        raise RunFolderError(f"{run.path} has no snapshots to export (the scenario had output.snapshots false or "
                             f"time.snapshot_every_h 0)")
    first = run.snapshots[0]
    if "tumor_xyz" not in first:
        raise RunFolderError(f"{run.path} is a well-mixed run: its snapshots hold counts, not cells, so there is "
                             f"nothing to export")
    return run.snapshots


def _per_cell(snap: dict, kind: str) -> dict[str, np.ndarray]:
    """The 1-D per-cell arrays of one kind in a snapshot, by attribute name (`xyz` excluded)."""
    n = len(snap[f"{kind}_xyz"])
    pre = f"{kind}_"
    return {k[len(pre):]: np.asarray(v) for k, v in snap.items()
            if k.startswith(pre) and k != f"{kind}_xyz" and np.ndim(v) == 1 and len(v) == n}


def export_run(run: str | Path, fmt: str, out: str | Path | None = None, overwrite: bool = False) -> Path:
    """Export the run folder `run` as `fmt` ("vtk" or "zarr") into the new folder `out` (default next to
    the run); returns `out`. RunFolderError for a folder that is not a run with snapshots; OutputError
    for an `out` nksim may not write (sim/safe_io.py)."""
    if fmt not in FORMATS:
        raise RunFolderError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    r = load_run(run)
    snaps = _snapshots(r)
    out = Path(out) if out is not None else default_out(r.path, fmt)
    src, dst = r.path.resolve(), out.resolve()
    if dst == src or src in dst.parents or dst in src.parents:
        raise RunFolderError(f"refusing to export {r.path} to {out}: the export must go to a folder outside the run "
                             f"(e.g. --out {default_out(r.path, fmt)})")
    with safe_io.atomic_dir(out, overwrite=overwrite, kind=f"export-{fmt}") as tmp:
        (_write_vtk if fmt == "vtk" else _write_zarr)(r, snaps, tmp)
    return out


# ---------------------------------------------------------------------------------------------- VTK
def _points_mesh(snap: dict, kind: str):
    import meshio

    xyz = np.asarray(snap[f"{kind}_xyz"], dtype=np.float64) * float(snap["spacing_um"])
    n = len(xyz)
    data = {}
    for k, v in _per_cell(snap, kind).items():
        if v.dtype == bool:
            v = v.astype(np.uint8)
        elif v.dtype.kind == "i" and v.dtype.itemsize > 4 and k != "id":
            v = v.astype(np.int32)
        data[k] = v
    return meshio.Mesh(xyz, [("vertex", np.arange(n, dtype=np.int64).reshape(-1, 1))], point_data=data)


def _write_structured_points(path: Path, snap: dict) -> None:
    """The fields of one snapshot as legacy binary VTK STRUCTURED_POINTS (image data), one VTK cell
    per field voxel: voxel (a, b, c) spans lattice sites a·co … a·co + co − 1 along x, etc."""
    names = [str(n) for n in snap["field_names"]]
    fshape = np.asarray(snap[names[0]]).shape
    sp, co = float(snap["spacing_um"]), int(snap["field_coarsen"])
    dims = [n + 1 for n in fshape]
    origin = [-0.5 * sp] * 3
    head = (f"# vtk DataFile Version 3.0\nnksim fields t = {float(snap['time_h']):g} h (ng/mL)\nBINARY\n"
            f"DATASET STRUCTURED_POINTS\nDIMENSIONS {dims[0]} {dims[1]} {dims[2]}\n"
            f"ORIGIN {origin[0]:g} {origin[1]:g} {origin[2]:g}\nSPACING {co * sp:g} {co * sp:g} {co * sp:g}\n"
            f"CELL_DATA {int(np.prod(fshape))}\n")
    parts = [head.encode()]
    for name in names:
        v = np.asarray(snap[name], dtype=">f4").ravel(order="F")  # VTK order: x fastest
        parts += [f"SCALARS {name} float 1\nLOOKUP_TABLE default\n".encode(), v.tobytes(), b"\n"]
    safe_io.atomic_write_bytes(path, b"".join(parts), fsync=False)


def _series(files: list[str], times: list[float]) -> str:
    return json.dumps({"file-series-version": "1.0",
                       "files": [{"name": f, "time": t} for f, t in zip(files, times)]}, indent=1)


def _write_vtk(run, snaps, tmp: Path) -> None:
    import meshio

    times = run.times_h
    names: dict[str, list[str]] = {"tumor": [], "nk": [], "fields": []}
    for k in range(len(snaps)):
        snap = snaps[k]
        for kind in ("tumor", "nk"):
            name = f"{kind}_{k:04d}.vtu"
            with safe_io.atomic_file(tmp / name, fsync=False) as part:
                meshio.write(str(part), _points_mesh(snap, kind), file_format="vtu")
            names[kind].append(name)
        if "field_names" in snap:
            name = f"fields_{k:04d}.vtk"
            _write_structured_points(tmp / name, snap)
            names["fields"].append(name)
    for kind, ext in (("tumor", "vtu"), ("nk", "vtu"), ("fields", "vtk")):
        if names[kind]:
            safe_io.atomic_write_text(tmp / f"{kind}.{ext}.series", _series(names[kind], times), fsync=False)


# --------------------------------------------------------------------------------------------- Zarr
def _write_zarr(run, snaps, tmp: Path) -> None:
    import zarr

    first = snaps[0]
    field_names = [str(n) for n in first.get("field_names", [])]
    sp, co = float(first["spacing_um"]), int(first.get("field_coarsen", 1))
    root = zarr.open_group(str(tmp), mode="w", zarr_format=2)
    root.attrs.update({
        "nksim_export": 1, "run": str(run.path), "scenario": run.summary.get("scenario", {}).get("name"),
        "times_h": run.times_h, "spacing_um": sp, "field_coarsen": co, "field_names": field_names,
        "lattice_shape": [int(v) for v in first["lattice_shape"]],
        "axes": "fields: (t, z, y, x); cells: xyz columns (x, y, z) in lattice sites",
    })
    nt = len(snaps)
    fg = root.create_group("fields")
    arrays = {}
    for name in field_names:
        fx, fy, fz = np.asarray(first[name]).shape
        a = fg.create_array(name, shape=(nt, fz, fy, fx), chunks=(1, fz, fy, fx), dtype="f4")
        a.attrs.update({"units": "ng/mL", "scale_um": [co * sp] * 3, "times_h": run.times_h,
                        "dimension_names": ["t", "z", "y", "x"]})
        arrays[name] = a
    groups = {kind: root.create_group(kind) for kind in ("tumor", "nk")}
    for k in range(nt):
        snap = snaps[k]
        for name, a in arrays.items():
            a[k] = np.asarray(snap[name], dtype=np.float32).transpose(2, 1, 0)
        for kind, g in groups.items():
            sg = g.create_group(f"{k:04d}")
            sg.attrs["time_h"] = float(snap["time_h"])
            xyz = np.asarray(snap[f"{kind}_xyz"], dtype=np.int32)
            sg.create_array("xyz", data=xyz, chunks=(max(1, min(len(xyz), 1 << 18)), 3))
            for attr, v in _per_cell(snap, kind).items():
                sg.create_array(attr, data=v, chunks=(max(1, min(len(v), 1 << 20)),))
