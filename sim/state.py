"""Structure-of-arrays cell populations owned by the model: compact dtypes, grown on demand.

Tumor cells can number 10^7, so each is a slot in these arrays (about 25 B) plus one int32 in
the occupancy lattice; CAR-NK cells are slots too, with a Mesa agent object as a view.
"""
from __future__ import annotations

import numpy as np

from .kernels.step import NK_EMPTY, T_EMPTY


def _grow(arr: np.ndarray, n: int, fill) -> np.ndarray:
    """A copy of `arr` with capacity `n` along axis 0, new slots set to `fill`."""
    out = np.full((n,) + arr.shape[1:], fill, dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out


class TumorPopulation:
    """Tumor cells: site, antigen/MHC-I/NKG2D-ligand levels, antibody coating, state and next-event time."""

    FIELDS = {
        "site": (np.int32, -1), "antigen": (np.float32, 0.0), "mhc": (np.float32, 0.0),
        "ligand": (np.float32, 0.0), "coat": (np.float32, 0.0), "state": (np.int8, T_EMPTY),
        "timer": (np.float32, np.inf),
    }

    def __init__(self, capacity: int):
        capacity = max(int(capacity), 16)
        for name, (dt, fill) in self.FIELDS.items():
            setattr(self, name, np.full(capacity, fill, dtype=dt))
        self.used = 0
        self.free_slots = np.zeros(capacity, dtype=np.int64)
        self.n_free = 0

    @property
    def capacity(self) -> int:
        return self.site.shape[0]

    def ensure(self, extra: int) -> None:
        """Make room for `extra` more cells (amortised doubling)."""
        need = self.used + extra
        if need <= self.capacity:
            return
        cap = max(need, int(self.capacity * 1.5))
        for name, (_, fill) in self.FIELDS.items():
            setattr(self, name, _grow(getattr(self, name), cap, fill))
        self.free_slots = _grow(self.free_slots, cap, 0)

    def nbytes(self) -> int:
        return sum(getattr(self, n).nbytes for n in self.FIELDS) + self.free_slots.nbytes


class NKPopulation:
    """CAR-NK cells: site, direction, conjugate state, granules, stimulation and kill counts."""

    FIELDS = {
        "site": (np.int32, -1), "state": (np.int8, NK_EMPTY), "target": (np.int32, -1),
        "timer": (np.float32, 0.0), "route": (np.int8, 0), "granules": (np.float32, 0.0),
        "dr_left": (np.float32, 0.0), "stims": (np.int32, 0), "kills": (np.int32, 0),
        "divisions": (np.int32, 0), "born_min": (np.float32, 0.0),
    }

    def __init__(self, capacity: int):
        capacity = max(int(capacity), 16)
        for name, (dt, fill) in self.FIELDS.items():
            setattr(self, name, np.full(capacity, fill, dtype=dt))
        self.direction = np.zeros((capacity, 3), dtype=np.float64)
        self.used = 0

    @property
    def capacity(self) -> int:
        return self.site.shape[0]

    def ensure(self, extra: int) -> None:
        """Make room for `extra` more cells."""
        need = self.used + extra
        if need <= self.capacity:
            return
        cap = max(need, int(self.capacity * 1.5))
        for name, (_, fill) in self.FIELDS.items():
            setattr(self, name, _grow(getattr(self, name), cap, fill))
        self.direction = _grow(self.direction, cap, 0.0)

    def compact(self) -> np.ndarray:
        """Drop dead slots; returns the old index of each kept slot (for re-pointing agents)."""
        keep = np.flatnonzero(self.state[: self.used] != NK_EMPTY)
        for name in self.FIELDS:
            arr = getattr(self, name)
            arr[: keep.size] = arr[keep]
            arr[keep.size : self.used] = self.FIELDS[name][1]
        self.direction[: keep.size] = self.direction[keep]
        self.used = int(keep.size)
        return keep

    def nbytes(self) -> int:
        return sum(getattr(self, n).nbytes for n in self.FIELDS) + self.direction.nbytes
