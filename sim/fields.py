"""Cytokine fields (IFN-γ, TGF-β, IL-15, ...): diffusion, decay and secretion on a voxel grid.

Each field obeys ``∂u/∂t = D ∇²u − γ u + S`` with ``γ = ln2 / half_life`` and no-flux
(Neumann) boundaries, where ``u`` is the concentration above a constant background
(ng/mL), positions are in µm and time in minutes.

The solver is exact in time for the 7-point (3D) / 5-point (2D) discrete Laplacian, so
it is stable for any ``dt``: the orthonormal DCT-II diagonalises the Neumann Laplacian
on a cell-centred grid with eigenvalues ``λ_k = Σ_axes (2 − 2cos(π k / n)) / h²``, and
with the source ``S`` held constant over the step each mode evolves as

    û_k(t+dt) = û_k e^{−a_k dt} + Ŝ_k (1 − e^{−a_k dt}) / a_k,      a_k = D λ_k + γ

(``Ŝ_k dt`` when ``a_k = 0``). Mode 0 is the grid sum, so mass is conserved exactly
(up to round-off). The exact semi-discrete propagator ``exp(dt (D L − γ))`` of a graph
Laplacian ``L`` is entrywise non-negative, so with non-negative sources the result is
non-negative in exact arithmetic; the FFT leaves round-off of order 1e-16 × max(u)
(about 1e-7 × max(u) per step on grids whose transforms run in single precision,
`LARGE_GRID_TRANSFORM`), which is clipped to 0 after the inverse transform. Sources are therefore meant to be
secretion (≥ 0); uptake by cells would need another treatment.

The field grid may be coarser than the cell lattice by an integer factor ``coarsen``:
lattice site (i, j, k) lies in voxel (i//c, j//c, k//c), and the grid has
``ceil(n/c)`` voxels per axis (so the field domain can overhang the lattice by < c sites).
A voxel is c sites along every axis except one the lattice has a single site on (z in 2D),
where it is that one site thick: a 2D voxel is (c·s)² × s, a 3D voxel (c·s)³.
"""
from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import fft

from sim.kernels import field_ops

try:  # scipy's own DCT engine, called without the per-call dispatch of scipy.fft.dctn (~30 µs a call)
    from scipy.fft._duccfft.helper import _workers as _fft_workers
    from scipy.fft._duccfft.pyduccfft import dct as _raw_dct
except ImportError:  # another scipy layout: the public functions (bit for bit the same transform)
    _raw_dct = None


def _dct_ortho(x: np.ndarray, axes: tuple[int, ...], inverse: bool, workers: int | None,
               out: np.ndarray | None = None) -> np.ndarray:
    """Orthonormal DCT-II (inverse: DCT-III) of float64 `x` over `axes`, in place or into `out` (same
    shape): exactly what `fft.dctn`/`fft.idctn(x, type=2, norm="ortho")` compute, with less overhead.
    Into a kept buffer it skips a copy and the page faults of a fresh array (216³: 298 → 180 ms, median
    of repeats; no difference above noise at 100³; bit for bit the same, tests/test_fields.py)."""
    out = x if out is None else out
    if _raw_dct is None:
        f = fft.idctn if inverse else fft.dctn
        out[...] = f(x, type=2, axes=axes, norm="ortho", workers=workers, overwrite_x=out is x)
        return out
    return _raw_dct(x, 3 if inverse else 2, axes, 1, out, _fft_workers(workers), None)


def _dct_into(x: np.ndarray, axes: tuple[int, ...], workers: int | None, out: np.ndarray) -> np.ndarray:
    """Forward DCT of `x` into the mode buffer `out`, in `out`'s precision: straight into it when the
    dtypes agree, else `x` narrowed into `out` and transformed in place. The stepping thread (`_dct`)
    and the prefetch thread call this one function, so their modes are bit for bit the same."""
    if out.dtype == x.dtype:
        return _dct_ortho(x, axes, False, workers, out)
    np.copyto(out, x, casting="same_kind")
    return _dct_ortho(out, axes, False, workers)


