"""What a scenario will cost, checked before anything is allocated or written.

Two kinds of rule, each written once:

* `check_feasible` — machine-independent: the lattice fits the int32 site index, the tumor fits the
  domain (the same nodule box `TumorImmuneModel` places it in), CAR-NK cells have a free site, the
  run has at least one and at most `MAX_STEPS` cell steps. `resolve` calls it on every effective
  scenario, so `check`, `run`, arms, sweeps and direct model construction all refuse the same inputs.
* `preflight` — the memory estimate against the memory available now (or a user's ``--max-memory``),
  and warnings about output volume. `nksim check` and `nksim run` call it before anything else;
  `TumorImmuneModel` and `WellMixedModel` call it before allocating.

The estimate (`estimate`) counts the arrays the model allocates (sim/state.py, sim/fields.py,
sim/model.py), with the tumor's growth room and the CAR-NK expansion bounded from the scenario:

    base interpreter + imports + kernels + output writers     BASE_BYTES (350 MiB)
    lattice   4 B/site (occ) + 2 B/site (immune counts) + 2 bits/site (bitmaps) + 9 B/site transient (free-site scans)
    fields    112 B/voxel (values, sources, step factors, voxel counts) + 40 B/voxel transient (DCT)
    tumor     37 B/slot × max(2·N0, 1.5·N_peak), N_peak = min(sites, N0·2^(24·days/doubling_h))
              + 70 B per initial cell transient (phenotype draws, site sort at set-up)
    CAR-NK    63 B/slot × max(2·n0, 1.5·n_peak) + 320 B Mesa agent per live cell (benchmarks: 375 B/NK)
              n_peak = (n0 + infused × tissue_fraction) × min(2^max_divisions, e^(proliferation·days))
    snapshots kept in memory until written: (12 B/voxel + 42 B/cell) per snapshot
    time series about 1 KiB per output row
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from ..units import MIN_PER_DAY
from .base import ScenarioError


#: Site and tumor-slot indices are int32 (sim/state.py, the occupancy lattice).
MAX_SITES = 2**31 - 1
#: Cell steps per run (3650 days at dt = 0.5 min); beyond this a run is weeks of wall time.
MAX_STEPS = 10_000_000
#: Output volume above which `check` and `run` warn.
WARN_SNAPSHOT_FILES = 1_000
WARN_SNAPSHOT_BYTES = 1 << 30
WARN_TIMESERIES_ROWS = 1_000_000

BASE_BYTES = 350 << 20  # measured: 290 MiB after imports and kernel warm-up, ~340 MiB once outputs are written
B_SITE, B_SITE_TMP = 6.25, 9.0
B_VOXEL, B_VOXEL_TMP = 112.0, 40.0
B_TUMOR_SLOT, B_TUMOR_SETUP = 42.0, 70.0  # TumorPopulation.FIELDS: 34 B of state + the 8-B run-wide cell id (tested)
B_NK_SLOT, B_NK_AGENT, B_NK_SETUP = 76.0, 320.0, 80.0  # a 64-B packed record (NKPopulation.PACKED) + born_min and the 8-B cell id
B_SNAP_VOXEL, B_SNAP_CELL = 12.0, 42.0  # a CAR-NK row: id, xyz, 7 phenotype arrays (tumor: 37 B)
B_ROW = 1024.0
B_WM_AGENT = 96.0  # well-mixed: three int64 arrays per effector slot


# ------------------------------------------------------------------------------------ sizes

def initial_tumor_slots(seeded: int) -> int:
    """Tumor slots a model starts with (`model.tumor`): the seeded cells and an eighth more. They grow
    on demand (×1.5, `Population.ensure`), so a 1e8 lesion does not reserve room for cells it may never
    have (it was 2× the count)."""
    return seeded + seeded // 8 + 64


def parse_size(text: str) -> int:
    """'8G', '512M', '1.5GiB', '2000000000' → bytes (binary multiples); ValueError otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", str(text))
    if not m:
        raise ValueError(f"expected a size such as 8G, 512M or 2000000000 (bytes), got {text!r}")
    v = float(m.group(1)) * 1024 ** " KMGT".index((m.group(2) or " ").upper())
    if not (math.isfinite(v) and v >= 1):
        raise ValueError(f"must be at least 1 byte, got {text!r}")
    return int(v)


