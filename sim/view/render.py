"""Model → image, from the cell arrays (never per-agent Python): the drawing behind `nksim view`.

`extract(model, field)` copies what a frame needs out of the model (live cells' coordinates,
antigen, NK state, one field); `rasterise(layers, ...)` turns that into an RGB array with numpy
fancy indexing only; `png(rgb)` encodes it. Cost is O(live cells + pixels), whatever the lattice.

Size rule: the image's longer side is at most `max_px` pixels (600 by default). A lattice up to
`max_px` sites per side is drawn at an integer zoom (each site a square of `zoom` pixels, cells with
a one-pixel darker rim when the zoom is 4 or more). A larger lattice is downsampled: each pixel
covers several sites and shows the highest-antigen live tumor cell among them (NK cells on top,
drawn 3 pixels wide so they stay visible).
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from ..kernels import step as K
from ..kernels.killing import is_exhausted

MAX_PX = 600
MAX_ZOOM = 4  # pixels per site drawn here; the page scales the image up to its display size (pixelated)
FIELD_LABELS = {"ifng": "IFN-γ", "tgfb": "TGF-β", "il15": "IL-15"}

# colours (RGB, 0-255)
BACKGROUND = np.array([22, 22, 30], dtype=np.uint8)
ANTIGEN_NEG = np.array([150, 150, 150], dtype=np.uint8)  # antigen-negative tumor cell (escape variant)
DOOMED = np.array([140, 75, 40], dtype=np.uint8)  # lethally hit, apoptosis pending
NK_COLOURS = {  # CAR-NK by state
    "free": np.array([0, 200, 255], dtype=np.uint8),
    "bound": np.array([255, 255, 255], dtype=np.uint8),  # in a conjugate that did not trigger
    "killing": np.array([60, 230, 60], dtype=np.uint8),  # in a triggered (lytic) conjugate
    "exhausted": np.array([175, 150, 255], dtype=np.uint8),
}
NK_STATE_CODE = {"free": 0, "bound": 1, "killing": 2, "exhausted": 3}  # drawing order: later on top


def _lut(name: str, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    import matplotlib

    cmap = matplotlib.colormaps[name]
    return (cmap(np.linspace(lo, hi, 256))[:, :3] * 255).astype(np.uint8)


_LUTS: dict[str, np.ndarray] = {}


def lut(name: str) -> np.ndarray:
    """256-entry colour tables: 'antigen' (tumor cells, pale to deep magenta) and 'heat' (fields)."""
    if name not in _LUTS:
        _LUTS[name] = _lut("RdPu", 0.35, 1.0) if name == "antigen" else (_lut("inferno", 0.0, 0.8) * 0.8).astype(np.uint8)
    return _LUTS[name]


@dataclass
class Layers:
    """What one frame draws, copied out of the model (safe to rasterise while the model steps on)."""

    shape: tuple[int, int, int]
    tumor_xyz: np.ndarray  # (n, 3) int
    tumor_antigen: np.ndarray  # (n,) float
    tumor_doomed: np.ndarray  # (n,) bool
    antigen_scale: float  # antigen level drawn at the deep end of the colour table
    nk_xyz: np.ndarray  # (m, 3) int
    nk_code: np.ndarray  # (m,) int8, NK_STATE_CODE
    field: np.ndarray | None  # the field on the lattice's coarse voxels (fx, fy, fz), or None
    field_name: str | None
    coarsen: int
    time_h: float


def extract(model, field: str | None = "tgfb") -> Layers:
    """Copy the live cells and one field (or None) out of a TumorImmuneModel (cf. `model.snapshot()`)."""
    t, nk = model.tumor, model.nk
    shape = tuple(int(n) for n in model.shape)
    st = t.state[: t.used]
    alive = np.flatnonzero((st == K.T_ALIVE) | (st == K.T_DOOMED))
    txyz = np.stack(np.unravel_index(t.site[alive], shape), axis=1)
    nst = nk.state[: nk.used]
    live = np.flatnonzero(nst != K.NK_EMPTY)
    nxyz = np.stack(np.unravel_index(nk.site[live], shape), axis=1)
    s = nst[live]
    code = np.where(s == K.NK_KILLING, 2, np.where(s == K.NK_BOUND, 1, 0)).astype(np.int8)
    code[is_exhausted(nk.stims[live], model.p_nk.exhaustion_stims)] = 3
    ag = model.config.tumor.antigen
    return Layers(
        shape=shape, tumor_xyz=txyz, tumor_antigen=t.antigen[alive].astype(np.float32),
        tumor_doomed=st[alive] == K.T_DOOMED, antigen_scale=max(2.0 * float(ag.mean), 1e-9),
        nk_xyz=nxyz, nk_code=code,
        field=None if not field else np.array(model.fields.concentration(field), dtype=np.float32),
        field_name=field or None, coarsen=int(model.config.domain.field_coarsen), time_h=model.now_min / 60.0,
    )


@dataclass
class Geometry:
    """How lattice sites map to pixels: base raster (bx, by), integer zoom, and whether downsampled."""

    bx: int
    by: int
    zoom: int
    downsampled: bool


def geometry(shape, max_px: int = MAX_PX, max_zoom: int = MAX_ZOOM) -> Geometry:
    nx, ny = int(shape[0]), int(shape[1])
    side = max(nx, ny)
    if side <= max_px:
        return Geometry(nx, ny, max(1, min(max_zoom, max_px // side)), False)
    f = max_px / side
    return Geometry(max(1, int(nx * f)), max(1, int(ny * f)), 1, True)


def _base_index(xy: np.ndarray, shape, g: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Base-raster (row, column) of lattice (x, y): rows are y (drawn with y up), columns x."""
    px = xy[:, 0] * g.bx // shape[0]
    py = (g.by - 1) - xy[:, 1] * g.by // shape[1]
    return py, px


