"""Cohort tables: one row per patient and arm (drawn parameters, seed, read-outs), response rates per
arm with Wilson 95 % intervals, and paired differences between arms."""
from __future__ import annotations

import pandas as pd

from .response import ORDER, paired_difference, read_out, wilson
from .spec import CohortPlan


def patient_rows(plan: CohortPlan, timeseries: dict[str, pd.DataFrame],
                 infused: dict[str, bool] | None = None) -> pd.DataFrame:
    """`patients.parquet`: every finished patient-arm run (run id → its timeseries; `infused`: run id →
    whether the patient received cells, False where the product lot failed release)."""
    crit = plan.spec.criteria
    rows = []
    for r in plan.runs:
        ts = timeseries.get(r.run_id)
        if ts is None:
            continue
        pt = plan.patients[r.patient]
        row = {"patient": r.patient, "arm": r.arm, "seed": r.seed, "run_id": r.run_id}
        row.update({f"draw:{k}": v for k, v in pt.draws.items()})
        row.update(read_out(ts, crit, plan.dims))
        if infused is not None:
            row["infused"] = bool(infused.get(r.run_id, True))
        rows.append(row)
    df = pd.DataFrame(rows)
    if not df.empty:
        df["arm"] = pd.Categorical(df["arm"], categories=[a.name for a in plan.spec.arms], ordered=True)
        df = df.sort_values(["arm", "patient"], kind="stable").reset_index(drop=True)
        df["arm"] = df["arm"].astype(str)
    return df


def _rate(name: str, k: int, n: int) -> dict:
    """`name`, `name_lo`, `name_hi`: the share k/n (nan when n = 0) and its Wilson 95 % interval."""
    lo, hi = wilson(k, n)
    return {name: k / n if n else float("nan"), f"{name}_lo": lo, f"{name}_hi": hi}


def response_rates(patients: pd.DataFrame, arms: list[str], follow_up_day: float | None = None) -> pd.DataFrame:
    """Per arm: n, count and rate of each best response, ORR (CR + PR) and CR rate with Wilson 95 % CIs,
    the Kaplan–Meier median PFS and progression-free share at the end of follow-up (`follow_up_day`;
    default the longest time on study), progressions and how many of them were antigen-negative."""
    out = []
    for arm in arms:
        d = patients[patients["arm"] == arm]
        n = len(d)
        row: dict = {"arm": arm, "n": n}
        for cat in ORDER:
            row[f"n_{cat}"] = int((d["best_response"] == cat).sum())
        for name, k in (("orr", row["n_CR"] + row["n_PR"]), ("cr", row["n_CR"]),
                        ("response_at_assessment", int(d["response"].isin(["CR", "PR"]).sum()))):
            row.update(_rate(name, k, n))
        row["median_pfs_days"] = km_median(d["pfs_days"], d["progressed"]) if n else float("nan")
        # durability: the Kaplan–Meier progression-free share at the end of follow-up, with its 95 % CI
        end = float(follow_up_day) if follow_up_day is not None else float(d["pfs_days"].max()) if n else float("nan")
        s, lo, hi = km_at(d["pfs_days"], d["progressed"], end) if n else (float("nan"),) * 3
        row.update({"pfs_end_day": end, "pfs_end": s, "pfs_end_lo": lo, "pfs_end_hi": hi})
        if "infused" in d:  # the trials' efficacy population: the patients who received cells
            treated = d[d["infused"].astype(bool)]
            row["n_infused"] = len(treated)
            row.update(_rate("orr_infused", int(treated["best_response"].isin(["CR", "PR"]).sum()), len(treated)))
        row["n_progressed"] = int(d["progressed"].sum())
        for escape in ("antigen_negative", "antigen_negative_or_low"):
            if f"{escape}_progression" in d:
                row[f"n_{escape}_progression"] = int(d[f"{escape}_progression"].sum())
        out.append(row)
    return pd.DataFrame(out)


def _kaplan_meier(times, events):
    """The lifelines Kaplan–Meier fit of progression-free times (`events`: progressed, else censored)."""
    from lifelines import KaplanMeierFitter

    return KaplanMeierFitter().fit(pd.Series(times, dtype=float), event_observed=pd.Series(events, dtype=bool))


def km_median(times, events) -> float:
    """Kaplan–Meier median progression-free time (lifelines), inf when fewer than half progressed: a
    plain median of the times would count censored patients as if they had progressed."""
    return float(_kaplan_meier(times, events).median_survival_time_)


def km_at(times, events, day: float) -> tuple[float, float, float]:
    """Kaplan–Meier progression-free share at `day` with its 95 % CI (lifelines' exponential Greenwood)."""
    km = _kaplan_meier(times, events)
    ci = km.confidence_interval_survival_function_
    row = ci[ci.index <= day + 1e-9].iloc[-1]
    return float(km.survival_function_at_times(day).iloc[0]), float(row.iloc[0]), float(row.iloc[1])


def paired_differences(patients: pd.DataFrame, arms: list[str]) -> pd.DataFrame:
    """ORR of each arm minus the first arm's, on the patients both arms have (paired)."""
    ref = arms[0]
    base = patients[patients["arm"] == ref].set_index("patient")["responder"]
    rows = []
    for arm in arms[1:]:
        other = patients[patients["arm"] == arm].set_index("patient")["responder"]
        common = base.index.intersection(other.index)
        d, lo, hi = paired_difference(base.loc[common].to_numpy(), other.loc[common].to_numpy())
        rows.append({"arm": arm, "reference": ref, "n_pairs": len(common), "orr_difference": d,
                     "lo": lo, "hi": hi})
    return pd.DataFrame(rows, columns=["arm", "reference", "n_pairs", "orr_difference", "lo", "hi"])
