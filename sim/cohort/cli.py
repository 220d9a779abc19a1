"""`nksim cohort`: arguments and the command (exit 2 on bad input, 130 on Ctrl-C)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim.sweep.cli import add_executor_arguments
from sim.errors import interrupted_status


def add_cohort_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("scenario", help="scenario YAML with a cohort: block, or a cohort file with base:")
    p.add_argument("--out", "-o", default=None, help="output folder (default results/<file name>); rerun to resume")
    add_executor_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def cli_cohort(args: argparse.Namespace) -> int:
    """0 = every patient-arm run done, 1 = some failed, 2 = bad input."""
    from sim.scenario import ScenarioError
    from sim.sweep.store import SweepError

    from .run import print_rates, run_cohort

    out = Path(args.out) if args.out else Path("results") / Path(args.scenario).stem
    try:
        res = run_cohort(args.scenario, out=out, workers=args.workers, scheduler=args.scheduler, progress=not args.no_progress)
    except (ScenarioError, SweepError) as e:
        print(f"nksim cohort: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (sim.errors.Terminated)
        print("nksim cohort: interrupted; rerun the same command to resume", file=sys.stderr)
        return interrupted_status(e)
    print(f"cohort: {res.done}/{res.unique} patient-arm runs done ({res.executed} run now, {res.reused} reused), "
          f"{res.failed} failed -> {res.out}")
    if (res.out / "response_rates.json").is_file():
        print_rates(res.out)
    return 0 if res.failed == 0 and res.complete else 1
