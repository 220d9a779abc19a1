"""Virtual cohorts (issue 12): distributions drawn as declared, patients reproducible from their seeds,
response categories from the stated thresholds, paired arms, figures."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from sim.cohort.figures import forest, km_pfs, swimmer, waterfall
from sim.cohort.response import paired_difference, read_out, wilson
from sim.cohort.spec import CohortSpec, Criteria, draw_patient, load_cohort
from sim.cohort.tables import paired_differences, response_rates
from sim.scenario import ScenarioError

BASE = {"name": "c", "domain": {"size_um": [400.0, 400.0]}, "tumor": {"init": {"count": 100}},
        "output": {"snapshots": False, "figure": False}}


def spec(**kw) -> CohortSpec:
    d = {"patients": 10, "criteria": {"disease": "solid"}}
    d.update(kw)
    return CohortSpec.model_validate(d)


def test_distributions_are_drawn_as_declared():
    """4000 patients: moments within 4 standard errors, truncation respected, the copula correlation
    within 4 standard errors of rho (SE of a Pearson r on normal scores ≈ (1 − ρ²)/√n)."""
    s = spec(variability={
        "a": {"dist": "lognormal", "mean": 1500, "cv": 0.4},
        "b": {"dist": "normal", "mean": 1.0, "sd": 0.2},
        "c": {"dist": "uniform", "low": 0.0, "high": 0.05},
        "d": {"dist": "normal", "mean": 70.0, "sd": 15.0, "low": 50.0, "high": 90.0},
        "e": {"dist": "fixed", "value": 3.0},
    }, correlations=[{"a": "a", "b": "b", "rho": -0.6}])
    n = 4000
    draws = pd.DataFrame([draw_patient(s, seed) for seed in range(n)])
    se = lambda sd: sd / math.sqrt(n)  # noqa: E731
    assert abs(draws["a"].mean() - 1500) < 4 * se(600)
    assert abs(draws["a"].std() / draws["a"].mean() - 0.4) < 0.03
    assert abs(draws["b"].mean() - 1.0) < 4 * se(0.2) and abs(draws["b"].std() - 0.2) < 0.01
    assert draws["c"].between(0, 0.05).all() and abs(draws["c"].mean() - 0.025) < 4 * se(0.05 / math.sqrt(12))
    assert draws["d"].between(50, 90).all()
    tn = stats.truncnorm((50 - 70) / 15, (90 - 70) / 15, loc=70, scale=15)
    assert abs(draws["d"].mean() - tn.mean()) < 4 * se(tn.std())
    assert (draws["e"] == 3.0).all()
    z = np.column_stack([stats.norm.ppf(stats.lognorm(*_lognorm_args(1500, 0.4)).cdf(draws["a"])),
                         (draws["b"] - 1.0) / 0.2])
    r = np.corrcoef(z.T)[0, 1]
    assert abs(r - (-0.6)) < 4 * (1 - 0.36) / math.sqrt(n)


def _lognorm_args(mean, cv):
    s2 = math.log1p(cv ** 2)
    return (math.sqrt(s2), 0, mean * math.exp(-s2 / 2))


def test_patients_are_reproducible_from_their_seeds(tmp_path):
    f = tmp_path / "c.yaml"
    cohort = {"patients": 6, "variability": {"tumor.init.count": {"dist": "lognormal", "mean": 100, "cv": 0.3, "integer": True}},
              "arms": [{"name": "low", "set": {"nk.dose.cells": 10}}, {"name": "high", "set": {"nk.dose.cells": 40}}],
              "criteria": {"disease": "solid", "assessment_day": 1}}
    f.write_text(yaml.safe_dump({**BASE, "cohort": cohort}))
    p6 = load_cohort(f)
    f.write_text(yaml.safe_dump({**BASE, "cohort": {**cohort, "patients": 9}}))
    p9 = load_cohort(f)
    for a, b in zip(p6.patients, p9.patients):  # a larger cohort keeps the first patients as they were
        assert (a.seed, a.draws) == (b.seed, b.draws)
    assert len({p.seed for p in p9.patients}) == 9
    for pt in p6.patients:  # paired: every arm of a patient has the same seed and the same draw
        runs = [r for r in p6.runs if r.patient == pt.index]
        assert {r.seed for r in runs} == {pt.seed}
        counts = {p6.scenarios[r.run_id]["tumor"]["init"]["count"] for r in runs}
        assert counts == {pt.draws["tumor.init.count"]}
        assert [p6.scenarios[r.run_id]["nk"]["dose"]["cells"] for r in runs] == [10, 40]
    assert all(isinstance(p.draws["tumor.init.count"], int) for p in p6.patients)


@pytest.mark.parametrize("block,key", [
    ({"patients": 0}, "cohort.patients"),
    ({"variability": {"tumor.init.cuont": {"dist": "fixed", "value": 1}}}, "cohort.variability.tumor.init.cuont"),
    ({"variability": {"tumor.antigen.mean": {"dist": "normal", "mean": 1}}}, "cohort.variability"),
    ({"criteria": {"disease": "liquid"}}, "cohort.criteria.disease"),
    ({"arms": [{"name": "a", "set": {"nk.dose.celss": 3}}]}, "cohort.arms"),
    ({"sizes": 3}, "cohort.sizes"),
])
def test_bad_cohort_blocks_name_the_key(tmp_path, block, key):
    f = tmp_path / "c.yaml"
    cohort = {"patients": 3, "criteria": {"disease": "solid"}, **block}
    f.write_text(yaml.safe_dump({**BASE, "cohort": cohort}))
    with pytest.raises(ScenarioError) as e:
        load_cohort(f)
    assert str(e.value).split(":")[1].strip().startswith(key) or key in str(e.value)


def ts(days, cells):
    return pd.DataFrame({"time_h": 24.0 * np.asarray(days, float), "tumor": np.asarray(cells)})


def test_solid_recist_categories_on_constructed_trajectories():
    c = Criteria(disease="solid", assessment_day=28, assess_every_days=7)
    days = np.arange(0, 29)
    # 2D section: diameter ∝ √cells. −30 % diameter ⇔ cells × 0.49.
    shrink = read_out(ts(days, np.linspace(1000, 400, days.size)), c, 2)  # diameter ×0.63: PR
    assert shrink["best_response"] == "PR" and shrink["response"] == "PR" and not shrink["progressed"]
    gone = read_out(ts(days, np.r_[np.linspace(1000, 0, 15), np.zeros(14)]), c, 2)
    assert gone["best_response"] == "CR" and gone["best_change"] == -1.0
    stable = read_out(ts(days, np.full(days.size, 1000)), c, 2)
    assert stable["best_response"] == "SD"
    grow = read_out(ts(days, np.linspace(1000, 1600, days.size)), c, 2)  # √1.6 = 1.26: PD once ≥ +20 %
    # first assessment (day 7) is SD, so SD is the best response; PD by day 28
    assert grow["best_response"] == "SD" and grow["response"] == "PD" and grow["progressed"]
    # progression is found at a visit: the first weekly assessment at ≥ +20 % (day 21: √(1 + 0.6·21/28) = 1.20)
    assert grow["pfs_days"] == pytest.approx(21.0)
    # PR then regrowth ≥ 20 % over the nadir: best response stays PR, the day-28 response is PD
    relapse = read_out(ts(days, np.r_[np.linspace(1000, 300, 15), np.linspace(300, 900, 14)]), c, 2)
    assert relapse["best_response"] == "PR" and relapse["response"] == "PD" and relapse["progressed"]
    # 3D: diameter ∝ cells^(1/3)
    assert read_out(ts(days, np.linspace(1000, 400, days.size)), c, 3)["best_response"] == "SD"


def test_progression_is_judged_against_the_nadir_seen_at_visits():
    """RECIST 1.1 measures progression from the smallest burden recorded on study, i.e. at baseline and
    at the assessments, not from a minimum between visits that no clinician observed. Here burden
    falls to 1 % on day 4 and is 5 % at the day-7 visit (5× the unseen nadir, 95 % below baseline):
    a PR at day 7, then stable to day 28, never PD; PFS is censored at the end."""
    c = Criteria(disease="heme", assessment_day=28, assess_every_days=7)
    days = np.arange(0, 29)
    cells = np.r_[[1000, 600, 200, 50, 10, 20, 35], np.full(22, 50)]
    r = read_out(ts(days, cells), c, 2)
    assert r["best_response"] == "PR" and r["response"] == "PR" and not r["progressed"]
    assert r["pfs_days"] == pytest.approx(28.0)
    # regrowth ≥ 50 % over the day-7 visit (heme: Lugano / iwCLL) to measurable disease (≥ 10 % of
    # baseline) is PD at the next visit (day 14), and PFS is that visit; +22 % is not (it was under the
    # RECIST 20 % the heme criteria used before), nor +52 % while under a tenth of baseline
    grow = read_out(ts(days, np.r_[cells[:8], np.full(21, 150)]), c, 2)
    assert grow["best_response"] == "PR" and grow["response"] == "PD" and grow["pfs_days"] == pytest.approx(14.0)
    assert not read_out(ts(days, np.r_[cells[:8], np.full(21, 61)]), c, 2)["progressed"]
    assert not read_out(ts(days, np.r_[cells[:8], np.full(21, 76)]), c, 2)["progressed"]


def test_heme_categories_use_the_detection_limit_and_50_percent():
    c = Criteria(disease="heme", assessment_day=28, assess_every_days=7, detection_limit=1e-3)
    days = np.arange(0, 29)
    assert read_out(ts(days, np.r_[np.linspace(10000, 5, 20), np.full(9, 5)]), c, 2)["best_response"] == "CR"  # 5 ≤ 10
    assert read_out(ts(days, np.r_[np.linspace(10000, 20, 20), np.full(9, 20)]), c, 2)["best_response"] == "PR"
    assert read_out(ts(days, np.full(days.size, 6000)), c, 2)["best_response"] == "SD"


def test_rates_intervals_and_paired_difference():
    lo, hi = wilson(7, 20)
    assert lo == pytest.approx(0.1812, abs=1e-3) and hi == pytest.approx(0.5671, abs=1e-3)  # Wilson, 7/20
    a = np.array([1, 0, 0, 1, 0, 0, 0, 0, 1, 0], bool)
    b = np.array([1, 1, 1, 1, 0, 1, 0, 0, 1, 0], bool)
    d, lo, hi = paired_difference(a, b)
    assert d == pytest.approx(0.3) and lo < 0.3 < hi


def synthetic_patients(n=12):
    rng = np.random.default_rng(0)
    rows = []
    for arm, shift in (("low", 0.2), ("high", -0.4)):
        for i in range(n):
            ch = float(np.clip(rng.normal(shift, 0.4), -1, 2))
            best = "CR" if ch <= -0.99 else "PR" if ch <= -0.3 else "PD" if ch >= 0.2 else "SD"
            rows.append({"patient": i, "arm": arm, "best_change": ch, "best_response": best, "response": best,
                         "responder": best in ("CR", "PR"), "progressed": bool(rng.random() < 0.6),
                         "pfs_days": float(rng.uniform(3, 28))})
    return pd.DataFrame(rows)


def test_every_figure_renders(tmp_path):
    p = synthetic_patients()
    c = Criteria(disease="solid")
    rates = response_rates(p, ["low", "high"])
    diffs = paired_differences(p, ["low", "high"])
    for name, fig in (("waterfall", waterfall(p, "solid", c)), ("swimmer", swimmer(p, 28)), ("km", km_pfs(p)),
                      ("forest", forest(rates, diffs))):
        path = tmp_path / f"{name}.png"
        fig.savefig(path, dpi=60)
        assert path.stat().st_size > 5000
    assert rates["n"].tolist() == [12, 12] and diffs["n_pairs"].iloc[0] == 12


def tiny_cohort(tmp_path, patients=6):
    f = tmp_path / "cohort.yaml"
    f.write_text(yaml.safe_dump({
        **BASE, "time": {"output_every_h": 4.0, "snapshot_every_h": 0},
        "nk": {"dose": {"cells": 20, "placement": "rim"}},
        "cohort": {"patients": patients, "seed": 3,
                   "variability": {"tumor.init.count": {"dist": "lognormal", "mean": 80, "cv": 0.3, "low": 30, "high": 150, "integer": True},
                                   "tumor.antigen.mean": {"dist": "normal", "mean": 1.0, "sd": 0.2, "low": 0.2}},
                   "arms": [{"name": "low", "set": {"nk.dose.cells": 5}}, {"name": "high", "set": {"nk.dose.cells": 60}}],
                   "criteria": {"disease": "solid", "assessment_day": 1.0, "assess_every_days": 0.5}}}))
    return f


def test_cohort_command_writes_tables_and_figures(tmp_path):
    from sim.cli import main
    from sim.output import read_parquet

    f = tiny_cohort(tmp_path)
    assert main(["cohort", str(f), "--out", str(tmp_path / "out"), "--scheduler", "inline", "--no-progress"]) == 0
    out = tmp_path / "out"
    p = read_parquet(out / "patients.parquet")
    assert len(p) == 12 and set(p["arm"]) == {"low", "high"}
    assert {"draw:tumor.init.count", "best_response", "response", "pfs_days", "best_change", "seed", "infused"} <= set(p.columns)
    # paired: each patient's baseline burden is the same in both arms
    assert (p.pivot(index="patient", columns="arm", values="burden_baseline").nunique(axis=1) == 1).all()
    for name in ("waterfall", "swimmer", "km_pfs", "forest"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 5000
    rates = pd.read_csv(out / "response_rates.csv")
    assert list(rates["arm"]) == ["low", "high"] and (rates["orr_lo"] <= rates["orr"]).all()
    summ = __import__("json").loads(next((out / "runs").glob("*/summary.json")).read_text())
    assert summ["origins"]["tumor.init.count"].startswith("cohort:patient-")


@pytest.mark.slow
def test_cohort_resume_after_kill_9_is_byte_identical(tmp_path):
    """kill -9 a real `nksim cohort` with two worker processes, rerun it: patients.parquet equals an
    uninterrupted run's, byte for byte."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from sim.cli import main

    f = tiny_cohort(tmp_path, patients=10)
    out = tmp_path / "killed"
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "sim", "cohort", str(f), "--out", str(out), "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120:
            runs = [p for p in (out / "runs").glob("*") if not p.name.startswith(".")] if (out / "runs").exists() else []
            if len(runs) >= 4 or proc.poll() is not None:
                break
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.communicate()
    done = [p.name for p in (out / "runs").iterdir() if not p.name.startswith(".")]
    assert 4 <= len(done) < 20 and not (out / "patients.parquet").exists()
    again = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    man = __import__("json").loads((out / "manifest.json").read_text())
    assert man["invocations"][-1]["reused"] == len(done)
    ref = tmp_path / "ref"
    assert main(["cohort", str(f), "--out", str(ref), "--scheduler", "inline", "--no-progress"]) == 0
    assert (out / "patients.parquet").read_bytes() == (ref / "patients.parquet").read_bytes()


