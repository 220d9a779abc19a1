"""TumorImmuneModel: the Mesa model that owns the cell arrays, the fields and the clock.

It wires things together and holds no biology: every rule lives in `sim/kernels/`.
"""
from __future__ import annotations

import math
import operator
from typing import Any

import mesa
from mesa.agent import AgentSet
import numpy as np

from . import scenario as cfgmod
from .agents import CARNKCell, CARTCell, TumorCell
from .agents.tumor import TumorCellSet
from .domain_watch import DomainWatch
from . import section
from .fields import CytokineFields
from .interrupts import run_steps
from .kernels import step as K
from .kernels.killing import is_exhausted
from .kernels.lattice import count_immune, distinct_free_sites, moore_offsets, occupancy_bits, pack_alive, pack_occupancy
from .kernels.params import FIELD_NAMES, IL15, TGFB
from .kernels.phenotype import lognormal_levels
from .kernels.records import (
    NK_COUNTS, TUMOR_STATS, FieldsType, LatticeType, NKStepType, ParamsRecords, TalliesType, make_record, tumor_centroid,
)
from .kernels.streams import GeneratorRecord
from .scenario.kernel_units import nk_params, tissue_tgfb_rates, tumor_params
from .scenario.preflight import initial_tumor_slots, nodule_box, preflight
from .scenario.resolve import resolve
from .state import NKPopulation, Tally, TumorPopulation
from .therapy import Therapy
from .therapy.companions import install as install_companions
from .therapy.modulators import Modulation
from .units import MIN_PER_DAY



def _levels(v, n: int) -> np.ndarray:
    """A per-cell float32 array of n values from a scalar or an array (what the cell arrays store)."""
    return np.ascontiguousarray(np.broadcast_to(np.asarray(v, dtype=np.float32), (n,)))


