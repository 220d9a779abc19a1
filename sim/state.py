"""Structure-of-arrays cell populations owned by the model: compact dtypes, grown on demand.

Tumor cells can number 10^7, so each is a slot in these arrays (37 B, 8 of them its run-wide id) plus one int32 in
the occupancy lattice; CAR-NK cells are slots too, with a Mesa agent object as a view.
"""
from __future__ import annotations

import numpy as np

from .kernels import records
from .kernels.step import NK_EMPTY, T_EMPTY


class Population:
    """Named per-cell arrays of one capacity; `used` slots are in use. Subclasses list FIELDS as
    name → (dtype, fill value, trailing shape), and RECORD, the Numba type of their kernel record."""

    FIELDS: dict[str, tuple] = {}
    RECORD: type | None = None

    def __setattr__(self, name, value):
        if name in self.FIELDS:  # an array replaced (ensure, a test, a checkpoint): rebuild the record
            object.__setattr__(self, "_record", None)
        object.__setattr__(self, name, value)

    @property
    def record(self):
        """The kernels' record of these arrays (`sim/kernels/records.py`), rebuilt after a reallocation."""
        r = getattr(self, "_record", None)
        if r is None:
            r = records.make_record(self.RECORD, **{name: getattr(self, name) for name in self.FIELDS})
            object.__setattr__(self, "_record", r)
        return r

    #: Fields stored together, one 64-byte-aligned record per cell (`packed_block`), in the order the
    #: kernels read them, so one cache line serves a cell; each stays an array attribute (a strided view).
    PACKED: tuple[str, ...] = ()

    def _allocate(self, capacity: int) -> dict[str, np.ndarray]:
        """Fresh arrays of `capacity` slots holding the fill values: the PACKED fields as views of one
        record block, the others as arrays of their own."""
        out = {}
        if self.PACKED:
            block = packed_block(capacity, [(n, *self.FIELDS[n]) for n in self.PACKED])
            for n in self.PACKED:
                out[n] = block[n]
                out[n][...] = self.FIELDS[n][1]
        for name, (dt, fill, tail) in self.FIELDS.items():
            if name not in out:
                out[name] = np.full((capacity, *tail), fill, dtype=dt)
        return out

    def __init__(self, capacity: int):
        for name, arr in self._allocate(max(int(capacity), 16)).items():
            setattr(self, name, arr)
        self.used = 0

    @property
    def capacity(self) -> int:
        return getattr(self, next(iter(self.FIELDS))).shape[0]

    def ensure(self, extra: int) -> None:
        """Make room for `extra` more cells (amortised ×1.5 growth; new slots take the fill value)."""
        need = self.used + extra
        if need <= self.capacity:
            return
        cap = max(need, int(self.capacity * 1.5))
        for name, new in self._allocate(cap).items():
            old = getattr(self, name)
            new[: old.shape[0]] = old
            setattr(self, name, new)

    def nbytes(self) -> int:
        """Bytes the cell arrays hold (a packed record's padding included, shared by its fields)."""
        packed = getattr(self, self.PACKED[0]).base.nbytes if self.PACKED else 0
        return packed + sum(getattr(self, n).nbytes for n in self.FIELDS if n not in self.PACKED)


