"""`nksim calibrate`: identifiability on synthetic data, resume, determinism (inline = Dask) and
bad `calibrate:` blocks (exit 2 naming the key). The full identifiability benchmark (the packaged
800 µm well, standard errors, more particles) is benchmarks/calibration_identifiability.py."""
from __future__ import annotations

import json
import math

import pytest
import yaml

from sim.calibration import load_calibration
from sim.calibration.run import calibrate
from sim.calibration.synthetic import write_invitro_problem
from sim.cli import main
from sim.output import read_parquet
from sim.scenario import ScenarioError

TRUTH = {"nk.activation.half_activation": 2.5, "nk.killing.kill_time_min": 25.0}
#: A small well (15 × 15 sites, 30 targets), 5-min steps, lysis at 0.5 and 2 h: ~0.15 s per particle.
SMALL = {"size_um": 300, "targets": 30, "times_h": (0.5, 2.0), "wells": 8, "uncertainty": "sd",
         "overrides": {"time.dt_min": 5.0, "time.output_every_h": 0.5}}


@pytest.fixture(scope="module")
def identifiability(tmp_path_factory):
    """Synthetic lysis at E:T 1, 2.5, 5 and 10 from nksim at TRUTH; 30 particles, 3 generations, inline."""
    d = tmp_path_factory.mktemp("ident")
    path = write_invitro_problem(d, TRUTH, population=30, generations=3, predictive_draws=10, **SMALL)
    return path, calibrate(path, out=d / "out", scheduler="inline", progress=False)


def test_true_values_lie_inside_the_90_percent_intervals(identifiability):
    """Both true values inside the 90 % credible intervals; half_activation is identified (its interval
    is less than a third of the prior's 90 % interval on the log scale). kill_time_min is only weakly
    identified at this size (its interval shrinks little); the benchmark shows it at full size."""
    _, res = identifiability
    s = res.summary["parameters"]
    for p, true in TRUTH.items():
        assert s[p]["q05"] <= true <= s[p]["q95"], (p, true, s[p])
    prior = res.plan.spec.parameters["nk.activation.half_activation"]
    prior_width = 2 * 1.645 * prior.sigma
    post_width = math.log(s["nk.activation.half_activation"]["q95"] / s["nk.activation.half_activation"]["q05"])
    assert post_width < prior_width / 3, (post_width, prior_width)
    assert res.summary["temperatures"][-1] == 1.0  # the last generation is the exact posterior


def test_outputs(identifiability):
    """Posterior Parquet (weights sum to 1), predictive Parquet, JSON, pasteable YAML, figures, the db."""
    _, res = identifiability
    out = res.out
    post = read_parquet(out / "posterior.parquet")
    assert list(post.columns) == [*TRUTH, "weight", "generation"]
    assert len(post) == 30 * len(res.summary["posterior_generations"]) and 2 in res.summary["posterior_generations"]
    assert post["weight"].sum() == pytest.approx(1.0)
    pred = read_parquet(out / "predictive.parquet")
    assert pred["draw"].nunique() == 10 and set(pred["condition"]) == {"et1", "et2.5", "et5", "et10"}
    snippet = yaml.safe_load((out / "posterior_medians.yaml").read_text())
    med = res.summary["parameters"]["nk.activation.half_activation"]["median"]
    assert snippet["nk"]["activation"]["half_activation"] == pytest.approx(med, rel=0.01)
    from sim.scenario import resolve

    assert resolve({"nk": snippet["nk"]}).scenario.nk.activation.half_activation == snippet["nk"]["activation"]["half_activation"]
    summary = json.loads((out / "posterior.json").read_text())
    assert summary["generations"] == 3 and len(summary["data"]) == 8
    for name in ("posterior_marginals.png", "posterior_pairs.png", "predictive_check.png", "calibration.db"):
        assert (out / name).stat().st_size > 1000, name


def _tiny(folder, **kw):
    """One fitted parameter, four 12-target wells for 1 h: a calibration in seconds."""
    return write_invitro_problem(folder, {"nk.activation.half_activation": 2.5}, size_um=200, targets=12, times_h=(1.0,),
                                 population=8, predictive_draws=3, uncertainty="sd", wells=3,
                                 overrides={"time.dt_min": 5.0}, **kw)


def test_resume_continues_the_same_history(tmp_path):
    """A second call with more generations continues the database (earlier generations untouched);
    a third with the same number samples nothing; a changed problem is refused (exit 2)."""
    import pyabc

    path = _tiny(tmp_path, generations=1)
    out = tmp_path / "out"
    r1 = calibrate(path, out=out, scheduler="inline", progress=False, figures=False)
    h = pyabc.History(f"sqlite:///{out / 'calibration.db'}")
    g0 = h.get_distribution(m=0, t=0)[0].copy()
    assert r1.summary["generations"] == 1
    r2 = calibrate(path, out=out, scheduler="inline", generations=2, progress=False, figures=False)
    assert r2.generations_run == 1 and r2.summary["generations"] == 2
    h = pyabc.History(f"sqlite:///{out / 'calibration.db'}")
    assert h.max_t == 1 and h.n_populations == 2
    assert h.get_distribution(m=0, t=0)[0].equals(g0)
    r3 = calibrate(path, out=out, scheduler="inline", generations=2, progress=False, figures=False)
    assert r3.generations_run == 0
    doc = yaml.safe_load(path.read_text())
    doc["calibrate"]["parameters"]["nk.activation.half_activation"]["sigma"] = 0.5
    path.write_text(yaml.safe_dump(doc))
    assert main(["calibrate", str(path), "--out", str(out), "--scheduler", "inline", "--quiet"]) == 2


