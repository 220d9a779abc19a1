"""de Pillis 2005 NK-only tumor model (sim.reference.depillis) and its well-mixed agent version
(`scenarios/depillis_wellmixed.yaml`, Hill recruitment with n = 2)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sim import api
from sim.kernels.wellmixed import mass_action_probabilities
from sim.reference import depillis as dp
from sim.validation import DEPILLIS_SCENARIO, depillis_ensemble, depillis_metrics, depillis_ode_on, depillis_params_of
from sim.wellmixed import wellmixed_params

K = dp.DePillisParams()


def test_reference_parameters_and_published_statements():
    """The values of literature.md §7, and its statements: NK cells would need N > a/c ≈ 1.6e6 to
    control the tumor, homeostasis gives σ/f ≈ 3.2e5, and T0 = 1e4 grows to about 1/b ≈ 9.8e8
    within about 30 days. The Jacobian matches central differences (relative step 1e-4)."""
    assert (K.a, K.b, K.c, K.sigma, K.f, K.g, K.h, K.p) == (0.514, 1.02e-9, 3.23e-7, 1.3e4, 0.0412, 0.025, 2.02e7, 1e-7)
    assert K.a / K.c == pytest.approx(1.6e6, rel=0.01) and K.sigma / K.f == pytest.approx(3.2e5, rel=0.02)
    t, N, T = dp.solve(K.sigma / K.f, 1e4, 40.0)
    t90 = t[np.argmax(T >= 0.9 / K.b)]
    assert 25.0 <= t90 <= 35.0 and T[-1] == pytest.approx(1.0 / K.b, rel=0.01)
    assert N.max() < K.a / K.c  # never enough NK cells to control the tumor
    for y in (np.array([3e5, 1e4]), np.array([2e5, 4.5e3]), np.array([1e3, 5e8])):
        eps = 1e-4 * y
        num = np.column_stack([(dp.rhs(0, y + e, K) - dp.rhs(0, y - e, K)) / (2 * e[j])
                               for j, e in enumerate(np.diag(eps))])
        assert np.allclose(dp.jacobian(y, K), num, rtol=1e-6, atol=1e-12)


def test_shipped_scenario_is_the_published_model():
    """The scenario's wellmixed block is the model of literature.md §7: h = g_half² (n = 2)."""
    cfg = api.coerce(DEPILLIS_SCENARIO)
    assert cfg.wellmixed.proliferation_hill == 2.0
    got = depillis_params_of(cfg).as_dict()
    for k, v in K.as_dict().items():
        assert got[k] == pytest.approx(v, rel=1e-12), k
    assert cfg.wellmixed.effector_cells == pytest.approx(K.sigma / K.f, rel=1e-7)


@pytest.mark.parametrize("N, T", [(3.2e5, 2 * math.sqrt(2.02e7)), (3.0e5, 1e4), (1e5, 1e6), (2e3, 5e8)])
def test_mapping_reduces_to_the_ode_terms_with_hill_two(N, T):
    """Expected per-step changes of the agent rules equal Ω × the ODE right-hand side × dt (to O(dt):
    at dt = 0.001 min the largest hazard·dt, p·T·dt at T = 5e8, is 3.5e-5, well inside 1e-4),
    with the recruitment T²/(h + T²). At T = 2√h the Michaelis–Menten rule (n = 1) would give a
    recruitment 17 % lower (0.667 against 0.8), far outside the 1e-4 tolerance."""
    om = 1e-2
    cfg = api.coerce(DEPILLIS_SCENARIO, {"time.dt_min": 0.001, "time.days": 1, "wellmixed.omega": om})
    w = wellmixed_params(cfg)
    nN, nT = N * om, T * om
    influx, p_death, p_inact, p_div, kill, p_div_t, p_crowd = mass_action_probabilities(w, nT)
    dN = influx + nN * (p_div - p_death - p_inact)
    dT = nT * (p_div_t - p_crowd) - nN * kill
    dN_ode, dT_ode = dp.rhs(0.0, np.array([N, T]), K) * om * w.dt / 1440.0
    assert dN == pytest.approx(dN_ode, rel=1e-4)
    assert dT == pytest.approx(dT_ode, rel=1e-4)
    rec2 = p_div / (w.prolif * w.dt)
    assert rec2 == pytest.approx(T * T / (K.h + T * T), rel=1e-4)