def packed_block(capacity: int, fields: list[tuple]) -> np.ndarray:
    """A structured array of `capacity` records with `fields` (name, dtype, fill, trailing shape), each
    record padded to a multiple of 64 bytes and the block aligned to 64 bytes: a record is one cache
    line (or a few), never straddling one more than it must."""
    dtype = np.dtype([(n, dt, tail) for n, dt, _, tail in fields])
    size = -(-dtype.itemsize // 64) * 64
    dtype = np.dtype({"names": dtype.names, "formats": [dtype.fields[n][0] for n in dtype.names],
                      "offsets": [dtype.fields[n][1] for n in dtype.names], "itemsize": size})
    raw = np.zeros(capacity * size + 64, dtype=np.uint8)
    start = (-raw.ctypes.data) % 64
    return raw[start: start + capacity * size].view(dtype)


class TumorPopulation(Population):
    """Tumor cells: site, antigen/MHC-I/NKG2D-ligand levels, the antigen level of the cell's clone
    (`ag_clone`: the mean its antigen fluctuates around, 0 for an antigen-negative clone), antibody coating, state and next-event
    time, whether it is contact-inhibited (`quiescent`, what chemotherapy spares), and a run-wide `cell_id` (set by `start_tumor_cell` from the model's id counter, never
    reused, so snapshots can track cells); `free_slots[:n_free]` lists cleared slots for reuse."""

    RECORD = records.TumorCellsType
    FIELDS = {
        "site": (np.int32, -1, ()), "antigen": (np.float32, 0.0, ()), "ag_clone": (np.float32, 0.0, ()),
        "mhc": (np.float32, 0.0, ()), "ligand": (np.float32, 0.0, ()), "coat": (np.float32, 0.0, ()), "state": (np.int8, T_EMPTY, ()),
        "timer": (np.float32, np.inf, ()), "free_slots": (np.int32, 0, ()),  # slot indices < 2³¹, like occ
        "quiescent": (np.int8, 0, ()),  # contact-inhibited: its last division found no room, none cleared since
        "cell_id": (np.int64, -1, ()),
    }

    def __init__(self, capacity: int):
        super().__init__(capacity)
        self.n_free = 0


class NKPopulation(Population):
    """CAR-NK cells: site, direction, conjugate state, granules, stimulation and kill counts, CAR level,
    intrinsic responsiveness (`resp`, the factor on the net signal), and a
    run-wide `cell_id` (assigned by the model to infused cells and daughters; it moves with the cell
    when `compact` renumbers the slots)."""

    RECORD = records.NKCellsType
    # what nk_step reads for every cell, in its order: 56 bytes, one cache line (born_min, cell_id: cold)
    PACKED = ("site", "state", "route", "memory", "target", "timer", "granules", "dr_left", "stims", "divisions",
              "car", "resp", "direction", "kills")
    FIELDS = {
        "site": (np.int32, -1, ()), "state": (np.int8, NK_EMPTY, ()), "target": (np.int32, -1, ()),
        "timer": (np.float32, 0.0, ()), "route": (np.int8, 0, ()), "granules": (np.float32, 0.0, ()),
        "dr_left": (np.float32, 0.0, ()), "stims": (np.int32, 0, ()), "kills": (np.int32, 0, ()),
        "divisions": (np.int32, 0, ()), "born_min": (np.float32, 0.0, ()), "direction": (np.float32, 0.0, (3,)),
        "car": (np.float32, 0.0, ()), "resp": (np.float32, 1.0, ()), "memory": (np.int8, 0, ()),
        "cell_id": (np.int64, -1, ()),
    }

    def compact(self) -> np.ndarray:
        """Drop dead slots; returns the old index of each kept slot (for re-pointing agents)."""
        keep = np.flatnonzero(self.state[: self.used] != NK_EMPTY)
        for name, (_, fill, _) in self.FIELDS.items():
            arr = getattr(self, name)
            arr[: keep.size] = arr[keep]
            arr[keep.size : self.used] = fill
        self.used = int(keep.size)
        return keep



class Tally:
    """Named view of a statistics array the kernels keep by index (`records.TUMOR_STATS`,
    `records.NK_COUNTS`): `model.tumor_stats.live`, `model.nk_counts.kills_car`. Reads and writes go
    to the array itself."""

    __slots__ = ("array", "names")

    def __init__(self, array: np.ndarray, names: tuple[str, ...]):
        object.__setattr__(self, "array", array)
        object.__setattr__(self, "names", names)

    def _index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise AttributeError(f"no statistic {name!r}; the names are {self.names}") from None

    def __getattr__(self, name: str):
        return self.array[self._index(name)].item()

    def __setattr__(self, name: str, value) -> None:
        self.array[self._index(name)] = value

    def as_dict(self) -> dict:
        return {n: self.array[i].item() for i, n in enumerate(self.names)}

    def __repr__(self) -> str:
        return f"Tally({self.as_dict()})"