def test_median_pfs_is_kaplan_meier_and_censored_patients_are_not_progressions():
    """Four patients: two progress on days 7 and 14, two are censored at day 28. The plain median of
    the times (21 d) would count the censored as events; Kaplan–Meier gives S = 3/4 after day 7 and
    3/4 · 2/3 = 1/2 after day 14, so the median is 14 d. With one progression of four it is not reached."""
    from sim.cohort.tables import km_median

    assert km_median([7, 14, 28, 28], [True, True, False, False]) == pytest.approx(14.0)
    assert km_median([7, 28, 28, 28], [True, False, False, False]) == float("inf")


def test_antigen_negative_progression_is_read_from_the_tumor_ag_neg_series():
    """A relapse whose tumor is mostly antigen-negative at the first PD visit is an antigen-negative
    progression; an antigen-positive regrowth is not."""
    c = Criteria(disease="heme", assessment_day=28, assess_every_days=7)
    days = np.arange(0, 29)
    cells = np.r_[np.linspace(1000, 100, 8), np.linspace(100, 400, 21)]
    neg = ts(days, cells).assign(tumor_ag_neg=np.maximum(cells - 60.0, 0.0))  # the regrowth is antigen-negative
    r = read_out(neg, c, 2)
    assert r["progressed"] and r["antigen_negative_progression"]
    assert 0.5 <= r["antigen_negative_share_at_progression"] <= 1.0
    pos = read_out(ts(days, cells).assign(tumor_ag_neg=0.01 * cells), c, 2)
    assert pos["progressed"] and not pos["antigen_negative_progression"]
    assert "antigen_negative_progression" not in read_out(ts(days, cells), c, 2)