def _field_rgb(layers: Layers, mode: str, z: int, g: Geometry) -> tuple[np.ndarray, float]:
    """The heat layer on the base raster, and the concentration drawn at the top of the scale."""
    f = layers.field
    if mode == "max" or f.shape[2] == 1:
        plane = f.max(axis=2)
    else:
        plane = f[:, :, min(z // layers.coarsen, f.shape[2] - 1)]
    nx, ny = layers.shape[0], layers.shape[1]
    # base pixel → lattice site → coarse voxel
    ix = (np.arange(g.bx) * nx // g.bx) // layers.coarsen
    iy = (np.arange(g.by) * ny // g.by) // layers.coarsen
    vals = plane[np.ix_(ix, iy)].T[::-1]  # (by, bx), y up
    vmax = float(f.max())
    if not np.isfinite(vmax) or vmax <= 0:
        return np.broadcast_to(BACKGROUND, (g.by, g.bx, 3)).copy(), 0.0
    k = np.clip(vals / vmax * 255, 0, 255).astype(np.uint8)
    return lut("heat")[k], vmax


def _zoom(base: np.ndarray, occupied: np.ndarray, z: int) -> np.ndarray:
    """Each base pixel as a z × z square; occupied sites get a darker one-pixel rim when z >= 3."""
    by, bx = occupied.shape
    out = np.empty((by, z, bx, z, 3), dtype=np.uint8)
    out[...] = base[:, None, :, None, :]
    if z >= 3:
        d = np.where(occupied[..., None], (base >> 1) + (base >> 3), base)  # ≈ 0.62 × colour on the rim
        out[:, 0] = d[:, :, None, :]
        out[:, -1] = d[:, :, None, :]
        out[:, :, :, 0] = d[:, None, :, :]
        out[:, :, :, -1] = d[:, None, :, :]
    return out.reshape(by * z, bx * z, 3)


def rasterise(layers: Layers, mode: str = "slice", z: int | None = None, max_px: int = MAX_PX,
              max_zoom: int = MAX_ZOOM) -> tuple[np.ndarray, dict]:
    """RGB image (uint8, rows = y from the top) of the tissue: heat layer, tumor cells, CAR-NK cells.

    `mode` 'slice' draws the plane z (default: the middle one; 2D has only z = 0); 'max' is a maximum
    projection along z (per pixel the highest-antigen tumor cell, any NK cell on top, field maximum).
    Returns the image and facts for the legend (zoom, downsampled, field scale, counts drawn)."""
    shape = layers.shape
    nz = shape[2]
    if z is None:
        z = nz // 2
    z = int(min(max(z, 0), nz - 1))
    g = geometry(shape, max_px, max_zoom)
    if layers.field is not None:
        img, vmax = _field_rgb(layers, mode, z, g)
    else:
        img, vmax = np.broadcast_to(BACKGROUND, (g.by, g.bx, 3)).copy(), 0.0
    occupied = np.zeros((g.by, g.bx), dtype=bool)
    # tumor cells, in ascending antigen order (radix sort on the colour index) so that the last write,
    # the one kept where several cells share a pixel, is the highest
    txyz, ag = layers.tumor_xyz, layers.tumor_antigen
    sel = np.ones(len(txyz), dtype=bool) if (mode == "max" or nz == 1) else txyz[:, 2] == z
    order = np.flatnonzero(sel)
    k = np.clip(ag[order] / layers.antigen_scale * 255, 0, 255).astype(np.uint8)
    if g.downsampled or mode == "max":
        o = np.argsort(k, kind="stable")
        order, k = order[o], k[o]
    col = lut("antigen")[k]
    col[ag[order] <= 0] = ANTIGEN_NEG
    col[layers.tumor_doomed[order]] = DOOMED
    py, px = _base_index(txyz[order], shape, g)
    img[py, px] = col
    occupied[py, px] = True
    # CAR-NK cells, exhausted > killing > bound > free drawn last (on top)
    nxyz, code = layers.nk_xyz, layers.nk_code
    nsel = np.ones(len(nxyz), dtype=bool) if (mode == "max" or nz == 1) else nxyz[:, 2] == z
    norder = np.flatnonzero(nsel)
    norder = norder[np.argsort(code[norder], kind="stable")]
    palette = np.stack([NK_COLOURS[n] for n in NK_STATE_CODE])
    ny_, nx_ = _base_index(nxyz[norder], shape, g)
    ncol = palette[code[norder]]
    if g.downsampled:  # a 3-pixel cross so that single NK cells stay visible among many tumor cells
        for dy, dx in ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)):
            img[np.clip(ny_ + dy, 0, g.by - 1), np.clip(nx_ + dx, 0, g.bx - 1)] = ncol
    else:
        img[ny_, nx_] = ncol
        occupied[ny_, nx_] = True
    if g.zoom > 1:
        img = _zoom(img, occupied, g.zoom)
    info = {"zoom": g.zoom, "downsampled": g.downsampled, "bx": g.bx, "by": g.by, "display_w": g.bx * max(1, max_px // max(g.bx, g.by)),
            "field_max": vmax, "field": layers.field_name,
            "z": z, "mode": mode, "tumor_drawn": int(order.size), "nk_drawn": int(norder.size)}
    return img, info


def png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an RGB array (fast zlib level: the page sends one per frame)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def frame_png(model, field: str | None = "tgfb", mode: str = "slice", z: int | None = None,
              max_px: int = MAX_PX, max_zoom: int = MAX_ZOOM) -> tuple[bytes, dict]:
    """Model → PNG bytes in one call (what the page does per frame, and what the frame time measures)."""
    img, info = rasterise(extract(model, field), mode=mode, z=z, max_px=max_px, max_zoom=max_zoom)
    return png(img), info


# ----------------------------------------------------------------------------------- curves
HISTORY_KEYS = ("time_h", "tumor", "tumor_ag_pos", "tumor_ag_neg", "nk_live", "nk_exhausted",
                "kills_car", "kills_innate", "kills_adcc", "mean_ifng_ng_ml", "mean_tgfb_ng_ml", "mean_il15_ng_ml")


def history_row(model) -> dict:
    """One point of the page's live curves: the model's own reporters (the DataCollector's columns)."""
    rep = model.reporters()
    return {k: float(rep[k](model)) for k in HISTORY_KEYS}


def curves_png(rows: list[dict], antigen: str = "antigen", effector: str = "CAR-NK", width_in: float = 9.0) -> bytes:
    """Four small panels (tumor, CAR-NK, cumulative kills by route, mean fields) as PNG bytes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, 2.3), dpi=90)
    axs = fig.subplots(1, 4)
    cols = {k: np.array([r[k] for r in rows]) for k in HISTORY_KEYS} if rows else {k: np.zeros(0) for k in HISTORY_KEYS}
    t = cols["time_h"]
    ax = axs[0]
    ax.plot(t, cols["tumor"], color="k", label="all")
    ax.plot(t, cols["tumor_ag_pos"], color="#c51b8a", label=f"{antigen}+")
    ax.plot(t, cols["tumor_ag_neg"], color="#888888", label=f"{antigen}−")
    ax.set_title("tumor cells", fontsize=9)
    ax = axs[1]
    ax.plot(t, cols["nk_live"], color="#00a0d0", label="live")
    ax.plot(t, cols["nk_exhausted"], color="#7a6ec8", label="exhausted")
    ax.set_title(f"{effector} cells", fontsize=9)
    ax = axs[2]
    ax.plot(t, cols["kills_car"], color="#2ca02c", label="CAR")
    ax.plot(t, cols["kills_innate"], color="#ff7f0e", label="innate")
    ax.plot(t, cols["kills_adcc"], color="#9467bd", label="ADCC")
    ax.set_title("kills by route (cumulative)", fontsize=9)
    ax = axs[3]
    for key, name, c in (("mean_ifng_ng_ml", "IFN-γ", "#d62728"), ("mean_tgfb_ng_ml", "TGF-β", "#8c564b"),
                         ("mean_il15_ng_ml", "IL-15", "#17becf")):
        ax.plot(t, cols[key], color=c, label=name)
    ax.set_title("mean field (ng/mL)", fontsize=9)
    for ax in axs:
        ax.set_xlabel("time (h)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6.5, frameon=False, loc="best")
        ax.margins(x=0.02)
    fig.tight_layout(pad=0.4, w_pad=0.8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