def _reaction_factors(a: np.ndarray, dt: float, x: np.ndarray | None = None, e: np.ndarray | None = None,
                      gain: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """e^{−a dt} and (1 − e^{−a dt})/a (dt where a is not > 0) of the decay + sink rates `a`: the exact
    reaction step of a voxel, into `e` and `gain` (fresh arrays if not given; `x` is scratch)."""
    x = np.multiply(a, -dt, out=x)  # −a·dt
    e = np.exp(x, out=e)
    gain = np.expm1(x, out=gain)
    if a.size == 0 or a.min() > 0.0:
        gain /= a
        np.negative(gain, out=gain)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            gain /= a
        np.negative(gain, out=gain)
        np.copyto(gain, dt, where=~(a > 0.0))
    return e, gain


def _rows(rows) -> slice | np.ndarray:
    """Row indices as a slice when they are a run (a view, and a plain copy), else an index array."""
    rows = list(rows)
    if not rows:
        return slice(0, 0)
    if rows == list(range(rows[0], rows[-1] + 1)):
        return slice(rows[0], rows[-1] + 1)
    return np.asarray(rows, dtype=np.intp)


def _gather(src: np.ndarray, rows, out: np.ndarray) -> None:
    """`out[...] = src[rows]` without a temporary."""
    if isinstance(rows, slice):
        np.copyto(out, src[rows])
    else:
        np.take(src, rows, axis=0, out=out, mode="clip")


class CytokineFields:
    """Diffusing, decaying cytokine fields on a (possibly coarsened) voxel grid."""

    def __init__(self, lattice_shape: tuple[int, int, int], spacing_um: float, coarsen: int,
                 names: tuple[str, ...], diffusion_um2_per_min: Sequence[float],
                 half_life_min: Sequence[float], background_ng_ml: Sequence[float],
                 *, workers: int | None = None, large_grid_transform: type | None = None):
        """Set up zeroed fields; ``half_life_min = inf`` means no decay, ``workers`` is passed to scipy.fft,
        ``large_grid_transform`` overrides `LARGE_GRID_TRANSFORM` for this grid (the scenario's
        `domain.field_precision`)."""
        lattice_shape = tuple(int(n) for n in lattice_shape)
        if len(lattice_shape) != 3 or min(lattice_shape) < 1:
            raise ValueError(f"lattice_shape must be 3 positive ints, got {lattice_shape}")
        if int(coarsen) != coarsen or coarsen < 1:
            raise ValueError(f"coarsen must be an integer >= 1, got {coarsen}")
        if spacing_um <= 0:
            raise ValueError("spacing_um must be > 0")
        self.names = tuple(names)
        nf = len(self.names)
        if not (len(diffusion_um2_per_min) == len(half_life_min) == len(background_ng_ml) == nf):
            raise ValueError("one diffusion coefficient, half-life and background per field")
        self.lattice_shape = lattice_shape
        self.coarsen = int(coarsen)
        self.shape = tuple(-(-n // self.coarsen) for n in lattice_shape)
        self.voxel_um = float(spacing_um) * self.coarsen
        # µm³ → mL. An axis one lattice site long (z in 2D: the tissue is a slab one site thick) is one
        # site thick, not one voxel, so 2D concentrations do not scale with 1/coarsen; 3D is (c·s)³.
        flat = sum(n == 1 for n in lattice_shape)
        self.voxel_volume_ml = self.voxel_um ** (3 - flat) * float(spacing_um) ** flat * 1e-12
        self.diffusion = np.asarray(diffusion_um2_per_min, dtype=np.float64)
        half = np.asarray(half_life_min, dtype=np.float64)
        if np.any(self.diffusion < 0) or np.any(half <= 0):
            raise ValueError("diffusion must be >= 0 and half-lives > 0 (inf for no decay)")
        self.decay_per_min = math.log(2.0) / half
        self.background = np.asarray(background_ng_ml, dtype=np.float64)
        self.workers = workers
        if large_grid_transform is not None:
            self.LARGE_GRID_TRANSFORM = large_grid_transform
        self.values = np.zeros((nf, *self.shape))
        self.sources = np.zeros((nf, *self.shape))
        # per field: may it hold a non-zero value? Kept by step() and load_state_dict(); kernels skip
        # the grid reads of a field that is identically zero. Read it through nonzero_now(), which
        # re-checks the fields flagged zero, so values written directly are never missed.
        self.nonzero = np.zeros(nf, dtype=np.bool_)
        self._axes = tuple(a for a, n in enumerate(self.shape) if n > 1)
        # the grid without its one-voxel axes: what the DCTs run on (a (30, 30, 1) grid as (30, 30) is
        # transformed ~2× faster by scipy, bit for bit the same)
        self._core = tuple(self.shape[a] for a in self._axes)
        self._lam_1d = self._laplacian_eigenvalues()
        self._factors_dt: float | None = None
        self._factors: list[tuple[np.ndarray, np.ndarray]] = []
        self._diffusion_only: dict[tuple[int, float], np.ndarray] = {}  # mode factors e^{−Dλ dt} of a sink field
        self._flags = np.zeros((nf, 3), dtype=np.bool_)  # scratch for field_ops.grid_flags
        # per lattice axis: the voxel coordinate of each site coordinate (i // coarsen)
        self._axis_voxels = tuple(np.arange(n, dtype=np.int64) // self.coarsen for n in lattice_shape)

    def _laplacian_eigenvalues(self) -> list[np.ndarray]:
        """Per-axis eigenvalues (1/µm²) of the discrete Neumann Laplacian, shaped to broadcast over the grid."""
        return [((2.0 - 2.0 * np.cos(np.pi * np.arange(n) / n)) / self.voxel_um ** 2)
                .reshape([n if b == a else 1 for b in range(3)]) for a, n in enumerate(self.shape)]

    def _step_factors(self, dt: float) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per-field mode factors (e^{−a dt}, (1−e^{−a dt})/a), cached for the last dt used."""
        if dt != self._factors_dt:
            self._factors = []
            for d, g in zip(self.diffusion, self.decay_per_min):
                lx, ly, lz = self._lam_1d
                rate = d * (lx + ly + lz) + g
                decay = np.exp(-rate * dt)
                with np.errstate(divide="ignore", invalid="ignore"):
                    gain = np.where(rate > 0, -np.expm1(-rate * dt) / rate, dt)
                # float64 even for single-precision modes: the product is rounded, not the factor, so
                # the decay rate carries no rounding bias
                self._factors.append((decay, gain))
            self._factors_dt = dt
        return self._factors

    def index(self, name: str) -> int:
        """Position of field ``name`` in ``values``/``sources``."""
        return self.names.index(name)

    def set_background(self, name: str, value: float) -> None:
        """Set the systemic level of field ``name`` (ng/mL), the value sampled on top of the grid."""
        self.background[self.index(name)] = value

    #: grids up to this many voxels transform all active fields (values, sources and the diffusion of
    #: sink fields) in one forward and one inverse call (scipy's per-call cost dominates small grids;
    #: measured 3.6× faster at 30×30, no gain at 40³). Bit-identical either way.
    BATCH_MAX_VOXELS = 16384

    #: the precision of the DCTs of grids above BATCH_MAX_VOXELS: the modes are float32 (the products
    #: with the float64 mode factors round once into them); values and sources stay float64. It halves
    #: the transform time at 100³ (10.8 → 5.6 ms per call) for an error of ~1e-7 of the field's maximum
    #: per step, which accumulates over the steps a slowly decaying field remembers (4.5e-6 after a day
    #: for a 10-h half-life) and, clipped at 0 where the field is near zero, adds a little mass there
    #: (docs/performance.md, tests/test_fields.py). np.float64 is exact to round-off. Small grids,
    #: every shipped scenario among them, always transform in float64.
    LARGE_GRID_TRANSFORM = np.float32

    def _mode_dtype(self) -> type:
        """The dtype the DCTs of this grid run in (`LARGE_GRID_TRANSFORM` on large grids)."""
        large = bool(self._axes) and self.values[0].size > self.BATCH_MAX_VOXELS
        return self.LARGE_GRID_TRANSFORM if large else np.float64

    def step(self, dt_min: float, sinks: dict[int, np.ndarray] | None = None) -> None:
        """Advance every field by ``dt_min`` with the current sources, then zero the sources.

        ``sinks`` maps a field index to a per-voxel uptake rate (1/min, the grid's shape or flat),
        e.g. receptor-mediated consumption by the cells in each voxel. A field without a sink is
        stepped exactly; a field with one by `_step_with_sink` (exact local reaction, then exact
        diffusion: first-order splitting, exact for a uniform field). ``sinks`` may also be a
        callable returning that mapping (or None): it is called only when some field holds a value
        (an identically zero field stays zero whatever its uptake)."""
        dt = float(dt_min)
        if not (dt >= 0 and math.isfinite(dt)):
            raise ValueError(f"dt must be finite and >= 0, got {dt_min}")
        factors = self._step_factors(dt)
        nf = len(self.names)
        # per field: (a source holds a value, the sources are not all +0.0, source or value non-zero)
        flags = field_ops.grid_flags(self.values.reshape(nf, -1), self.sources.reshape(nf, -1), self._flags).tolist()
        if callable(sinks):
            sinks = sinks() if any(fl[2] for fl in flags) else None
        sinks = {f: k for f, k in (sinks or {}).items() if (k.any() if isinstance(k, np.ndarray) else np.any(k))}
        small = bool(self._axes) and self.values[0].size <= self.BATCH_MAX_VOXELS
        diffused = []  # sink fields whose diffusion joins the small-grid stack below
        for f, k in sinks.items():
            self.nonzero[f] = flags[f][2]
            if flags[f][2]:
                k = np.asarray(k, dtype=np.float64).reshape(self.shape)
                if small and self.diffusion[f] > 0:
                    self._react_with_sink(f, k, dt)
                    diffused.append(f)
                else:
                    self._step_with_sink(f, k, dt)
        active, sourced = [], []
        for f in range(nf):
            if f in sinks:
                continue
            self.nonzero[f] = flags[f][2]
            if flags[f][2]:
                active.append(f)
                if flags[f][0]:
                    sourced.append(f)
        if not self._axes:  # single voxel: no diffusion, modes are the values themselves
            for f in active:
                decay, gain = factors[f]
                self.values[f] *= decay
                self.values[f] += gain * self.sources[f]
        elif small:
            if active or diffused:
                self._transform_batched(active, sourced, factors, diffused, dt)  # clips as well
            active = []
        else:
            ahead = self._take_prefetch(dt)
            for f in active:
                self._transform_one(f, f in sourced, factors[f], ahead.get(f))
        for f in active:
            np.maximum(self.values[f], 0.0, out=self.values[f])  # clip FFT round-off (~1e-16·max; ~1e-7·max in single precision) below zero
        if active and self.PREFETCH and self._axes and not small and not self.__dict__.get("_prefetch_failed"):
            self._start_prefetch(active, dt, factors)
        if any(fl[1] for fl in flags):  # else every source is +0.0 throughout already
            self.sources.fill(0.0)

    def _step_with_sink(self, f: int, k: np.ndarray, dt: float) -> None:
        """du/dt = D∇²u − (g + k(x)) u + s(x) over dt, split: each voxel's reaction solved exactly
        (u e^{−a dt} + s (1 − e^{−a dt})/a, a = g + k), then diffusion alone exactly in DCT modes."""
        u = self._react_with_sink(f, k, dt)
        if self._axes and self.diffusion[f] > 0:
            uh = self._dct(u, 0)
            uh *= self._diffusion_factor(f, dt).reshape(self._core)
            self._idct(uh, u)
        np.maximum(u, 0.0, out=u)

    def _dct(self, x: np.ndarray, slot: int) -> np.ndarray:
        """Orthonormal DCT-II of the grid `x` on the grid's `_core` shape (one-voxel axes dropped), into
        mode buffer `slot` (0 or 1, kept between steps); returns that buffer."""
        axes = tuple(range(len(self._core)))
        return _dct_into(x.reshape(self._core), axes, self.workers, self._mode_buffers()[slot])

    def _idct(self, xh: np.ndarray, into: np.ndarray) -> None:
        """The inverse of `_dct`: the grid of modes `xh` transformed back into the grid `into` (in a
        lower-precision transform, in place in `xh`, then widened into `into`)."""
        axes = tuple(range(len(self._core)))
        if xh.dtype == into.dtype:
            _dct_ortho(xh, axes, True, self.workers, into.reshape(self._core))
        else:
            _dct_ortho(xh, axes, True, self.workers)
            np.copyto(into.reshape(self._core), xh)

    def _mode_buffers(self) -> np.ndarray:
        """Two grids of modes for `_dct` (a field's values and its sources), kept between steps."""
        buf = self.__dict__.get("_modes")
        if buf is None or buf.dtype != self._mode_dtype():
            buf = self._modes = np.empty((2, *self._core), dtype=self._mode_dtype())
        return buf

    #: the reaction half of a sink field is computed voxel by voxel only where the sink is non-zero
    #: when at most this share of voxels has one (elsewhere a = the decay rate: one e^{−a dt})
    SPARSE_SINK_SHARE = 0.25

    def _react_with_sink(self, f: int, k: np.ndarray, dt: float) -> np.ndarray:
        """The reaction half of `_step_with_sink`, in place (in scratch grids: no allocations); returns
        the field's values. Where few voxels hold cells (the usual case) the exponentials are taken only
        there: the same operations on the same numbers, bit for bit (tests/test_fields.py)."""
        g = float(self.decay_per_min[f])
        if g > 0.0:
            hit = np.flatnonzero(k.reshape(-1))
            a_hit = np.add(g, k.reshape(-1)[hit]) if hit.size <= self.SPARSE_SINK_SHARE * k.size else None
            if a_hit is not None and (hit.size == 0 or a_hit.min() > 0.0):  # else (a sink < 0 or nan) the dense path
                return self._react_sparse(f, a_hit, hit, g, dt)
        u, s = self.values[f], self.sources[f]
        a, x, e, gain = self._scratch(4)
        np.add(self.decay_per_min[f], k, out=a)
        _reaction_factors(a, dt, x, e, gain)
        u *= e
        gain *= s
        u += gain
        return u

    def _react_sparse(self, f: int, a_hit: np.ndarray, hit: np.ndarray, g: float, dt: float) -> np.ndarray:
        """`_react_with_sink` with the sink non-zero only at voxels `hit` (flat), where a = g + k is `a_hit`
        (> 0), and decay g > 0 elsewhere."""
        u, s = self.values[f], self.sources[f]
        uf, sf = u.reshape(-1), s.reshape(-1)
        e, gain = _reaction_factors(a_hit, dt)
        local = uf[hit]
        local *= e
        gain *= sf[hit]
        local += gain
        e0, gain0 = _reaction_factors(np.full(1, g), dt)
        tmp = self._scratch(1)[0].reshape(-1)
        uf *= e0
        np.multiply(gain0, sf, out=tmp)
        uf += tmp
        uf[hit] = local
        return u

    def add_per_voxel_source(self, name: str, counts: np.ndarray, rate_ng_ml_per_min: float) -> None:
        """Add `counts × rate` (a per-voxel count, flat: e.g. tumor cells per voxel) to the next step's
        sources of field `name`, through a scratch grid (no fresh array per step)."""
        tmp = self._scratch(1)[0].reshape(-1)
        np.multiply(counts, rate_ng_ml_per_min, out=tmp)
        src = self.sources[self.index(name)].reshape(-1)
        src += tmp

    def _scratch(self, n: int) -> np.ndarray:
        """`n` scratch grids of the grid's shape, kept between steps."""
        buf = self.__dict__.get("_scratch_grids")
        if buf is None or len(buf) < n:
            buf = self._scratch_grids = np.empty((n, *self.shape))
        return buf[:n]

    def _diffusion_factor(self, f: int, dt: float) -> np.ndarray:
        """Mode factors e^{−Dλ dt} of diffusion alone (a sink field's second half), cached for the last (f, dt)."""
        key = (f, dt)
        if key not in self._diffusion_only:
            lx, ly, lz = self._lam_1d
            self._diffusion_only = {key: np.exp(-self.diffusion[f] * (lx + ly + lz) * dt)}
        return self._diffusion_only[key]

    def _transform_one(self, f: int, has_source: bool, factor: tuple[np.ndarray, np.ndarray],
                       ahead: np.ndarray | None = None) -> None:
        """One field's exact step in DCT modes: û ← e^{−a dt} û + (1−e^{−a dt})/a · ŝ. `ahead`: e^{−a dt} û
        of the current values, computed while the cells stepped (`_start_prefetch`)."""
        decay, gain = factor
        u, s = self.values[f], self.sources[f]
        if ahead is not None:
            uh = ahead
        else:
            uh = self._dct(u, 0)
            uh *= decay.reshape(self._core)
        if has_source:
            sh = self._dct(s, 1)
            sh *= gain.reshape(self._core)
            uh += sh
        self._idct(uh, u)

    #: large grids compute the decay half (e^{−a dt} û) of the next step of each field stepped without a
    #: sink in a background thread while the cells step: its values do not change until then, scipy's
    #: DCT and the cell kernels (nogil) release the GIL. One transform in three of such a field leaves the critical path;
    #: bit for bit the same (the same operations on the same values, checked against a copy on use).
    PREFETCH = True

    def _start_prefetch(self, fields: list[int], dt: float, factors) -> None:
        """Start computing e^{−a dt} DCT(u) of `fields` for the next step (assumed to have the same dt)."""
        nf = len(self.names)
        bufs = self.__dict__.get("_ahead_bufs")
        dtype = self._mode_dtype()
        if bufs is None or bufs[1].dtype != dtype:  # copies (to check on use), modes
            bufs = self._ahead_bufs = (np.empty((nf, *self._core)), np.empty((nf, *self._core), dtype=dtype))
        copies, modes = bufs
        vals = self.values.reshape(nf, *self._core)
        axes = tuple(range(len(self._core)))
        done: dict[int, np.ndarray] = {}
        # scipy.fft.set_workers is thread-local: the thread takes the workers of the caller's thread
        workers = self.workers if self.workers is not None else fft.get_workers()

        def work():
            try:
                for f in fields:
                    np.copyto(copies[f], vals[f])
                    _dct_into(copies[f], axes, workers, modes[f])
                    modes[f] *= factors[f][0].reshape(self._core)
                    done[f] = modes[f]
            except BaseException as e:  # handed to the stepping thread (`_take_prefetch`), not the excepthook
                done[-1] = e

        # not a daemon: the interpreter waits for it at exit (a DCT cut off mid-call aborts the process)
        t = threading.Thread(target=work, name="nksim-field-prefetch")
        t.start()
        self._prefetch = (t, dt, done)

    def _take_prefetch(self, dt: float) -> dict[int, np.ndarray]:
        """The prefetched decay modes valid for this step: same dt, and values still equal to the copy the
        thread transformed (a direct write to `values` since then discards that field's modes)."""
        pre = self.__dict__.pop("_prefetch", None)
        if pre is None:
            return {}
        t, pdt, done = pre
        t.join()
        failure = done.pop(-1, None)
        if failure is not None:  # the modes it did finish are sound, but stop trying on every step
            self._prefetch_failed = True
            warnings.warn(f"the field prefetch thread failed ({failure!r}); the fields are computed in the stepping "
                          "thread from here on (same values, a little slower)", RuntimeWarning, stacklevel=3)
        if pdt != dt:
            return {}
        copies = self._ahead_bufs[0]
        nf = len(self.names)
        vals = self.values.reshape(nf, *self._core)
        return {f: m for f, m in done.items() if np.array_equal(vals[f].view(np.uint64), copies[f].view(np.uint64))}

    #: what a pickle leaves out: the prefetch in flight and the kept buffers (rebuilt on demand)
    _TRANSIENT = ("_prefetch", "_prefetch_failed", "_ahead_bufs", "_modes", "_scratch_grids", "_stack")

    def __getstate__(self) -> dict:
        """Pickle without a prefetch in flight (it is recomputed on the next step) or the kept buffers."""
        pre = self.__dict__.get("_prefetch")
        if pre is not None:
            pre[0].join()
        return {k: v for k, v in self.__dict__.items() if k not in self._TRANSIENT}

    def _transform_batched(self, active: list[int], sourced: list[int], factors, diffused: list[int] = (),
                           dt: float | None = None) -> None:
        """`_transform_one` of the `active` fields and the diffusion half of `_step_with_sink` of the
        `diffused` (sink) fields, all at once, then the clip at 0: the same arithmetic, with one forward
        transform of the stack of their values and the sources, and one inverse transform (in a stack
        kept between steps, with the mode factors stacked once per combination). A DCT of a stack gives
        each slice bit for bit what a DCT of that slice alone gives (tests/test_fields.py)."""
        rows, src_rows, mult, gain, into = self._batch_plan(tuple(active), tuple(sourced), tuple(diffused), factors, dt)
        n, m = len(mult), len(mult) + len(gain)
        nf, core = len(self.names), self._core
        vals = self.values.reshape(nf, *core)
        buf = self.__dict__.get("_stack")
        if buf is None:
            buf = self._stack = np.empty((2 * nf, *core))
        h = buf[:m]
        _gather(vals, rows, h[:n])
        if m > n:
            _gather(self.sources.reshape(nf, *core), src_rows, h[n:])
        axes = tuple(range(1, 1 + len(core)))
        _dct_ortho(h, axes, False, self.workers)
        u = h[:n]
        u *= mult
        if m > n:
            sh = h[n:]
            sh *= gain
            if isinstance(into, slice):
                u[into] += sh
            else:
                u[into] = u[into] + sh
        _dct_ortho(u, axes, True, self.workers)
        np.maximum(u, 0.0, out=u)  # clip FFT round-off (~1e-16·max; ~1e-7·max in single precision) below zero
        vals[rows] = u

    def _batch_plan(self, active: tuple, sourced: tuple, diffused: tuple, factors, dt):
        """For `_transform_batched`: the value rows to stack and the source rows (each a slice when
        they are a run of rows, else an index array), the stacked mode factors of those rows and of
        the sources, and where each source's modes go; cached per combination and dt."""
        key = (active, sourced, diffused, dt)
        plans = self.__dict__.setdefault("_plans", {})
        plan = plans.get(key)
        if plan is None:
            if len(plans) > 64:
                plans.clear()
            core = self._core
            mult = np.stack([factors[f][0].reshape(core) for f in active]
                            + [self._diffusion_factor(f, dt).reshape(core) for f in diffused])
            gain = np.stack([factors[f][1].reshape(core) for f in sourced]) if sourced else mult[:0]
            plan = plans[key] = (_rows(active + diffused), _rows(sourced), mult, gain,
                                 _rows([active.index(f) for f in sourced]))
        return plan

    def concentration(self, name: str) -> np.ndarray:
        """Total concentration (values + background, ng/mL) as a new array."""
        f = self.index(name)
        return self.values[f] + self.background[f]

    def mean(self, name: str) -> float:
        """Grid-mean total concentration including background (ng/mL)."""
        f = self.index(name)
        return float(self.values[f].mean() + self.background[f])

    def total_mass_ng(self, name: str) -> float:
        """Cytokine mass above background in the whole grid (ng)."""
        return float(self.values[self.index(name)].sum() * self.voxel_volume_ml)

    def secrete(self, name: str, sites: np.ndarray, weights: np.ndarray, rate_ng_ml_per_min: float) -> None:
        """Add ``rate*weight`` (ng/mL/min in the cell's voxel) to the next step's sources at each site."""
        nx, ny, nz = self.lattice_shape
        fx, fy, fz = self.shape
        field_ops.deposit(self.sources[self.index(name)].reshape(-1), sites, weights,
                          float(rate_ng_ml_per_min), nx, ny, nz, fx, fy, fz, self.coarsen)

    def cells_per_voxel(self, sites: np.ndarray, state: np.ndarray, n_used: int, empty: int) -> tuple[np.ndarray, int]:
        """Cells per voxel (float64, flat) of the cells in slots < n_used whose `state` is not `empty`
        (negative sites skipped), and how many were counted: one pass over the slots."""
        out = np.zeros(self.values[0].size)
        table = self._site_voxel_table()
        if table is not None:
            return out, field_ops.count_live_in_voxels(out, sites, state, int(n_used), empty, table)
        vx, vy, vz = self._axis_voxels
        n = field_ops.count_live_per_voxel(out, sites, state, int(n_used), empty, vx, vy, vz, self.shape[1],
                                           self.shape[2], self.lattice_shape[1], self.lattice_shape[2])
        return out, n

    #: lattices up to this many sites keep a site → voxel table (int32; 4 MB at the limit)
    SITE_TABLE_MAX_SITES = 1 << 20

    def _site_voxel_table(self) -> np.ndarray | None:
        """The field voxel of every lattice site (`lattice.voxel_of`), for small lattices (no integer
        division per cell when counting cells per voxel); None for large ones."""
        t = self.__dict__.get("_site_voxel")
        if t is None:
            nx, ny, nz = self.lattice_shape
            if nx * ny * nz > self.SITE_TABLE_MAX_SITES:
                return None
            vx, vy, vz = self._axis_voxels
            fy, fz = self.shape[1], self.shape[2]
            t = ((vx[:, None, None] * fy + vy[None, :, None]) * fz + vz[None, None, :]).astype(np.int32).reshape(-1)
            self._site_voxel = t
        return t

    def sample_sites(self, name: str, sites: np.ndarray) -> np.ndarray:
        """Total concentration (ng/mL) seen at each lattice site; nan for negative sites."""
        f = self.index(name)
        nx, ny, nz = self.lattice_shape
        fx, fy, fz = self.shape
        out = np.empty(len(sites))
        return field_ops.sample_many(self.values[f].reshape(-1), sites, float(self.background[f]),
                                     nx, ny, nz, fx, fy, fz, self.coarsen, out)

    def state_dict(self) -> dict:
        """Checkpoint state: the field values (sources are transient and always zero between steps)."""
        return {"names": list(self.names), "shape": list(self.shape), "values": self.values.copy()}

    def load_state_dict(self, d: dict) -> None:
        """Restore values from :meth:`state_dict`, checking the field names and grid shape match."""
        if tuple(d["names"]) != self.names or tuple(d["shape"]) != self.shape:
            raise ValueError(f"checkpoint fields {d['names']} {d['shape']} do not match "
                             f"{list(self.names)} {list(self.shape)}")
        self.values[...] = np.asarray(d["values"], dtype=np.float64)
        self.sources[...] = 0.0
        self.refresh_nonzero()

    def nonzero_now(self) -> np.ndarray:
        """`nonzero`, after re-checking the fields flagged zero (their values may have been written
        directly); a True flag is always safe, it only means the grid is read."""
        if not self.nonzero.all():
            field_ops.refresh_zero_flags(self.values.reshape(len(self.names), -1), self.nonzero)
        return self.nonzero

    def refresh_nonzero(self) -> None:
        """Recompute `nonzero` from `values` (after writing them other than through step())."""
        self.nonzero[...] = self.values.reshape(len(self.names), -1).any(axis=1)