def test_the_tumor_ag_low_column_counts_live_positive_cells_under_the_cut(small_scenario):
    """`tumor_ag_low`: live (or doomed) antigen-positive cells below `low_below` × the antigen mean; the
    negative, the empty slots and cells at the cut do not count, and the column is in every run's series."""
    from sim import api
    from sim.kernels import step as K
    from sim.model import TumorImmuneModel
    from sim.scenario import coerce

    cfg = coerce({**small_scenario, "tumor": {**small_scenario["tumor"], "antigen": {"mean": 2.0, "low_below": 0.25}}})
    m = TumorImmuneModel(cfg, rng=1)
    t = m.tumor
    live = np.flatnonzero(t.state[: t.used] == K.T_ALIVE)
    t.antigen[live] = 2.0
    t.antigen[live[:7]] = 0.3      # under 0.25 × 2.0 = 0.5: low
    t.antigen[live[7:10]] = 0.5    # at the cut: not low
    t.antigen[live[10:14]] = 0.0   # negative: counted in tumor_ag_neg, not here
    t.state[live[5:7]] = K.T_DOOMED  # hit, dying: still counted, as in tumor_ag_pos
    assert m.antigen_low_count() == 7
    r = api.run(coerce(small_scenario), seed=2, days=0.25)
    assert (r.timeseries["tumor_ag_low"] <= r.timeseries["tumor_ag_pos"]).all() and r.timeseries["tumor_ag_low"].iat[0] > 0


