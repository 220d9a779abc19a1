"""The `sweep:` block (or a sweep file with `base:`): schema, validation and the run plan.

Errors are ScenarioError with the dotted YAML path (``sweep.parameters.nk.persistence.half_life_days``)
and line, so a bad sweep is reported like a bad scenario. The plan is everything a run needs.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator

from sim.scenario import ScenarioError, apply_overrides, load_raw
from sim.scenario.base import Float, Int, OptInt, dotted_get
from sim.scenario.loader import _model_for_path, error_message
from sim.scenario.preflight import estimate, preflight
from sim.domain_watch import DOMAIN_METRICS
from sim.metrics import OUTCOME_METRICS
from sim.scenario.resolve import is_untreated, resolve, untreated_effective, untreated_overrides
from sim.therapy.companions import THERAPY_STATS
from sim.therapy.toxicity import RISK_METRICS

from .designs import SAMPLING_DESIGNS, Design, Range, make_design
from .seeds import design_seed, replicate_seeds, run_id

#: Every metric a run's summary.json can hold: outcome metrics, toxicity indices, therapy counters, the
#: domain-boundary watch (sim/domain_watch.py).
#: Taken from the modules that compute them, so a new metric can be swept without editing this file.
KNOWN_METRICS = OUTCOME_METRICS + RISK_METRICS + THERAPY_STATS + DOMAIN_METRICS

#: Sweep size bounds, checked before the design is built: each point is resolved (~2 ms) while planning,
#: and every run is a row of the manifest and the summary table.
MAX_REPLICATES = 10_000
MAX_SAMPLES = 10_000
MAX_POINTS = 20_000
MAX_RUNS = 100_000

Scalar = Union[bool, int, float, str]


class RangeSpec(BaseModel):
    """`{low:, high:}` for lhs/sobol/morris; `integer:` defaults to the base value's type."""

    model_config = ConfigDict(extra="forbid")
    low: Float
    high: Float
    integer: bool | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "RangeSpec":
        if not self.high > self.low:
            raise ValueError(f"high ({self.high}) must be greater than low ({self.low})")
        return self


ParamValue = Annotated[
    Union[
        Annotated[Annotated[list[Scalar], Field(min_length=1)], Tag("list")],
        Annotated[RangeSpec, Tag("range")],
    ],
    Discriminator(lambda v: "range" if isinstance(v, (dict, RangeSpec)) else "list"),
]


class SweepSpec(BaseModel):
    """The sweep block: design, swept parameters, size, replicates, metrics and seed."""

    model_config = ConfigDict(extra="forbid")
    design: Literal["grid", "zip", "lhs", "sobol", "morris"] = "grid"
    parameters: Annotated[dict[str, ParamValue], Field(min_length=1)]
    samples: OptInt = Field(None, ge=1, le=MAX_SAMPLES, description="lhs points / sobol base samples N / morris trajectories")
    replicates: Int = Field(1, ge=1, le=MAX_REPLICATES, description="seeds per design point")
    metrics: list[str] | None = Field(None, description="metrics in summary.parquet (default: all)")
    seed: OptInt = Field(None, ge=0, description="sweep seed (default: the scenario's seed)")
    levels: Int = Field(4, ge=2, le=100, description="Morris grid levels")
    overrides: dict[str, Any] = Field(default_factory=dict, description="constant dotted overrides of the base")
    control: bool = Field(True, description="also run the untreated control (sim.scenario.resolve.untreated_overrides) once "
                          "per replicate seed, unless a design point or the base is untreated")


class SweepFile(SweepSpec):
    """A stand-alone sweep file: `base:` names the scenario YAML (relative to this file)."""

    base: str


@dataclass
class RunSpec:
    """One run: design point (None for the untreated control), replicate, seed and content-hash id."""

    point: int | None
    replicate: int
    seed: int
    run_id: str
    control: bool = False


