"""`nksim cohort FILE`: run every patient in every arm through the sweep executors (local worker
processes or a Dask scheduler; resumable), then write the cohort tables and figures."""
from __future__ import annotations

import json
import math
from pathlib import Path

from sim.output import read_parquet
from sim.plots.figures import save
from sim.sweep.aggregate import _write_parquet
from sim.sweep.runner import run_plan
from sim.sweep.store import atomic_write_bytes, default_out, is_done

from . import figures as F
from .spec import CohortPlan, load_cohort
from .tables import paired_differences, patient_rows, response_rates


def run_cohort(path: str | Path, out: str | Path | None = None, workers: int | None = None,
               scheduler: str | None = None, progress: bool = True, runner=None):
    """Run (or resume) a cohort; returns the SweepOutcome of its runs."""
    plan = load_cohort(path)
    out = Path(out) if out is not None else default_out(path)
    return run_plan(plan, out, write_cohort_outputs, workers, scheduler, progress, runner)


def write_cohort_outputs(plan: CohortPlan, out: Path) -> tuple[list[Path], dict]:
    """patients.parquet, response_rates.csv/json, arm_differences.csv and the four figures."""
    runs_dir = out / "runs"
    ts = {r.run_id: read_parquet(runs_dir / r.run_id / "timeseries.parquet") for r in plan.runs if is_done(runs_dir, r.run_id)}
    patients = patient_rows(plan, ts, {rid: _infused(runs_dir / rid) for rid in ts})
    arms = [a.name for a in plan.spec.arms]
    files = [out / "patients.parquet"]
    _write_parquet(patients, files[0])
    if patients.empty:
        return files, {"*": "no finished run"}
    rates = response_rates(patients, arms, follow_up_day=plan.spec.criteria.run_days)
    diffs = paired_differences(patients, arms)
    rates.to_csv(out / "response_rates.csv", index=False)
    diffs.to_csv(out / "arm_differences.csv", index=False)
    summary = {"criteria": plan.spec.criteria.model_dump(), "patients": len(plan.patients),
               "rates": _finite(rates.to_dict(orient="records")), "differences": _finite(diffs.to_dict(orient="records"))}
    atomic_write_bytes(out / "response_rates.json", json.dumps(summary, indent=1, allow_nan=False).encode())
    files += [out / "response_rates.csv", out / "arm_differences.csv", out / "response_rates.json"]
    c = plan.spec.criteria
    figs = out / "figures"
    figs.mkdir(exist_ok=True)
    for name, fig in (("waterfall", F.waterfall(patients, c.disease, c)), ("swimmer", F.swimmer(patients, c.assessment_day)),
                      ("km_pfs", F.km_pfs(patients)), ("forest", F.forest(rates, diffs))):
        files += save(fig, figs, name, ("png",))
    return files, {}


def _infused(run: Path) -> bool:
    """Whether the run's patient received cells: False only where the product lot failed release."""
    lot = json.loads((run / "summary.json").read_text()).get("therapy", {}).get("lot") or {}
    return bool(lot.get("infused", True))


def _finite(rows: list[dict]) -> list[dict]:
    """Rows for strict JSON: NaN and ±inf (a median PFS not reached) become null."""
    return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()} for r in rows]


def print_rates(out: Path) -> None:
    """One line per arm: best-response counts, ORR with its Wilson interval, median PFS and the
    progression-free share at the end of the runs."""
    d = json.loads((out / "response_rates.json").read_text())
    for r in d["rates"]:
        print(f"  {r['arm']}: n={r['n']}  CR {r['n_CR']}  PR {r['n_PR']}  SD {r['n_SD']}  PD {r['n_PD']}  "
              f"ORR {100 * r['orr']:.0f} % (95 % CI {100 * r['orr_lo']:.0f}–{100 * r['orr_hi']:.0f})  "
              f"median PFS {'not reached' if r['median_pfs_days'] is None else format(r['median_pfs_days'], '.1f') + ' d'}  "
              f"progression-free at day {r['pfs_end_day']:g} {100 * r['pfs_end']:.0f} %"
              + (f"  (infused {r['n_infused']}: ORR {100 * r['orr_infused']:.0f} %)"
                 if r.get("n_infused") and r["n_infused"] < r["n"] else ""))
