"""The kernel's fast paths give exactly the rule they stand for: the inlined SFC64 stream, uniform
indices and directions, the row-wise neighbourhood masks and scans, and the skipped reads of zero
fields."""
import math

import numpy as np
import pytest
from numba import njit
from scipy import stats

from sim.kernels.lattice import (
    moore_offsets, neighbour_mask, occupied, random_room_neighbour, row_bits, scan_neighbours, set_occupied,
)
from sim.kernels.motility import axis_step, random_direction
from sim.kernels.rates import uniform_index
from sim.kernels.memory import keep_alive, unmanaged
from sim.kernels.streams import SFC64Stream, seeded_stream, stream_from, stream_random, stream_view
from sim.model import TumorImmuneModel


def test_sfc64_stream_is_numpy_sfc64_bit_for_bit():
    """Same state ⇒ the same doubles as numpy.random.Generator(SFC64), seeding included."""
    words = np.random.SeedSequence(2026).generate_state(3, np.uint64)
    ref = np.random.Generator(np.random.SFC64(np.random.SeedSequence(2026)))
    st = seeded_stream(*words)
    assert [stream_random(st) for _ in range(1000)] == list(ref.random(1000))
    s = ref.bit_generator.state["state"]
    proxy = SFC64Stream(*s["state"])  # a, b, c and the counter
    assert [proxy.random() for _ in range(10)] == list(ref.random(10))


@njit(cache=True)
def _draw_through_view(st, n, out):
    """n draws through `stream_view(st)`, then n straight from `st`: one state, one stream."""
    v = stream_view(st)
    for i in range(n):
        out[i] = v.random()
    for i in range(n, 2 * n):
        out[i] = st.random()
    keep_alive(st)


@njit(cache=True)
def _write_through_unmanaged(a):
    v = unmanaged(a)
    for i in range(v.shape[0]):
        v[i] += i
    return v.sum()


def test_uncounted_views_read_and_write_the_state_they_view():
    """`stream_view` draws NumPy's SFC64 sequence from the structref's own words (so the stream is the
    same whichever a kernel draws through), and `unmanaged` arrays alias their array."""
    words = np.random.SeedSequence(7).generate_state(3, np.uint64)
    ref = np.random.Generator(np.random.SFC64(np.random.SeedSequence(7)))
    out = np.empty(200)
    st = seeded_stream(*words)
    _draw_through_view(st, 100, out)
    assert list(out) == list(ref.random(200))
    assert stream_random(st) == ref.random()
    a = np.zeros(5)
    assert _write_through_unmanaged(a) == 10.0 and list(a) == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_kernel_stream_depends_only_on_the_model_generator():
    a = stream_from(np.random.default_rng(5))
    b = stream_from(np.random.default_rng(5))
    c = stream_from(np.random.default_rng(6))
    xa, xb, xc = ([stream_random(s) for _ in range(20)] for s in (a, b, c))
    assert xa == xb and xa != xc


@pytest.mark.parametrize("k", [8, 26, 1000])
def test_uniform_index_is_uniform(k):
    rng = np.random.default_rng(1)
    n = 200 * k
    draws = np.array([uniform_index(rng, k) for _ in range(n)])
    assert draws.min() >= 0 and draws.max() < k
    counts = np.bincount(draws, minlength=k)
    assert stats.chisquare(counts).pvalue > 1e-3


@pytest.mark.parametrize("dims", [2, 3])
def test_random_direction_is_uniform_on_the_circle_and_sphere(dims):
    rng = np.random.default_rng(3)
    d = np.zeros((4000, 3))
    for k in range(d.shape[0]):
        random_direction(rng, dims, d, k)
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0)
    if dims == 2:
        assert np.all(d[:, 2] == 0.0)
        angle = np.arctan2(d[:, 1], d[:, 0])
        assert stats.kstest(angle, stats.uniform(-math.pi, 2 * math.pi).cdf).pvalue > 1e-3
    else:  # Archimedes: every coordinate of a uniform direction is uniform on [-1, 1]
        for a in range(3):
            assert stats.kstest(d[:, a], stats.uniform(-1, 2).cdf).pvalue > 1e-3


