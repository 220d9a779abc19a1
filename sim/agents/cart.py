"""CARTCell: the CAR-T comparator agent, a view on the same arrays and kernel functions as CARNKCell."""
from __future__ import annotations

from ..kernels.persistence import cell_half_life, death_probability, effective_half_life
from ..units import MIN_PER_DAY
from .carnk import CARNKCell


class CARTCell(CARNKCell):
    """A CAR-T cell: CAR-only killing, antigen-driven expansion, memory fraction (`effector: cart`)."""

    __slots__ = ()

    @property
    def memory(self) -> bool:
        """Whether this cell belongs to the long-lived memory fraction."""
        return bool(self.model.nk.memory[self.idx])

    def _half_life_min(self) -> float:
        p = self.model.p_nk
        return cell_half_life(self.memory, p.half_life_min, p.memory_half_life_min)

    def half_life_days(self) -> float:
        p = self.model.p_nk
        return effective_half_life(self._half_life_min(), self.il15_seen(), p.il15_extension, p.il15_ec50) / MIN_PER_DAY

    def death_probability(self) -> float:
        p = self.model.p_nk
        return death_probability(self._half_life_min(), self.il15_seen(), p.il15_extension, p.il15_ec50, p.dt, p.rejection_per_min)
