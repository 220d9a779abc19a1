"""Invariants that must hold in every state: lattice exclusion, bookkeeping, non-negative fields."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.kernels import step as K
from sim.model import TumorImmuneModel


def check_invariants(m: TumorImmuneModel) -> None:
    t = m.tumor
    st_ = t.state[: t.used]
    occupied = np.flatnonzero(st_ != K.T_EMPTY)
    sites = t.site[occupied]
    # at most one tumor cell per site, and the occupancy lattice agrees with the cell arrays
    assert np.unique(sites).size == sites.size
    assert (m.occ[sites] == occupied).all()
    assert (m.occ >= 0).sum() == occupied.size
    # the bitmaps mirror the lattice: occupied sites, and sites holding a live (not yet hit) cell
    from sim.kernels.lattice import occupancy_bits, pack_alive
    assert np.array_equal(m.occ_bits, occupancy_bits(m.occ))
    alive = np.zeros_like(m.alive_bits)
    pack_alive(m.occ, t.state, K.T_ALIVE, alive)
    assert np.array_equal(m.alive_bits, alive)
    # running totals agree with a recount
    live = (st_ == K.T_ALIVE) | (st_ == K.T_DOOMED)
    assert m.tstats[K.S_LIVE] == live.sum()
    assert m.tstats[K.S_AGPOS] == (live & (t.antigen[: t.used] > 0)).sum()
    assert m.vox_tumor.sum() == live.sum() and (m.vox_tumor >= 0).all()
    # fields never negative
    assert (m.fields.values >= 0).all() and np.isfinite(m.fields.values).all()
    # NK cells never stand on a tumor cell's site unless they were born there... they never enter one
    nk_live = m.nk.state[: m.nk.used] != K.NK_EMPTY
    assert len(m.agents) == nk_live.sum()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    dims=st.sampled_from([2, 3]),
    n_tumor=st.integers(0, 300),
    n_nk=st.integers(0, 80),
    shape=st.sampled_from(["nodule", "scattered"]),
    il15=st.sampled_from(["none", "secreted"]),
    doubling_h=st.floats(2.0, 60.0),
)
def test_invariants_hold_along_random_runs(seed, dims, n_tumor, n_nk, shape, il15, doubling_h):
    size = [600.0] * 2 if dims == 2 else [240.0] * 3
    cfg = {
        "domain": {"dims": dims, "size_um": size, "field_coarsen": 2},
        "tumor": {"init": {"count": n_tumor, "shape": shape}, "doubling_time_h": doubling_h,
                  "apoptosis_delay_min": 20.0, "clearance_min": 20.0},
        "nk": {"dose": {"cells": n_nk}, "il15": {"mode": il15, "proliferation_per_day": 2.0},
               "persistence": {"half_life_days": 0.5}},
    }
    m = TumorImmuneModel(cfg, rng=seed)
    n0 = m.tumor_count()
    check_invariants(m)
    for _ in range(4):
        for _ in range(30):
            m.step()
        check_invariants(m)
    # births − deaths = Δcount
    assert m.tstats[K.S_BIRTHS] - m.tstats[K.S_DEATHS] == m.tumor_count() - n0
    nk_births, nk_deaths = m.counters[K.C_NKBIRTH], m.counters[K.C_NKDEATH]
    assert nk_births - nk_deaths == m.nk_live() - n_nk


def test_contact_inhibition_stops_a_full_lattice_from_growing():
    cfg = {"domain": {"dims": 2, "size_um": [200.0, 200.0]}, "tumor": {"init": {"count": 100}, "doubling_time_h": 1.0},
           "nk": {"dose": {"cells": 0}}}
    m = TumorImmuneModel(cfg, rng=1)
    assert m.tumor_count() == m.n_sites == 100
    m.run_days(1.0)  # 24 doubling times: every cell has attempted a division
    assert m.tumor_count() == 100 and m.tstats[K.S_BIRTHS] == 0
    assert np.isinf(m.tumor.timer[:100]).all()  # everyone is quiescent: no polling cost


def test_free_tumor_grows_with_its_doubling_time():
    """Unconstrained growth: sparse cells double every doubling_time_h on average."""
    cfg = {"domain": {"dims": 2, "size_um": [4000.0, 4000.0]},
           "tumor": {"init": {"count": 2000, "shape": "scattered"}, "doubling_time_h": 24.0},
           "nk": {"dose": {"cells": 0}}}
    m = TumorImmuneModel(cfg, rng=4)
    m.run_days(1.0)
    # Poisson-like growth: ratio 2 with sd ≈ 0.03 at n = 2000; crowding lowers it slightly
    assert 1.85 < m.tumor_count() / 2000 < 2.1