@dataclass
class Plan:
    """A validated sweep: base scenario, design, per-point scenarios and the runs to do."""

    spec_path: Path
    base_path: Path
    spec: SweepSpec
    base: dict
    design: Design
    seed: int
    seeds: list[int]
    metrics: list[str]
    overrides: list[dict[str, Any]]
    scenarios: list[dict]  # effective scenario of each point (resolved once, by sim.scenario.resolve)
    document: dict  # the base scenario as written (sparse): workers resolve document + point layer
    layers: list[dict]  # per point: the constant overrides plus the point's values (origin "sweep")
    runs: list[RunSpec]
    param_kinds: dict[str, str] = field(default_factory=dict)
    control_scenario: dict | None = None  # the untreated control's effective scenario (None: no control runs)
    control_overrides: dict[str, Any] | None = None  # resolve.untreated_overrides of the base
    control_reason: str | None = None  # why there is no control (control: false, an untreated base or point)

    @property
    def names(self) -> list[str]:
        return list(self.design.names)

    def spec_dict(self) -> dict:
        """The sweep block as given (JSON-friendly) for the manifest."""
        return self.spec.model_dump(mode="json")

    label = "sweep"

    def task(self, rs: RunSpec) -> dict:
        """What a worker resolves and runs: the written base document, this point's layer, the seed;
        for the control the constant overrides, then `untreated_effective` (``untreated``)."""
        if rs.control:
            return {"document": self.document, "layer": dict(self.spec.overrides), "seed": rs.seed, "untreated": True}
        return {"document": self.document, "layer": self.layers[rs.point], "seed": rs.seed}

    def run_meta(self, rs: RunSpec) -> dict:
        return {"overrides": self.control_overrides if rs.control else self.overrides[rs.point], "control": rs.control}

    def run_fields(self, rs: RunSpec) -> dict:
        return {"run_id": rs.run_id, "point": rs.point, "replicate": rs.replicate, "seed": rs.seed, "control": rs.control}

    def manifest_fields(self) -> dict:
        m = {"design": self.design.kind, "design_options": self.design.options, "parameters": self.spec_dict()["parameters"],
             "parameter_kinds": self.param_kinds, "samples": self.spec.samples, "replicates": self.spec.replicates,
             "seed": self.seed, "replicate_seeds": self.seeds, "metrics": self.metrics, "overrides": self.spec.overrides,
             "points": self.overrides,
             "control": {"runs": sum(r.control for r in self.runs), "overrides": self.control_overrides,
                         "reason": self.control_reason}}
        if self.design.problem is not None:
            m["problem"] = self.design.problem
        return m


# ---------------------------------------------------------------------------------------------


def _err(prefix: tuple, loc: tuple, msg: str, src: dict) -> ScenarioError:
    """A ScenarioError at prefix+loc with the YAML line when the source index knows it."""
    full = tuple(prefix) + tuple(loc)
    lines = src.get("lines", {}) if src else {}
    line = None
    for k in range(len(full), 0, -1):
        line = lines.get(full[:k])
        if line:
            break
    return ScenarioError(".".join(str(x) for x in full), msg, line=line, file=src.get("file") if src else None)


def _real_loc(data: Any, err: dict) -> tuple:
    """Strip pydantic union tags from an error location, keeping keys that exist in the input."""
    out, node = [], data
    loc = tuple(err["loc"])
    for i, k in enumerate(loc):
        if isinstance(node, dict) and k in node:
            out.append(k)
            node = node[k]
        elif isinstance(node, list) and isinstance(k, int) and 0 <= k < len(node):
            out.append(k)
            node = node[k]
        elif i == len(loc) - 1 and err["type"] in ("missing", "extra_forbidden"):
            out.append(k)
    return tuple(out)


def _pydantic_error(e: ValidationError, data: dict, prefix: tuple, src: dict, model: type[BaseModel]) -> ScenarioError:
    errs = e.errors()
    err = next((x for x in errs if x["type"] == "extra_forbidden"), errs[0])  # a typo explains a "missing"
    loc = _real_loc(data, err)
    parent = RangeSpec if len(loc) == 3 and loc[0] == "parameters" else _model_for_path(model, loc[:-1])
    return _err(prefix, loc, error_message(err, loc, parent), src)


def _kind(values: list) -> str:
    """Column kind of a parameter from all its values: bool, int, float or str."""
    if all(isinstance(v, bool) for v in values):
        return "bool"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "int"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "float"
    return "str"


