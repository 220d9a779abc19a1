"""The kernels' records (`sim/kernels/records.py`): built from the model's arrays, rebuilt when an array
is reallocated, and seen by the kernels exactly as the arrays themselves."""
import ast
from pathlib import Path

import numpy as np
from numba import njit

from sim.kernels import step as K
from sim.kernels.records import LatticeType, make_record
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
    assert m._lattice_records() == (lat, tally) and m._fields_record() is fld
    m.tstats = m.tstats.copy()  # e.g. a checkpoint tool replacing an array
    assert m._lattice_records()[1] is not tally
    for _ in range(5):
        m.step()
    assert m.tumor_count() == m.tstats[K.S_LIVE]


def _calls_with_branching_arguments(path: Path) -> list[str]:
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            for a in list(node.args) + [k.value for k in node.keywords]:
                if any(isinstance(n, (ast.IfExp, ast.BoolOp)) for n in ast.walk(a)):
                    bad.append(f"{path.name}:{node.lineno}")
    return bad


def test_no_kernel_call_takes_a_conditional_expression_as_an_argument():
    """Numba 0.68 drops the array writes of an inline='always' callee given an `a if c else b` (or
    `a and b`) argument in a kernel that also inlines an overload such as the stream's `random()`:

        @njit(inline="always")
        def put(a, i, v): a[i] = v

        @njit
        def k(rng, a):
            r = stream_from(rng)
            for i in range(a.shape[0]):
                x = r.random()
                put(a, i, x if i >= 0 else 0.0)   # `a` stays all zeros

    So the kernels write such a value to a variable first; this checks their sources."""
    folder = Path(K.__file__).parent
    assert [b for p in sorted(folder.glob("*.py")) for b in _calls_with_branching_arguments(p)] == []


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
