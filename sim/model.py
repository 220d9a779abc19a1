"""TumorImmuneModel: the Mesa model that owns the cell arrays, the fields and the clock.

It wires things together and holds no biology: every rule lives in `sim/kernels/`.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import mesa
from mesa.agent import AgentSet
import numpy as np

from . import scenario as cfgmod
from .agents import CARNKCell, CARTCell, TumorCell
from .agents.tumor import TumorCellSet
from .fields import CytokineFields
from .kernels import step as K
from .kernels.lattice import moore_offsets, occupancy_bits, pack_alive, pack_occupancy
from .kernels.params import FIELD_NAMES, IFNG, IL15, TGFB, NKParams, TumorParams
from .state import NKPopulation, TumorPopulation
from .scenario.preflight import nodule_box, preflight
from .scenario.resolve import resolve
from .therapy import Therapy
from .units import MIN_PER_DAY



def lognormal_levels(rng: np.random.Generator, n: int, mean: float, cv: float) -> np.ndarray:
    """Per-cell levels from a lognormal with the given mean and coefficient of variation."""
    if mean <= 0 or n == 0:
        return np.zeros(n, dtype=np.float32)
    if cv <= 0:
        return np.full(n, mean, dtype=np.float32)
    s2 = math.log1p(cv * cv)
    return rng.lognormal(math.log(mean) - s2 / 2, math.sqrt(s2), n).astype(np.float32)


def secretion_rate(q_ng_per_1e6_cells_day: float, voxel_volume_ml: float) -> float:
    """Convert a secretion rate in ng/(10⁶ cells·day) into ng/mL/min added to one field voxel."""
    return q_ng_per_1e6_cells_day * 1e-6 / MIN_PER_DAY / voxel_volume_ml


def nk_params(c: cfgmod.Scenario, voxel_volume_ml: float) -> NKParams:
    """Resolve the NK blocks of a scenario into kernel units (minutes, sites, ng/mL/min)."""
    nk, f = c.nk, c.fields
    armored = nk.il15.mode == "secreted"
    autocrine = nk.il15.mode in ("secreted", "membrane_bound")  # membrane-bound IL-15 signals only to its own cell
    p = NKParams(
        dt=c.time.dt_min, dims=c.domain.dims,
        sites_per_step=nk.motility.speed_um_min * c.time.dt_min / c.domain.spacing_um,
        persistence_min=nk.motility.persistence_min, tumor_bias=nk.motility.tumor_bias,
        car_expression=nk.receptors.car_expression, car_affinity=nk.receptors.car_affinity,
        nkg2d=nk.receptors.nkg2d, inhibitory=nk.receptors.inhibitory, cd16=nk.receptors.cd16,
        inhibitory_block=0.0,
        attach_rate=nk.activation.attach_rate_per_min, half_activation=nk.activation.half_activation,
        hill=nk.activation.hill, release_min=nk.activation.release_min,
        perforin=bool(nk.killing.perforin), kill_min=nk.killing.kill_time_min,
        max_granules=nk.killing.granules, regen_min=nk.killing.granule_regen_h * 60.0,
        dr_kill_min=nk.killing.death_receptor_kill_time_min, dr_capacity=nk.killing.death_receptor_capacity,
        exhaustion_stims=nk.killing.exhaustion_stimulations,
        half_life_min=nk.persistence.half_life_days * MIN_PER_DAY,
        il15_extension=nk.il15.half_life_extension, il15_ec50=nk.il15.ec50_ng_ml,
        prolif_rate=nk.il15.proliferation_per_day / MIN_PER_DAY, max_divisions=nk.il15.max_divisions,
        ifng_rate=secretion_rate(nk.secretion.ifng_engaged, voxel_volume_ml),
        ifng_exhausted_fraction=nk.secretion.ifng_exhausted_fraction,
        il15_rate=secretion_rate(nk.il15.secretion, voxel_volume_ml) if armored else 0.0,
        il15_autocrine=nk.il15.autocrine_ng_ml if autocrine else 0.0,
        tgfb_ic50=f.tgfb_effects.ic50_ng_ml, tgfb_activation_max=f.tgfb_effects.activation_max,
        tgfb_nkg2d_max=f.tgfb_effects.nkg2d_max, tgfb_ifng_max=f.tgfb_effects.ifng_max,
        tgfb_resistant=bool(f.tgfb_effects.resistant),
        mhc_max_fold=c.tumor.ifng_response.mhc_max_fold, tumor_ifng_ec50=c.tumor.ifng_response.ec50_ng_ml,
        apoptosis_delay_min=c.tumor.apoptosis_delay_min,
        stim_division_prob=0.0, memory_fraction=0.0, memory_half_life_min=nk.persistence.half_life_days * MIN_PER_DAY,
    )
    from .therapy.effectors import resolve_effector

    return resolve_effector(p, c, voxel_volume_ml)


def tumor_params(c: cfgmod.Scenario) -> TumorParams:
    """Resolve the tumor block into kernel units."""
    t = c.tumor
    return TumorParams(
        division_rate=math.log(2.0) / (t.doubling_time_h * 60.0),
        ifng_growth_max=t.ifng_response.growth_max_inhibition, ifng_ec50=t.ifng_response.ec50_ng_ml,
        apoptosis_delay_min=t.apoptosis_delay_min, clearance_min=t.clearance_min,
        antigen_loss=t.escape.antigen_loss_per_division,
    )


class TumorImmuneModel(mesa.Model):
    """CAR-NK cells against a tumor on a 2D/3D lattice, with IFN-γ, TGF-β and IL-15 fields.

    `TumorImmuneModel(config, rng=seed, **{"nk.persistence.half_life_days": 14})` accepts a
    Scenario, a dict, a YAML path or None, plus dotted overrides (so `mesa.batch_run` works).
    """

    def __init__(self, config: Any = None, *, rng: Any = None, seed: Any = None, scenario: Any = None, **overrides: Any):
        if scenario is not None and not hasattr(scenario, "rng"):
            config, scenario = scenario, None  # our scenario, not a mesa.experimental Scenario
        self.effective = resolve(config, overrides)  # the one resolution step (presets, rules, overrides)
        cfg = self.effective.scenario
        if cfg.domain.space == "well_mixed":
            raise cfgmod.ScenarioError("domain.space", "well_mixed has no lattice: use sim.wellmixed.WellMixedModel (sim.api.run picks it)")
        preflight(self.effective, arms=False)  # refuse before allocating what this machine does not have
        if rng is None and seed is None:
            rng = cfg.seed
        if seed is not None and rng is None:
            rng, seed = seed, None
        super().__init__(rng=rng, scenario=scenario)
        self.config = cfg
        self.seed = int(rng) if isinstance(rng, (int, np.integer)) else int(self._seed)
        c = cfg
        self.shape = c.domain.lattice_shape()
        self.n_sites = int(np.prod(self.shape))
        self.spacing_um = c.domain.spacing_um
        self.offsets = moore_offsets(c.domain.dims)
        self.occ = np.full(self.n_sites, -1, dtype=np.int32)
        self.occ_bits = occupancy_bits(self.occ)  # 1 bit per site, mirrors occ >= 0 (cache-friendly scans)
        self.alive_bits = np.zeros_like(self.occ_bits)  # 1 bit per site holding a live, not yet hit tumor cell
        fl = c.fields
        specs = [fl.ifng, fl.tgfb, fl.il15]
        self.fields = CytokineFields(
            self.shape, c.domain.spacing_um, c.domain.field_coarsen, FIELD_NAMES,
            [s.diffusion_um2_min for s in specs], [s.half_life_min for s in specs], [s.background_ng_ml for s in specs],
        )
        self.fshape = tuple(int(x) for x in self.fields.shape)
        self.vox_tumor = np.zeros(int(np.prod(self.fshape)), dtype=np.int64)
        self.vox_stroma = np.zeros_like(self.vox_tumor)
        self.p_nk = nk_params(c, self.fields.voxel_volume_ml)
        self.p_tumor = tumor_params(c)
        self.tgfb_rate = secretion_rate(c.tumor.tgfb_secretion, self.fields.voxel_volume_ml)
        self.stroma_rate = secretion_rate(fl.stroma.tgfb_secretion, self.fields.voxel_volume_ml) if fl.stroma.enabled else 0.0
        self.tstats = np.zeros(8, dtype=np.float64)
        self.counters = np.zeros(8, dtype=np.int64)
        self.now_min = 0.0
        self.dt = c.time.dt_min
        self._tumor_every = max(1, int(round(c.time.tumor_dt_min / self.dt)))
        self._field_every = max(1, int(round(c.time.field_dt_min / self.dt)))
        self.nk_exposure_min = 0.0  # NK-minutes lived, for the persistence half-life estimate
        self._dead_kills: list[np.ndarray] = []
        self.tumor = TumorPopulation(max(16, 2 * c.tumor.init.count))
        self.nk = NKPopulation(max(16, 2 * c.nk.dose.cells))
        self._nk_agents: list[CARNKCell | None] = []
        # Time-dependent inputs (dosing, drug pharmacokinetics, ...) register callables here;
        # each is called as hook(model) at the start of every step, before the kernels run.
        self.hooks: list = []
        self.car_positive_fraction = 1.0  # share of added NK cells that carry the CAR (set by the product)
        self._place_tumor()
        self._place_stroma()
        self.therapy = Therapy(self)  # product lot, cold chain, dosing/blood, IL-15 and suicide hooks
        self._place_nk(c.nk.dose.cells if self.therapy.released else 0)
        from .therapy.companions import install

        install(self)  # companion drugs, tumor escape, toxicity monitor (sim/therapy/companions.py)
        self.datacollector = mesa.DataCollector(model_reporters=self.reporters())
        self.datacollector.collect(self)
        self._next_output = c.time.output_every_h * 60.0

    # ----------------------------------------------------------------------------------- set-up
    def _centre(self) -> np.ndarray:
        return (np.array(self.shape, dtype=np.float64) - 1) / 2.0

    def _coords(self, sites: np.ndarray) -> np.ndarray:
        nx, ny, nz = self.shape
        return np.stack(np.unravel_index(sites, self.shape), axis=1)

    def _nodule_sites(self, count: int) -> np.ndarray:
        """The `count` sites nearest the domain centre (a disc or sphere); ties go to the lower site index.

        Works slab by slab on exact integer keys 4·d² (the centre is on a half-integer grid), so memory
        stays O(one slab) even for 10⁷ cells.
        """
        c = self._centre()
        lo, hi = nodule_box(self.shape, self.config.domain.dims, count)  # the box check_feasible tests
        if count > int(np.prod(hi - lo)):
            raise cfgmod.ScenarioError("tumor.init.count", f"{count} cells do not fit in the domain; enlarge domain.size_um")
        c2 = np.rint(2 * c).astype(np.int64)  # 2·centre is an integer
        key = [(2 * np.arange(lo[a], hi[a], dtype=np.int64) - c2[a]) ** 2 for a in range(3)]
        plane = (key[1][:, None] + key[2][None, :]).ravel()  # 4·(dy² + dz²) over one x-slab
        pk = np.sort(plane)

        def n_below(k: int) -> int:  # sites with 4·d² < k in the box
            return int(np.searchsorted(pk, k - key[0], side="left").sum())

        a, b = 0, int(key[0].max() + pk[-1]) + 1  # smallest k with n_below(k + 1) >= count
        while a < b:
            m = (a + b) // 2
            if n_below(m + 1) >= count:
                b = m
            else:
                a = m + 1
        need_ties = count - n_below(a)
        yz = np.ravel_multi_index(np.meshgrid(np.arange(lo[1], hi[1]), np.arange(lo[2], hi[2]), indexing="ij"),
                                  self.shape[1:]).ravel()
        out = []
        for i, x in enumerate(range(lo[0], hi[0])):
            k = key[0][i] + plane
            base = x * self.shape[1] * self.shape[2]
            out.append(base + yz[k < a])
            if need_ties > 0:
                tie = base + yz[k == a][:need_ties]
                need_ties -= tie.size
                out.append(tie)
        return np.sort(np.concatenate(out)).astype(np.int64)

    def _place_tumor(self) -> None:
        c = self.config
        n = c.tumor.init.count
        if n > self.n_sites:
            raise cfgmod.ScenarioError("tumor.init.count", f"{n} cells exceed the {self.n_sites} lattice sites; enlarge domain.size_um")
        if c.tumor.init.shape == "nodule":
            sites = self._nodule_sites(n)
        else:
            sites = np.sort(self.rng.choice(self.n_sites, size=n, replace=False)).astype(np.int64)
        rng, ag = self.rng, c.tumor.antigen
        antigen = lognormal_levels(rng, n, ag.mean, ag.cv)
        antigen[rng.random(n) < ag.negative_fraction] = 0.0
        mhc = lognormal_levels(rng, n, c.tumor.mhc_i.mean, c.tumor.mhc_i.cv)
        ligand = lognormal_levels(rng, n, c.tumor.nkg2d_ligand.mean, c.tumor.nkg2d_ligand.cv)
        self.add_tumor(sites, antigen, mhc, ligand)
        self.initial_radius = (n / (math.pi if c.domain.dims == 2 else 4 / 3 * math.pi)) ** (1 / c.domain.dims)

    def add_tumor(self, sites, antigen, mhc, ligand) -> np.ndarray:
        """Add live tumor cells at free sites with given phenotypes; returns their slot indices."""
        sites = np.asarray(sites, dtype=np.int64)
        if sites.size != np.unique(sites).size or (self.occ[sites] >= 0).any():
            raise ValueError("tumor sites must be distinct and free")
        t, n = self.tumor, sites.size
        t.ensure(n)
        sl = slice(t.used, t.used + n)
        t.site[sl] = sites
        t.antigen[sl] = np.broadcast_to(np.asarray(antigen, dtype=np.float32), (n,))
        t.mhc[sl] = np.broadcast_to(np.asarray(mhc, dtype=np.float32), (n,))
        t.ligand[sl] = np.broadcast_to(np.asarray(ligand, dtype=np.float32), (n,))
        t.coat[sl] = 0.0
        t.state[sl] = K.T_ALIVE
        t.timer[sl] = self.rng.exponential(1.0 / self.p_tumor.division_rate, n)
        idx = np.arange(t.used, t.used + n)
        t.used += n
        self.occ[sites] = idx.astype(np.int32)
        self.pack_bitmaps()
        npos = int((t.antigen[sl] > 0).sum())
        self.tstats[K.S_LIVE] += n
        self.tstats[K.S_AGPOS] += npos
        self.tstats[K.S_AGNEG] += n - npos
        xyz_sum = np.zeros(3, dtype=np.int64)
        for k in range(0, n, 1 << 20):  # chunks: no (n, 3) coordinate array at 10⁷ cells
            chunk = sites[k : k + (1 << 20)]
            xyz_sum += self._coords(chunk).sum(axis=0)
            self._count_voxels(self.vox_tumor, chunk)
        self.tstats[K.S_SX : K.S_SZ + 1] += xyz_sum
        return idx

    def _count_voxels(self, counts: np.ndarray, sites: np.ndarray) -> None:
        """Add one to `counts` at the field voxel of each site (like np.add.at, but O(voxels + sites) fast)."""
        counts += np.bincount(self._voxels(sites), minlength=counts.size).astype(counts.dtype)

    def pack_bitmaps(self) -> None:
        """Rebuild the occupancy and live-tumor bitmaps from `occ` and the tumor states."""
        pack_occupancy(self.occ, self.occ_bits)
        pack_alive(self.occ, self.tumor.state, K.T_ALIVE, self.alive_bits)

    def _voxels(self, sites: np.ndarray) -> np.ndarray:
        co = self.config.domain.field_coarsen
        xyz = self._coords(sites) // co
        return np.ravel_multi_index(xyz.T, self.fshape)

    def _shell_sites(self, r_in: float, r_out: float) -> np.ndarray:
        """Sites whose distance from the tumor centre lies in [r_in, r_out) (in sites), in index order.

        Scans only the bounding box of the outer sphere, slab by slab (memory O(slab), not O(lattice)).
        """
        c = self.centroid()
        lo = np.maximum(np.floor(c - r_out) - 1, 0).astype(int)
        hi = np.minimum(np.ceil(c + r_out) + 2, self.shape).astype(int)
        if np.any(hi <= lo):
            return np.zeros(0, dtype=np.int64)
        d2 = [(np.arange(lo[a], hi[a], dtype=np.int64) - c[a]) ** 2 for a in range(3)]
        yz = np.ravel_multi_index(np.meshgrid(np.arange(lo[1], hi[1]), np.arange(lo[2], hi[2]), indexing="ij"),
                                  self.shape[1:]).ravel()
        out = [np.zeros(0, dtype=np.int64)]
        for i, x in enumerate(range(lo[0], hi[0])):
            d = np.sqrt((d2[0][i] + d2[1][:, None]) + d2[2][None, :]).ravel()
            out.append(x * self.shape[1] * self.shape[2] + yz[(d >= r_in) & (d < r_out)])
        return np.concatenate(out).astype(np.int64)

    def _place_stroma(self) -> None:
        s = self.config.fields.stroma
        if not s.enabled or s.thickness_um <= 0:
            return
        r = self.initial_radius
        shell = self._shell_sites(r, r + s.thickness_um / self.spacing_um)
        self._count_voxels(self.vox_stroma, shell)

    def _place_nk(self, n: int) -> None:
        """Put `n` fresh CAR-NK cells on tumor-free sites (random, or a ring around the tumor)."""
        if n <= 0:
            return
        free = None
        if self.config.nk.dose.placement == "rim":
            r = self.initial_radius
            free = self._shell_sites(r + 1, r + 4)
            free = free[self.occ[free] < 0]
        if free is None or free.size == 0:
            draws = self.rng.integers(0, self.n_sites, size=4 * n + 64)
            free = draws[self.occ[draws] < 0]
        sites = self.rng.choice(free, size=n, replace=free.size < n)
        self.add_nk(sites)

    def add_nk(self, sites: np.ndarray) -> list[CARNKCell]:
        """Add fresh CAR-NK cells at the given lattice sites (used by dosing); returns their agents."""
        nk, p = self.nk, self.p_nk
        n = len(sites)
        nk.ensure(n)
        sl = slice(nk.used, nk.used + n)
        nk.site[sl] = sites
        nk.state[sl] = K.NK_FREE
        nk.target[sl] = -1
        nk.granules[sl] = p.max_granules
        nk.dr_left[sl] = p.dr_capacity
        nk.stims[sl] = 0
        nk.kills[sl] = 0
        nk.divisions[sl] = 0
        nk.born_min[sl] = self.now_min
        nk.car[sl] = p.car_expression
        if self.car_positive_fraction < 1.0:
            nk.car[sl][self.rng.random(n) >= self.car_positive_fraction] = 0.0
        if p.memory_fraction > 0:
            nk.memory[sl] = self.rng.random(n) < p.memory_fraction
        d = self.rng.normal(size=(n, 3))
        if self.config.domain.dims == 2:
            d[:, 2] = 0
        d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
        nk.direction[sl] = d
        idx = range(nk.used, nk.used + n)
        nk.used += n
        return [self._new_agent(i) for i in idx]

    def remove_nk(self, idx: np.ndarray) -> None:
        """Remove live NK cells (suicide switch, drug depletion), keeping their kills for the statistics."""
        nk = self.nk
        idx = np.asarray(idx, dtype=np.int64)
        idx = idx[nk.state[idx] != K.NK_EMPTY]
        if idx.size == 0:
            return
        nk.state[idx] = K.NK_EMPTY
        nk.target[idx] = -1
        self._retire_agents(idx)

    def _retire_agents(self, idx: np.ndarray) -> None:
        """Keep dead NK cells' kills for the statistics and deregister their Mesa agents."""
        self._dead_kills.append(self.nk.kills[idx].copy())
        for i in idx:
            a = self._nk_agents[i]
            if a is not None:
                a.remove()
                self._nk_agents[i] = None

    def _new_agent(self, i: int) -> CARNKCell:
        while len(self._nk_agents) <= i:
            self._nk_agents.append(None)
        a = (CARTCell if self.config.effector == "cart" else CARNKCell)(self, i)
        self._nk_agents[i] = a
        return a

    # ----------------------------------------------------------------------------------- views
    def centroid(self) -> np.ndarray:
        """Centroid of live tumor cells (lattice coordinates); the domain centre when none are left."""
        n = self.tstats[K.S_LIVE]
        if n <= 0:
            return self._centre()
        return self.tstats[K.S_SX : K.S_SZ + 1] / n

    def tumor_count(self) -> int:
        return int(self.tstats[K.S_LIVE])

    def nk_live(self) -> int:
        return int((self.nk.state[: self.nk.used] != K.NK_EMPTY).sum())

    def nk_exhausted(self) -> int:
        nk = self.nk
        live = nk.state[: nk.used] != K.NK_EMPTY
        return int((live & (nk.stims[: nk.used] >= self.p_nk.exhaustion_stims)).sum())

    def tumor_cells(self, indices: np.ndarray | None = None) -> AgentSet:
        """TumorCell views (built on request, never registered) as a Mesa AgentSet."""
        t = self.tumor
        if indices is None:
            st = t.state[: t.used]
            indices = np.flatnonzero((st == K.T_ALIVE) | (st == K.T_DOOMED))
        return TumorCellSet([TumorCell(self, int(i)) for i in indices], random=self.random)

    def reporters(self) -> dict:
        """Model reporters for mesa.DataCollector: the time series columns."""
        f = self.fields
        return {
            "time_h": lambda m: m.now_min / 60.0,
            "tumor": lambda m: m.tumor_count(),
            "tumor_ag_pos": lambda m: int(m.tstats[K.S_AGPOS]),
            "tumor_ag_neg": lambda m: int(m.tstats[K.S_AGNEG]),
            "nk_live": lambda m: m.nk_live(),
            "nk_exhausted": lambda m: m.nk_exhausted(),
            "kills_car": lambda m: int(m.counters[K.C_KILL0 + 0]),
            "kills_innate": lambda m: int(m.counters[K.C_KILL0 + 1]),
            "kills_adcc": lambda m: int(m.counters[K.C_KILL0 + 2]),
            "mean_ifng_ng_ml": lambda m: f.mean("ifng"),
            "mean_tgfb_ng_ml": lambda m: f.mean("tgfb"),
            "mean_il15_ng_ml": lambda m: f.mean("il15"),
            "nk_blood": lambda m: m.therapy.blood_cells(),  # patient-level CAR-NK in blood (0 without dosing)
            **getattr(self, "extra_reporters", {}),
        }

    # ----------------------------------------------------------------------------------- stepping
    def step(self) -> None:
        """Advance one cell step (dt); tumor events and fields run at their own slower cadence."""
        c = self.config
        k = self.steps  # mesa increments steps before calling step(); k >= 1
        for hook in self.hooks:
            hook(self)
        nk, t = self.nk, self.tumor
        nk.ensure(nk.used + 1)  # an NK cell divides at most once per step
        born = np.empty(nk.used + 1, dtype=np.int64)
        died = np.empty(nk.used + 1, dtype=np.int64)
        f = self.fields
        fvals = f.values.reshape(len(FIELD_NAMES), -1)
        fsrc = f.sources.reshape(len(FIELD_NAMES), -1)
        nb, nd, live_before = K.nk_step(
            self.rng, self.now_min, self.p_nk, self.shape, self.fshape, c.domain.field_coarsen, self.offsets,
            self.centroid(), self.occ, t.antigen, t.mhc, t.ligand, t.coat, t.state, t.timer,
            nk.used, nk.site, nk.direction, nk.state, nk.target, nk.timer, nk.route, nk.granules, nk.dr_left,
            nk.stims, nk.kills, nk.divisions, fvals, f.background, fsrc, self.dt / (self._field_every * self.dt),
            self.counters, born, died, nk.car, nk.memory, self.occ_bits, t.site, self.alive_bits,
            f.nonzero_now(),
        )
        self.nk_exposure_min += live_before * self.dt
        if nd:
            self._retire_agents(died[:nd])
        if nb:
            nk.born_min[born[:nb]] = self.now_min + self.dt
            first = nk.used
            nk.used += nb
            for i in range(first, nk.used):
                self._new_agent(i)
        if k % self._tumor_every == 0:
            t.ensure(8 * max(1, int(self.tstats[K.S_LIVE] * 0.05)) + 64)
            t_now, t_dt = self.now_min - (self._tumor_every - 1) * self.dt, self._tumor_every * self.dt
            due, n_live_due = K.due_cells(t.used, t.state, t.timer, t_now + t_dt)
            # room for the worst case, every due live cell dividing once (free slots are reused first)
            t.ensure(max(0, n_live_due - t.n_free) + 64)
            t.used, t.n_free = K.tumor_step(
                self.rng, t_now, t_dt, self.p_tumor,
                self.shape, self.fshape, c.domain.field_coarsen, self.offsets, self.occ,
                t.used, t.site, t.antigen, t.mhc, t.ligand, t.coat, t.state, t.timer,
                t.free_slots, t.n_free, fvals, f.background, self.tstats, self.vox_tumor, self.occ_bits,
                self.alive_bits, due,
            )
        if k % self._field_every == 0:
            self._secrete_tissue_sources()
            f.step(self._field_every * self.dt)
        self.now_min += self.dt
        if nk.used > 1024 and nk.used > 2 * (live_before + nb - nd):
            self._compact_nk()
        if self.now_min + 1e-9 >= self._next_output:
            self.datacollector.collect(self)
            self._next_output += c.time.output_every_h * 60.0

    def _secrete_tissue_sources(self) -> None:
        """TGF-β from live tumor cells and stroma, accumulated per voxel (cost ∝ voxels, not cells)."""
        src = self.fields.sources[TGFB].reshape(-1)
        if self.tgfb_rate:
            src += self.vox_tumor * self.tgfb_rate
        if self.stroma_rate:
            src += self.vox_stroma * self.stroma_rate

    def _compact_nk(self) -> None:
        keep = self.nk.compact()
        agents = [self._nk_agents[i] for i in keep]
        for new, a in enumerate(agents):
            a.idx = new
        self._nk_agents = agents

    def run_for(self, days: float, progress=None) -> None:
        """Run for `days` simulated days; `progress(model)` is called after each step if given."""
        n = int(round(days * MIN_PER_DAY / self.dt))
        for _ in range(n):
            self.step()
            if progress is not None:
                progress(self)

    # ----------------------------------------------------------------------------------- outputs
    def kills_per_nk(self) -> np.ndarray:
        """Kills of every NK cell that ever lived in this run (live and dead)."""
        nk = self.nk
        live = nk.kills[: nk.used][nk.state[: nk.used] != K.NK_EMPTY]
        return np.concatenate([live.astype(np.int64)] + [d.astype(np.int64) for d in self._dead_kills])

    def observed_nk_half_life_days(self) -> float | None:
        """Maximum-likelihood NK half-life from persistence deaths and NK-time at risk."""
        deaths = int(self.counters[K.C_NKDEATH])
        if deaths == 0:
            return None
        return math.log(2.0) * self.nk_exposure_min / deaths / MIN_PER_DAY

    def snapshot(self) -> dict[str, np.ndarray]:
        """Positions and phenotypes of all cells plus total field concentrations, for .npz output."""
        t, nk = self.tumor, self.nk
        st = t.state[: t.used]
        alive = np.flatnonzero((st == K.T_ALIVE) | (st == K.T_DOOMED))
        nlive = np.flatnonzero(nk.state[: nk.used] != K.NK_EMPTY)
        out = {
            "time_h": np.float64(self.now_min / 60.0),
            "lattice_shape": np.array(self.shape),
            "spacing_um": np.float64(self.spacing_um),
            "tumor_xyz": self._coords(t.site[alive]).astype(np.int32),
            "tumor_antigen": t.antigen[alive],
            "tumor_doomed": st[alive] == K.T_DOOMED,
            "nk_xyz": self._coords(nk.site[nlive]).astype(np.int32),
            "nk_exhausted": nk.stims[nlive] >= self.p_nk.exhaustion_stims,
            "nk_kills": nk.kills[nlive],
            "field_names": np.array(FIELD_NAMES),
            "field_coarsen": np.int64(self.config.domain.field_coarsen),
        }
        for name in FIELD_NAMES:
            out[name] = self.fields.concentration(name).astype(np.float32)
        return out
