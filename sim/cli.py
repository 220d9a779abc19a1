"""Command line: `nksim run | compile | check | params | export` (and `sweep`, `plot`, `validate`, `cohort`, `calibrate`, `view`).

Bad input exits with status 2 and one message naming the YAML path; nothing is written.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import math
import sys
import warnings
from pathlib import Path

from .errors import interrupted_status
from .interrupts import interrupt_in_chain, raise_on_sigterm
from .scenario import ScenarioError

MAX_MEMORY_HELP = ("refuse a scenario whose memory estimate exceeds SIZE (e.g. 8G, 512M; default: the memory "
                   "available now)")


def _set_overrides(items: list[str] | None) -> dict:
    """`--set key=value` pairs → {dotted path: value}; values are read as YAML (5, 1e6, true, [1, 2], none)."""
    import yaml

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ScenarioError("--set", f"expected KEY=VALUE with a dotted path, got {item!r} (e.g. --set nk.dose.cells=500)")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ScenarioError(key.strip(), f"--set value {value!r} is not a YAML value (quote text, e.g. --set name='a b')") from None
    return out


COMPILE_NOTICE = ("nksim: compiling kernels once (40-80 s on 2 cores; `nksim compile` does it ahead of time; "
                  "later runs load them from the cache)")


def _compile_notice() -> None:
    """One line before the first Numba compile, instead of a silent first step with a wild ETA."""
    from .kernels.cache_guard import kernels_cached

    if not kernels_cached():
        print(COMPILE_NOTICE, file=sys.stderr, flush=True)


def _interrupted_run(ck: Path | None, e: KeyboardInterrupt) -> int:
    """`nksim run` stopped by Ctrl-C or SIGTERM: one line saying what is kept; 130 or 143."""
    kept = f"the last checkpoint is {ck}: rerun the same command to resume" if ck is not None and ck.exists() \
        else "nothing was written (--checkpoint-every-h H makes a long run resumable)"
    print(f"nksim: interrupted; {kept}", file=sys.stderr)
    return interrupted_status(e)


def _cmd_run(args) -> int:
    from .scenario import resolve

    _preflight_run(args)  # memory estimate and output-volume warnings, before anything is allocated or written
    cfg = resolve(Path(args.scenario)).with_layer("override", _set_overrides(args.set)).scenario
    _compile_notice()  # before importing the model (1.5 s): the line comes within a second of the start
    from . import api, safe_io

    out = Path(args.out) if args.out else Path("results") / cfg.name
    overwrite = getattr(args, "overwrite", False)
    safe_io.check_target(out, overwrite=overwrite, name=cfg.name)  # refuse before a checkpoint path is derived
    if cfg.arms:  # treatment arms on identical tumors and seeds, plus a side-by-side figure
        results = api.run_arms(cfg, seed=args.seed, out=out, progress=not args.quiet, days=args.days, overwrite=overwrite)
        for name, r in results.items():
            m = r.metrics
            print(f"  arm {name}: tumor {m['tumor_initial']} → {m['tumor_final']} ({m['tumor_reduction']:.1%}), "
                  f"CRS any/≥3 {m['crs_any_rate']:.0%}/{m['crs_grade3_rate']:.0%}, wall {r.summary['wall_time_s']:.1f} s")
        print(f"wrote {out}/ ({len(results)} arms, compare.png, arms.csv)")
        return 0
    ck = None
    if args.checkpoint_every_h:
        ck = out.with_name(f"{out.name}.checkpoint.npz")
    try:
        res = api.run(cfg, seed=args.seed, out=out, progress=not args.quiet, days=args.days,
                      checkpoint=ck, checkpoint_every_h=args.checkpoint_every_h, overwrite=overwrite,
                      restart=getattr(args, "restart", False),
                      on_resume=lambda t_h: print(f"resuming from {ck} (t = {t_h:g} h)"))
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (errors.Terminated)
        return _interrupted_run(ck, e)
    except OSError as e:
        kept = f" (the last checkpoint, {ck}, is kept: rerun to resume)" if ck is not None and ck.exists() else ""
        print(f"nksim: error: {_os_error(e)}; free some space or choose another folder with --out{kept}", file=sys.stderr)
        return 1
    except Exception as e:  # Ctrl-C seen inside C code before the step loop (a Numba dispatcher's SystemError)
        stop = interrupt_in_chain(e)
        if stop is None:
            raise
        return _interrupted_run(ck, stop)
    m = res.metrics
    print(f"wrote {out}/  (tumor {m['tumor_initial']} → {m['tumor_final']}, reduction {m['tumor_reduction']:.1%}, "
          f"kills CAR/innate {m['kills_car']}/{m['kills_innate']}, wall {res.summary['wall_time_s']:.1f} s)")
    lot = (res.summary.get("therapy") or {}).get("lot", {})  # None for well-mixed runs
    if not lot.get("passed_qc", True):
        print(f"note: lot failed release QC ({', '.join(lot['failed'])}); "
              f"{'infused anyway' if lot['infused'] else 'rejected, no cells given'} (see summary.json → therapy.lot)")
    return 0


def _os_error(e: OSError) -> str:
    """One line for an OSError: 'cannot write FILE: No space left on device'."""
    what = e.strerror or " ".join(str(e).split())
    return f"cannot write {e.filename}: {what}" if e.filename else f"cannot write the outputs: {what}"


def _preflight_run(args) -> None:
    """What `run` will cost, refused or warned about before the run starts (sim/scenario/preflight.py)."""
    from .scenario import resolve
    from .scenario.preflight import preflight

    layer = {k: v for k, v in (("seed", args.seed), ("time.days", args.days)) if v is not None}
    eff = resolve(Path(args.scenario)).with_layer("override", _set_overrides(args.set))
    report = preflight(eff.with_layer("run", layer), max_memory=args.max_memory)
    for w in report.warnings:
        print(f"nksim: warning: {w}", file=sys.stderr)


def _cmd_compile(args) -> int:
    from .kernels.cache_guard import cache_folder, precompiled

    folders = [Path(s) for s in args.scenario if Path(s).is_dir()]
    files = [Path(s) for s in args.scenario if not Path(s).is_dir()]
    if not files and precompiled() and not args.force:
        print(f"nksim: kernels already compiled for these sources (cache: {cache_folder()})")
        return 0
    from .scenario import resolve

    for f in files:  # bad input: one message and status 2, before anything is said or compiled
        resolve(f)
    where = cache_folder() or "memory only (no writable cache folder: nothing is kept)"
    print(f"nksim: compiling kernels into {where} (40-80 s on 2 cores when nothing is cached)", flush=True)
    from .precompile import precompile, shipped_scenarios

    todo = [f for d in folders for f in shipped_scenarios(d)] + files
    wall = precompile(todo or None, say=None if args.quiet else functools.partial(print, flush=True), mark=not files)
    print(f"nksim: kernels compiled in {wall:.0f} s; runs load them from the cache")
    return 0


def _cmd_check(args) -> int:
    from .scenario import load_raw, resolve
    from .scenario.preflight import preflight

    path = Path(args.scenario)
    raw = load_raw(path)
    sweep = ""
    if "cohort" in raw or ("base" in raw and "patients" in raw):  # a cohort: validate its plan, check its base
        from .cohort.spec import load_cohort

        cplan = load_cohort(path)
        n_pat = len({r.patient for r in cplan.runs})
        sweep = f"; cohort: {len(cplan.runs)} runs ({n_pat} patients × {len(cplan.runs) // max(n_pat, 1)} arms)"
        path = cplan.scenarios[cplan.runs[0].run_id] if cplan.runs else cplan.base_path  # a run as it will be made
    elif "calibrate" in raw:  # a calibration (`base:` + `calibrate:`, or a scenario with the block): validate it, check its base
        from .calibration import load_calibration

        cal = load_calibration(path)
        sweep = f"; calibration: {len(cal.names)} parameters, {len(cal.condition_layers)} conditions, {len(cal.data)} data"
        path = cal.document
    elif "sweep" in raw or "base" in raw:  # a sweep: validate the plan too (every point resolves, sizes bounded)
        from .sweep.spec import load_sweep

        plan = load_sweep(path)
        n_ctrl = sum(r.control for r in plan.runs)
        sweep = (f"; sweep: {len(plan.runs)} runs ({len(plan.design.points)} points × {plan.spec.replicates} replicates"
                 + (f" + {n_ctrl} untreated control runs)" if n_ctrl else ")"))
        path = plan.base_path
    eff = resolve(path)
    report = preflight(eff, max_memory=args.max_memory)
    cfg = eff.scenario
    if args.explain:
        _print_explain(eff)
    for w in report.warnings:
        print(f"nksim: warning: {w}", file=sys.stderr)
    if cfg.domain.space == "well_mixed":
        print(f"ok: {args.scenario} ({cfg.name}: well-mixed, Ω = {cfg.wellmixed.omega:g}, {cfg.time.days} days); "
              f"{report.summary()}{sweep}")
        return 0
    shape = cfg.domain.lattice_shape()
    print(f"ok: {args.scenario} ({cfg.name}: {cfg.domain.dims}D lattice {shape}, {cfg.time.days} days); {report.summary()}{sweep}")
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
    if args.references:
        from .scenario.references import references_markdown

        text = references_markdown()
    if args.out:
        _write_generated_table(Path(args.out), text)
    else:
        sys.stdout.write(text)
    return 0


#: what the head of every table `nksim params` writes says (docs/parameters.md, docs/references.md)
GENERATED_MARK = "by `nksim params"


def _write_generated_table(path: Path, text: str) -> None:
    """Write a generated table atomically; an existing file is replaced only if it is empty or the same
    table written earlier (its title line and the generator's mark), never the other table or a user's file."""
    from .errors import OutputError
    from .safe_io import atomic_write_text, check_file_target

    check_file_target(path, what="table", fix="choose a new file for --out")  # a folder, a link, a device
    if path.exists() and path.stat().st_size:
        with path.open(encoding="utf-8", errors="replace") as f:
            head = f.read(1000)
        title = text.partition("\n")[0]
        if head.partition("\n")[0] != title or GENERATED_MARK not in head:
            raise OutputError(f"refusing to overwrite {path}: it is not the table `nksim params` writes there "
                              f"({title.lstrip('# ')}); choose a new file for --out")
    atomic_write_text(path, text)


def _cmd_export(args) -> int:
    from .export import export_run

    out = export_run(args.run, args.format, out=args.out, overwrite=args.overwrite)
    what = "ParaView: open the *.series files" if args.format == "vtk" else "napari/zarr: open the folder"
    print(f"wrote {out}/ ({what})")
    return 0


def _cmd_validate(args) -> int:
    out = Path(args.out) if args.out else Path("results") / "validation"
    if args.which == "all":
        for which in ("kuznetsov", "depillis", "cytotoxicity", "kinetics", "section"):
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
    elif args.which == "depillis":
        from .validation import validate_depillis

        rep = validate_depillis(out, replicates=args.replicates or 32)
        T, N = rep["T"], rep["N"]
        reached = [d for d in rep["t90_days"]["replicates"] if d is not None]
        t90 = f"{min(reached):g}–{max(reached):g}" if reached else "never"
        print(f"de Pillis 2005 (Ω={rep['omega']:g}, {rep['replicates']} replicates, {rep['days']:g} days): "
              f"T max relative error {T['max_rel_err']:.3f} (day {T['max_rel_err_day']:g}), "
              f"{T['max_err']:.3f} of the ODE peak; N {N['max_err']:.3f} of the ODE peak; "
              f"90 % of 1/b at day {rep['t90_days']['ode']:g} (ODE), "
              f"{t90} ({len(reached)}/{rep['replicates']} replicates)")
    elif args.which == "kinetics":
        from .kinetics import validate_kinetics

        rep = validate_kinetics(out, replicates=args.replicates or 8)
        for name, r in rep.items():
            m = r["median"]
            print(f"{name}: peak day {m['peak_day']:.1f}, doubling {m['doubling_days']:.2f} d, decline t½ "
                  f"{m['decline_half_life_days']:.1f} d, terminal t½ {m['terminal_half_life_days']:.0f} d, "
                  f"detectable at day 365 in {m['detectable_day_365_fraction']:.0%} of lots; published {r['published']}")
    elif args.which == "section":
        from .validation import validate_section

        rep = validate_section(out, replicates=args.replicates or 4)
        print(f"untreated blasts, {rep['days']:g} days: closed section {rep['closed_final_median']:.0f} cells "
              f"(capacity {rep['sites']}); open sample total {rep['open_total_final_median']:.0f} against "
              f"N0·2^(t/Td) = {rep['exponential_final']:.0f} (largest shortfall {rep['open_total_max_rel_shortfall']:.1%})")
    else:  # cytotoxicity
        from .assays import validate_cytotoxicity

        rep = validate_cytotoxicity(out, replicates=args.replicates or 3)
        for k, v in rep["summary"].items():
            print(f"{k}: {v}")
    print(f"wrote {out}/")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit status 2, like every other bad input)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def _positive_hours_or_days(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return v


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 0, got {text!r}") from None
    if not 0 <= v <= 2**63 - 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2^63 - 1, got {text!r}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be ≥ 1, got {text!r}")
    return v


def _memory_size(text: str) -> int:
    from .scenario.preflight import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


#: Subcommands whose arguments live in another module: name → (module, add-arguments hook, handler, help).
#: Importing those modules pulls in sweep/cohort/calibration machinery (and scipy.stats), so
#: `build_parser(only=...)` fills in just the subcommand being run; the others get their name and help.
_PLUGINS = {
    "sweep": ("sim.sweep.cli", "add_sweep_arguments", "cli_sweep", "run or resume a parameter sweep"),
    "plot": ("sim.plots", "add_plot_arguments", "cli_plot", "figures from a run or sweep folder"),
    "cohort": ("sim.cohort.cli", "add_cohort_arguments", "cli_cohort", "virtual patient cohort: response rates per arm"),
    "calibrate": ("sim.calibration.cli", "add_calibrate_arguments", "cli_calibrate", "fit parameters to data (ABC-SMC), resumable"),
    "view": ("sim.view.cli", "add_view_arguments", "cli_view", "interactive page in the browser (Solara) on 127.0.0.1"),
}


def _command_word(argv: list[str] | None) -> str:
    """The subcommand named on the command line ('' for none: `nksim --help`, `nksim --version`)."""
    for a in sys.argv[1:] if argv is None else argv:
        if not a.startswith("-"):
            return a
    return ""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argparse tree; other modules add their subcommands through `register` hooks. With `only`
    (a subcommand name, or '' for none), the other plugin subcommands are listed but not imported."""
    import importlib

    p = _Parser(prog="nksim", description="Agent-based simulator of CAR-NK cell therapy.")
    from . import __version__

    p.add_argument("--version", action="version", version=f"nksim {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a scenario")
    r.add_argument("scenario")
    r.add_argument("--out", help="output folder (default results/<name>)")
    r.add_argument("--seed", type=_seed, help="override the scenario seed (0 to 2^63 - 1)")
    r.add_argument("--days", type=_positive_hours_or_days, help="override time.days (> 0)")
    r.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one scenario value by dotted path, validated like the YAML (repeatable), "
                        "e.g. --set nk.dose.cells=500 --set nk.il15.mode=secreted")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--checkpoint-every-h", type=_positive_hours_or_days, metavar="H",
                   help="save <out>.checkpoint.npz every H simulated hours; rerunning resumes from it")
    r.add_argument("--max-memory", type=_memory_size, metavar="SIZE", help=MAX_MEMORY_HELP)
    r.add_argument("--overwrite", action="store_true",
                   help="replace an earlier nksim run in the output folder (nothing else is ever replaced)")
    r.add_argument("--restart", action="store_true",
                   help="delete <out>.checkpoint.npz and start afresh instead of resuming from it")
    r.set_defaults(func=_cmd_run)
    cc = sub.add_parser("compile", help="compile the Numba kernels into the cache now (make does it at install)")
    cc.add_argument("scenario", nargs="*", help="compile what these scenarios use; a folder: every run scenario in it, "
                    "marking the cache complete (make passes scenarios/; default: the package's own scenarios)")
    cc.add_argument("--force", action="store_true", help="run the shipped scenarios even if they were compiled")
    cc.add_argument("--quiet", action="store_true", help="no line per scenario")
    cc.set_defaults(func=_cmd_compile)
    c = sub.add_parser("check", help="validate a scenario without running it")
    c.add_argument("scenario")
    c.add_argument("--explain", action="store_true",
                   help="print every effective value and where it came from (user, preset, rule, arm, default)")
    c.add_argument("--max-memory", type=_memory_size, metavar="SIZE", help=MAX_MEMORY_HELP)
    c.set_defaults(func=_cmd_check)
    pr = sub.add_parser("params", help="print the parameter table (Markdown)")
    pr.add_argument("--out")
    pr.add_argument("--references", action="store_true", help="print the reference list (docs/references.md) instead")
    pr.set_defaults(func=_cmd_params)
    e = sub.add_parser("export", help="export a run's snapshots to VTK (ParaView) or Zarr (napari)")
    e.add_argument("run", help="a run folder written by nksim run")
    e.add_argument("--format", required=True, choices=["vtk", "zarr"],
                   help="vtk: cells as points + fields as image data, with ParaView .series files; zarr: Zarr v2 store")
    e.add_argument("--out", help="new output folder (default: RUN-vtk next to the run, or RUN.zarr)")
    e.add_argument("--overwrite", action="store_true", help="replace an earlier nksim export in the output folder")
    e.set_defaults(func=_cmd_export)
    v = sub.add_parser("validate", help="compare the model with published work (figures + JSON)")
    v.add_argument("which", choices=["kuznetsov", "depillis", "cytotoxicity", "kinetics", "section", "all"])
    v.add_argument("--out", help="output folder (default results/validation)")
    v.add_argument("--replicates", type=_positive_int, help="replicates per condition (≥ 1)")
    v.set_defaults(func=_cmd_validate)
    for name, (module, add_arguments, handler, help_text) in _PLUGINS.items():
        sp = sub.add_parser(name, help=help_text)
        if only is None or only == name:
            mod = importlib.import_module(module)
            getattr(mod, add_arguments)(sp).set_defaults(func=getattr(mod, handler))
    return p