def fmt_size(b: float) -> str:
    if b >= 1 << 40:
        return f"{b / 2**40:.3g} TiB"
    if b >= 1 << 30:
        return f"{b / 2**30:.3g} GiB"
    return f"{b / 2**20:.3g} MiB"


def available_memory() -> tuple[int | None, str]:
    """(bytes this process could still use, where the number came from): MemAvailable from
    /proc/meminfo (or sysconf), lowered to the cgroup limit, plus what this process already holds."""
    avail, src = None, "available"
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None, "unknown"
    for limit_f, usage_f in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                             ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_f) as a, open(usage_f) as b:
                lim, use = a.read().strip(), int(b.read().strip())
            if lim.isdigit() and int(lim) < 1 << 60:
                if int(lim) - use < avail:
                    avail, src = max(0, int(lim) - use), "available in this container"
                break
        except (OSError, ValueError):
            continue
    try:
        with open("/proc/self/statm") as fh:
            avail += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")  # what we hold is ours to use
    except (OSError, ValueError, IndexError):
        pass
    return avail, src


# ------------------------------------------------------------------------------------ feasibility
def lattice_axes(domain) -> list[float]:
    """Sites per axis as floats (inf when size/spacing overflows), before any int conversion."""
    return [max(1.0, s / domain.spacing_um) for s in domain.size_um[: domain.dims]]


def nodule_box(shape: tuple[int, int, int], dims: int, count: int) -> tuple[Any, Any]:
    """The box (lo, hi) around the domain centre that `TumorImmuneModel._nodule_sites` searches for
    the `count` sites nearest the centre; the nodule fits iff the box holds `count` sites."""
    import numpy as np

    vol_per = math.pi if dims == 2 else 4.0 / 3.0 * math.pi
    r = (count / vol_per) ** (1.0 / dims) * 1.3 + 2
    c = (np.array(shape, dtype=np.float64) - 1) / 2.0
    lo = np.maximum(np.floor(c - r), 0).astype(int)
    hi = np.minimum(np.ceil(c + r) + 1, shape).astype(int)
    if dims == 2:
        lo[2], hi[2] = 0, 1
    return lo, hi


def check_feasible(cfg, lines: dict | None = None, file: str | None = None) -> None:
    """Refuse an effective scenario that no model could run (see the module docstring)."""
    lines = lines or {}

    def err(path: str, msg: str) -> ScenarioError:
        keys = tuple(path.split("."))
        line = next((lines[keys[:k]] for k in range(len(keys), 0, -1) if keys[:k] in lines), None)
        return ScenarioError(path, msg, line=line, file=file)

    t = cfg.time
    steps = t.days * MIN_PER_DAY / t.dt_min
    if round(steps) < 1:
        raise err("time.days", f"{t.days:g} days is shorter than one cell step (time.dt_min = {t.dt_min:g} min); "
                  "raise time.days")
    if steps > MAX_STEPS:
        raise err("time.dt_min", f"{t.days:g} days at {t.dt_min:g} min per step is {steps:.3g} steps, more than the "
                  f"limit of {MAX_STEPS:.0e}; raise time.dt_min or shorten time.days")
    if cfg.domain.space != "lattice":
        return
    d = cfg.domain
    axes = lattice_axes(d)
    n_sites = math.prod(axes)
    if not all(a <= MAX_SITES for a in axes) or math.prod(round(a) for a in axes) > MAX_SITES:
        shown = " × ".join(f"{a:.3g}" for a in axes)
        raise err("domain", f"the lattice would have {n_sites:.3g} sites ({shown}), more than {MAX_SITES} (the int32 "
                  "site index); raise domain.spacing_um or shrink domain.size_um")
    shape = d.lattice_shape()
    n_sites = shape[0] * shape[1] * shape[2]
    n = cfg.tumor.init.count
    if n > n_sites:
        raise err("tumor.init.count", f"{n} tumor cells do not fit the {n_sites} lattice sites {shape}; "
                  "enlarge domain.size_um or lower tumor.init.count")
    if n and cfg.tumor.init.shape == "nodule":
        lo, hi = nodule_box(shape, d.dims, n)
        box = int(math.prod(int(h - l) for l, h in zip(lo, hi)))
        if n > box:
            raise err("tumor.init.count", f"a nodule of {n} cells does not fit around the domain centre (only {box} sites "
                      f"there in the {shape} lattice); enlarge the thin axis of domain.size_um or use tumor.init.shape: scattered")
    if n >= n_sites and cfg.nk.dose.cells > 0:
        raise err("tumor.init.count", f"the tumor fills all {n_sites} lattice sites, leaving none for the "
                  f"{cfg.nk.dose.cells} CAR-NK cells (nk.dose.cells); lower tumor.init.count or enlarge domain.size_um")


