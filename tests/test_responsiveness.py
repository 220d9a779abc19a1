"""Per-cell intrinsic responsiveness (nk.activation.responsiveness_sd): drawn once per infused cell,
inherited by daughters, one factor on the net signal in the kernel and the Mesa agents alike."""
import math

import numpy as np
from scipy import stats

from sim.model import TumorImmuneModel


def _model(sd, **extra):
    cfg = {"domain": {"dims": 2, "size_um": [600.0, 600.0]}, "tumor": {"init": {"count": 0}}, "nk": {"dose": {"cells": 0},
           "activation": {"responsiveness_sd": sd}}}
    cfg.update(extra)
    return TumorImmuneModel(cfg, rng=5)


def test_identical_cells_draw_nothing_and_have_responsiveness_one():
    """sd 0 is the model without heterogeneity: every cell 1.0 exactly and no random number spent (the
    rule leaves the stream untouched; runs with sd 0 are bit-identical to the model before the key)."""
    from sim.kernels.recognition import intrinsic_responsiveness
    from sim.kernels.streams import seeded_stream

    st, ref = seeded_stream(4, 5, 6), seeded_stream(4, 5, 6)
    assert intrinsic_responsiveness(st, 0.0) == 1.0 and st.random() == ref.random()
    assert intrinsic_responsiveness(st, 0.5) != 1.0 and st.random() != ref.random()
    m = _model(0.0)
    m.add_nk(np.arange(500) % m.n_sites)
    assert (m.nk.resp[:500] == 1.0).all()


def test_infused_cells_are_lognormal_with_mean_one_and_the_asked_log_sd():
    """10 000 infused cells at sd 1.2: ln(resp) is normal (KS p > 1e-3) with SD 1.2 and mean −sd²/2, so
    the mean responsiveness is 1 (a product's average potency is unchanged). Tolerances are 4 standard
    errors: SE of the SD ≈ 1.2/√(2·10⁴) = 0.0085, of the mean ≈ 0.012."""
    sd = 1.2
    m = _model(sd)
    m.add_nk(np.arange(10_000) % m.n_sites)
    ln = np.log(m.nk.resp[:10_000].astype(np.float64))
    assert abs(ln.std() - sd) < 4 * sd / math.sqrt(2 * 10_000)
    assert abs(ln.mean() + sd * sd / 2) < 4 * sd / math.sqrt(10_000)
    assert stats.kstest((ln - ln.mean()) / ln.std(), "norm").pvalue > 1e-3
    snap = m.snapshot()
    assert np.array_equal(snap["nk_responsiveness"], m.nk.resp[:10_000])
    from sim.agents.carnk import CARNKCell

    agents = list(m.agents_by_type[CARNKCell])[:50]
    assert [a.responsiveness for a in agents] == [float(m.nk.resp[a.idx]) for a in agents]
    assert len(set(a.responsiveness for a in agents)) == 50


def test_daughters_inherit_their_mothers_responsiveness():
    """Six infused cells dividing on IL-15 for three days: the clones grow, yet no new value appears —
    every cell's responsiveness is one of the six founders'."""
    m = _model(1.0, nk={"dose": {"cells": 6}, "activation": {"responsiveness_sd": 1.0},
                        "il15": {"mode": "membrane_bound", "proliferation_per_day": 3.0, "max_divisions": 6}})
    founders = set(m.nk.resp[:6].tolist())
    m.run_days(3.0)
    live = m.nk.state[: m.nk.used] >= 0
    assert live.sum() > 12
    assert set(m.nk.resp[: m.nk.used][live].tolist()) <= founders


def test_responsiveness_scales_the_net_signal_for_kernel_and_agent():
    """The same conjugate triggers more often for a cell twice as responsive: the kernel's
    conjugate_outcome with responsiveness 2 equals responsiveness 1 with twice the net signal."""
    from sim.kernels import step as K
    from sim.kernels.recognition import trigger_probability

    m = _model(0.0)
    p = m.p_nk
    args = (p, 0.0, 0.0, 1.0, 1.0, 0.5, 0.0, False, 4.0, 1.0, 1.0)
    p1, _, _ = K.conjugate_outcome(*args, 1.0)
    p2, _, _ = K.conjugate_outcome(*args, 2.0)
    net = 1.0 + 0.5 - p.inhibitory * 1.0
    assert p1 == trigger_probability(net, p.half_activation, p.hill)
    assert p2 == trigger_probability(2.0 * net, p.half_activation, p.hill) and p2 > p1
