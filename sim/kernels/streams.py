"""The random stream of the batch kernels: SFC64 inlined into the kernel, seeded from the model's Generator.

Numba calls a NumPy `Generator` through a function pointer, so each draw is an opaque call that
costs more than the generator itself and keeps the kernel's loop state out of registers. The batch
steps therefore draw from `SFC64Stream`, NumPy's SFC64 algorithm (Doty-Humphrey's Small Fast
Chaotic generator) compiled into the kernel: `random()` returns exactly what
`numpy.random.Generator(numpy.random.SFC64)` returns from the same state (tested). Each kernel call
seeds a fresh stream from three words of the model's Generator, so the model's Generator is still
the only random state: a run is reproducible from its seed and a checkpoint needs nothing more.

Mechanism functions take any object with a `random()` method in [0, 1): the kernels pass a
`SFC64Stream`, tests and the Mesa agent API may pass a NumPy Generator; the rule is the same code.
"""
import numpy as np
from numba import njit, typeof, types
from numba.core import cgutils
from numba.experimental import structref
from numba.extending import intrinsic, make_attribute_wrapper, models, overload, overload_method, register_model

SFC64_WARMUP = 12  # rounds discarded after seeding, as numpy.random.SFC64 does


@structref.register
class SFC64StreamType(types.StructRef):
    """Numba type of `SFC64Stream` (state words a, b, c and counter w, all uint64)."""

    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(t)) for name, t in fields)


class SFC64Stream(structref.StructRefProxy):
    """An SFC64 state usable from Python and inside Numba kernels (`random()` is inlined there)."""

    def __new__(cls, a, b, c, w=1):
        return structref.StructRefProxy.__new__(cls, np.uint64(a), np.uint64(b), np.uint64(c), np.uint64(w))

    def random(self) -> float:
        return stream_random(self)


structref.define_proxy(SFC64Stream, SFC64StreamType, ["a", "b", "c", "w"])

SFC64_TYPE = SFC64StreamType(fields=(("a", types.uint64), ("b", types.uint64), ("c", types.uint64),
                                     ("w", types.uint64)))


@njit(cache=True, inline="always")
def sfc64_next(st):
    """One SFC64 round: the next 64-bit output, advancing the state (NumPy's `sfc64_next`)."""
    a = st.a
    b = st.b
    c = st.c
    w = st.w
    out = a + b + w
    st.w = w + np.uint64(1)
    st.a = b ^ (b >> np.uint64(11))
    st.b = c + (c << np.uint64(3))
    st.c = ((c << np.uint64(24)) | (c >> np.uint64(40))) + out
    return out


@overload_method(SFC64StreamType, "random", inline="always")
def _stream_random(st):
    def impl(st):
        # NumPy's next_double: the top 53 bits scaled to [0, 1)
        return np.float64(sfc64_next(st) >> np.uint64(11)) * (1.0 / 9007199254740992.0)

    return impl


class SFC64ViewType(types.Type):
    """Numba type of a stream's state seen through a raw pointer (`stream_view`): a plain value with no
    reference count, for the rules a kernel inlines (Numba keeps the atomic reference-count updates of
    a structref passed into an inlined function with a loop; `memory.unmanaged` for arrays)."""

    def __init__(self):
        super().__init__(name="SFC64View")


SFC64_VIEW = SFC64ViewType()


@register_model(SFC64ViewType)
class _SFC64ViewModel(models.StructModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, [("ptr", types.CPointer(types.uint64))])


make_attribute_wrapper(SFC64ViewType, "ptr", "ptr")