class _SyncedAgentSet(mesa.agentset._HardKeyAgentSet):
    """Mesa's agent set of the model's registry (all agents; the effector class's), brought up to date
    by the model (`TumorImmuneModel._sync_registry`) whenever its contents are used: every method,
    Mesa's own included, goes through `_agents`. A reference to the set held across steps therefore
    sees what eager registration would show."""

    def __init__(self, agents, random=None, sync=None):
        self._store: dict = {}
        self._sync = sync  # None in the copies Mesa's own methods make (`select`, ...)
        super().__init__(agents, random=random)

    @property
    def _agents(self) -> dict:
        if self._sync is not None:
            self._sync()
        return self._store

    @_agents.setter
    def _agents(self, value: dict) -> None:
        self._store = value


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
        # volume exclusion: immune cells standing on each site (at most p_nk.immune_cap; kept by the kernels)
        self.nk_count = np.zeros(self.n_sites, dtype=np.uint16)
        fl = c.fields
        specs = [fl.ifng, fl.tgfb, fl.il15]
        self.fields = CytokineFields(
            self.shape, c.domain.spacing_um, c.domain.field_coarsen, FIELD_NAMES,
            [s.diffusion_um2_min for s in specs], [s.half_life_min for s in specs], [s.background_ng_ml for s in specs],
            large_grid_transform=np.float64 if c.domain.field_precision == "double" else None,
        )
        self.fshape = tuple(int(x) for x in self.fields.shape)
        self.vox_tumor = np.zeros(int(np.prod(self.fshape)), dtype=np.int64)
        self.vox_stroma = np.zeros_like(self.vox_tumor)
        self.p_nk_base = nk_params(c, self.fields.voxel_volume_ml)  # static: resolution (+ the lot, set by Therapy)
        self.p_nk = self.p_nk_base  # what the kernels read this step: the base under the declared modulators
        self.p_tumor = tumor_params(c)
        self.tgfb_rate, self.stroma_rate = tissue_tgfb_rates(c, self.fields.voxel_volume_ml)
        # IL-15 uptake: the share of a voxel one effector cell clears per minute (1/min per cell)
        self.il15_uptake_per_cell = c.nk.il15.uptake_um3_per_min * 1e-12 / self.fields.voxel_volume_ml
        self.tstats = np.zeros(len(TUMOR_STATS), dtype=np.float64)
        self.counters = np.zeros(8, dtype=np.int64)
        self.next_ids = np.zeros(2, dtype=np.int64)  # the next run-wide cell id: [tumor, NK] (never reused)
        self.now_min = 0.0
        self.dt = c.time.dt_min
        self._tumor_every = max(1, int(round(c.time.tumor_dt_min / self.dt)))
        self._field_every = max(1, int(round(c.time.field_dt_min / self.dt)))
        self.nk_exposure_min = 0.0  # NK-minutes lived, for the persistence half-life estimate
        self._dead_kills: list[np.ndarray] = []
        self.tumor = TumorPopulation(initial_tumor_slots(c.tumor.init.count))
        self.nk = NKPopulation(max(16, 2 * c.nk.dose.cells))
        # per NK slot: its Mesa agent; an int, the agent's reserved unique_id, while it is not built yet
        # (daughters and cells arriving from blood get theirs when the registry is next looked at:
        # `_sync_registry`); None for a dead slot. Agents of dead cells wait in _dead_agents likewise.
        self._nk_agents: list[CARNKCell | int | None] = []
        self._n_pending = 0
        self._dead_agents: list = []
        self._all_agents = _SyncedAgentSet(self._all_agents, random=self.random, sync=self._sync_registry)
        # boundary contact and fill; an open section sends blocked daughters out (sim/section.py)
        self.domain_watch = DomainWatch(self.n_sites, c.name, c.domain.section.boundary == "open")
        # Time-varying parameter effects (drug occupancy, ligand shedding, systemic IL-15) are declared
        # modulators, evaluated once per step from p_nk_base. Events that add, remove or mark cells
        # (infusions, chemotherapy, suicide switch, antibody coating) register hook(model) callables,
        # called after the modulators at the start of every step, before the kernels run.
        self.modulation = Modulation()
        self.hooks: list = []
        self.car_positive_fraction = 1.0  # share of added NK cells that carry the CAR (set by the product)
        self._place_tumor()
        self.domain_watch.update(self.tstats, self.now_min, setup=True)
        self.section_state = section.new_state(self.tstats)  # the tumor outside a sample (sim/section.py)
        self._sample = c.domain.section.represents == "sample"
        self._place_stroma()
        self.therapy = Therapy(self)  # product lot, cold chain, dosing/blood, IL-15 and suicide hooks
        self._place_nk(c.nk.dose.cells if self.therapy.released else 0)
        install_companions(self)  # companion drugs, tumor escape, toxicity monitor (sim/therapy/companions.py)
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

    def add_tumor(self, sites, antigen, mhc, ligand, ag_clone=None) -> np.ndarray:
        """Add live tumor cells at free sites with given phenotypes; returns their slot indices.
        `ag_clone` is the antigen level of each cell's clone (its antigen fluctuates around it on division);
        by default the scenario's mean antigen for antigen-positive cells and 0 for antigen-negative ones."""
        sites = np.asarray(sites, dtype=np.int64)
        if sites.ndim != 1 or not distinct_free_sites(sites, self.occ):
            raise ValueError("tumor sites must be a 1-D array of sites distinct, free and on the lattice")
        t, n = self.tumor, sites.size
        t.ensure(n)
        first = t.used
        if n:
            antigen = _levels(antigen, n)
            if ag_clone is None:
                ag_clone = np.where(antigen > 0, np.float32(self.config.tumor.antigen.mean), np.float32(0.0))
            lat, tally = self._lattice_records()
            K.start_tumor_cells(self._kernel_rng(), self.now_min, self._tumor_params(self.p_tumor), t.record, lat,
                                tally, first, sites, antigen, _levels(ag_clone, n), _levels(mhc, n), _levels(ligand, n))
        t.used += n
        return np.arange(first, first + n)

    def _count_voxels(self, counts: np.ndarray, sites: np.ndarray) -> None:
        """Add one to `counts` at the field voxel of each site (like np.add.at, but O(voxels + sites) fast)."""
        counts += np.bincount(self._voxels(sites), minlength=counts.size).astype(counts.dtype)

    def pack_bitmaps(self) -> None:
        """Rebuild the occupancy and live-tumor bitmaps from `occ` and the tumor states, and the per-site
        immune counts from the NK positions (`recount_immune`)."""
        pack_occupancy(self.occ, self.occ_bits)
        pack_alive(self.occ, self.tumor.state, K.T_ALIVE, self.alive_bits)
        self.recount_immune()

    def recount_immune(self, out: np.ndarray | None = None) -> np.ndarray:
        """The immune cells per site counted from the live cells' positions, into `nk_count` (or `out`)."""
        nk = self.nk
        out = self.nk_count if out is None else out
        count_immune(nk.site[: nk.used], nk.state[: nk.used] != K.NK_EMPTY, out)
        return out

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
        """Put `n` fresh CAR-NK cells on tumor-free sites with room (random, or a ring around the tumor);
        cells that find no room there go to random sites with room anywhere (ScenarioError if the
        domain cannot hold them)."""
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
        missing = n - len(self.add_nk(sites, crowded_out=False))
        if missing > 0:  # the chosen sites were full: spread the rest over the room left (set-up only, O(sites))
            cap = self.p_nk.immune_cap
            room = np.flatnonzero((self.occ < 0) & (self.nk_count < cap))
            slots = np.repeat(room, cap - self.nk_count[room].astype(np.int64))
            if slots.size < missing:
                raise cfgmod.ScenarioError("nk.dose.cells", f"{n} cells do not fit in the domain at {cap} immune cells "
                                           "per site (nk.crowding); enlarge domain.size_um or lower the dose")
            self.add_nk(self.rng.choice(slots, size=missing, replace=False), crowded_out=False)

    def add_nk(self, sites: np.ndarray, crowded_out: bool = True) -> list[CARNKCell]:
        """Add fresh CAR-NK cells at the given lattice sites (used by dosing); returns their agents.

        Volume exclusion (`lattice.place_immune_cells`): a cell whose site holds a tumor cell or is full
        takes a random neighbour with room, else it is not added (counted in
        `domain_watch.crowded_out` if `crowded_out`), so fewer agents than sites may come back."""
        return [self._new_agent(i) for i in self._start_nk(sites, crowded_out)]

    def _add_nk_at_vessels(self, vessels: np.ndarray, n: int) -> range:
        """`add_nk` for the therapy layer: `n` cells at sites drawn from `vessels` with replacement, as
        ``vessels[rng.integers(0, vessels.size, size=n)]`` draws them, placed and started in one kernel
        call (`kernels.step.arrive_at_vessels`); their agents are built when Mesa's registry is next
        read (`_reserve_agents`). Returns their slots."""
        nk = self.nk
        nk.ensure(n)
        lat, tally = self._lattice_records()
        placed, lost = K.arrive_at_vessels(self._kernel_rng(), vessels, int(n), nk.record, nk.used, lat, tally,
                                           float(self.car_positive_fraction), self.now_min, self._nk_params(self.p_nk))
        if placed < 0:
            raise ValueError("NK sites must be lattice sites (0 <= site < n_sites)")
        self.domain_watch.crowded_out += lost
        slots = range(nk.used, nk.used + placed)
        nk.used += placed
        self._reserve_agents(slots.start, slots.stop)
        return slots

    def _start_nk(self, sites: np.ndarray, crowded_out: bool = True) -> range:
        """Start fresh CAR-NK cells in the arrays (no agents yet), placed by volume exclusion; returns their slots."""
        nk = self.nk
        sites = np.asarray(sites, dtype=np.int64).reshape(-1)
        nk.ensure(sites.size)
        lat, tally = self._lattice_records()
        # placement, CAR+ share, the start-up rule (direction, memory fate, full granules and DR
        # capacity) and run-wide ids in one kernel call (`kernels.step.arrive_nk_cells`)
        n, lost = K.arrive_nk_cells(self._kernel_rng(), nk.record, nk.used, sites, lat, tally,
                                    float(self.car_positive_fraction), self.now_min, self._nk_params(self.p_nk))
        if n < 0:
            raise ValueError("NK sites must be lattice sites (0 <= site < n_sites)")
        if crowded_out:
            self.domain_watch.crowded_out += lost
        idx = range(nk.used, nk.used + n)
        nk.used += n
        return idx

    def _assign_nk_ids(self, slots: np.ndarray) -> None:
        """Fresh run-wide ids for NK cells just started in `slots` (infused cells and daughters)."""
        n = len(slots)
        self.nk.cell_id[slots] = np.arange(self.next_ids[1], self.next_ids[1] + n)
        self.next_ids[1] += n

    def free_site(self) -> int:
        """A random tumor-free lattice site (where `CARNKCell(model)` puts a new cell)."""
        for _ in range(1000):
            s = int(self.rng.integers(0, self.n_sites))
            if self.occ[s] < 0:
                return s
        free = np.flatnonzero(self.occ < 0)
        if free.size == 0:
            raise ValueError("no tumor-free site left on the lattice")
        return int(self.rng.choice(free))

    def remove_nk(self, idx: np.ndarray) -> None:
        """Remove live NK cells (suicide switch, drug depletion), keeping their kills for the statistics."""
        nk = self.nk
        idx = np.asarray(idx, dtype=np.int64)
        idx = idx[nk.state[idx] != K.NK_EMPTY]
        if idx.size == 0:
            return
        nk.state[idx] = K.NK_EMPTY
        nk.target[idx] = -1
        np.subtract.at(self.nk_count, nk.site[idx], np.uint16(1))  # idx are distinct live cells
        self._retire_agents(idx)

    def _retire_agents(self, idx: np.ndarray) -> None:
        """Keep dead NK cells' kills for the statistics and deregister their Mesa agents, at once if
        the registry is observed, else at its next read (`_sync_registry`); a cell whose agent was not
        built yet just gives up its reserved id."""
        self._dead_kills.append(self.nk.kills[idx].copy())
        agents = self._nk_agents
        observed = None
        for i in idx.tolist():
            a = agents[i]
            if a is None:
                continue
            agents[i] = None
            if type(a) is int:
                self._n_pending -= 1
                continue
            if observed is None:
                observed = self._registry_observed()
            if observed:
                mesa.Agent.remove(a)  # deregister only: the cell is already dead in the arrays
            else:
                self._dead_agents.append(a)  # deregistered when the registry is next looked at

    def remove_tumor(self, idx: np.ndarray) -> None:
        """Remove tumor cells now (what `TumorCell.remove()` does): each goes through the tumor kernel's
        own death and clearance events at once (`tumor_step` on just these slots: the running totals,
        the deaths tally, the lattice, both bitmaps, the free-slot list and the waking of quiescent
        neighbours), as if it had been hit with no apoptosis or clearance delay."""
        t = self.tumor
        idx = np.unique(np.asarray(idx, dtype=np.int64).reshape(-1))
        idx = idx[(idx >= 0) & (idx < t.used)]
        idx = idx[t.state[idx] != K.T_EMPTY]
        if idx.size == 0:
            return
        nk = self.nk
        busy = np.flatnonzero((nk.state[: nk.used] == K.NK_KILLING) | (nk.state[: nk.used] == K.NK_BOUND))
        ended = busy[np.isin(nk.target[busy], idx)]  # conjugates with a removed cell end, as in the kernel
        nk.state[ended] = K.NK_FREE
        nk.target[ended] = -1
        lat, tally = self._lattice_records()
        fld = self._fields_record()
        for j in idx[t.state[idx] == K.T_ALIVE]:
            K.doom_tumor(int(j), self.now_min, 0.0, t.state, t.timer, t.site, self.alive_bits)
        for _ in range(2):  # doomed → dead (leaves the totals), dead → cleared (frees the site)
            due = idx[t.state[idx] != K.T_EMPTY].astype(np.uint32)
            if due.size:
                t.used, t.n_free = K.tumor_step(self._kernel_rng(), self.now_min, 0.0, self._tumor_params(self.p_tumor),
                                                t.record, t.used, t.n_free,
                                                lat, fld, tally, due)

    def _effector_class(self) -> type:
        return CARTCell if self.config.effector == "cart" else CARNKCell

    def _new_agent(self, i: int) -> CARNKCell:
        return self._bind_agent(i, self._effector_class()(self, i))

    # ---- Mesa's registry, kept in step lazily: agents of cells born in the kernels or arriving from
    # blood are built, and those of dead cells deregistered, when the registry is next looked at
    def _reserve_agents(self, first: int, end: int) -> None:
        """The NK cells just started in slots first..end-1 get their agents' unique_ids now, in slot
        order (what registering them now would give them), and the agents when Mesa's registry is next
        looked at (`_sync_registry`), unless someone listens to it (`_registry_observed`): then at once."""
        n = end - first
        if n <= 0:
            return
        agents = self._nk_agents
        if len(agents) < end:
            agents.extend([None] * (end - len(agents)))
        uid = self.agent_id_counter
        agents[first:end] = range(uid, uid + n)
        self.agent_id_counter = uid + n
        self._n_pending += n
        if self._registry_observed():
            self._sync_registry()

    def _registry_observed(self) -> bool:
        """Whether a late registry update could be seen: a subscriber to the model's "agents" signals
        (AGENT_ADDED/REMOVED are then emitted at birth and death), a signal batch being captured, or
        a data registry tracking the effector class."""
        return (self._batch_context is not None or any(k[0] == "agents" and v for k, v in self.subscribers.items())
                or bool(getattr(self._effector_class(), "_datasets", None)))

    def _sync_registry(self) -> None:
        """Bring Mesa's registry up to date: deregister the agents of cells that died, then build and
        register the agents of the cells that have none yet, in slot (= birth) order, each with its
        reserved unique_id. The registry then holds what registering at birth and deregistering at
        death gives (contents, order, ids). Called on every read of the registry (`_SyncedAgentSet`,
        `agents_by_type`, `agent_types`) and before any other agent registers."""
        d = self.__dict__
        dead = d.get("_dead_agents")
        if dead:
            d["_dead_agents"] = []
            for a in dead:
                mesa.Agent.remove(a)  # deregister only (KeyError suppressed if the user removed it already)
        if not d.get("_n_pending"):
            return
        self._n_pending = 0
        cls, agents, counter = self._effector_class(), self._nk_agents, self.agent_id_counter
        try:
            for i, a in enumerate(agents):
                if type(a) is int:
                    self.agent_id_counter = a
                    agents[i] = cls(self, i)
        finally:
            self.agent_id_counter = counter

    def register_agent(self, agent) -> None:
        """Mesa's `register_agent`, after `_sync_registry` (so the registry keeps birth order); the
        effector class's agent set is made a `_SyncedAgentSet` when Mesa creates it."""
        self._sync_registry()
        super().register_agent(agent)
        t = type(agent)
        s = self._agents_by_type[t]
        if type(s) is not _SyncedAgentSet and t is self._effector_class():
            self._agents_by_type[t] = _SyncedAgentSet(s, random=self.random, sync=self._sync_registry)

    @property
    def agents_by_type(self):
        """Mesa's registry by agent type (`mesa.Model.agents_by_type`), synced first."""
        self._sync_registry()
        return mesa.Model.agents_by_type.fget(self)

    @property
    def agent_types(self) -> list[type]:
        self._sync_registry()
        return mesa.Model.agent_types.fget(self)

    def _bind_agent(self, i: int, a: CARNKCell) -> CARNKCell:
        while len(self._nk_agents) <= i:
            self._nk_agents.append(None)
        self._nk_agents[i] = a
        return a

    def site_of(self, pos) -> int:
        """The lattice site of coordinates `pos` ((x, y) or (x, y, z)); ValueError outside the lattice."""
        xyz = tuple(int(v) for v in pos) + (0,) * (3 - len(pos))
        if len(xyz) != 3 or any(not 0 <= v < n for v, n in zip(xyz, self.shape)):
            raise ValueError(f"position {tuple(pos)} is outside the lattice {self.shape}")
        return int(np.ravel_multi_index(xyz, self.shape))

    def _lattice_records(self):
        """The kernels' lattice and tally records (`sim/kernels/records.py`), rebuilt when one of their
        arrays was replaced."""
        key = (self.occ, self.occ_bits, self.alive_bits, self.nk_count, self.offsets, self.tstats, self.counters,
               self.vox_tumor, self.next_ids)
        old = getattr(self, "_lat_records", None)
        if old is None or any(a is not b for a, b in zip(key, old[0])):
            co = int(self.config.domain.field_coarsen)
            nx, ny, nz = (int(n) for n in self.shape)
            lat = make_record(LatticeType, shape=(nx, ny, nz), fshape=tuple(int(n) for n in self.fshape), coarsen=co,
                              offsets=self.offsets, occ=self.occ, occ_bits=self.occ_bits, alive_bits=self.alive_bits,
                              nk_count=self.nk_count, vx=np.arange(nx) // co, vy=np.arange(ny) // co, vz=np.arange(nz) // co)
            tally = make_record(TalliesType, tumor=self.tstats, nk=self.counters, vox_tumor=self.vox_tumor,
                                ids=self.next_ids)
            old = (key, lat, tally)
            self._lat_records = old
        return old[1], old[2]

    def _kernel_rng(self) -> GeneratorRecord:
        """The model's Generator as the kernels take it: a `GeneratorRecord` holding `self.rng` (the same
        stream, unboxed ~10× faster than the Generator itself), rebuilt if `self.rng` is replaced."""
        r = self.__dict__.get("_rng_record")
        if r is None or r[0] is not self.rng:
            r = self._rng_record = (self.rng, GeneratorRecord(self.rng))
        return r[1]

    def _nk_params(self, p):
        """The record of the NK kernel parameters `p` (`records.ParamsRecords`: cached, refilled in place)."""
        cache = self.__dict__.get("_nk_params_records")
        if cache is None:
            cache = self._nk_params_records = ParamsRecords()
        return cache(p)

    def _tumor_params(self, p):
        """The record of the tumor kernel parameters `p` (like `_nk_params`)."""
        cache = self.__dict__.get("_tumor_params_records")
        if cache is None:
            cache = self._tumor_params_records = ParamsRecords()
        return cache(p)

    def _fields_record(self, recheck: bool = True):
        """The kernels' field record, with the zero-field flags re-checked (`CytokineFields.nonzero_now`)
        unless `recheck` is False (for a kernel that does not read the flags)."""
        f = self.fields
        if recheck:
            f.nonzero_now()
        key = (f.values, f.sources, f.background, f.nonzero, self.dt / (self._field_every * self.dt))
        old = getattr(self, "_fld_record", None)
        if old is None or any(a is not b for a, b in zip(key[:-1], old[0][:-1])) or key[-1] != old[0][-1]:
            nf = len(FIELD_NAMES)
            fld = make_record(FieldsType, values=f.values.reshape(nf, -1), background=f.background,
                              sources=f.sources.reshape(nf, -1), nonzero=f.nonzero, source_scale=float(key[-1]))
            old = (key, fld)
            self._fld_record = old
        return old[1]

    # ----------------------------------------------------------------------------------- views
    @property
    def tumor_stats(self) -> Tally:
        """The tumor running totals by name (`records.TUMOR_STATS`: live, antigen_pos, antigen_neg,
        sum_x/y/z, births, deaths, at_boundary), a view of `tstats`."""
        return Tally(self.tstats, TUMOR_STATS)

    @property
    def nk_counts(self) -> Tally:
        """The NK event counts by name (`records.NK_COUNTS`: kills_car, kills_innate, kills_adcc,
        nk_births, nk_deaths, conjugates, triggers), a view of `counters`."""
        return Tally(self.counters, NK_COUNTS)

    def centroid(self) -> np.ndarray:
        """Centroid of live tumor cells (lattice coordinates); the domain centre when none are left."""
        return np.array(tumor_centroid(self.tstats, *self.shape))

    def tumor_count(self) -> int:
        return int(self.tumor_stats.live)

    def nk_live(self) -> int:
        return int((self.nk.state[: self.nk.used] != K.NK_EMPTY).sum())

    def nk_exhausted(self) -> int:
        nk = self.nk
        live = nk.state[: nk.used] != K.NK_EMPTY
        return int((live & is_exhausted(nk.stims[: nk.used], self.p_nk.exhaustion_stims)).sum())

    def tumor_cells(self, indices: np.ndarray | None = None) -> AgentSet:
        """TumorCell views (built on request, never registered) as a Mesa AgentSet."""
        t = self.tumor
        if indices is None:
            st = t.state[: t.used]
            indices = np.flatnonzero((st == K.T_ALIVE) | (st == K.T_DOOMED))
        return TumorCellSet([TumorCell(self, int(i)) for i in indices], random=self.random)

    def antigen_low_count(self) -> int:
        """Live antigen-positive tumor cells below `tumor.antigen.low_below` × the antigen mean: the
        antigen-low escape that CD19-negative counts miss (Spiegel 2021 report CD19−/lo relapse)."""
        ag = self.config.tumor.antigen  # live as `tumor_stats` counts them (tumor_ag_pos, tumor_ag_neg): alive or doomed
        return int(K.count_antigen_low(self.tumor.state, self.tumor.antigen, self.tumor.used, float(ag.low_below * ag.mean)))

    def reporters(self) -> dict:
        """Model reporters for mesa.DataCollector: the time series columns."""
        f = self.fields
        return {
            "time_h": lambda m: m.now_min / 60.0,
            "tumor": lambda m: m.tumor_count(),
            "tumor_ag_pos": lambda m: int(m.tumor_stats.antigen_pos),
            "tumor_ag_neg": lambda m: int(m.tumor_stats.antigen_neg),
            "tumor_ag_low": lambda m: m.antigen_low_count(),
            "nk_live": lambda m: m.nk_live(),
            "nk_exhausted": lambda m: m.nk_exhausted(),
            "kills_car": lambda m: m.nk_counts.kills_car,
            "kills_innate": lambda m: m.nk_counts.kills_innate,
            "kills_adcc": lambda m: m.nk_counts.kills_adcc,
            "mean_ifng_ng_ml": lambda m: f.mean("ifng"),
            "mean_tgfb_ng_ml": lambda m: f.mean("tgfb"),
            "mean_il15_ng_ml": lambda m: f.mean("il15"),
            "nk_blood": lambda m: m.therapy.blood_cells(),  # patient-level CAR-NK in blood (0 without dosing)
            **(section.reporters(self.section_state, self.tstats, self.config.domain.section.patient_cells) if self._sample else {}),
            **self.modulation.reporters(),  # every modulator's value (sim/therapy/modulators.py)
            **getattr(self, "extra_reporters", {}),
        }

    # ----------------------------------------------------------------------------------- stepping
    def step(self) -> None:
        """Advance one cell step (dt); tumor events and fields run at their own slower cadence."""
        c = self.config
        k = self.steps  # mesa increments steps before calling step(); k >= 1
        if self.modulation:
            self.p_nk = self.modulation.evaluate(self.now_min, self.p_nk_base, self.fields.set_background)
        for hook in self.hooks:
            hook(self)
        nk, t = self.nk, self.tumor
        self._nk_moves = [0, 0, 0]  # births, deaths, live cells stepped (step_nk adds to it)
        self.step_nk()
        nb, nd, live_before = self._nk_moves
        if k % self._tumor_every == 0:
            lat, tally = self._lattice_records()
            fld = self._fields_record(recheck=False)  # tumor_step reads the grid, never the zero flags
            t_now, t_dt = self.now_min - (self._tumor_every - 1) * self.dt, self._tumor_every * self.dt
            due, n_live_due = K.due_cells(t.used, t.state, t.timer, t_now + t_dt)
            # room for the worst case, every due live cell dividing once (free slots are reused first)
            t.ensure(max(0, n_live_due - t.n_free) + 64)
            t.used, t.n_free = K.tumor_step(self._kernel_rng(), t_now, t_dt, self._tumor_params(self.p_tumor), t.record,
                                            t.used, t.n_free, lat, fld, tally, due)
            self.domain_watch.update(self.tstats, self.now_min + self.dt)
            if self._sample:
                section.advance_outside(self.section_state, self.tstats, self.p_tumor.division_rate - self.p_tumor.death_rate, t_dt)
        if k % self._field_every == 0:
            self._secrete_tissue_sources()
            self.fields.step(self._field_every * self.dt, self._field_sinks)  # sinks counted only if a field is non-zero
        self.now_min += self.dt
        if nk.used > 1024 and nk.used > 2 * (live_before + nb - nd):
            self._compact_nk()
        if self.now_min + 1e-9 >= self._next_output:
            self.datacollector.collect(self)
            self._next_output += c.time.output_every_h * 60.0

    def step_nk(self) -> None:
        """The NK phase of `step()`: every live NK cell once, in random order, through the batch kernel.

        A subclass may override it Mesa-style, `self.agents_by_type[CARNKCell].shuffle_do("step")`: the
        same kernel rules cell by cell (`CARNKCell.step`), much slower."""
        self._advance_nk(np.zeros(0, dtype=np.int64))

    def _advance_nk(self, cells: np.ndarray) -> None:
        """One NK step (`kernels.step.nk_step`) of the live cells in slots `cells` (empty: all, shuffled);
        registers the daughters' agents and retires the dead."""
        nk = self.nk
        used = nk.used
        if 2 * used + 1 > nk.site.shape[0]:  # room for a daughter per cell (what nk.ensure(used + 1) checks)
            nk.ensure(used + 1)  # an NK cell divides at most once per step
        step, born, died = self._nk_step_record(used + 1)
        nb, nd, live_before = K.nk_step(step, self.now_min, used, cells)
        self.nk_exposure_min += live_before * self.dt
        if nd:
            self._retire_agents(died[:nd])
        if nb:
            self._assign_nk_ids(born[:nb])
            first = nk.used
            nk.used += nb
            self._reserve_agents(first, nk.used)
        moves = getattr(self, "_nk_moves", None)
        if moves is not None:
            moves[0] += nb
            moves[1] += nd
            moves[2] += live_before

    def _nk_step_record(self, room: int):
        """`nk_step`'s argument record (`records.NKStepType`) and its born/died buffers (at least `room`
        slots, grown ×1.5), rebuilt only when a record or array it refers to was replaced: one
        argument to type per call instead of a dozen, and no per-call buffers."""
        f = self.fields
        key = (self.rng, self._nk_params(self.p_nk), self.nk._record, self.tumor._record, self.occ, self.occ_bits,
               self.alive_bits, self.nk_count, self.offsets, self.tstats, self.counters, self.vox_tumor,
               self.next_ids, f.values, f.sources, f.background, f.nonzero, self.dt, self._field_every)
        old = self.__dict__.get("_nk_step")
        if old is not None and room <= old[2].shape[0] and all(map(operator.is_, key, old[0])):
            return old[1:]
        lat, tally = self._lattice_records()
        size = room if old is None else max(room, int(1.5 * old[2].shape[0]))
        born, died = (np.empty(size, dtype=np.int64) for _ in range(2))
        rec = make_record(NKStepType, rng=self._kernel_rng(), p=key[1], nk=self.nk.record, tumor=self.tumor.record,
                          lat=lat, fld=self._fields_record(recheck=False), tally=tally, born=born, died=died)
        # the key again: building the records may have replaced what it held (nk._record, None before)
        key = key[:2] + (self.nk._record, self.tumor._record) + key[4:]
        self._nk_step = (key, rec, born, died)
        return rec, born, died

    def _secrete_tissue_sources(self) -> None:
        """TGF-β from live tumor cells and stroma, accumulated per voxel (cost ∝ voxels, not cells)."""
        name = self.fields.names[TGFB]
        if self.tgfb_rate:
            self.fields.add_per_voxel_source(name, self.vox_tumor, self.tgfb_rate)
        if self.stroma_rate:
            self.fields.add_per_voxel_source(name, self.vox_stroma, self.stroma_rate)

    def _field_sinks(self) -> dict[int, np.ndarray] | None:
        """Per-voxel IL-15 uptake rate (1/min): effector cells in the voxel × the clearance of one."""
        if self.il15_uptake_per_cell <= 0:
            return None
        nk = self.nk
        k, n = self.fields.cells_per_voxel(nk.site, nk.state, nk.used, K.NK_EMPTY)
        if n == 0:
            return None
        k *= self.il15_uptake_per_cell
        return {IL15: k}

    def _compact_nk(self) -> None:
        keep = self.nk.compact()
        agents = [self._nk_agents[i] for i in keep.tolist()]
        for new, a in enumerate(agents):
            if type(a) is not int:  # a pending agent is built for its new slot
                a.idx = new
        self._nk_agents = agents

    # run_for(n) and run_until(t) are Mesa's own: n steps (model.time counts steps, one per dt).
    def run_days(self, days: float, progress=None) -> None:
        """Run for `days` simulated days (days × 1440 / dt steps); `progress(model)` is called after each
        step if given."""
        run_steps(self, int(round(days * MIN_PER_DAY / self.dt)), progress)

    # ----------------------------------------------------------------------------------- outputs
    def kills_per_nk(self) -> np.ndarray:
        """Kills of every NK cell that ever lived in this run (live and dead)."""
        nk = self.nk
        live = nk.kills[: nk.used][nk.state[: nk.used] != K.NK_EMPTY]
        return np.concatenate([live.astype(np.int64)] + [d.astype(np.int64) for d in self._dead_kills])

    def observed_nk_half_life_days(self) -> float | None:
        """Maximum-likelihood NK half-life from persistence deaths and NK-time at risk."""
        deaths = self.nk_counts.nk_deaths
        if deaths == 0:
            return None
        return math.log(2.0) * self.nk_exposure_min / deaths / MIN_PER_DAY

    def snapshot(self) -> dict[str, np.ndarray]:
        """Positions, run-wide ids and phenotypes of all live cells plus total field concentrations, for
        .npz output (the keys are listed in docs/outputs.md; `sim.load_run` reads them back)."""
        t, nk = self.tumor, self.nk
        st = t.state[: t.used]
        alive = np.flatnonzero((st == K.T_ALIVE) | (st == K.T_DOOMED))
        nlive = np.flatnonzero(nk.state[: nk.used] != K.NK_EMPTY)
        out = {
            "time_h": np.float64(self.now_min / 60.0),
            "lattice_shape": np.array(self.shape),
            "spacing_um": np.float64(self.spacing_um),
            "tumor_id": t.cell_id[alive],
            "tumor_xyz": self._coords(t.site[alive]).astype(np.int32),
            "tumor_antigen": t.antigen[alive],
            "tumor_mhc_i": t.mhc[alive],  # before IFN-γ up-regulation (TumorCell.mhc gives the effective level)
            "tumor_ligand": t.ligand[alive],
            "tumor_coat": t.coat[alive],
            "tumor_doomed": st[alive] == K.T_DOOMED,
            "nk_id": nk.cell_id[nlive],
            "nk_xyz": self._coords(nk.site[nlive]).astype(np.int32),
            "nk_state": nk.state[nlive],  # 0 free, 1 killing, 2 bound (conjugate that did not trigger)
            "nk_car": nk.car[nlive],
            "nk_responsiveness": nk.resp[nlive],
            "nk_granules": nk.granules[nlive],
            "nk_stimulations": nk.stims[nlive],
            "nk_divisions": nk.divisions[nlive],
            "nk_exhausted": is_exhausted(nk.stims[nlive], self.p_nk.exhaustion_stims),
            "nk_kills": nk.kills[nlive],
            "field_names": np.array(FIELD_NAMES),
            "field_coarsen": np.int64(self.config.domain.field_coarsen),
        }
        for name in FIELD_NAMES:
            out[name] = self.fields.concentration(name).astype(np.float32)
        return out
