"""TumorCell: an on-request Mesa agent view of one slot of the tumor arrays (never registered,
because tumors reach 10^7 cells and must not cost a Python object each)."""
from __future__ import annotations

import mesa
from mesa.agent import AgentSet
import numpy as np

from ..kernels import step as K
from ..kernels.params import IFNG
from ..kernels.recognition import effective_mhc


class TumorCell(mesa.Agent):
    """A tumor cell view; attributes read `model.tumor`.

    `TumorCell(model, idx)` is a view of slot `idx`. `TumorCell(model)` (optionally `pos=(x, y, z)`,
    `antigen=`, `mhc=`, `ligand=`; defaults: the scenario's mean levels) adds a live cell at a free
    site, as seeding does (`model.add_tumor`), and returns its view. `remove()` removes the cell from
    the arrays now (`model.remove_tumor`). Views are never registered with the model.
    """

    def __init__(self, model, idx: int | None = None, *, pos=None, antigen=None, mhc=None, ligand=None):
        # deliberately not super().__init__: no registration
        if idx is None:
            c = model.config.tumor
            site = model.free_site() if pos is None else model.site_of(pos)
            idx = int(model.add_tumor([site], c.antigen.mean if antigen is None else antigen,
                                      c.mhc_i.mean if mhc is None else mhc,
                                      c.nkg2d_ligand.mean if ligand is None else ligand)[0])
        self.model = model
        self.idx = idx
        self.unique_id = -1 - idx

    @property
    def cell_id(self) -> int:
        """Run-wide id of this cell (the `tumor_id` of snapshots; slots are reused, ids never)."""
        return int(self.model.tumor.cell_id[self.idx])

    @property
    def site(self) -> int:
        return int(self.model.tumor.site[self.idx])

    @property
    def pos(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in np.unravel_index(self.site, self.model.shape))

    @property
    def antigen(self) -> float:
        return float(self.model.tumor.antigen[self.idx])

    @property
    def antigen_negative(self) -> bool:
        return self.antigen <= 0.0

    @property
    def mhc_base(self) -> float:
        return float(self.model.tumor.mhc[self.idx])

    @property
    def ligand(self) -> float:
        return float(self.model.tumor.ligand[self.idx])

    @property
    def coating(self) -> float:
        return float(self.model.tumor.coat[self.idx])

    @property
    def state(self) -> str:
        return {K.T_ALIVE: "alive", K.T_DOOMED: "apoptotic", K.T_DEAD: "dead", K.T_EMPTY: "cleared"}[int(self.model.tumor.state[self.idx])]

    def local(self, field: int) -> float:
        m = self.model
        return float(m.fields.sample_sites(m.fields.names[field], np.array([self.site]))[0])

    @property
    def mhc(self) -> float:
        """MHC-I after IFN-γ up-regulation at this cell's site (the kernel's rule)."""
        r = self.model.config.tumor.ifng_response
        return effective_mhc(self.mhc_base, self.local(IFNG), r.mhc_max_fold, r.ec50_ng_ml)

    def remove(self) -> None:
        """Remove this cell from the model now: it leaves the tumor totals (counted as a death), its
        site is freed and its quiescent neighbours may divide again (`model.remove_tumor`)."""
        self.model.remove_tumor(np.array([self.idx]))


class TumorCellSet(AgentSet):
    """An AgentSet of TumorCell views that keeps them alive (AgentSet itself holds weak references)."""

    def __init__(self, cells: list[TumorCell], random=None):
        self._views = list(cells)
        super().__init__(self._views, random=random)