@intrinsic
def stream_view(typingctx, st):
    """A view of the `SFC64Stream` `st`'s words a, b, c, w: its `random()` draws from, and advances, the
    very state `st` holds, so the stream is unchanged. The kernel keeps `st` alive while it uses the
    view (`memory.keep_alive`)."""
    if not isinstance(st, SFC64StreamType) or list(st.field_dict.items()) != [(k, types.uint64) for k in "abcw"]:
        return None  # the view reads the words as four uint64 in this order

    def codegen(context, builder, sig, args):
        meminfo = cgutils.create_struct_proxy(sig.args[0])(context, builder, value=args[0]).meminfo
        view = cgutils.create_struct_proxy(sig.return_type)(context, builder)
        view.ptr = builder.bitcast(context.nrt.meminfo_data(builder, meminfo),
                                   context.get_value_type(types.CPointer(types.uint64)))
        return view._getvalue()

    return SFC64_VIEW(st), codegen


@overload_method(SFC64ViewType, "random", inline="always")
def _view_random(v):
    def impl(v):
        # `sfc64_next` and `random()` on the words a, b, c, w (the structref's field order)
        w = v.ptr
        a, b, c, n = w[0], w[1], w[2], w[3]
        out = a + b + n
        w[3] = n + np.uint64(1)
        w[0] = b ^ (b >> np.uint64(11))
        w[1] = c + (c << np.uint64(3))
        w[2] = ((c << np.uint64(24)) | (c >> np.uint64(40))) + out
        return np.float64(out >> np.uint64(11)) * (1.0 / 9007199254740992.0)

    return impl


@njit(cache=True)
def stream_random(st):
    """`st.random()` callable from Python."""
    return st.random()


@njit(cache=True)
def seeded_stream(a, b, c):
    """A stream seeded like `numpy.random.SFC64`: words a, b, c, counter 1, 12 rounds discarded."""
    st = structref.new(SFC64_TYPE)
    st.a = np.uint64(a)
    st.b = np.uint64(b)
    st.c = np.uint64(c)
    st.w = np.uint64(1)
    for _ in range(SFC64_WARMUP):
        sfc64_next(st)
    return st


@structref.register
class GeneratorRecordType(types.StructRef):
    """Numba type of `GeneratorRecord`: one field, `gen`, a NumPy Generator."""

    def preprocess_fields(self, fields):
        return tuple((name, types.unliteral(t)) for name, t in fields)


class GeneratorRecord(structref.StructRefProxy):
    """A NumPy Generator held in a record, to pass to a kernel in its place (`generator_of`).

    Numba unboxes a Generator argument on every call (~13–25 µs: its bit generator's ctypes
    interface is rebuilt each time); a record is unboxed in ~2 µs. The record refers to the same
    Generator, so kernel draws advance the very state Python draws from: same seed, same stream.
    Built by a cached kernel (`_generator_record`), so making one compiles nothing at run time."""

    def __new__(cls, gen):
        return _generator_record(gen)

    @property
    def gen(self):
        return _record_generator(self)


structref.define_boxing(GeneratorRecordType, GeneratorRecord)

GENERATOR_RECORD_TYPE = GeneratorRecordType(fields=(("gen", typeof(np.random.default_rng(0))),))


@njit(cache=True)
def _generator_record(gen):
    st = structref.new(GENERATOR_RECORD_TYPE)
    st.gen = gen
    return st


@njit(cache=True)
def _record_generator(rec):
    return rec.gen


def generator_of(rng):
    """The NumPy Generator a kernel was given: `rng` itself, or the one a `GeneratorRecord` holds."""
    return rng.gen if isinstance(rng, GeneratorRecord) else rng


@overload(generator_of, inline="always")
def _generator_of(rng):
    if isinstance(rng, GeneratorRecordType):
        return lambda rng: rng.gen
    return lambda rng: rng


@njit(cache=True)
def stream_from(rng):
    """A fresh kernel stream seeded with three 63-bit words drawn from the NumPy Generator `rng`
    (or the one a `GeneratorRecord` holds)."""
    g = generator_of(rng)
    hi = np.int64(9223372036854775807)
    return seeded_stream(np.uint64(g.integers(0, hi)), np.uint64(g.integers(0, hi)),
                         np.uint64(g.integers(0, hi)))
