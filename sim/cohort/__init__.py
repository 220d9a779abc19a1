"""Virtual patient cohorts: `nksim cohort FILE` reads off response rates the way a trial does.

    spec.py      the cohort: block → a plan (patients, seeds, draws, arms; resolved by sim.scenario.resolve)
    response.py  response read-outs (heme CR/PR, RECIST-like), best overall response, progression-free time
    tables.py    patients.parquet, response rates with Wilson intervals, paired arm differences
    figures.py   waterfall, swimmer, Kaplan–Meier PFS, forest plot
    run.py       execution through the sweep executors (local or Dask), resume, outputs
"""
from .spec import CohortPlan, CohortSpec, load_cohort  # noqa: F401
