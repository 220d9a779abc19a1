"""Kuznetsov 1994 effector–tumor ODE (sim.reference) and its well-mixed agent version (sim.wellmixed)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sim import api
from sim.kernels.wellmixed import mass_action_probabilities
from sim.reference import kuznetsov as kz
from sim.validation import error_metrics, kuznetsov_ensemble, ode_on, outcome
from sim.wellmixed import wellmixed_params

# literature.md §1 (rounded to 3 significant figures there)
PUBLISHED = [(3.16e5, 0.0, "saddle"), (1.61e6, 8.19e6, "stable focus"), (7.6e5, 2.68e8, "saddle"), (1.73e5, 4.47e8, "stable node")]


def test_fixed_points_match_published_table():
    """Numerically found fixed points agree with the published values to their 3 printed digits (1 %)."""
    fps = kz.fixed_points()
    assert len(fps) == 4
    for fp, (E, T, typ) in zip(fps, PUBLISHED):
        assert fp["E"] == pytest.approx(E, rel=0.01)
        assert fp["T"] == pytest.approx(T, rel=0.01, abs=1.0)
        assert fp["type"] == typ
    assert fps[1]["period_days"] == pytest.approx(99, abs=1)  # "damped oscillation, period about 99 days"


@pytest.mark.parametrize("T0, expected", [(1e6, "dormant"), (1e7, "dormant"), (1e8, "escape"), (1e9, "escape")])
def test_ode_dormancy_and_escape(T0, expected):
    """From E0 = 3.2e5, T0 ≤ 1e7 goes to dormancy and T0 ≥ 1e8 escapes (literature.md §1)."""
    t, E, T = kz.solve(3.2e5, T0, 400.0)
    assert outcome(E[-1], T[-1]) == expected
    target = kz.fixed_points()[1 if expected == "dormant" else 3]
    assert T[-1] == pytest.approx(target["T"], rel=0.5)  # still spiralling in after 400 days (period 99 d)


def test_mapping_reduces_to_the_ode_terms():
    """Expected per-step changes of the agent rules equal Ω × the ODE right-hand side × dt (to O(dt))."""
    om = 1e-3
    cfg = api.coerce({"domain": {"space": "well_mixed"}, "time": {"dt_min": 0.01}, "wellmixed": {"omega": om}})
    w = wellmixed_params(cfg)
    E, T = 1.0e6, 5.0e7
    nE, nT = E * om, T * om
    influx, p_death, p_inact, p_div, kill, p_div_t, p_crowd = mass_action_probabilities(w, nT)
    dE = influx + nE * (p_div - p_death - p_inact)
    dT = nT * (p_div_t - p_crowd) - nE * kill
    dE_ode, dT_ode = kz.rhs(0.0, np.array([E, T]), kz.KuznetsovParams()) * om * w.dt / 1440.0
    assert dE == pytest.approx(dE_ode, rel=1e-4)
    assert dT == pytest.approx(dT_ode, rel=1e-4)


def test_wellmixed_run_writes_the_standard_columns(tmp_path):
    """`sim.api.run` dispatches on domain.space and writes the lattice model's outputs."""
    res = api.run("scenarios/kuznetsov_wellmixed.yaml", days=5, out=tmp_path / "wm")
    assert list(res.timeseries.columns) == list(api.TIMESERIES_COLUMNS)
    assert res.timeseries["tumor"].iloc[0] == 1000 and res.timeseries["nk_live"].iloc[0] == 320
    assert (tmp_path / "wm" / "timeseries.parquet").is_file()
    again = api.run("scenarios/kuznetsov_wellmixed.yaml", days=5)
    assert again.timeseries.equals(res.timeseries)  # same seed, same result


def test_abm_dormancy_and_escape():
    """At Ω = 1e-3 every replicate ends in the ODE's basin: dormant for T0 = 1e6 (150 days, past
    the first oscillation) and escaped for T0 = 1e9 (30 days: E collapses, T settles near 4.5e8)."""
    dorm = kuznetsov_ensemble(1e-3, 1e6, 150.0, 4, seed0=11)
    assert all(outcome(e, t) == "dormant" for e, t in zip(dorm["E"][:, -1], dorm["T"][:, -1]))
    esc = kuznetsov_ensemble(1e-3, 1e9, 30.0, 4, seed0=21)
    assert all(outcome(e, t) == "escape" for e, t in zip(esc["E"][:, -1], esc["T"][:, -1]))
    Eo, To = ode_on(esc)
    assert esc["T"][:, -1].mean() == pytest.approx(To[-1], rel=0.02)


@pytest.fixture(scope="module")
def ens_1e3():
    return kuznetsov_ensemble(1e-3, 1e6, 60.0, 10, seed0=100)


