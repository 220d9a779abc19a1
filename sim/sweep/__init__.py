"""Parameter sweeps: designs (grid, zip, LHS, Sobol, Morris), replicate seeds, an untreated control, parallel runs, resume.

Entry points: ``run_sweep(spec, out)`` from Python, ``nksim sweep SPEC`` / ``python -m sim.sweep SPEC``.

    spec.py       the sweep: block → a Plan (points resolved once by sim.scenario.resolve; the untreated control)
    designs.py    grid, zip, LHS, Sobol, Morris;   seeds.py: replicate seeds and run ids
    worker.py     one run in a private folder (what a Dask worker executes)
    executors.py  inline and Dask executors
    store.py      the output folder: atomic run folders, lock, manifest file
    runner.py     orchestration: what to run, retries, progress, resume
    aggregate.py  summary/timeseries/sensitivity Parquet tables from the run folders
"""
from __future__ import annotations

from .designs import DESIGNS, Design, Range, make_design
from .runner import SweepError, SweepOutcome, run_sweep, write_outputs
from .seeds import replicate_seeds, run_id
from .spec import KNOWN_METRICS, Plan, SweepSpec, load_sweep
from .cli import add_sweep_arguments, cli_sweep

__all__ = [
    "DESIGNS", "Design", "KNOWN_METRICS", "Plan", "Range", "SweepError", "SweepOutcome", "SweepSpec",
    "add_sweep_arguments", "cli_sweep", "load_sweep", "make_design", "replicate_seeds", "run_id", "run_sweep",
    "write_outputs",
]