def load_sweep(path: str | Path) -> Plan:
    """Read a scenario with a `sweep:` block, or a sweep file with `base:`, and build the plan."""
    spec_path = Path(path)
    raw = load_raw(spec_path)
    src = raw.get("__source__", {})
    if "base" in raw:  # stand-alone sweep file
        data = {k: v for k, v in raw.items() if k != "__source__"}
        prefix: tuple = ()
        try:
            sf = SweepFile.model_validate(data)
        except ValidationError as e:
            raise _pydantic_error(e, data, prefix, src, SweepFile) from None
        base_path = Path(sf.base)
        if not base_path.is_absolute():
            base_path = spec_path.parent / base_path
        if not base_path.is_file():
            raise _err(prefix, ("base",), f"base scenario not found: {base_path} (relative paths start at the sweep file's folder)", src)
        base_raw = load_raw(base_path)
        base_raw.pop("sweep", None)
        spec: SweepSpec = SweepSpec.model_validate(sf.model_dump(exclude={"base"}))
    else:
        if "sweep" not in raw:
            raise ScenarioError("sweep", "no sweep: block in this scenario (add one, or use a sweep file with base:)", file=src.get("file"))
        data = raw["sweep"]
        prefix = ("sweep",)
        if not isinstance(data, dict):
            raise _err(prefix, (), "must be a mapping (design:, parameters:, replicates:, ...)", src)
        try:
            spec = SweepSpec.model_validate(data)
        except ValidationError as e:
            raise _pydantic_error(e, data, prefix, src, SweepSpec) from None
        base_path = spec_path
        base_raw = {k: v for k, v in raw.items() if k != "sweep"}
    return _plan(spec_path, base_path, spec, base_raw, prefix, src)