def test_antigen_low_cells_count_with_the_negative_ones_in_the_negative_or_low_read_out():
    """Spiegel 2021 report CD19-negative or -low progression: a regrowth that is 30 % negative and 40 %
    low is neither antigen-positive nor (at under one half) an antigen-negative progression, but it is
    a negative-or-low one (70 %)."""
    c = Criteria(disease="heme", assessment_day=28, assess_every_days=7)
    days = np.arange(0, 29)
    cells = np.r_[np.linspace(1000, 100, 8), np.linspace(100, 400, 21)]
    r = read_out(ts(days, cells).assign(tumor_ag_neg=0.3 * cells, tumor_ag_low=0.4 * cells), c, 2)
    assert r["progressed"] and not r["antigen_negative_progression"] and r["antigen_negative_or_low_progression"]
    assert r["antigen_negative_or_low_share_at_progression"] == pytest.approx(0.7)
    assert "antigen_negative_or_low_progression" not in read_out(ts(days, cells).assign(tumor_ag_neg=0.0), c, 2)


@pytest.mark.parametrize("name", ["cohort_cd19_cb_il15.yaml", "cohort_cd19_carnk_vs_cart.yaml", "cohort_her2_solid.yaml"])
def test_check_validates_a_shipped_cohort_file(name, capsys):
    """`nksim check` reads a cohort file as a cohort (it used to take `base:` for a sweep and reject
    `patients` as an unknown key): every patient-arm resolves and the line counts them."""
    from pathlib import Path

    from sim.cli import main

    path = Path(__file__).resolve().parents[1] / "scenarios" / name
    plan = load_cohort(path)
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"cohort: {len(plan.runs)} runs" in out and f"{len({r.patient for r in plan.runs})} patients" in out


