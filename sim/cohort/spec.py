"""The `cohort:` block (in a scenario, or a cohort file naming `base:`): virtual patients, their
between-patient variability, the arms each patient receives and the response criteria.

Every patient is one seed (`SeedSequence(seed).spawn`) and one draw of the declared distributions,
made from that seed alone, so a patient is reproducible on its own and identical in every arm (paired).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from scipy import stats

from sim.scenario import ScenarioError, apply_overrides, load_raw
from sim.scenario.base import P, dotted_get
from sim.scenario.resolve import resolve
from sim.sweep.seeds import replicate_seeds, run_id
from sim.sweep.spec import _err, _pydantic_error

#: Stream of the patient-variability draws, apart from the simulation's own random numbers.
DRAW_STREAM = 0x636F686F  # "coho"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Dist(_Strict):
    """A between-patient distribution of one parameter, optionally truncated to [low, high]."""

    dist: Literal["fixed", "normal", "lognormal", "uniform"] = Field(description="distribution family")
    value: float | None = Field(None, description="fixed: the value")
    mean: float | None = Field(None, description="normal/lognormal: mean (lognormal: of the value, not its log)")
    sd: float | None = Field(None, ge=0, description="normal: standard deviation")
    cv: float | None = Field(None, ge=0, description="lognormal: coefficient of variation")
    low: float | None = Field(None, description="uniform: lower end; others: truncation (optional)")
    high: float | None = Field(None, description="uniform: upper end; others: truncation (optional)")
    integer: bool = Field(False, description="round the draw to an integer (cell counts)")

    @model_validator(mode="after")
    def _complete(self) -> "Dist":
        need = {"fixed": ("value",), "normal": ("mean", "sd"), "lognormal": ("mean", "cv"), "uniform": ("low", "high")}[self.dist]
        missing = [k for k in need if getattr(self, k) is None]
        if missing:
            raise ValueError(f"{self.dist} needs {' and '.join(missing)}")
        if self.dist == "lognormal" and self.mean <= 0:
            raise ValueError("lognormal needs mean > 0")
        if self.low is not None and self.high is not None and not self.high > self.low:
            raise ValueError(f"high ({self.high}) must be greater than low ({self.low})")
        if self.dist != "uniform" and self.low is not None and self.high is not None:
            lo, hi = self.frozen().cdf([self.low, self.high])
            if hi - lo < 1e-9:
                raise ValueError(f"the truncation [{self.low}, {self.high}] holds no probability mass")
        return self

    def frozen(self):
        """The untruncated scipy distribution."""
        if self.dist == "normal":
            return stats.norm(self.mean, self.sd) if self.sd > 0 else None
        if self.dist == "lognormal":
            s2 = math.log1p(self.cv ** 2)
            return stats.lognorm(math.sqrt(s2), scale=self.mean * math.exp(-s2 / 2)) if s2 > 0 else None
        if self.dist == "uniform":
            return stats.uniform(self.low, self.high - self.low)
        return None

    def from_normal(self, z: float) -> float | int:
        """The value at standard-normal score z (Gaussian copula: correlation acts on z)."""
        if self.dist == "fixed":
            v = float(self.value)
        else:
            d = self.frozen()
            if d is None:  # sd or cv of 0
                v = float(self.mean)
            else:
                lo = d.cdf(self.low) if self.low is not None else 0.0
                hi = d.cdf(self.high) if self.high is not None else 1.0
                v = float(d.ppf(lo + stats.norm.cdf(z) * (hi - lo)))
        return int(round(v)) if self.integer else v


class Correlation(_Strict):
    """A correlated pair: the rank (Gaussian-copula) correlation of two declared parameters."""

    a: str
    b: str
    rho: float = Field(ge=-0.99, le=0.99)


class Criteria(_Strict):
    """Response read-outs and their thresholds (docs/cohorts.md)."""

    disease: Literal["heme", "solid"] = Field(description="heme: disseminated disease (CR/PR on tumor burden); solid: RECIST-like on lesion diameter")
    assessment_day: float = P(28.0, "day", "Liu 2020 and most CAR trials assess response at day 28–30", "day of the response assessment", gt=0)
    follow_up_days: Optional[float] = P(None, "day", "assumed", "run patients to this day and follow progression there (durability; null: stop at the assessment day)", gt=0, le=3650)
    assess_every_days: float = P(7.0, "day", "assumed (weekly restaging for best overall response)", "interval between assessments up to assessment_day", gt=0)
    detection_limit: float = P(1e-4, "fraction of baseline", "flow-cytometry MRD sensitivity 10⁻⁴ (ELN/NCCN MRD convention)", "heme: disease below this fraction of the baseline burden is undetectable (CR)", ge=0, le=1)
    heme_pr_reduction: float = P(0.5, "fraction", "Cheson 2014 (Lugano) / iwCLL: ≥ 50 % decrease", "heme: partial response at ≥ this reduction of burden", gt=0, le=1)
    recist_pr_decrease: float = P(0.3, "fraction", "RECIST 1.1 (Eisenhauer 2009): ≥ 30 % decrease of the sum of diameters", "solid: partial response", gt=0, le=1)
    progression_increase: float = P(0.2, "fraction", "RECIST 1.1: ≥ 20 % increase of the sum of diameters over the nadir", "solid: progression at a diameter this much above the nadir so far", gt=0)
    heme_progression_floor: float = P(0.1, "fraction of baseline", "Lugano 2014 (Cheson): a node progresses only once abnormal again (longest diameter > 1.5 cm); against a typical 4.5-cm target lesion (assumed) that is (1.5/4.5)² ≈ 0.1 of its baseline product of diameters", "heme: progression also needs the burden back to this fraction of baseline (a rise from a few residual cells is not PD)", ge=0, le=10)
    heme_progression_increase: float = P(0.5, "fraction", "Cheson 2014 (Lugano): ≥ 50 % increase from nadir of a lesion's product of diameters; iwCLL: ≥ 50 % increase of lymphocytes or nodes", "heme: progression at a burden this much above the nadir so far", gt=0)

    @model_validator(mode="after")
    def _follow_up_after_assessment(self) -> "Criteria":
        if self.follow_up_days is not None and self.follow_up_days < self.assessment_day:
            raise ValueError(f"follow_up_days ({self.follow_up_days:g}) is before assessment_day ({self.assessment_day:g}); "
                             "set it to the assessment day or later, or null")
        return self

    @property
    def run_days(self) -> float:
        """How long each patient-arm run lasts: to the end of follow-up, else to the assessment."""
        return self.assessment_day if self.follow_up_days is None else self.follow_up_days


class CohortArm(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    set: dict[str, Any] = Field(default_factory=dict)


class CohortSpec(_Strict):
    """The cohort block."""

    patients: int = Field(ge=1, le=100_000, description="virtual patients")
    seed: int | None = Field(None, ge=0, description="cohort seed (default: the scenario's seed)")
    variability: dict[str, Dist] = Field(default_factory=dict, description="dotted path → between-patient distribution")
    correlations: list[Correlation] = Field(default_factory=list)
    product_lot: bool = Field(True, description="each patient gets a lot drawn from the product's lot model (product.lot)")
    arms: list[CohortArm] = Field(default_factory=lambda: [CohortArm(name="treated")], min_length=1)
    criteria: Criteria

    @model_validator(mode="after")
    def _check(self) -> "CohortSpec":
        names = [a.name for a in self.arms]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate arm name {sorted(dup)[0]!r}")
        for c in self.correlations:
            for p in (c.a, c.b):
                if p not in self.variability:
                    raise ValueError(f"correlation names {p!r}, which is not under variability")
            if c.a == c.b:
                raise ValueError(f"a parameter cannot be correlated with itself ({c.a})")
        if self.correlations:
            corr = correlation_matrix(list(self.variability), self.correlations)
            if np.linalg.eigvalsh(corr).min() <= 0:
                raise ValueError("the correlations do not form a valid (positive-definite) correlation matrix")
        return self


class CohortFile(CohortSpec):
    base: str


def correlation_matrix(names: list[str], correlations: list[Correlation]) -> np.ndarray:
    corr = np.eye(len(names))
    for c in correlations:
        i, j = names.index(c.a), names.index(c.b)
        corr[i, j] = corr[j, i] = c.rho
    return corr


def draw_patient(spec: CohortSpec, patient_seed: int) -> dict[str, float]:
    """This patient's values of every declared parameter, from its own seed only.

    Each parameter's normal score comes from a stream keyed by its dotted path, and correlated ones are
    mixed in sorted-path order, so the draws do not depend on the order the YAML lists them in, and
    declaring one more independent parameter leaves the others' draws as they were."""
    names = sorted(spec.variability)
    if not names:
        return {}
    z = np.array([np.random.default_rng([int(patient_seed), DRAW_STREAM, _path_key(p)]).standard_normal()
                  for p in names])
    if spec.correlations:
        z = np.linalg.cholesky(correlation_matrix(names, spec.correlations)) @ z
    value = {p: spec.variability[p].from_normal(float(z[i])) for i, p in enumerate(names)}
    return {p: value[p] for p in spec.variability}  # reported in the order declared