@contextlib.contextmanager
def _warnings_as_lines():
    """nksim's own run-time warnings (`DomainEdgeWarning`: the tumor at the domain boundary) as one
    'nksim: warning: …' line on stderr, like the preflight warnings; other warnings as Python shows them."""
    from .errors import DomainEdgeWarning

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, DomainEdgeWarning):
            print(f"nksim: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always", DomainEdgeWarning)
        warnings.showwarning = show
        yield


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `nksim` console script."""
    from .errors import NksimError

    args = build_parser(only=_command_word(argv)).parse_args(argv)
    raise_on_sigterm()  # a scheduler's stop ends a run like Ctrl-C does (checkpoint kept), exit 143
    try:
        with _warnings_as_lines():
            return args.func(args)
    except (ScenarioError, NksimError) as e:  # bad input, a refused target or checkpoint, a numerical fault
        print(f"nksim: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print("nksim: interrupted", file=sys.stderr)
        return interrupted_status(e)
    except OSError as e:  # a full disk, an I/O error: one line, not a traceback
        print(f"nksim: error: {_os_error(e)}", file=sys.stderr)
        return 1
    except Exception as e:  # C code that saw a Ctrl-C mid-call (a Numba dispatcher) raises SystemError from it
        stop = interrupt_in_chain(e)
        if stop is None:
            raise
        print("nksim: interrupted", file=sys.stderr)
        return interrupted_status(stop)


if __name__ == "__main__":
    sys.exit(main())
