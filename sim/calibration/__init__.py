"""Calibration: fit scenario parameters to data by approximate Bayesian computation (pyabc ABC-SMC).

    spec.py     the `calibrate:` block (parameters with priors, data tables, conditions, observables),
                its validation and the plan; `observe` computes an observable from one run
    run.py      the nksim model as a pyabc model, seeded inline/Dask samplers, the resumable run
                and its outputs (posterior, predictive check, YAML snippet)
    figures.py  posterior marginals, pairwise posterior, posterior predictive check (Figure objects)
    cli.py      `nksim calibrate FILE [--out DIR] [--workers N] [--scheduler ADDRESS]`

`sim.calibration.run` imports pyabc (slow to import); this package and the CLI module do not.
"""
from .spec import CalibrationError, Plan, load_calibration, observe  # noqa: F401