def _path_key(dotted: str) -> int:
    """A stable 64-bit key of a dotted path (Python's own hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(dotted.encode(), digest_size=8).digest(), "little")


@dataclass
class Patient:
    index: int
    seed: int
    draws: dict[str, float]


@dataclass
class CohortRun:
    """One patient in one arm."""

    patient: int
    arm: str
    seed: int
    run_id: str
    layer: dict[str, Any]


@dataclass
class CohortPlan:
    spec_path: Path
    base_path: Path
    spec: CohortSpec
    seed: int
    document: dict
    patients: list[Patient]
    runs: list[CohortRun]
    days: float
    dims: int
    scenarios: dict[str, dict] = field(default_factory=dict, repr=False)  # run_id → effective scenario

    label = "cohort"

    def task(self, r: CohortRun) -> dict:
        """What a worker resolves and runs (sim.sweep.runner.run_plan): the base document, this patient-arm layer."""
        return {"document": self.document, "layer": r.layer, "seed": r.seed, "origin": f"cohort:patient-{r.patient}"}

    def run_meta(self, r: CohortRun) -> dict:
        return {"patient": r.patient, "arm": r.arm, "draws": self.patients[r.patient].draws}

    def run_fields(self, r: CohortRun) -> dict:
        return {"run_id": r.run_id, "patient": r.patient, "arm": r.arm, "seed": r.seed}

    def manifest_fields(self) -> dict:
        return {"kind": "cohort", "cohort": self.spec.model_dump(mode="json"), "seed": self.seed,
                "patients": [{"patient": p.index, "seed": p.seed, "draws": p.draws} for p in self.patients]}


def load_cohort(path: str | Path) -> CohortPlan:
    """Read a scenario with a `cohort:` block, or a cohort file with `base:`, and build the plan."""
    spec_path = Path(path)
    raw = load_raw(spec_path)
    src = raw.get("__source__", {})
    if "base" in raw:
        data = {k: v for k, v in raw.items() if k != "__source__"}
        prefix: tuple = ()
        try:
            cf = CohortFile.model_validate(data)
        except ValidationError as e:
            raise _pydantic_error(e, data, prefix, src, CohortFile) from None
        base_path = Path(cf.base) if Path(cf.base).is_absolute() else spec_path.parent / cf.base
        if not base_path.is_file():
            raise _err(prefix, ("base",), f"base scenario not found: {base_path} (relative paths start at the cohort file's folder)", src)
        base_raw = load_raw(base_path)
        spec: CohortSpec = CohortSpec.model_validate(cf.model_dump(exclude={"base"}))
    else:
        if "cohort" not in raw:
            raise ScenarioError("cohort", "no cohort: block in this scenario (add one, or use a cohort file with base:)", file=src.get("file"))
        data = raw["cohort"]
        prefix = ("cohort",)
        if not isinstance(data, dict):
            raise _err(prefix, (), "must be a mapping (patients:, variability:, arms:, criteria:, ...)", src)
        try:
            spec = CohortSpec.model_validate(data)
        except ValidationError as e:
            raise _pydantic_error(e, data, prefix, src, CohortSpec) from None
        base_path, base_raw = spec_path, raw
    document = {k: v for k, v in base_raw.items() if k not in ("__source__", "cohort", "sweep", "arms")}
    base = resolve(document).scenario
    for p, d in spec.variability.items():
        try:
            apply_overrides(document, {p: d.value if d.dist == "fixed" else d.mean if d.mean is not None else d.low})
        except ScenarioError as e:
            raise _err(prefix, ("variability", p), e.detail, src) from None
    seed = spec.seed if spec.seed is not None else base.seed
    seeds = replicate_seeds(seed, spec.patients)
    patients = [Patient(i, s, draw_patient(spec, s)) for i, s in enumerate(seeds)]
    days = spec.criteria.run_days
    runs, scenarios = [], {}
    for pt in patients:
        lot = {"product.lot.enabled": True} if spec.product_lot and base.product.type != "none" else {}
        for ai, arm in enumerate(spec.arms):
            layer = {**pt.draws, **lot, **arm.set, "seed": pt.seed, "time.days": days}
            try:
                eff = resolve(document, layer, f"cohort:patient-{pt.index}")
            except ScenarioError as e:
                where = ("arms", ai, "set") if e.path.split(" ")[0] in arm.set else ("variability",)
                raise _err(prefix, where, f"{e.detail.split(' (in the ')[0]} (patient {pt.index}, arm {arm.name}: {e.path})", src) from None
            sc = eff.scenario.model_dump(mode="json")
            rid = run_id(sc, {"arm": arm.name, "patient": pt.index}, pt.seed)
            runs.append(CohortRun(pt.index, arm.name, pt.seed, rid, layer))
            scenarios[rid] = sc
    return CohortPlan(spec_path, base_path, spec, seed, document, patients, runs, days, base.domain.dims, scenarios)


def value_at(plan: CohortPlan, run: CohortRun, dotted: str) -> Any:
    """The effective value of a parameter in one patient-arm run."""
    return dotted_get(plan.scenarios[run.run_id], dotted)