def test_dask_gives_the_inline_posterior(tmp_path):
    """Candidates are seeded by (seed, generation, index) and kept in index order, so a local Dask
    cluster of two workers gives exactly the inline posterior."""
    path = _tiny(tmp_path, generations=2)
    a = calibrate(path, out=tmp_path / "inline", scheduler="inline", progress=False, figures=False)
    b = calibrate(path, out=tmp_path / "dask", workers=2, progress=False, figures=False)
    assert a.posterior.equals(b.posterior)
    assert a.summary["simulations"] == b.summary["simulations"]


# ---------------------------------------------------------------------------------------------
# bad blocks


def _write(tmp_path, block_changes: dict, drop: tuple = ()) -> str:
    """The shipped calibration file with parts of its calibrate: block replaced."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    doc = yaml.safe_load((root / "scenarios" / "calibrate_invitro.yaml").read_text())
    doc["base"] = str(root / "scenarios" / "invitro_cytotoxicity.yaml")
    for k in drop:
        doc["calibrate"].pop(k)
    for k, v in block_changes.items():
        node = doc["calibrate"]
        keys = k.split("/")
        for kk in keys[:-1]:
            node = node[kk]
        if v is None:
            node.pop(keys[-1])
        else:
            node[keys[-1]] = v
    p = tmp_path / "cal.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(p)


BAD = [
    ({"parameters": {"nk.activation.half_activationx": {"prior": "uniform", "low": 0.5, "high": 5}}},
     "calibrate.parameters.nk.activation.half_activationx: unknown parameter path; did you mean 'nk.activation.half_activation'?"),
    ({"parameters/nk.killing.kill_time_min": {"prior": "lognormal", "median": 15}},
     "calibrate.parameters.nk.killing.kill_time_min: a lognormal prior needs median and sigma (missing sigma)"),
    ({"parameters/nk.killing.kill_time_min": {"prior": "uniform", "low": 0, "high": 20}},
     "calibrate.parameters.nk.killing.kill_time_min: the prior's low (0) is not a valid value"),
    ({"parameters/nk.il15.mode": {"prior": "uniform", "low": 0, "high": 1}},
     "calibrate.parameters.nk.il15.mode: is not a numeric parameter"),
    ({"parameters/nk.killing.kill_time_min": {"prior": "gamma", "low": 1, "high": 2}}, "calibrate.parameters.nk.killing.kill_time_min.prior:"),
    ({"populaton": 50}, "calibrate.populaton: unknown key 'populaton'; did you mean 'population'?"),
    ({"conditions/et1": {"assay": {"ett": 1}}}, "calibrate.conditions.et1.assay.ett: unknown key 'ett'; did you mean 'et'?"),
    ({"conditions/et1": {"set": {"nk.dose.cels": 10}}}, "calibrate.conditions.et1.set.nk.dose.cels: unknown parameter path; did you mean 'nk.dose.cells'?"),
    ({"observables/fraction_no_kill": {"metric": "fraction_nk_nokill"}},
     "calibrate.observables.fraction_no_kill.metric: unknown metric 'fraction_nk_nokill'; did you mean 'fraction_nk_no_kill'?"),
    ({"observables/lysis_pct": {"columns": ["kils_car"]}}, "calibrate.observables.lysis_pct.columns.0: unknown time-series column 'kils_car'; did you mean 'kills_car'?"),
    ({"observables/serial_share": None}, "observable 'serial_share' is not in calibrate.observables"),
    ({"data": "nksim:no_such_table.csv"}, "calibrate.data: data table not found"),
    ({}, "calibrate.conditions: required key 'conditions' is missing"),
]


@pytest.mark.parametrize("changes, message", BAD, ids=[m.split(":")[0] + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_block_exits_2_naming_the_key(tmp_path, capsys, changes, message):
    path = _write(tmp_path, changes, drop=("conditions",) if not changes else ())
    assert main(["calibrate", path, "--out", str(tmp_path / "o"), "--scheduler", "inline"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "o").exists()  # nothing written


def test_the_shipped_calibration_file_and_tables_validate():
    from pathlib import Path

    plan = load_calibration(Path(__file__).resolve().parents[1] / "scenarios" / "calibrate_invitro.yaml")
    assert plan.names == ["nk.activation.half_activation", "nk.activation.responsiveness_sd", "nk.killing.kill_time_min"]
    assert plan.condition_hours == {"et1": 12.0, "et10": 4.0, "et0.2": 12.0}
    assert plan.condition_layers["et10"]["nk.dose.cells"] == 2500 and plan.condition_layers["et0.2"]["nk.dose.cells"] == 50
    assert len(plan.data) == 6 and (plan.data["uncertainty"] > 0).all()
    with pytest.raises(ScenarioError):
        load_calibration(Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.yaml")  # no calibrate: block


def test_check_validates_a_calibration_file(capsys):
    """`nksim check` on the shipped calibration file validates it as one (it used to read `base:` as a
    sweep file and reject `calibrate:` as an unknown key, exit 2), and preflights its base scenario."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scenarios" / "calibrate_invitro.yaml"
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    plan = load_calibration(path)
    assert f"calibration: {len(plan.names)} parameters, {len(plan.condition_layers)} conditions, {len(plan.data)} data" in out
