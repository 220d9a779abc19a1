"""The kernels' records (`sim/kernels/records.py`): built from the model's arrays, rebuilt when an array
is reallocated, and seen by the kernels exactly as the arrays themselves."""
import numpy as np
import pytest
from numba import njit

from sim.kernels import step as K
from sim.kernels.records import LatticeType, make_record
from sim.kernels.streams import stream_from
from sim.model import TumorImmuneModel
from sim.state import NKPopulation, TumorPopulation


@njit
def _first_site(rec):
    return rec.site[0]


@njit
def _set_site(rec, i, v):
    rec.site[i] = v


def test_a_record_refers_to_the_population_arrays_and_follows_reallocation():
    nk = NKPopulation(16)
    r = nk.record
    assert nk.record is r  # kept while no array is replaced
    _set_site(r, 3, 42)
    assert nk.site[3] == 42  # the kernel writes the population's own array
    nk.used = 16
    nk.ensure(100)  # reallocates every array
    assert nk.capacity >= 116 and nk.site[3] == 42
    r2 = nk.record
    assert r2 is not r
    _set_site(r2, 100, 7)
    assert nk.site[100] == 7
    nk.site = np.full(nk.capacity, 5, dtype=np.int32)  # any re-assigned field rebuilds the record
    assert _first_site(nk.record) == 5
    t = TumorPopulation(16)
    assert _first_site(t.record) == -1


def test_record_fields_keep_the_value_types():
    lat = make_record(LatticeType, shape=(3, 4, 5), coarsen=2, occ=np.zeros(60, np.int32))
    ty = lat._numba_type_.field_dict
    assert str(ty["shape"]) == "UniTuple(int64 x 3)" and str(ty["coarsen"]) == "int64"
    assert ty["occ"].dtype.name == "int32" and ty["occ"].layout == "C"


def test_model_records_are_rebuilt_only_when_an_array_changes():
    m = TumorImmuneModel({"domain": {"size_um": [400.0, 400.0]}, "tumor": {"init": {"count": 50}},
                          "nk": {"dose": {"cells": 20}}}, rng=1)
    lat, tally = m._lattice_records()
    fld = m._fields_record()
    m.step()
    step = m._nk_step_record(1)[0]
    assert m._lattice_records() == (lat, tally) and m._fields_record() is fld
    assert m._nk_step_record(m.nk.used + 1)[0] is step
    m.tstats = m.tstats.copy()  # e.g. a checkpoint tool replacing an array
    assert m._lattice_records()[1] is not tally
    assert m._nk_step_record(1)[0] is not step
    m.nk.ensure(10 * m.nk.capacity)  # reallocates the NK arrays
    assert m._nk_step_record(1)[0] is not m._nk_step_record(10 * m.nk.capacity)[0]
    for _ in range(5):
        m.step()
    assert m.tumor_count() == m.tstats[K.S_LIVE]


@njit(inline="always")
def _put(a, i, v):
    a[i] = v


@njit(inline="always")
def _put_in_record(rec, i, v):
    if v > 2.0:  # a branch: the write below lands in a block of its own
        v = 2.0
    rec.site[i] = v


@njit
def _conditional_argument(rng, a):
    r = stream_from(rng)
    for i in range(a.shape[0]):
        x = r.random()
        _put(a, i, x if i >= 0 else 0.0)


@njit
def _record_argument(rng, rec, n):
    r = stream_from(rng)
    for i in range(n):
        x = r.random()
        _put_in_record(rec, i, 1.0 + x)


def test_inlined_rules_keep_their_writes():
    """Numba 0.68's dead-code elimination (run after inlining an overload such as the stream's
    random()) misses aliases defined in blocks stored after their use and drops these writes;
    `sim/kernels/numba_fixes.py` makes its alias analysis reach a fixpoint."""
    a = np.zeros(4)
    _conditional_argument(np.random.default_rng(0), a)
    assert (a > 0).all()
    nk = NKPopulation(16)
    _record_argument(np.random.default_rng(0), nk.record, 5)
    assert (nk.site[:5] >= 1).all()  # written (the fill value is -1)