def _mean_field(dt_min: float, days: float = 40.0):
    """The agent rules' expected per-step map, iterated deterministically (in ODE cells, Ω = 1):
    what the stochastic mean follows up to O(1/Ω), so its distance from the ODE is the τ-leap bias."""
    cfg = api.coerce(DEPILLIS_SCENARIO, {"time.dt_min": dt_min, "wellmixed.omega": 1.0})
    w = wellmixed_params(cfg)
    N, T = cfg.wellmixed.effector_cells, cfg.wellmixed.tumor_cells
    every = int(round(cfg.time.output_every_h * 60 / dt_min))
    Ns, Ts = [N], [T]
    for i in range(int(round(days * 1440 / dt_min))):
        influx, p_death, p_inact, p_div, kill, p_div_t, p_crowd = mass_action_probabilities(w, T)
        kills = min(N * kill, T)
        N = N * (1 - p_death) * (1 - p_inact) * (1 + p_div) + influx
        T = T + T * p_div_t - kills - (T - kills) * p_crowd
        if (i + 1) % every == 0:
            Ns.append(N)
            Ts.append(T)
    t = np.arange(len(Ts)) * cfg.time.output_every_h / 24.0
    _, No, To = dp.solve(cfg.wellmixed.effector_cells, cfg.wellmixed.tumor_cells, days, K, t_eval=t)
    return t, np.array(Ns), np.array(Ts), No, To


def test_tau_leap_bias_is_within_its_first_order_bound():
    """The scenario's 5-min steps: a tumor cell divides with probability 1 − e^(−x), x = a·dt, where
    the exact growth factor over the step is e^x, so the log tumor size falls behind by ≈ x² per step,
    a²·dt per day (9.2e-4/day) while the tumor grows, at most a²·dt × 30 days (the escape time) =
    2.8 % of T. NK rates (f, g, c·T before the collapse) are smaller, so N stays within 1 % of its
    peak. The bias is first order in dt: 2.5× shorter steps give ≥ 2× less."""
    t, N, T, No, To = _mean_field(5.0)
    bound = K.a ** 2 * (5.0 / 1440.0) * np.minimum(t, 30.0)
    assert np.all(np.abs(T - To) / To <= bound + 1e-9)
    assert np.max(np.abs(N - No)) <= 0.01 * No.max()
    _, _, T2, _, To2 = _mean_field(2.0)
    assert np.max(np.abs(T2 - To2) / To2) * 2.0 <= np.max(np.abs(T - To) / To)


@pytest.fixture(scope="module")
def ens():
    return depillis_ensemble(10, seed0=500)


def test_abm_mean_follows_the_ode(ens):
    """Ω = 1e-2 (100 tumor and 3,155 NK agents at t = 0), 5-min steps, 10 replicates, 40 days.

    Tolerance, at every 12-h output: |mean T − ODE| ≤ 4·SE(t) + a²·dt·min(t, 30 d)·ODE(t), and
    |mean N − ODE| ≤ 4·SE(t) + 1 % of the ODE's N peak, SE the replicate standard error. The second
    terms are the τ-leap bias bounds of `test_tau_leap_bias_is_within_its_first_order_bound`; a
    correct model exceeds 4 SE at one time with probability 0.003 (t, 9 degrees of freedom), and the
    81 times are strongly correlated (early branching noise shifts the whole trajectory). The spread
    comes from that noise: 100 founder agents give a relative SD of the tumor of
    √((a + c·N0)/((a − c·N0)·100)) ≈ 12 %; so that the bound has power, SE must stay below 8 % of T.
    """
    No, To = depillis_ode_on(ens)
    t, R = ens["t"], ens["T"].shape[0]
    for X, ref, allow in ((ens["T"], To, K.a ** 2 * ens["dt_min"] / 1440.0 * np.minimum(t, 30.0) * To),
                          (ens["N"], No, 0.01 * No.max())):
        se = X.std(0, ddof=1) / math.sqrt(R)
        assert np.all(np.abs(X.mean(0) - ref) <= 4 * se + allow + 1e-12 * ref)  # + rounding of agents/Ω
    se_T = ens["T"].std(0, ddof=1) / math.sqrt(R)
    assert np.all(se_T <= 0.08 * To)


def test_every_replicate_escapes_when_the_ode_does(ens):
    """Every replicate reaches 90 % of 1/b within 2 days of the ODE (day 30). The escape time's
    spread is the founder noise above: 12 % in size at net growth a − c·N0 = 0.41/day is 0.3 days
    (1 SD); outputs every 12 h add up to 0.5 days; 2 days is 5 SD beyond that."""
    m = depillis_metrics(ens)
    assert m["t90_days"]["ode"] == pytest.approx(30.0, abs=0.5)
    assert all(r is not None and abs(r - m["t90_days"]["ode"]) <= 2.0 for r in m["t90_days"]["replicates"])
    assert m["T"]["final_mean"] == pytest.approx(1.0 / K.b, rel=0.01)


def test_validate_depillis_writes_figure_and_json(tmp_path, capsys):
    """`nksim validate depillis` draws the figure and the metrics JSON (2 replicates here)."""
    import json

    from sim.cli import main

    assert main(["validate", "depillis", "--out", str(tmp_path), "--replicates", "2"]) == 0
    assert (tmp_path / "depillis.png").stat().st_size > 10_000
    rep = json.loads((tmp_path / "depillis.json").read_text())
    assert rep["replicates"] == 2 and rep["params"]["h"] == pytest.approx(2.02e7)
    assert "max relative error" in capsys.readouterr().out