# ------------------------------------------------------------------------------------ estimate
@dataclass
class Estimate:
    """Peak memory (bytes) by component, plus output volume."""

    parts: dict[str, float] = field(default_factory=dict)  # resident at the peak
    transient: dict[str, float] = field(default_factory=dict)  # short-lived, the largest one counts
    snapshot_files: int = 0
    snapshot_bytes: float = 0.0
    rows: int = 0
    steps: int = 0

    @property
    def total(self) -> float:
        return BASE_BYTES + sum(self.parts.values()) + max(self.transient.values(), default=0.0)

    def combined(self) -> dict[str, float]:
        """Each component's resident plus transient bytes."""
        return {k: self.parts.get(k, 0.0) + self.transient.get(k, 0.0) for k in {**self.parts, **self.transient}}

    def largest(self) -> str:
        c = self.combined()
        return max(c, key=c.get) if c else "base"

    def breakdown(self) -> str:
        top = sorted(self.combined().items(), key=lambda kv: -kv[1])[:3]
        return ", ".join(f"{k} {fmt_size(v)}" for k, v in top if v >= 1 << 20)


#: How to shrink each component (the first path named is the one blamed, with its YAML line).
FIXES = {
    "lattice": ("domain.size_um", "shrink domain.size_um or raise domain.spacing_um"),
    "fields": ("domain.size_um", "shrink domain.size_um or raise domain.field_coarsen"),
    "tumor": ("tumor.init.count", "lower tumor.init.count (its growth over time.days is counted too)"),
    "CAR-NK": ("nk.dose.cells", "lower nk.dose.cells (its expansion over time.days is counted too)"),
    "infused CAR-NK": ("dosing.infusions", "lower the dosing.infusions doses or dosing.tissue_fraction"),
    "vessels": ("dosing.vessels", "lower dosing.vessels.count or density_per_mm2"),
    "snapshots": ("time.snapshot_every_h", "raise time.snapshot_every_h or set output.snapshots: false"),
    "time series": ("time.output_every_h", "raise time.output_every_h"),
    "effectors": ("wellmixed.effector_cells", "lower wellmixed.effector_cells or wellmixed.omega"),
}


def _pow2(x: float) -> float:
    return 2.0 ** min(x, 1000.0)


def _wellmixed_effectors(w, days: float) -> tuple[float, float]:
    """(peak, total ever born) effector cells of the well-mixed run: the agent mean follows the
    Kuznetsov ODE (sim/reference/kuznetsov.py), so integrate it (with the births as a third state).
    If the solver fails, bound E by its largest per-capita growth rate instead."""
    s, p, g, m, d = (w.influx_cells_day, w.proliferation_per_day, w.proliferation_half_cells,
                     w.inactivation_per_cell_day, w.death_per_day)
    a, b, n = w.growth_per_day, w.inverse_capacity_per_cell, w.kill_per_cell_day
    E0, T0 = w.effector_cells, w.tumor_cells
    try:
        import numpy as np
        from scipy.integrate import solve_ivp

        def rhs(t, y):
            E, T, _ = y
            stim = p * E * T / (g + T)
            return [s + stim - m * E * T - d * E, a * T * (1.0 - b * T) - n * E * T, s + stim]

        with np.errstate(all="ignore"):
            sol = solve_ivp(rhs, (0.0, days), [E0, T0, E0], method="LSODA", rtol=1e-4, atol=1.0)
        if sol.success and np.all(np.isfinite(sol.y)):
            return float(sol.y[0].max()), float(sol.y[2, -1])
    except Exception:  # noqa: BLE001 - any solver trouble falls back to the bound
        pass
    t_star = max(0.0, math.sqrt(p * g / m) - g) if m > 0 else 1e300  # T that maximises p·T/(g+T) − m·T
    r = p * t_star / (g + t_star) - m * t_star - d
    if r < 0:  # dE/dt ≤ s + r·E
        peak = max(E0, s / -r)
    elif r == 0:
        peak = E0 + s * days
    else:
        peak = (E0 + s / r) * math.exp(min(700.0, r * days))
    return peak, peak + s * days


