"""Spatial snapshots from snapshots/*.npz: tumor cells by antigen, CAR-NK cells, IFN-γ and TGF-β
fields (mid-plane slice in 3D), as a figure grid and as an animated GIF made with Pillow."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

FIELD_TITLES = {"ifng": "IFN-γ", "tgfb": "TGF-β", "il15": "IL-15"}
#: Sequential maps whose low end is near-white: a zero field reads as "nothing here", not as black.
FIELD_CMAPS = {"ifng": "Reds", "tgfb": "Purples", "il15": "Greens"}
FIELDS = ("ifng", "tgfb", "il15")


def load_snapshots(run_dir: Path) -> list[dict]:
    """All snapshots of a run, sorted by time, as plain dicts of arrays."""
    snaps = []
    for p in sorted((Path(run_dir) / "snapshots").glob("*.npz")):
        with np.load(p, allow_pickle=False) as z:
            snaps.append({k: z[k] for k in z.files})
    snaps.sort(key=lambda s: float(s["time_h"]))
    return snaps


def pick(snaps: list[dict], times_h: Sequence[float] | None, n_default: int = 3) -> list[dict]:
    """Snapshots nearest the requested times; default first, middle and last."""
    if not snaps:
        return []
    t = np.array([float(s["time_h"]) for s in snaps])
    if times_h:
        idx = [int(np.argmin(np.abs(t - x))) for x in times_h]
    else:
        idx = sorted({0, len(snaps) // 2, len(snaps) - 1})[:n_default]
    return [snaps[i] for i in dict.fromkeys(idx)]


def _plane(snap: dict) -> tuple[int, bool]:
    """Mid-plane index along z (lattice sites) and whether the lattice is 3D."""
    nz = int(snap["lattice_shape"][2]) if len(snap["lattice_shape"]) > 2 else 1
    return nz // 2, nz > 1


def _field_slice(snap: dict, name: str) -> np.ndarray | None:
    if name not in snap:
        return None
    f = np.asarray(snap[name], dtype=float)
    if f.ndim == 3:
        f = f[:, :, f.shape[2] // 2]
    return f


def _extent(snap: dict) -> list[float]:
    sp = float(snap["spacing_um"])
    nx, ny = int(snap["lattice_shape"][0]), int(snap["lattice_shape"][1])
    return [0.0, nx * sp, 0.0, ny * sp]


def draw_cells(ax, snap: dict, antigen_max: float | None = None, panel_in: float = 2.8):
    """Tumor cells coloured by antigen density and CAR-NK cells (exhausted in grey) in the plane;
    a tumor cell is drawn as a square one lattice site wide for a panel about `panel_in` inches, a
    CAR-NK cell as a dot a little smaller than a site (so a 3D slice of a small lattice is not
    covered by markers)."""
    sp = float(snap["spacing_um"])
    site_pt = panel_in * 72.0 / max(int(snap["lattice_shape"][0]), int(snap["lattice_shape"][1]), 1)
    z, is3d = _plane(snap)
    txyz, nxyz = np.asarray(snap["tumor_xyz"]), np.asarray(snap["nk_xyz"])
    tm = txyz[:, 2] == z if is3d and len(txyz) else np.ones(len(txyz), bool)
    nm = nxyz[:, 2] == z if is3d and len(nxyz) else np.ones(len(nxyz), bool)
    ag = np.asarray(snap["tumor_antigen"], dtype=float)[tm]
    vmax = antigen_max or (float(np.quantile(ag, 0.98)) if ag.size else 1.0) or 1.0
    sc = ax.scatter((txyz[tm, 0] + 0.5) * sp, (txyz[tm, 1] + 0.5) * sp, c=ag, s=max(site_pt**2, 0.5), cmap="plasma", vmin=0, vmax=vmax,
                    marker="s", lw=0)
    exh = np.asarray(snap.get("nk_exhausted", np.zeros(len(nxyz), bool)), dtype=bool)[nm]
    pts = (nxyz[nm, :2] + 0.5) * sp
    nk_s = float(np.clip(0.6 * site_pt**2, 3.0, 30.0))
    ax.scatter(pts[~exh, 0], pts[~exh, 1], s=nk_s, c="#00c8ff", marker="o", lw=0.3, edgecolors="k", label="CAR-NK")
    if exh.any():
        ax.scatter(pts[exh, 0], pts[exh, 1], s=nk_s, c="0.6", marker="o", lw=0.3, edgecolors="k", label="exhausted CAR-NK")
    ext = _extent(snap)
    ax.set(xlim=ext[:2], ylim=ext[2:], aspect="equal", xlabel="x (µm)", ylabel="y (µm)")
    return sc


def draw_field(ax, snap: dict, name: str, vmax: float | None = None):
    """The field on a scale from 0 (near-white) to `vmax`, with this panel's own range written in
    the corner (so a field that is still zero says so)."""
    f = _field_slice(snap, name)
    if f is None:
        ax.set_axis_off()
        return None
    top = vmax if vmax and vmax > 0 else max(float(f.max()), 1.0)
    im = ax.imshow(f.T, origin="lower", extent=_extent(snap), cmap=FIELD_CMAPS.get(name, "Greys"), vmin=0, vmax=top)
    lo, hi = float(f.min()), float(f.max())
    ax.text(0.02, 0.97, f"range {_num(lo)}–{_num(hi)} ng/mL" if hi > 0 else "0 ng/mL everywhere", transform=ax.transAxes,
            ha="left", va="top", fontsize=6.5, color="k", bbox={"fc": "w", "ec": "none", "alpha": 0.7, "pad": 1.5})
    ax.set(xlabel="x (µm)", ylabel="y (µm)")
    return im


def _num(v: float) -> str:
    return "0" if v == 0 else f"{v:.2g}" if abs(v) < 10 else f"{v:,.0f}"


def fields_to_draw(snaps: list[dict], fields: Sequence[str] | None = None) -> list[str]:
    """IFN-γ and TGF-β when present; IL-15 when it is anywhere above zero (secreted IL-15 matters)."""
    if fields is not None:
        return [f for f in fields if any(f in s for s in snaps)]
    out = [f for f in ("ifng", "tgfb") if any(f in s for s in snaps)]
    if any("il15" in s and float(np.max(s["il15"])) > 0 for s in snaps):
        out.append("il15")
    return out


def _title_time(snap: dict) -> str:
    t = float(snap["time_h"])
    z, is3d = _plane(snap)
    plane = f", z = {(z + 0.5) * float(snap['spacing_um']):.0f} µm slice" if is3d else ""
    return f"t = {t:.0f} h ({t / 24:.1f} d){plane}"


def snapshot_figure(snaps: list[dict], fields: Sequence[str] | None = None, title: str = "", antigen: str = "antigen") -> Figure:
    """Rows = times; columns = cells, then each field (total concentration, ng/mL; IL-15 when it is
    non-zero). One colour scale per column, its bar under the column; each field panel states its range."""
    fields = fields_to_draw(snaps, fields)
    ncol = 1 + len(fields)
    fig = Figure(figsize=(3.4 * ncol + 0.4, 3.1 * len(snaps) + 0.9), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(snaps), ncol, squeeze=False))
    vmax = {f: max((float(np.max(s[f])) for s in snaps if f in s), default=0.0) for f in fields}
    ag = np.concatenate([np.asarray(s["tumor_antigen"], float) for s in snaps]) if snaps else np.zeros(0)
    agmax = float(np.quantile(ag, 0.98)) if ag.size else 1.0
    ims: dict = {}
    sc = None
    for i, s in enumerate(snaps):
        sc = draw_cells(axes[i, 0], s, agmax)
        axes[i, 0].set_title(f"cells, {_title_time(s)}", fontsize=8)
        if i == 0:
            axes[i, 0].legend(fontsize=6, loc="upper right", markerscale=1.5, frameon=True, framealpha=0.7)
        for j, f in enumerate(fields, start=1):
            im = draw_field(axes[i, j], s, f, vmax[f])
            axes[i, j].set_title(f"{FIELD_TITLES.get(f, f)}, {_title_time(s)}", fontsize=8)
            if im is not None:
                ims[j] = (f, im)
    if sc is not None:
        fig.colorbar(sc, ax=axes[:, 0].tolist(), location="bottom", shrink=0.85, aspect=25,
                     label=f"{antigen} level on tumor cells (relative)")
    for j, (f, im) in ims.items():
        zero = " (zero at every time shown)" if vmax[f] <= 0 else ""
        fig.colorbar(im, ax=axes[:, j].tolist(), location="bottom", shrink=0.85, aspect=25,
                     label=f"{FIELD_TITLES.get(f, f)} (ng/mL){zero}")
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _render(fig: Figure, dpi: int = 80):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())).convert("RGB")


def animate(snaps: list[dict], path: Path, field: str = "ifng", title: str = "", frame_ms: int = 600,
            antigen: str = "antigen") -> Path | None:
    """Animated GIF (Pillow, no ffmpeg) of every snapshot: cells and one field, fixed colour scales."""
    if len(snaps) < 1:
        return None
    from PIL import Image

    has_field = any(field in s for s in snaps)
    vmax = max((float(np.max(s[field])) for s in snaps if field in s), default=0.0)
    ag = np.concatenate([np.asarray(s["tumor_antigen"], float) for s in snaps])
    agmax = float(np.quantile(ag, 0.98)) if ag.size else 1.0
    frames = []
    for s in snaps:
        fig = Figure(figsize=(8 if has_field else 4.4, 3.8), dpi=80, layout="constrained")
        axes = fig.subplots(1, 2 if has_field else 1, squeeze=False)[0]
        sc = draw_cells(axes[0], s, agmax)
        fig.colorbar(sc, ax=axes[0], label=f"{antigen} level (relative)")
        axes[0].set_title("cells", fontsize=8)
        if has_field:
            im = draw_field(axes[1], s, field, vmax)
            if im is not None:
                fig.colorbar(im, ax=axes[1], label=f"{FIELD_TITLES.get(field, field)} (ng/mL)")
            axes[1].set_title(FIELD_TITLES.get(field, field), fontsize=8)
        fig.suptitle(f"{title}  {_title_time(s)}".strip(), fontsize=9)
        frames.append(_render(fig).quantize(colors=255, method=Image.Quantize.MEDIANCUT))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=frame_ms, loop=0, optimize=False)
    return path