def test_heme_progression_needs_measurable_disease_again():
    """Lugano 2014: a node progresses only once it is abnormal again, not on a rise from a few residual
    cells. A PR to 0.2 % of baseline that regrows 3-fold (still 0.6 %) is not PD; regrowth to
    ≥ heme_progression_floor (10 %) of baseline is. From a CR the same floor applies (relapse to
    measurable disease)."""
    c = Criteria(disease="heme", assessment_day=28, assess_every_days=7)
    days = np.arange(0, 29)
    small = np.r_[[1000, 400, 100, 20, 5, 3, 2, 2], np.full(21, 6)]
    r = read_out(ts(days, small), c, 2)
    assert r["best_response"] == "PR" and not r["progressed"]
    big = np.r_[small[:8], np.full(21, 150)]
    assert read_out(ts(days, big), c, 2)["progressed"]
    cr = np.r_[[1000, 400, 100, 20, 5, 1, 0, 0], np.full(21, 3)]
    r = read_out(ts(days, cr), c, 2)
    assert r["best_response"] == "CR" and not r["progressed"] and r["response"] == "PR"
    assert read_out(ts(days, np.r_[cr[:8], np.full(21, 120)]), c, 2)["progressed"]


def test_follow_up_runs_past_the_assessment_and_reads_durability(tmp_path, capsys):
    """`criteria.follow_up_days`: patients run to the follow-up day (response is still read at the
    assessment day), progression is followed to the end, and the rates give the Kaplan–Meier
    progression-free share at the end of follow-up; a follow-up before the assessment is refused."""
    from sim.cohort.tables import km_at

    f = tmp_path / "c.yaml"
    cohort = {"patients": 2, "arms": [{"name": "a", "set": {}}],
              "criteria": {"disease": "solid", "assessment_day": 1, "follow_up_days": 3}}
    f.write_text(yaml.safe_dump({**BASE, "cohort": cohort}))
    plan = load_cohort(f)
    assert {plan.scenarios[r.run_id]["time"]["days"] for r in plan.runs} == {3.0}
    from sim.cli import main

    assert main(["check", str(f)]) == 0  # it checks a run as it will be made, not the base's 7 days
    assert "3.0 days" in capsys.readouterr().out
    cohort["criteria"]["follow_up_days"] = 0.5
    f.write_text(yaml.safe_dump({**BASE, "cohort": cohort}))
    with pytest.raises(ScenarioError, match=r"cohort\.criteria.*follow_up_days"):
        load_cohort(f)
    # four patients: progressions on days 35 and 60, two censored at day 90 → S(90) = 3/4 · 2/3 = 1/2
    assert km_at([35, 60, 90, 90], [True, True, False, False], 90.0)[0] == pytest.approx(0.5)
    c = Criteria(disease="heme", assessment_day=28, follow_up_days=90)
    later = read_out(ts([0, 7, 14, 21, 28, 56, 90], [100, 40, 20, 10, 5, 20, 60]), c, 2)
    assert later["response"] == "PR" and later["progressed"] and later["pfs_days"] == pytest.approx(56.0)
    d = pd.DataFrame({"arm": "a", "best_response": ["PR", "CR"], "response": ["PR", "CR"],
                      "pfs_days": [56.0, 90.0], "progressed": [True, False], "responder": True})
    r = response_rates(d, ["a"]).iloc[0]
    assert r["pfs_end_day"] == 90.0 and r["pfs_end"] == pytest.approx(0.5) and r["pfs_end_lo"] < 0.5 < r["pfs_end_hi"]


