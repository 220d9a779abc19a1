"""Typed records the batch kernels take, instead of dozens of positional arrays.

A record is a Numba structref: a small heap struct holding references to the model's arrays (and a
few constants), passed to a kernel as one argument. The kernels are written against field names
only, so adding a per-cell array to a population (`sim/state.py: Population.FIELDS`) adds it to
that population's record without touching a kernel signature.

    NKCells      every array of `NKPopulation` (site, state, target, timer, ..., car, memory)
    TumorCells   every array of `TumorPopulation` (site, antigen, ..., timer, free_slots)
    Lattice      shape, fshape (field grid), coarsen, offsets (Moore), occ, occ_bits, alive_bits,
                 nk_count (immune cells per site, uint16: volume exclusion, `lattice.immune_can_enter`),
                 vx/vy/vz (per-axis site → voxel lookups: vx = arange(nx) // coarsen, ...)
    Fields       values and sources as (fields, voxels) views, background, nonzero flags and
                 source_scale (the share of a field step one cell step stands for)
    Tallies      the running totals: tumor (float64[10], `TUMOR_STATS`; at_boundary counts live tumor
                 cells on boundary sites, exported the daughters an open section sent out), nk (int64[8], `NK_COUNTS`)
                 and vox_tumor (live tumor cells per field voxel)
    NKStep       everything `nk_step` takes but the clock, the slot count and the cells to step: rng
                 (`streams.GeneratorRecord`), p, nk, tumor, lat, fld, tally and the born/died slot
                 buffers, in one argument (`model._nk_step_record`: Numba types each argument on every call)

Why structref: inside a kernel a record costs nothing once its arrays are read into locals at the
top (measured: an nk_step-like loop runs at the speed of positional arrays), and a function taking
structrefs is cached on disk like any other; a jitclass argument is not (its type carries an
object id, so every process would recompile `nk_step`, ~15 s). A record only refers to arrays, so
it must be rebuilt when an array is reallocated (`Population.record` does that when a field is
re-assigned, e.g. by `ensure`); building one is a cached kernel call of a few µs.

The statistics arrays stay plain arrays (the kernels index them by the constants below, the fastest
form); callers read them by name through `sim.state.Tally` (`model.tumor_stats.live`, ...).
"""
from itertools import compress
from operator import is_not

from numba import njit, typeof, types
from numba.experimental import structref
from numba.extending import intrinsic

# ---- the statistics: names, and the kernels' indices derived from them --------------------------
TUMOR_STATS = ("live", "antigen_pos", "antigen_neg", "sum_x", "sum_y", "sum_z", "births", "deaths", "at_boundary", "exported")
NK_COUNTS = ("kills_car", "kills_innate", "kills_adcc", "nk_births", "nk_deaths", "conjugates", "triggers", "nk_egress")
S_LIVE, S_AGPOS, S_AGNEG, S_SX, S_SY, S_SZ, S_BIRTHS, S_DEATHS, S_EDGE, S_EXPORTED = range(len(TUMOR_STATS))
C_KILL0, C_NKBIRTH, C_NKDEATH, C_CONJ, C_TRIG, C_NKEGRESS = 0, 3, 4, 5, 6, 7  # kills by route: C_KILL0 + recognition.ROUTE_*
assert NK_COUNTS[C_NKBIRTH] == "nk_births" and NK_COUNTS[C_NKDEATH] == "nk_deaths" and NK_COUNTS[C_TRIG] == "triggers"
assert NK_COUNTS[C_NKEGRESS] == "nk_egress"


class _Record(types.StructRef):
    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(t)) for name, t in fields)


@structref.register
class NKCellsType(_Record):
    """Numba type of the NK population record."""


@structref.register
class TumorCellsType(_Record):
    """Numba type of the tumor population record."""


@structref.register
class LatticeType(_Record):
    """Numba type of the lattice record (geometry, occupancy and bitmaps)."""


@structref.register
class FieldsType(_Record):
    """Numba type of the cytokine-field record."""


@structref.register
class TalliesType(_Record):
    """Numba type of the running-totals record."""


@structref.register
class NKStepType(_Record):
    """Numba type of the NK step's argument record (the records and buffers `nk_step` reads)."""


@structref.register
class ParamsType(_Record):
    """Numba type of a kernel-parameter record (`params_record`: the fields of an NKParams or
    TumorParams tuple)."""


class Record(structref.StructRefProxy):
    """Python handle of a record: passed to kernels as is (its fields are read in jit code only)."""


for _t in (NKCellsType, TumorCellsType, LatticeType, FieldsType, TalliesType, NKStepType, ParamsType):
    structref.define_boxing(_t, Record)


