"""CARNKCell: a registered Mesa agent that is a view on one slot of the NK arrays."""
from __future__ import annotations

import mesa
import numpy as np

from ..kernels import step as K
from ..kernels.killing import is_exhausted
from ..kernels.lattice import immune_can_enter
from ..kernels.params import IFNG, IL15, TGFB
from ..kernels.persistence import cell_half_life, death_probability, effective_half_life, exhaustion_half_life
from ..units import MIN_PER_DAY


class CARNKCell(mesa.Agent):
    """A CAR-NK cell. State lives in `model.nk`; this object reads and explains it.

    Mesa semantics: `CARNKCell(model)` adds a fresh cell (at a random tumor-free site, or at
    `pos=(x, y, z)`) exactly as an infusion would; `remove()` kills the cell in the arrays (like the
    suicide switch); `step()` advances this one cell by one dt through the batch kernel's own code
    (`kernels.step.nk_step` on this slot), so `agents_by_type[CARNKCell].shuffle_do("step")` is the NK
    phase of a model step, cell by cell (about a Python call per cell: use it for small models).
    """

    __slots__ = ("idx",)

    def __init__(self, model, idx: int | None = None, *, pos=None):
        site = None
        if idx is None:  # the Mesa way: creating the agent adds the cell (checked before registering)
            own = model._effector_class()
            if type(self) is not own:
                raise TypeError(f"this model's effector cells are {own.__name__}s: create {own.__name__}(model)")
            if pos is None:
                site = model.free_site()
            else:
                site = model.site_of(pos)
                if model.occ[site] >= 0:
                    raise ValueError(f"position {tuple(pos)} holds a tumor cell; choose a tumor-free site")
        if site is not None:
            slots = model._start_nk(np.array([site]), crowded_out=False)  # volume exclusion may refuse
            if len(slots) == 0:
                raise ValueError(f"site {site} and its neighbours are full (nk.crowding): no room for another cell")
            idx = slots[0]
        super().__init__(model)
        if site is not None:
            model._bind_agent(idx, self)
        self.idx = idx

    # -- state read from the arrays
    @property
    def cell_id(self) -> int:
        """Run-wide id of this cell (the `nk_id` of snapshots; stable across slot compaction)."""
        return int(self.model.nk.cell_id[self.idx])

    @property
    def alive(self) -> bool:
        return int(self.model.nk.state[self.idx]) != K.NK_EMPTY

    @property
    def site(self) -> int:
        return int(self.model.nk.site[self.idx])

    @property
    def pos(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in np.unravel_index(self.site, self.model.shape))

    @pos.setter
    def pos(self, value) -> None:  # mesa.Agent assigns pos=None on creation
        pass

    @property
    def state(self) -> str:
        return {K.NK_FREE: "free", K.NK_KILLING: "killing", K.NK_BOUND: "bound", K.NK_EMPTY: "dead"}[int(self.model.nk.state[self.idx])]

    @property
    def granules(self) -> float:
        return float(self.model.nk.granules[self.idx])

    @property
    def kills(self) -> int:
        return int(self.model.nk.kills[self.idx])

    @property
    def stimulations(self) -> int:
        return int(self.model.nk.stims[self.idx])

    @property
    def exhausted(self) -> bool:
        return bool(is_exhausted(self.stimulations, self.model.p_nk.exhaustion_stims))

    @property
    def car(self) -> float:
        """CAR surface level of this cell (0 for a CAR− cell of the product)."""
        return float(self.model.nk.car[self.idx])

    @property
    def responsiveness(self) -> float:
        """Intrinsic responsiveness of this cell: the factor on its net signal (inherited by daughters)."""
        return float(self.model.nk.resp[self.idx])

    @property
    def divisions(self) -> int:
        return int(self.model.nk.divisions[self.idx])

    def local(self, field: int) -> float:
        """Total concentration (ng/mL) of a field at this cell's site."""
        m = self.model
        return float(m.fields.sample_sites(m.fields.names[field], np.array([self.site]))[0])

    def il15_seen(self) -> float:
        """IL-15 this cell responds to: the local field plus its own autocrine product."""
        return self.local(IL15) + self.model.p_nk.il15_autocrine

    # -- Mesa lifecycle
    def step(self) -> None:
        """Advance this cell by one dt with the batch kernel's rules (`nk_step` on this slot only):
        persistence, IL-15 division, conjugate and kill, secretion, motility. Model time, the tumor and
        the fields advance in `model.step()`, not here."""
        if self.alive:
            self.model._advance_nk(np.array([self.idx], dtype=np.int64))

    def remove(self) -> None:
        """Kill this cell in the arrays (`model.remove_nk`: its kills stay in the statistics) and
        deregister the agent."""
        m = self.model
        agents = getattr(m, "_nk_agents", [])
        if self.idx < len(agents) and agents[self.idx] is self and self.alive:
            m.remove_nk(np.array([self.idx]))  # deregisters this agent too
        else:
            super().remove()

    # -- behaviour: the same kernel functions the batch step uses
    def can_enter(self, site: int) -> bool:
        """Whether this cell may move onto (or a daughter be placed on) `site` under volume exclusion:
        the kernels' rule `lattice.immune_can_enter` (no tumor cell there, fewer than
        `p_nk.immune_cap` immune cells). Its own site counts itself."""
        m = self.model
        return bool(immune_can_enter(m.occ_bits, m.nk_count, int(site), m.p_nk.immune_cap))

    @property
    def neighbours_on_site(self) -> int:
        """Immune cells standing on this cell's site, itself included (`model.nk_count`)."""
        return int(self.model.nk_count[self.site])

    def signal_against(self, tumor) -> tuple[float, int, int]:
        """(trigger probability, kill route, kill path) of a conjugate with a TumorCell view."""
        m = self.model
        return K.conjugate_outcome(
            m.p_nk, self.local(TGFB), tumor.local(IFNG), tumor.antigen, tumor.mhc_base, tumor.ligand,
            tumor.coating, self.exhausted, self.granules, float(m.nk.dr_left[self.idx]), float(m.nk.car[self.idx]),
            float(m.nk.resp[self.idx]),
        )

    @property
    def memory(self) -> bool:
        """Whether this cell belongs to the long-lived memory(-like) fraction (`persistence.memory_fate`)."""
        return bool(self.model.nk.memory[self.idx])

    def _half_life_min(self) -> float:
        """This cell's half-life before IL-15: memory or effector, shortened if exhausted (as the kernel)."""
        p = self.model.p_nk
        return exhaustion_half_life(cell_half_life(self.memory, p.half_life_min, p.memory_half_life_min),
                                    self.exhausted, p.exhausted_half_life_factor)

    def half_life_days(self) -> float:
        """Current persistence half-life (days), stretched by local IL-15."""
        p = self.model.p_nk
        return effective_half_life(self._half_life_min(), self.il15_seen(), p.il15_extension, p.il15_ec50) / MIN_PER_DAY

    def death_probability(self) -> float:
        """Probability of dying within the next step."""
        p = self.model.p_nk
        return death_probability(self._half_life_min(), self.il15_seen(), p.il15_extension, p.il15_ec50, p.dt, p.rejection_per_min)