def test_a_patient_does_not_depend_on_the_order_or_company_of_the_declared_parameters():
    """The YAML order of `variability:` keys is not part of the model: writing them in another order
    (or a tool re-dumping the file with sorted keys) must give the same patients; declaring one more
    independent parameter must leave the others' draws as they were, and so must reordering a
    correlated pair."""
    base = {
        "tumor.init.count": {"dist": "lognormal", "mean": 1500, "cv": 0.4},
        "tumor.antigen.mean": {"dist": "normal", "mean": 1.0, "sd": 0.25},
        "tumor.mhc_i.mean": {"dist": "lognormal", "mean": 1.0, "cv": 0.3},
        "dosing.weight_kg": {"dist": "normal", "mean": 75, "sd": 15},
    }
    corr = [{"a": "tumor.antigen.mean", "b": "tumor.mhc_i.mean", "rho": -0.3}]
    reordered = dict(reversed(list(base.items())))
    wider = {"host.extra": {"dist": "uniform", "low": 0.0, "high": 1.0}, **base}
    flipped = [{"a": "tumor.mhc_i.mean", "b": "tumor.antigen.mean", "rho": -0.3}]
    for seed in (1, 12345, 2 ** 40):
        ref = draw_patient(spec(variability=base, correlations=corr), seed)
        assert draw_patient(spec(variability=reordered, correlations=corr), seed) == ref
        assert draw_patient(spec(variability=reordered, correlations=flipped), seed) == ref
        more = draw_patient(spec(variability=wider, correlations=corr), seed)
        assert {k: more[k] for k in base} == ref


