"""`nksim view SCENARIO [--port P]`: serve the interactive page on 127.0.0.1 (docs/view.md)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_view_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("scenario", help="scenario YAML (a 2D or 3D lattice scenario)")
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765; 0 = any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    p.add_argument("--seed", type=int, default=None, help="override the scenario seed")
    p.add_argument("--no-warm-up", action="store_true", help="skip compiling the kernels before serving")
    return p


def offline_assets() -> bool:
    """True if Solara's front-end assets are installed locally (the `solara-assets` package)."""
    try:
        import solara_assets  # noqa: F401
    except ImportError:
        return False
    return True


def cli_view(args: argparse.Namespace) -> int:
    from sim.scenario import ScenarioError, resolve

    path = Path(args.scenario)
    os.environ.setdefault("SOLARA_TELEMETRY_MIXPANEL_ENABLE", "False")  # no calls home (read when solara loads)
    try:
        import solara  # noqa: F401
    except ImportError:
        print("nksim view: error: the page needs Solara: pip install 'nksim[view]' (or: pip install solara solara-assets)",
              file=sys.stderr)
        return 2
    eff = resolve(path)  # bad input fails here with the YAML path (exit 2 from sim.cli.main)
    if eff.scenario.domain.space == "well_mixed":
        raise ScenarioError("domain.space", "well_mixed has no tissue to draw; `nksim view` needs a lattice scenario")
    if not args.no_warm_up:
        from sim.api import warm_up

        print("nksim view: compiling the kernels once (about 20-60 s the first time, cached afterwards)...", flush=True)
        warm_up()
        from . import render

        render.lut("antigen"), render.lut("heat")  # load matplotlib's colour maps before the first frame
    os.environ["NKSIM_VIEW_SCENARIO"] = str(path.resolve())
    if args.seed is not None:
        os.environ["NKSIM_VIEW_SEED"] = str(int(args.seed))
    if not offline_assets():
        print("nksim view: note: solara-assets is not installed, so the browser fetches Solara's JavaScript from a CDN "
              "(needs internet); pip install solara-assets to serve everything from this machine", file=sys.stderr)
    from solara.__main__ import cli as solara_cli

    solara_args = ["run", "sim.view.page", "--host", args.host, "--port", str(args.port), "--production",
                   "--no-open", "--no-check-version", "--log-level", "warning"]
    try:
        solara_cli.main(args=solara_args, prog_name="nksim view", standalone_mode=False)
    except KeyboardInterrupt:
        pass
    return 0