def estimate(cfg) -> Estimate:
    """The memory a run of this effective scenario needs at its peak (see the module docstring)."""
    e = Estimate()
    t = cfg.time
    days = t.days
    e.steps = int(round(days * MIN_PER_DAY / t.dt_min))
    e.rows = int(min(math.floor(days * 24.0 / t.output_every_h), e.steps)) + 1
    e.parts["time series"] = e.rows * B_ROW
    if cfg.domain.space != "lattice":
        w = cfg.wellmixed
        peak, born = _wellmixed_effectors(w, days)
        n_nk = w.effector_cells * w.omega
        e.parts["effectors"] = max(64.0, 4 * n_nk, 1.5 * peak * w.omega) * B_WM_AGENT + born * w.omega * 8.0  # + dead kills
        return e
    d = cfg.domain
    shape = d.lattice_shape()
    n_sites = float(shape[0] * shape[1] * shape[2])
    c = d.field_coarsen
    n_vox = float(math.prod(-(-n // c) for n in shape))
    e.parts["lattice"], e.transient["lattice"] = n_sites * B_SITE, n_sites * B_SITE_TMP
    e.parts["fields"], e.transient["fields"] = n_vox * B_VOXEL, n_vox * B_VOXEL_TMP

    n0 = cfg.tumor.init.count
    t_peak = min(n_sites, n0 * _pow2(days * 24.0 / cfg.tumor.doubling_time_h))
    slots0 = initial_tumor_slots(n0)  # then ×1.5 each time the tumor outgrows its slots
    e.parts["tumor"] = max(float(slots0), 1.5 * t_peak if t_peak > slots0 else 0.0, 16.0) * B_TUMOR_SLOT
    e.transient["tumor"] = n0 * B_TUMOR_SETUP

    dz = cfg.dosing
    per = dz.weight_kg if dz.unit == "cells_per_kg" else 1.0
    infused = sum(i.dose for i in dz.infusions) * per * dz.tissue_fraction
    nk0 = cfg.nk.dose.cells
    n_in = nk0 + infused
    if cfg.effector == "cart":
        x = cfg.cart.expansion
        nk_peak = min(n_in * _pow2(x.max_divisions), n_in + x.division_probability_per_kill * max(t_peak, n0 * _pow2(days * 24.0 / cfg.tumor.doubling_time_h)))
    else:
        il = cfg.nk.il15
        nk_peak = n_in * min(_pow2(il.max_divisions), math.exp(min(700.0, il.proliferation_per_day * days)))
    key = "infused CAR-NK" if infused > nk0 else "CAR-NK"
    e.parts[key] = max(2.0 * nk0, 1.5 * nk_peak, 16.0) * B_NK_SLOT + nk_peak * B_NK_AGENT
    e.transient[key] = nk0 * B_NK_SETUP
    if dz.infusions:
        v = dz.vessels
        if v.density_per_mm2 is not None:
            nv = v.density_per_mm2 * math.prod(s / 1000.0 for s in d.size_um)
        else:
            nv = float(v.count or 1)
        e.transient["vessels"] = nv * 16.0

    if cfg.output.snapshots and t.snapshot_every_h > 0:
        e.snapshot_files = int(min(math.floor(days * 24.0 / t.snapshot_every_h), e.steps)) + 1
        per_snap = n_vox * B_SNAP_VOXEL + (t_peak + nk_peak) * B_SNAP_CELL + 4096
        e.snapshot_bytes = e.snapshot_files * per_snap
        e.parts["snapshots"] = e.snapshot_bytes
    return e


# ------------------------------------------------------------------------------------ preflight
@dataclass
class Report:
    """What `preflight` found: the estimate (of the largest arm), the limit used and any warnings."""

    estimate: Estimate
    limit: float | None
    limit_source: str
    warnings: list[str]

    def summary(self) -> str:
        e = self.estimate
        lim = f" of {fmt_size(self.limit)} {self.limit_source}" if self.limit else ""
        snaps = (f"{e.snapshot_files} snapshot files (up to {fmt_size(e.snapshot_bytes)})" if e.snapshot_files
                 else "no snapshots")
        return f"memory ≈ {fmt_size(e.total)}{lim}; {e.steps} steps, {e.rows} time-series rows, {snaps}"


def preflight(source: Any, max_memory: int | None = None, arms: bool = True) -> Report:
    """Estimate the peak memory of a resolved scenario (each arm when `arms`) and refuse it with the
    estimate and the limit when it exceeds `max_memory` or the memory available now."""
    from .resolve import Effective, arm_effectives, resolve

    eff = source if isinstance(source, Effective) else resolve(source)
    src = getattr(eff, "source", None) or {}
    file = src.get("file")
    lines = src.get("lines", {})
    runs = [(None, eff)]
    if arms and eff.scenario.arms:
        runs = [(name, a) for name, a in arm_effectives(eff)]
    worst_name, worst = max(((n, estimate(a.scenario)) for n, a in runs), key=lambda x: x[1].total)
    avail, where = available_memory()
    if max_memory is not None and (avail is None or max_memory <= avail):
        limit, limit_source = float(max_memory), "(--max-memory)"
    else:
        limit, limit_source = (None, "") if avail is None else (float(avail), where)
    if limit is not None and worst.total > limit:
        comp = worst.largest()
        path, fix = FIXES.get(comp, ("", "make the scenario smaller"))
        keys = tuple(path.split(".")) if path else ()
        line = next((lines[keys[:k]] for k in range(len(keys), 0, -1) if keys[:k] in lines), None)
        arm = f" (arm {worst_name})" if worst_name else ""
        what = "the --max-memory limit" if limit_source == "(--max-memory)" else f"the {fmt_size(limit)} {where}"
        raise ScenarioError(path, f"needs about {fmt_size(worst.total)} of memory{arm} ({worst.breakdown() or comp}), "
                            f"more than {what}{f' ({fmt_size(limit)})' if limit_source == '(--max-memory)' else ''}; "
                            f"{fix}", line=line, file=file)
    warnings = []
    e = worst
    if e.snapshot_files > WARN_SNAPSHOT_FILES or e.snapshot_bytes > WARN_SNAPSHOT_BYTES:
        warnings.append(_where(file, lines, "time.snapshot_every_h") +
                        f"time.snapshot_every_h: writes {e.snapshot_files} snapshot files (up to {fmt_size(e.snapshot_bytes)}; "
                        f"warning above {WARN_SNAPSHOT_FILES} files or {fmt_size(WARN_SNAPSHOT_BYTES)}); "
                        "raise time.snapshot_every_h or set output.snapshots: false")
    if e.rows > WARN_TIMESERIES_ROWS:
        warnings.append(_where(file, lines, "time.output_every_h") +
                        f"time.output_every_h: writes {e.rows} time-series rows (warning above {WARN_TIMESERIES_ROWS}); "
                        "raise time.output_every_h")
    return Report(worst, limit, limit_source, warnings)


def _where(file, lines, path) -> str:
    keys = tuple(path.split("."))
    line = next((lines[keys[:k]] for k in range(len(keys), 0, -1) if keys[:k] in lines), None)
    if not file:
        return ""
    return f"{file}:{line}: " if line else f"{file}: "