def test_statistics_by_name_are_views_of_the_kernel_arrays():
    import pytest

    from sim.kernels.records import NK_COUNTS, TUMOR_STATS

    m = TumorImmuneModel({"domain": {"size_um": [400.0, 400.0]}, "tumor": {"init": {"count": 50}},
                          "nk": {"dose": {"cells": 20}}}, rng=2)
    for _ in range(30):
        m.step()
    ts, nc = m.tumor_stats, m.nk_counts
    assert ts.live == m.tstats[K.S_LIVE] == m.tumor_count() and ts.births == m.tstats[K.S_BIRTHS]
    assert nc.conjugates == m.counters[K.C_CONJ] and nc.nk_deaths == m.counters[K.C_NKDEATH]
    assert [nc.kills_car, nc.kills_innate, nc.kills_adcc] == list(m.counters[K.C_KILL0:K.C_KILL0 + 3])
    assert list(ts.as_dict()) == list(TUMOR_STATS) and list(nc.as_dict()) == list(NK_COUNTS)
    nc.triggers = 5
    assert m.counters[K.C_TRIG] == 5
    with pytest.raises(AttributeError):
        ts.kills


@njit
def _draw_through(rng):
    return stream_from(rng).random()


def test_a_generator_record_draws_from_the_generator_it_holds():
    """A kernel given `GeneratorRecord(g)` draws what it would from `g` itself, and advances `g`."""
    from sim.kernels.streams import GeneratorRecord

    a, b = np.random.default_rng(11), np.random.default_rng(11)
    rec = GeneratorRecord(a)
    got = [_draw_through(rec), a.random(), _draw_through(rec)]
    want = [_draw_through(b), b.random(), _draw_through(b)]
    assert got == want
    assert a.bit_generator.state == b.bit_generator.state


@njit
def _param_sum(p):
    return p.dt + p.immune_cap + p.rejection_per_min


def test_parameter_records_match_their_tuples_and_are_refilled_in_place():
    from sim.kernels.records import ParamsRecords

    m = TumorImmuneModel({"domain": {"dims": 2, "size_um": [200.0, 200.0]}, "tumor": {"init": {"count": 10}}}, rng=1)
    cache = ParamsRecords()
    p = m.p_nk
    r = cache(p)
    assert cache(p) is r and _param_sum(r) == _param_sum(p)
    q = p._replace(rejection_per_min=0.25)
    assert cache(q) is r  # same field types: the record is refilled
    assert _param_sum(r) == _param_sum(q)
    q2 = q._replace(dt=q.dt * 0.5, rejection_per_min=0.5)  # two floats written in place
    q3 = q2._replace(dt=q.dt, rejection_per_min=0.125, attach_rate=q.attach_rate * 2)  # three: refilled
    for x in (q2, q3, p):
        assert cache(x) is r and _param_sum(r) == _param_sum(x)
    s = q._replace(immune_cap=2.5)  # another type: a new record
    r2 = cache(s)
    assert r2 is not r and _param_sum(r2) == _param_sum(s)


def test_centroid_is_the_mean_live_tumor_position():
    m = TumorImmuneModel({"domain": {"size_um": [400.0, 400.0]}, "tumor": {"init": {"count": 50}}}, rng=1)
    st = m.tumor.state[: m.tumor.used]
    xyz = m._coords(m.tumor.site[: m.tumor.used][st == K.T_ALIVE]).astype(np.float64)
    assert np.array_equal(m.centroid(), xyz.sum(axis=0) / len(xyz))
    m.tstats[K.S_LIVE] = 0
    assert np.array_equal(m.centroid(), (np.array(m.shape, dtype=np.float64) - 1) / 2.0)


def test_nk_hot_fields_share_one_cache_line_per_cell():
    """NKPopulation.PACKED: the fields nk_step reads for every cell live in one 64-byte-aligned record
    per cell, so prefetching a cell's site brings in the rest; growing keeps the layout and the values."""
    from sim.state import NKPopulation

    p = NKPopulation(100)
    base = p.site.ctypes.data
    assert base % 64 == 0 and p.site.strides == (64,)
    for name in NKPopulation.PACKED:
        a = getattr(p, name)
        assert a.strides[0] == 64 and 0 <= a.ctypes.data - base < 64, name
    p.site[:100] = np.arange(100)
    p.direction[5] = (0.6, 0.8, 0.0)
    p.used = 100
    p.ensure(500)
    assert p.capacity >= 600 and p.site.strides == (64,) and p.site.ctypes.data % 64 == 0
    assert (p.site[:100] == np.arange(100)).all() and (p.site[100:] == -1).all()
    assert tuple(p.direction[5]) == pytest.approx((0.6, 0.8, 0.0)) and (p.resp[100:] == 1.0).all()
