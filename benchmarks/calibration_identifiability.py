"""Identifiability benchmark for `nksim calibrate` (not run by the tests; tests/test_calibration.py has
the small version).

Synthetic data: the in vitro well (default the packaged one: 800 × 800 µm, 250 targets, 2-min
steps) at E:T 1, 2.5, 5 and 10 with the true parameters below; % lysis at 1 and 4 h of one well per
ratio plus Gaussian measurement noise (SD 5 % points, stated as the uncertainty): exactly the noise
model the stochastic acceptor assumes, so the 90 % intervals should hold the truth 90 % of the time.
Fit nk.activation.half_activation and nk.killing.kill_time_min (lognormal priors around the current
defaults) and check that each true value lies inside its 90 % credible interval.

    python benchmarks/calibration_identifiability.py [--out results/bench_calibration] [--workers N]
           [--population 100] [--generations 6] [--noise 5] [--times 1 4] [--size UM --targets N]

At the defaults the last generations accept 1–3 % of candidates at 0.5 s each (four 250-target
wells): an hour or more on 2 cores. `--size 400 --targets 60 --population 60 --generations 5
--noise 10` took 10 min there (docs/calibration.md has its result).
Writes the calibration folder plus identifiability.json and marginals with the true values marked.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from sim.calibration.figures import marginals_figure, pairs_figure
from sim.calibration.run import calibrate
from sim.calibration.synthetic import write_invitro_problem

TRUTH = {"nk.activation.half_activation": 2.5, "nk.killing.kill_time_min": 25.0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/bench_calibration")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--scheduler", default=None)
    ap.add_argument("--population", type=int, default=100)
    ap.add_argument("--generations", type=int, default=6)
    ap.add_argument("--noise", type=float, default=5.0, help="measurement SD, %% points")
    ap.add_argument("--times", type=float, nargs="+", default=[1.0, 4.0], help="data times (h)")
    ap.add_argument("--size", type=float, default=None, help="well side (µm; default the packaged 800)")
    ap.add_argument("--targets", type=int, default=None, help="targets per well (default the packaged 250)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    t0 = time.perf_counter()
    path = write_invitro_problem(out / "problem", TRUTH, times_h=tuple(a.times), uncertainty=a.noise,
                                 size_um=a.size, targets=a.targets,
                                 population=a.population, generations=a.generations, predictive_draws=50)
    t_data = time.perf_counter() - t0
    res = calibrate(path, out=out / "calibration", workers=a.workers, scheduler=a.scheduler)
    s = res.summary["parameters"]
    rows = {p: {"true": v, "median": s[p]["median"], "q05": s[p]["q05"], "q95": s[p]["q95"],
                "inside_90": bool(s[p]["q05"] <= v <= s[p]["q95"])} for p, v in TRUTH.items()}
    report = {"truth": TRUTH, "parameters": rows, "data_wall_s": t_data, "calibration_wall_s": res.summary["wall_time_s"],
              "total_simulations": res.summary["total_simulations"], "generations": res.summary["generations"],
              "population": res.summary["population"], "ess": res.summary["ess"]}
    (out / "identifiability.json").write_text(json.dumps(report, indent=2))
    marginals_figure(res.plan, res.posterior, s, truth=TRUTH).savefig(out / "identifiability_marginals.png", dpi=90)
    pairs_figure(res.plan, res.posterior, truth=TRUTH).savefig(out / "identifiability_pairs.png", dpi=90)
    for p, r in rows.items():
        print(f"{p}: true {r['true']:g}, median {r['median']:.3g}, 90 % interval {r['q05']:.3g}–{r['q95']:.3g} "
              f"({'inside' if r['inside_90'] else 'OUTSIDE'})")
    print(f"{report['total_simulations']} simulations, {report['calibration_wall_s']:.0f} s; wrote {out}/")
    return 0 if all(r["inside_90"] for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
