"""`nksim compile`: compile every Numba kernel a run uses into the on-disk cache, once (`make` does it
at install), so that no `nksim run` or sweep worker waits for a compile.

Which kernels a run uses is not listed anywhere: the shipped scenarios are run for one simulated day
and a half each, without outputs, and whatever they call is compiled and cached (2D and 3D lattices, CAR-NK and
CAR-T arms, blood and vessel arrival, fields, drugs, both well-mixed models). The kernels' types do
not depend on a scenario's sizes, so a user's scenario then loads the same compiled code.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

DAYS = 1.5  # every kernel call of the shipped scenarios happens by then (the first chemotherapy pulse: day 1)


def shipped_scenarios(folder: Path | None = None) -> list[Path]:
    """The run scenarios in `folder` (default: the package's own, sim/data; `make` passes the checkout's
    scenarios/, which the package itself never reads); files that are not scenarios (sweep, cohort and
    calibration specs) are left out."""
    from .scenario import ScenarioError, resolve

    if folder is None:
        from . import data

        folder = data.path("")
    out = []
    for f in sorted(Path(folder).glob("*.yaml")):
        try:
            resolve(f)
        except (ScenarioError, OSError):
            continue
        out.append(f)
    return out


def precompile(scenarios: list | None = None, days: float = DAYS, say: Callable[[str], None] | None = None,
               mark: bool | None = None) -> float:
    """Run each scenario (default: `shipped_scenarios()`) for `days`, writing nothing, so its kernels
    are compiled into the cache; mark the cache complete when `mark` (default: for the default set, or
    when the caller passes a whole shipped folder). Returns the wall time."""
    import warnings

    from . import api
    from .kernels import cache_guard
    from .scenario import resolve

    t0 = time.perf_counter()
    files = shipped_scenarios() if scenarios is None else list(scenarios)
    for k, f in enumerate(files, 1):
        t = time.perf_counter()
        cfg = resolve(f).scenario
        d = min(days, cfg.time.days)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a shortened run may warn (domain edge, few outputs): not the user's run
            if cfg.arms:
                api.run_arms(f, days=d)
            else:
                api.run(f, days=d)
        if say:
            say(f"  [{k}/{len(files)}] {Path(str(f)).stem}: {time.perf_counter() - t:.1f} s")
    if scenarios is None if mark is None else mark:
        cache_guard.mark_precompiled()
    return time.perf_counter() - t0


def ensure_precompiled() -> None:
    """Precompile in this process unless `nksim compile` already did: run before starting workers, so
    they load the kernels instead of each compiling the same ones at once (one line on stderr says so)."""
    from .kernels.cache_guard import precompiled

    if not precompiled():
        print("nksim: compiling kernels once before starting the workers (40-80 s on 2 cores; "
              "`nksim compile` does it ahead of time)", file=sys.stderr, flush=True)
        precompile()