def test_axis_step():
    assert [axis_step(True, 0.3), axis_step(True, -0.3), axis_step(False, 0.3), axis_step(False, -1.0)] == [1, -1, 0, 0]


def brute_neighbours(site, shape, offsets):
    nx, ny, nz = shape
    x, y, z = np.unravel_index(site, shape)
    out = []
    for o in offsets:
        p = (x + o[0], y + o[1], z + o[2])
        if all(0 <= p[a] < shape[a] for a in range(3)):
            out.append(int(np.ravel_multi_index(p, shape)))
    return out


def cyclic_scan(rng, site, shape, offsets, draws, accept):
    """The rule the fast scans stand for, written plainly: no draw if `draws` is False, else a random
    start offset and the first neighbour, cyclically in `moore_offsets` order, that `accept`s."""
    if not draws:
        return -1
    k = len(offsets)
    start = int(rng.random() * k)  # uniform_index
    x, y, z = np.unravel_index(site, shape)
    for t in range(k):
        o = offsets[(start + t) % k]
        p = (x + o[0], y + o[1], z + o[2])
        if all(0 <= p[a] < shape[a] for a in range(3)):
            q = int(np.ravel_multi_index(p, shape))
            if accept(q):
                return q
    return -1


@pytest.mark.parametrize("shape, dims", [((13, 70, 1), 2), ((9, 11, 67), 3), ((7, 9, 1), 3), ((6, 5, 2), 3)])
def test_neighbour_masks_and_scans_match_the_plain_cyclic_scan(shape, dims):
    """Random bitmaps (rows straddling 64-bit words included) and random immune counts: at every
    site the mask has bit u exactly for a flagged neighbour at offset u, and the contact scan and the
    room scan return the very site, after the very draws, of the plain cyclic scan (`cyclic_scan`),
    for both flag values (flat and thin 3D domains included): same rule, same random stream."""
    rng = np.random.default_rng(11)
    offsets = moore_offsets(dims)
    n = int(np.prod(shape))
    cap = 3
    for density in (0.02, 0.5, 0.98):
        bits = np.zeros((n + 63) // 64, dtype=np.int64)
        for s in np.flatnonzero(rng.random(n) < density):
            set_occupied(bits, s, True)
        count = rng.integers(0, cap + 1, n).astype(np.uint16)  # a quarter of the sites full
        for s in range(n):
            x, y, z = (int(c) for c in np.unravel_index(s, shape))
            nb = brute_neighbours(s, shape, offsets)
            inside = 0 < x < shape[0] - 1 and 0 < y < shape[1] - 1 and (dims == 2 or 0 < z < shape[2] - 1)
            if inside:
                want = sum(1 << u for u, o in enumerate(offsets)
                           if occupied(bits, s + int((o[0] * shape[1] + o[1]) * shape[2] + o[2])))
                assert neighbour_mask(bits, x, y, z, shape[1], shape[2]) == want
            for flag in (True, False):
                draws = not inside or any(occupied(bits, q) == flag for q in nb)
                seed = int(rng.integers(2**32))
                ref = cyclic_scan(np.random.default_rng(seed), s, shape, offsets, draws,
                                  lambda q: occupied(bits, q) == flag)
                fast_rng = np.random.default_rng(seed)
                assert scan_neighbours(fast_rng, s, x, y, z, offsets, bits, flag, *shape) == ref
                assert fast_rng.random() == np.random.default_rng(seed).random(1 + draws)[-1]  # as many draws
            draws = not inside or any(not occupied(bits, q) for q in nb)
            seed = int(rng.integers(2**32))
            ref = cyclic_scan(np.random.default_rng(seed), s, shape, offsets, draws,
                              lambda q: not occupied(bits, q) and count[q] < cap)
            assert random_room_neighbour(np.random.default_rng(seed), s, offsets, bits, count, cap, *shape) == ref
    assert row_bits(np.array([-1], dtype=np.int64), 61) == 7


def test_zero_fields_are_not_read_and_results_do_not_change():
    """Forcing the kernel to read every (zero) field gives the same run bit for bit."""
    cfg = {"domain": {"dims": 2, "size_um": [600.0, 600.0]}, "tumor": {"init": {"count": 300}, "tgfb_secretion": 0.0},
           "nk": {"dose": {"cells": 200}, "secretion": {"ifng_engaged": 0.0}, "il15": {"mode": "none"}},
           "fields": {"stroma": {"enabled": False}}}
    runs = []
    for force in (False, True):
        m = TumorImmuneModel(cfg, rng=4)
        for _ in range(120):
            if force:
                m.fields.nonzero[:] = True
            m.step()
            assert not m.fields.values.any()
            if not force:
                assert not m.fields.nonzero.any()
        runs.append((m.tumor_count(), m.nk_live(), m.counters.copy(), m.nk.site[: m.nk.used].copy()))
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1]
    assert np.array_equal(runs[0][2], runs[1][2]) and np.array_equal(runs[0][3], runs[1][3])


