"""Command line: `nksim run | check | params` (and `sweep`, `plot`, `validate`).

Bad input exits with status 2 and one message naming the YAML path; nothing is written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .scenario import ScenarioError


def _cmd_run(args) -> int:
    from . import api
    from .scenario import load_scenario

    cfg = load_scenario(args.scenario)
    out = Path(args.out) if args.out else Path("results") / cfg.name
    if cfg.arms:  # treatment arms on identical tumors and seeds, plus a side-by-side figure
        results = api.run_arms(cfg, seed=args.seed, out=out, progress=not args.quiet, days=args.days)
        for name, r in results.items():
            m = r.metrics
            print(f"  arm {name}: tumor {m['tumor_initial']} → {m['tumor_final']} ({m['tumor_reduction']:.1%}), "
                  f"CRS any/≥3 {m['crs_any_rate']:.0%}/{m['crs_grade3_rate']:.0%}, wall {r.summary['wall_time_s']:.1f} s")
        print(f"wrote {out}/ ({len(results)} arms, compare.png, arms.csv)")
        return 0
    ck = None
    if args.checkpoint_every_h:
        ck = out.with_name(f"{out.name}.checkpoint.npz")
        if ck.exists():
            print(f"resuming from {ck}")
    res = api.run(cfg, seed=args.seed, out=out, progress=not args.quiet, days=args.days,
                  checkpoint=ck, checkpoint_every_h=args.checkpoint_every_h)
    m = res.metrics
    print(f"wrote {out}/  (tumor {m['tumor_initial']} → {m['tumor_final']}, reduction {m['tumor_reduction']:.1%}, "
          f"kills CAR/innate {m['kills_car']}/{m['kills_innate']}, wall {res.summary['wall_time_s']:.1f} s)")
    lot = res.summary.get("therapy", {}).get("lot", {})
    if not lot.get("passed_qc", True):
        print(f"note: lot failed release QC ({', '.join(lot['failed'])}); "
              f"{'infused anyway' if lot['infused'] else 'rejected, no cells given'} (see summary.json → therapy.lot)")
    return 0


def _cmd_check(args) -> int:
    from .scenario import resolve

    eff = resolve(Path(args.scenario))
    cfg = eff.scenario
    if args.explain:
        _print_explain(eff)
    shape = cfg.domain.lattice_shape()
    if cfg.domain.space == "well_mixed":
        print(f"ok: {args.scenario} ({cfg.name}: well-mixed, Ω = {cfg.wellmixed.omega:g}, {cfg.time.days} days)")
        return 0
    print(f"ok: {args.scenario} ({cfg.name}: {cfg.domain.dims}D lattice {shape}, {cfg.time.days} days)")
    return 0


def _print_explain(eff) -> None:
    """Every effective value with its origin (user, preset:<p>, rule:<r>, arm:<a>, default), then each arm's changes."""
    from .scenario import arm_effectives

    rows = eff.explain()
    w = max(len(p) for p, _, _ in rows)
    for path, value, origin in rows:
        print(f"{path:<{w}}  {value!r:<24}  {origin}")
    for name, arm in arm_effectives(eff):
        base = dict((p, v) for p, v, _ in rows)
        diff = [(p, v, o) for p, v, o in arm.explain() if p != "arms" and base.get(p) != v]
        print(f"\narm {name}: {len(diff)} values differ from the base scenario")
        for path, value, origin in diff:
            print(f"  {path:<{w}}  {value!r:<24}  {origin}")


def _cmd_params(args) -> int:
    from .scenario import parameter_table_markdown

    text = parameter_table_markdown()
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def _cmd_validate(args) -> int:
    out = Path(args.out) if args.out else Path("results") / "validation"
    if args.which == "all":
        for which in ("kuznetsov", "cytotoxicity"):
            args.which = which
            _cmd_validate(args)
        return 0
    if args.which == "kuznetsov":
        from .validation import validate_kuznetsov

        rep = validate_kuznetsov(out, replicates=args.replicates or 16)
        for label, c in rep["cases"].items():
            print(f"{label}: ODE {c['ode_outcome']}, ABM {c['abm_outcomes'].count(c['ode_outcome'])}/{len(c['abm_outcomes'])} agree")
        for r in rep["convergence"]:
            print(f"Ω={r['omega']:g}: RMS error T {r['T']['rms_err']:.3f}, E {r['E']['rms_err']:.3f} (fraction of ODE peak)")
    else:  # cytotoxicity
        from .assays import validate_cytotoxicity

        rep = validate_cytotoxicity(out, replicates=args.replicates or 3)
        for k, v in rep["summary"].items():
            print(f"{k}: {v}")
    print(f"wrote {out}/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree; other modules add their subcommands through `register` hooks."""
    p = argparse.ArgumentParser(prog="nksim", description="Agent-based simulator of CAR-NK cell therapy.")
    from . import __version__

    p.add_argument("--version", action="version", version=f"nksim {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a scenario")
    r.add_argument("scenario")
    r.add_argument("--out", help="output folder (default results/<name>)")
    r.add_argument("--seed", type=int, help="override the scenario seed")
    r.add_argument("--days", type=float, help="override time.days")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--checkpoint-every-h", type=float, metavar="H",
                   help="save <out>.checkpoint.npz every H simulated hours; rerunning resumes from it")
    r.set_defaults(func=_cmd_run)
    c = sub.add_parser("check", help="validate a scenario without running it")
    c.add_argument("scenario")
    c.add_argument("--explain", action="store_true",
                   help="print every effective value and where it came from (user, preset, rule, arm, default)")
    c.set_defaults(func=_cmd_check)
    pr = sub.add_parser("params", help="print the parameter table (Markdown)")
    pr.add_argument("--out")
    pr.set_defaults(func=_cmd_params)
    v = sub.add_parser("validate", help="compare the model with published work (figures + JSON)")
    v.add_argument("which", choices=["kuznetsov", "cytotoxicity", "all"])
    v.add_argument("--out", help="output folder (default results/validation)")
    v.add_argument("--replicates", type=int, help="replicates per condition")
    v.set_defaults(func=_cmd_validate)
    from .calibration.cli import add_calibrate_arguments, cli_calibrate
    from .plots import add_plot_arguments, cli_plot
    from .sweep.cli import add_sweep_arguments, cli_sweep

    add_sweep_arguments(sub.add_parser("sweep", help="run or resume a parameter sweep")).set_defaults(func=cli_sweep)
    add_plot_arguments(sub.add_parser("plot", help="figures from a run or sweep folder")).set_defaults(func=cli_plot)
    add_calibrate_arguments(sub.add_parser("calibrate", help="fit parameters to data (ABC-SMC), resumable")).set_defaults(func=cli_calibrate)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `nksim` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ScenarioError as e:
        print(f"nksim: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