@intrinsic
def _fill(typingctx, rec, values):
    """Store the items of the tuple `values` in the fields of `rec`, in field order."""
    if not isinstance(rec, types.StructRef) or not isinstance(values, types.BaseTuple):
        return None
    names = list(rec.field_dict)
    if len(names) != len(values):
        return None

    def codegen(context, builder, sig, args):
        rty, vty = sig.args
        for k, name in enumerate(names):
            setter = context.get_setattr(name, types.void(rty, vty[k]))
            setter(builder, (args[0], builder.extract_value(args[1], k)))
        return context.get_dummy_value()

    return types.void(rec, values), codegen


@njit(cache=True)
def _new_record(record_type, values):
    r = structref.new(record_type)
    _fill(r, values)
    return r


def make_record(type_class, **values):
    """A record of `type_class` (e.g. `NKCellsType`) whose fields are `values`, in the given order;
    the field types are those of the values (arrays keep their dtype and layout)."""
    fields = tuple((name, typeof(v)) for name, v in values.items())
    return _new_record(type_class(fields), tuple(values.values()))


@njit(cache=True)
def tumor_centroid(tstats, nx, ny, nz):
    """Centroid of the live tumor cells from the running sums in `tstats` (lattice coordinates, a
    tuple); the centre of an nx × ny × nz lattice when none are left."""
    n = tstats[S_LIVE]
    if n <= 0:
        return (nx - 1) / 2.0, (ny - 1) / 2.0, (nz - 1) / 2.0
    return tstats[S_SX] / n, tstats[S_SY] / n, tstats[S_SZ] / n


_PARAMS_TYPES: dict = {}


def params_record(p):
    """The kernel parameters `p` (`params.NKParams` or `TumorParams`) as a record with the same field
    names, types and values: the kernels read `p.name` from either, but Numba unboxes a record
    argument in ~2 µs and a 46-field named tuple in ~11 µs (field by field, on every call)."""
    key = (type(p), tuple(map(_type_key, p)))
    t = _PARAMS_TYPES.get(key)
    if t is None:
        t = _PARAMS_TYPES[key] = ParamsType(tuple((name, typeof(v)) for name, v in zip(p._fields, p)))
    return _new_record(t, tuple(p))


def _type_key(v):
    """What `typeof(v)` depends on: the Python type, and for an int whether it fits an int64."""
    return type(v) if type(v) is not int or -(1 << 63) <= v < (1 << 63) else (int, v)


@njit(cache=True)
def _refill(rec, values):
    _fill(rec, values)


@intrinsic
def _store_float(typingctx, rec, k, value):
    """Store the float `value` in the `k`-th field of `rec` (in field order), if that field is a float64."""
    if not isinstance(rec, types.StructRef) or not isinstance(k, types.Integer) or value != types.float64:
        return None
    slots = [(i, name) for i, (name, t) in enumerate(rec.field_dict.items()) if t == types.float64]

    def codegen(context, builder, sig, args):
        r, kk, v = args
        for i, name in slots:
            with builder.if_then(builder.icmp_signed("==", kk, context.get_constant(sig.args[1], i))):
                context.get_setattr(name, types.void(sig.args[0], types.float64))(builder, (r, v))
        return context.get_dummy_value()

    return types.void(rec, k, value), codegen


@njit(cache=True)
def _set_float(rec, k, value):
    _store_float(rec, k, value)


class ParamsRecords:
    """`params_record` of the latest parameter tuple it was called with, cached: the same tuple object
    gives the same record; a new tuple of the same class differing in at most two float fields has
    those written in place (`_set_float`), one with the same field types is copied into that record
    in place (`_refill`), one with other types gets a new record. Calling it with each step's
    parameters (`model.p_nk` under modulators) therefore costs a few µs, not a record build."""

    def __init__(self):
        self._src = None
        self._key = None
        self._ints: tuple = ()  # positions of the int fields (whose Numba type depends on the value)
        self._rec = None

    def __call__(self, p):
        src = self._src
        if p is src:
            return self._rec
        if type(p) is type(src):  # a modulated copy: usually one float differs (~2 µs instead of ~7)
            changed = list(compress(range(len(p)), map(is_not, p, src)))
            if len(changed) <= 2 and all(type(p[i]) is float and type(src[i]) is float for i in changed):
                for i in changed:
                    _set_float(self._rec, i, p[i])
                self._src = p
                return self._rec
        key = (type(p), tuple(map(type, p)))
        if key == self._key and all(-(1 << 63) <= p[i] < (1 << 63) for i in self._ints):
            _refill(self._rec, tuple(p))
        else:
            self._rec = params_record(p)
            self._key = key
            self._ints = tuple(i for i, v in enumerate(p) if type(v) is int)
        self._src = p
        return self._rec