def test_progression_free_share_is_read_at_the_end_of_follow_up_not_at_the_last_event():
    """Every patient progressed by day 14 of a 28-day follow-up: the table must say 0 % progression-free
    at day 28 (the end of follow-up), not "at day 14" (the last event), which reads as a shorter study."""
    d = pd.DataFrame({"arm": "a", "best_response": ["SD", "SD", "PD"], "response": ["PD", "PD", "PD"],
                      "pfs_days": [7.0, 14.0, 7.0], "progressed": [True, True, True], "responder": False})
    r = response_rates(d, ["a"], follow_up_day=28.0).iloc[0]
    assert r["pfs_end_day"] == 28.0 and r["pfs_end"] == 0.0
    d2 = d.assign(pfs_days=[7.0, 28.0, 28.0], progressed=[True, False, False])
    r2 = response_rates(d2, ["a"], follow_up_day=28.0).iloc[0]
    assert r2["pfs_end_day"] == 28.0 and r2["pfs_end"] == pytest.approx(2 / 3)


def test_the_shipped_cohort_rewritten_with_sorted_keys_is_the_same_plan(tmp_path):
    """Metamorphic: `scenarios/cohort_cd19_cb_il15.yaml` and the same document re-dumped by YAML with
    sorted keys (what many tools write) give the same patients, draws, layers and run ids."""
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "scenarios" / "cohort_cd19_cb_il15.yaml"
    doc = yaml.safe_load(src.read_text())
    base = src.parent / doc["base"]
    (tmp_path / doc["base"]).write_text(base.read_text())
    resorted = tmp_path / "cohort.yaml"
    resorted.write_text(yaml.safe_dump(doc, sort_keys=True))
    assert list(yaml.safe_load(resorted.read_text())["variability"]) != list(doc["variability"])  # reordered
    a, b = load_cohort(src), load_cohort(resorted)
    assert [(p.seed, p.draws) for p in a.patients] == [(p.seed, p.draws) for p in b.patients]
    assert [r.run_id for r in a.runs] == [r.run_id for r in b.runs]


def test_response_among_infused_patients_is_reported_beside_intention_to_treat():
    """Trials report efficacy among the patients who received cells; a virtual patient whose lot fails
    release gets none. The table gives both: ORR over all (intention to treat) and over the infused."""
    d = pd.DataFrame({"arm": "a", "best_response": ["CR", "PR", "SD", "PD"], "response": ["CR", "PR", "SD", "PD"],
                      "pfs_days": [28.0, 28.0, 28.0, 7.0], "progressed": [False, False, False, True],
                      "responder": [True, True, False, False], "infused": [True, True, True, False]})
    r = response_rates(d, ["a"], follow_up_day=28.0).iloc[0]
    assert r["orr"] == pytest.approx(0.5) and r["n_infused"] == 3 and r["orr_infused"] == pytest.approx(2 / 3)
    assert (r["orr_infused_lo"], r["orr_infused_hi"]) == pytest.approx(wilson(2, 3))
    assert "n_infused" not in response_rates(d.drop(columns="infused"), ["a"]).columns
