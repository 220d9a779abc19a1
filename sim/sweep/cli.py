"""`nksim sweep` / `python -m sim.sweep`: arguments and the command (exit 2 on bad input)."""
from __future__ import annotations

import argparse
import sys
from sim.errors import interrupted_status


def add_executor_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """--workers and --scheduler: where the runs of a sweep, cohort or calibration execute (sim/sweep/executors.py)."""
    p.add_argument("--workers", "-j", type=int, default=None, help="local worker processes (default: all cores)")
    p.add_argument("--scheduler", default=None,
                   help="tcp://host:port of a running Dask scheduler, or 'inline' to run here one by one")
    return p


def add_sweep_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the sweep command's arguments to a (sub)parser."""
    p.add_argument("scenario", help="scenario YAML with a sweep: block, or a sweep file with base:")
    p.add_argument("--out", "-o", default=None, help="output folder (default results/<file name>[_sweep]); rerun to resume")
    add_executor_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--runner", default=None, help=argparse.SUPPRESS)  # module:attr, for tests
    return p


def cli_sweep(args: argparse.Namespace) -> int:
    """Run a sweep from parsed arguments: 0 = all runs done, 1 = some failed, 2 = bad input."""
    from sim.scenario import ScenarioError

    from .runner import SweepError, run_sweep

    try:
        res = run_sweep(
            args.scenario, out=getattr(args, "out", None), workers=getattr(args, "workers", None),
            scheduler=getattr(args, "scheduler", None), progress=not getattr(args, "no_progress", False),
            runner=getattr(args, "runner", None),
        )
    except (ScenarioError, SweepError) as e:
        print(f"nksim sweep: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (sim.errors.Terminated)
        print("nksim sweep: interrupted; rerun the same command to resume", file=sys.stderr)
        return interrupted_status(e)
    except OSError as e:  # a full disk, an I/O error: the manifest says "failed"; one line, not a traceback
        what = e.strerror or " ".join(str(e).split())
        where = f" {e.filename}" if e.filename else ""
        print(f"nksim sweep: error: cannot write{where}: {what}; free some space and rerun the same command to resume",
              file=sys.stderr)
        return 1
    msg = f"sweep: {res.done}/{res.unique} runs done ({res.executed} run now, {res.reused} reused), {res.failed} failed -> {res.out}"
    print(msg, file=sys.stderr)
    return 0 if res.failed == 0 and res.complete else 1


def main(argv: list[str] | None = None) -> int:
    """`python -m sim.sweep`: the same command without the nksim front end."""
    p = add_sweep_arguments(argparse.ArgumentParser(prog="python -m sim.sweep", description="Run or resume a parameter sweep."))
    return cli_sweep(p.parse_args(argv))
