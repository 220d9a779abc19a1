"""`nksim calibrate`: arguments and the command (exit 2 on bad input)."""
from __future__ import annotations

import argparse
import sys

from sim.sweep.cli import add_executor_arguments
from sim.errors import interrupted_status


def add_calibrate_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the calibrate command's arguments to a (sub)parser."""
    p.add_argument("file", help="calibration file (base: + calibrate:) or a scenario with a calibrate: block")
    p.add_argument("--out", "-o", default=None, help="output folder (default results/<file name>); rerun to continue the history")
    add_executor_arguments(p)
    p.add_argument("--generations", type=int, default=None,
                   help="total ABC-SMC generations (overrides calibrate.generations; more than the history holds continues it)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def cli_calibrate(args: argparse.Namespace) -> int:
    """Run or continue a calibration from parsed arguments: 0 = done, 2 = bad input."""
    from sim.scenario import ScenarioError

    from .spec import CalibrationError, load_calibration

    try:
        load_calibration(args.file)  # a bad block exits before pyabc is imported
        from .run import calibrate

        res = calibrate(args.file, out=args.out, workers=args.workers, scheduler=args.scheduler,
                        generations=args.generations, progress=not args.quiet)
    except (ScenarioError, CalibrationError) as e:
        print(f"nksim calibrate: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (sim.errors.Terminated)
        print("nksim calibrate: interrupted; rerun the same command to continue the history", file=sys.stderr)
        return interrupted_status(e)
    s = res.summary
    for p, v in s["parameters"].items():
        print(f"{p}: median {v['median']:.4g}, 90 % interval {v['q05']:.4g}–{v['q95']:.4g} (prior {v['prior']}; default {v['base_value']})")
    print(f"wrote {res.out}/ ({s['generations']} generations, {s['total_simulations']} simulations, ESS {s['ess']:.0f}; "
          f"sampling {s['sampling_wall_s']:.0f} s in all, this call {s['wall_time_s']:.0f} s)")
    return 0