def test_abm_mean_follows_ode_at_1e4_agents(ens_1e3):
    """At Ω = 1e-3 (1.3e3 agents at t = 0, 1e4 at the dormant state) the mean of 10 replicates
    follows the ODE for 60 days.

    Tolerance: at every output time |mean − ODE| ≤ 4·SE(t) + 1 % of the ODE peak, where SE is the
    replicate standard error. An unbiased model violates a 4-SE bound at one time with
    probability ~6e-5 (for 61 correlated times, < 0.4 %); the 1 % allowance covers the O(dt)
    tau-leaping bias of 30-min steps (rates ≤ 0.2/day, so ≤ 0.4 % per step, and it does not
    accumulate against a stable ODE). So that the bound has power, SE must stay below 8 % of the
    peak (measured replicate SD ≤ 19 % of the peak here, from the phase diffusion of the oscillation).
    """
    Eo, To = ode_on(ens_1e3)
    R = ens_1e3["T"].shape[0]
    for X, ref in ((ens_1e3["T"], To), (ens_1e3["E"], Eo)):
        se = X.std(0, ddof=1) / math.sqrt(R)
        assert np.all(np.abs(X.mean(0) - ref) <= 4 * se + 0.01 * ref.max())
        assert se.max() <= 0.08 * ref.max()
    dormant = kz.fixed_points()[1]
    assert 1e-3 * (dormant["T"] + dormant["E"]) == pytest.approx(1e4, rel=0.1)  # "about 1e4 agents"


def test_error_shrinks_with_system_size(ens_1e3):
    """The error falls as Ω grows ten-fold (1e-4 → 1e-3), for T and E.

    Single runs: the RMS deviation from the ODE scales as Ω^-1/2 (van Kampen), so ~3.2× smaller;
    we require 2×. Replicate mean: its squared error is bias² + variance/R, with bias and variance
    both O(1/Ω), so it should also shrink ~3×; with only 10 replicates it is noisier, so we
    require 1.5×."""
    small = error_metrics(kuznetsov_ensemble(1e-4, 1e6, 60.0, 10, seed0=100))
    big = error_metrics(ens_1e3)
    for k in ("T", "E"):
        assert big[k]["single_rms_err"] * 2.0 < small[k]["single_rms_err"]
        assert big[k]["rms_err"] * 1.5 < small[k]["rms_err"]


def test_lattice_model_refuses_well_mixed_and_cli_checks_it(capsys):
    """The lattice model names the YAML path when handed a well-mixed scenario; `nksim check` accepts it."""
    from sim.cli import main
    from sim.config import ScenarioError
    from sim.model import TumorImmuneModel

    with pytest.raises(ScenarioError, match="domain.space"):
        TumorImmuneModel({"domain": {"space": "well_mixed"}})
    assert main(["check", "scenarios/kuznetsov_wellmixed.yaml"]) == 0
    assert "well-mixed" in capsys.readouterr().out
    with pytest.raises(ScenarioError, match="domain.space"):
        api.run("scenarios/kuznetsov_wellmixed.yaml", days=1, checkpoint="/tmp/never-written.npz")


def test_hill_exponent_one_is_the_kuznetsov_model_bit_for_bit():
    """`wellmixed.proliferation_hill` defaults to 1, and 1 (left out or written) reproduces the
    well-mixed outputs of the model before the Hill exponent existed exactly: the digest below is of
    the shipped scenario's 60-day tumor, NK and kill columns on main at 10b0248 (before the change).
    A deliberate change to the well-mixed rules or random stream changes it; regenerate it then."""
    import hashlib

    def digest(ts):
        h = hashlib.sha256()
        for c in ("tumor", "nk_live", "kills_innate"):
            h.update(np.ascontiguousarray(ts[c].to_numpy()).tobytes())
        return h.hexdigest()

    assert api.coerce({"domain": {"space": "well_mixed"}}).wellmixed.proliferation_hill == 1.0
    before = "b8732f6aaec38a5cd9a8ad2efe736c870297994ede5eb25f90a96479eb5c1e6b"
    assert digest(api.run("scenarios/kuznetsov_wellmixed.yaml", days=60).timeseries) == before
    ts = api.run("scenarios/kuznetsov_wellmixed.yaml", days=60, overrides={"wellmixed.proliferation_hill": 1}).timeseries
    assert digest(ts) == before


def test_hill_exponent_is_validated(capsys, tmp_path):
    """n < 1 or a non-number is refused with exit 2 and one line naming the YAML path."""
    from sim.cli import main

    for bad, hint in (("0.5", "greater than or equal to 1"), ("two", "valid number")):
        f = tmp_path / "bad.yaml"
        f.write_text(f"domain:\n  space: well_mixed\nwellmixed:\n  proliferation_hill: {bad}\n")
        assert main(["check", str(f)]) == 2
        err = capsys.readouterr().err
        assert "wellmixed.proliferation_hill" in err and hint in err and len(err.strip().splitlines()) == 1, err