def test_nonzero_flags_follow_the_fields():
    m = TumorImmuneModel({"domain": {"dims": 2, "size_um": [600.0, 600.0]}, "tumor": {"init": {"count": 300}}}, rng=1)
    for _ in range(10):
        m.step()
    assert np.array_equal(m.fields.nonzero, m.fields.values.reshape(3, -1).any(axis=1))
    state = m.fields.state_dict()
    m.fields.values[...] = 0.0
    m.fields.refresh_nonzero()
    assert not m.fields.nonzero.any()
    m.fields.load_state_dict(state)
    assert np.array_equal(m.fields.nonzero, state["values"].reshape(3, -1).any(axis=1))


def test_a_field_written_directly_is_seen_by_the_next_nk_step():
    """IL-15 put into the grid by hand (flag still 'zero') reaches the NK cells at once."""
    cfg = {"domain": {"dims": 2, "size_um": [400.0, 400.0]}, "tumor": {"init": {"count": 50}},
           "nk": {"dose": {"cells": 400}, "il15": {"mode": "none"}, "persistence": {"half_life_days": 0.05}},
           "time": {"field_dt_min": 1000.0}}
    deaths = []
    for il15 in (0.0, 1000.0):
        m = TumorImmuneModel(cfg, rng=9)
        m.step()
        assert not m.fields.nonzero[2]
        m.fields.values[2] = il15  # IL-15 extends the half-life: fewer deaths when it is seen
        for _ in range(20):
            m.step()
        deaths.append(m.nk_counts.nk_deaths)
    assert deaths[1] < 0.8 * deaths[0]


def test_cache_guard_drops_cached_kernels_when_a_kernel_source_changes(tmp_path, monkeypatch):
    """nk_step inlines rules from other kernel modules, which Numba's own cache check misses."""
    from pathlib import Path

    from sim.kernels import cache_guard

    monkeypatch.setattr(cache_guard._probe._cache, "_cache_path", str(tmp_path))
    kernels = ["step.nk_step-90.py312.nbi", "step.nk_step-90.py312.1.nbc", "lattice.occupied-48.py312.nbi"]
    for name in kernels + ["someone_else.f-1.py312.nbi"]:
        (tmp_path / name).write_bytes(b"x")
    assert cache_guard.guard() is True  # no stamp yet: drop
    assert sorted(p.name for p in tmp_path.iterdir()) == [cache_guard.STAMP, "someone_else.f-1.py312.nbi"]
    digest = cache_guard.source_hash(Path(cache_guard.__file__).parent)
    assert (tmp_path / cache_guard.STAMP).read_text() == digest
    (tmp_path / kernels[0]).write_bytes(b"x")
    assert cache_guard.guard() is False and (tmp_path / kernels[0]).exists()  # sources unchanged: keep
    (tmp_path / cache_guard.STAMP).write_text("an older kernel source")
    assert cache_guard.guard() is True and not (tmp_path / kernels[0]).exists()
