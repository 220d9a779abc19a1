"""CARTCell: the CAR-T comparator agent, a view on the same arrays and kernel functions as CARNKCell."""
from __future__ import annotations

from .carnk import CARNKCell


class CARTCell(CARNKCell):
    """A CAR-T cell: CAR-only killing, antigen-driven expansion and a memory fraction (`effector: cart`),
    all from its kernel parameters; persistence and memory are CARNKCell's own rules."""

    __slots__ = ()