def _plan(spec_path: Path, base_path: Path, spec: SweepSpec, base_raw: dict, prefix: tuple, src: dict) -> Plan:
    # Constant overrides, then the base scenario itself.
    for p in spec.overrides:
        if p in spec.parameters:
            raise _err(prefix, ("overrides", p), "is also a swept parameter; remove one of them", src)
        try:
            apply_overrides(base_raw, {p: spec.overrides[p]})
        except ScenarioError as e:
            raise _err(prefix, ("overrides", p), e.detail, src) from None
    base_eff = resolve(base_raw)  # errors in the base name its own file and line
    raw = apply_overrides(base_raw, spec.overrides)
    document = {k: v for k, v in base_raw.items() if k != "__source__"}
    if spec.overrides:
        try:
            base_eff = resolve(document, spec.overrides, "sweep")
        except ScenarioError as e:
            raise _err(prefix, ("overrides", e.path.split(" ")[0]), e.detail.split(" (in the sweep")[0], src) from None
    base = base_eff.scenario.model_dump()

    # Design shape checks.
    ranges: dict[str, Range] = {}
    for p, v in spec.parameters.items():
        try:
            apply_overrides(raw, {p: v[0] if isinstance(v, list) else v.low})
        except ScenarioError as e:
            raise _err(prefix, ("parameters", p), e.detail, src) from None
        if spec.design in SAMPLING_DESIGNS:
            if not isinstance(v, RangeSpec):
                raise _err(prefix, ("parameters", p), f"design {spec.design} needs a range {{low:, high:}}, not a list", src)
            integer = v.integer
            if integer is None:
                bv = dotted_get(base, p)
                integer = isinstance(bv, int) and not isinstance(bv, bool)
            if integer and math.ceil(v.low) > math.floor(v.high):
                raise _err(prefix, ("parameters", p), f"integer parameter: [{v.low}, {v.high}] holds no integer", src)
            ranges[p] = Range(v.low, v.high, integer)
        elif not isinstance(v, list):
            raise _err(prefix, ("parameters", p), f"design {spec.design} needs a list of values; {{low:, high:}} ranges are for lhs, sobol and morris", src)
    if spec.design == "zip":
        n0 = len(next(iter(spec.parameters.values())))
        for p, v in spec.parameters.items():
            if len(v) != n0:
                first = next(iter(spec.parameters))
                raise _err(prefix, ("parameters", p), f"zip needs lists of equal length: {len(v)} values here, {n0} for '{first}'", src)
    if spec.design in SAMPLING_DESIGNS and spec.samples is None:
        raise _err(prefix, ("samples",), f"required for design {spec.design} (lhs points, sobol base samples, morris trajectories)", src)
    if spec.design not in SAMPLING_DESIGNS and spec.samples is not None:
        raise _err(prefix, ("samples",), f"only used by lhs, sobol and morris; remove it for design {spec.design}", src)

    n_par = len(spec.parameters)
    if spec.design in SAMPLING_DESIGNS:
        n_points = spec.samples * {"lhs": 1, "sobol": n_par + 2, "morris": n_par + 1}[spec.design]
    else:  # every value is a list here (checked above)
        sizes = [len(v) for v in spec.parameters.values()]
        n_points = math.prod(sizes) if spec.design == "grid" else sizes[0]
    if n_points > MAX_POINTS:
        where = ("samples",) if spec.design in SAMPLING_DESIGNS else ("parameters",)
        raise _err(prefix, where, f"the {spec.design} design has {n_points:.3g} points, more than the limit of {MAX_POINTS}; "
                   "use fewer values or samples (or split the sweep)", src)
    if n_points * spec.replicates > MAX_RUNS:
        raise _err(prefix, ("replicates",), f"{n_points} points × {spec.replicates} replicates = {n_points * spec.replicates} runs, "
                   f"more than the limit of {MAX_RUNS}; use fewer replicates or points", src)

    metrics = list(spec.metrics) if spec.metrics is not None else list(KNOWN_METRICS)
    for i, m in enumerate(metrics):
        if m not in KNOWN_METRICS:
            close = difflib.get_close_matches(m, KNOWN_METRICS, n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known metrics: {', '.join(KNOWN_METRICS)}"
            raise _err(prefix, ("metrics", i), f"unknown metric '{m}'{hint}", src)

    seed = spec.seed if spec.seed is not None else int(base["seed"])
    if spec.design in SAMPLING_DESIGNS:
        design = make_design(spec.design, ranges, spec.samples, design_seed(seed), spec.levels)
    else:
        design = make_design(spec.design, {p: list(v) for p, v in spec.parameters.items()})

    # Resolve and validate every point: run ids hash the resolved (typed) values.
    overrides, scenarios, layers = [], [], []
    worst = (0.0, None, -1)  # (memory estimate, effective, point) of the largest point
    untreated_point = None  # the first design point that is an untreated control already
    for i, point in enumerate(design.points):
        layer = {**spec.overrides, **point}
        try:
            eff = resolve(document, layer, "sweep")
            sc = eff.scenario.model_dump()
            need = estimate(eff.scenario).total
            if need > worst[0]:
                worst = (need, eff, i)
            if untreated_point is None and is_untreated(eff.scenario):
                untreated_point = i
        except ScenarioError as e:
            detail = e.detail.replace(" (in the sweep overrides)", "")
            where = ("parameters", e.path) if e.path in point else ("parameters",)
            raise _err(prefix, where, f"{detail} (design point {i}: {point})", src) from None
        overrides.append({p: dotted_get(sc, p) for p in point})
        scenarios.append(sc)
        layers.append(layer)
    if worst[1] is not None:  # one worker runs one point at a time: the largest must fit this machine
        try:
            preflight(worst[1], arms=False)
        except ScenarioError as e:
            raise _err(prefix, ("parameters",), f"design point {worst[2]} ({design.points[worst[2]]}): {e.path}: {e.detail}", src) from None
    seeds = replicate_seeds(seed, spec.replicates)
    runs = [
        RunSpec(i, r, seeds[r], run_id(scenarios[i], overrides[i], seeds[r]))
        for i in range(len(design.points))
        for r in range(spec.replicates)
    ]
    kinds = {p: _kind([o[p] for o in overrides]) for p in design.names}
    # an untreated base only matters through the points: a dose sweep over an untreated base still needs its control
    reason = ("control: false" if not spec.control
              else None if untreated_point is None else f"design point {untreated_point} is untreated")
    control_sc = control_ov = None
    if reason is None:  # the comparisons' untreated control of the base, paired with each replicate seed
        control_ov = untreated_overrides(base_eff.scenario)
        control_sc = untreated_effective(base_eff).scenario.model_dump()
        runs += [RunSpec(None, r, seeds[r], run_id(control_sc, control_ov, seeds[r]), control=True) for r in range(spec.replicates)]
    return Plan(spec_path, base_path, spec, base, design, seed, seeds, metrics, overrides, scenarios, document, layers, runs, kinds,
                control_sc, control_ov, reason)
