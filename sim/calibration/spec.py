"""The `calibrate:` block: schema, validation against the base scenario and the data, and the plan.

A calibration file names a base scenario (`base:`, relative to the file) and a `calibrate:` block;
a scenario may also carry the block itself. Every error is a ScenarioError naming the dotted YAML
path (``calibrate.parameters.nk.activation.half_activationx: unknown parameter path; did you mean
'nk.activation.half_activation'?``) and, where known, the line, so the CLI exits 2 with one line.

Observables are computed from a run by `observe` (pure functions of a Result), so the ABC model,
the posterior predictive check and the identifiability benchmark all compute them the same way.
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, ValidationError, model_validator

from sim import data as packaged
from sim.assays import assay_overrides
from sim.metrics import LIST_METRICS
from sim.output import TIMESERIES_COLUMNS, read_parquet
from sim.scenario import ScenarioError, apply_overrides, load_raw
from sim.scenario.base import P, _Block, dotted_get
from sim.scenario.resolve import resolve
from sim.scenario.loader import error_message
from sim.sweep.spec import KNOWN_METRICS, _real_loc
from sim.sweep.spec import _err as _located_error

#: Columns every data table must have (time in hours; uncertainty is one standard deviation).
DATA_COLUMNS = ("condition", "time", "observable", "value", "uncertainty")
#: `data: nksim:<file>` names a table shipped in sim/data/.
PACKAGE_PREFIX = "nksim:"


class CalibrationError(Exception):
    """A calibration that cannot start or continue (exit 2): a history of another problem, no scheduler."""


class Prior(_Block):
    """A prior: uniform/loguniform(low, high), normal(mean, sd) or lognormal(median, sigma of ln),
    the last two optionally truncated to [low, high]. Log priors are sampled in log space."""

    prior: Literal["uniform", "loguniform", "normal", "lognormal"]
    low: float | None = P(None, "parameter's unit", "user input", "lower bound (uniform/loguniform: required; else optional truncation)")
    high: float | None = P(None, "parameter's unit", "user input", "upper bound (uniform/loguniform: required; else optional truncation)")
    mean: float | None = P(None, "parameter's unit", "user input", "mean of a normal prior")
    sd: float | None = P(None, "parameter's unit", "user input", "SD of a normal prior", gt=0)
    median: float | None = P(None, "parameter's unit", "user input", "median of a lognormal prior", gt=0)
    sigma: float | None = P(None, "ln units", "user input", "SD of ln(value) for a lognormal prior", gt=0)

    @model_validator(mode="after")
    def _complete(self) -> "Prior":
        need = {"uniform": ("low", "high"), "loguniform": ("low", "high"), "normal": ("mean", "sd"),
                "lognormal": ("median", "sigma")}[self.prior]
        allowed = set(need) | {"low", "high", "prior"}
        for k in need:
            if getattr(self, k) is None:
                raise ValueError(f"a {self.prior} prior needs {' and '.join(need)} (missing {k})")
        for k in ("mean", "sd", "median", "sigma"):
            if k not in allowed and getattr(self, k) is not None:
                raise ValueError(f"'{k}' is not used by a {self.prior} prior (it takes {', '.join(need)}"
                                 f"{'' if self.prior in ('uniform', 'loguniform') else ', and optional low/high bounds'})")
        if self.low is not None and self.high is not None and not self.high > self.low:
            raise ValueError(f"high ({self.high}) must be greater than low ({self.low})")
        if self.log and self.low is not None and self.low <= 0:
            raise ValueError(f"a {self.prior} prior needs low > 0 (got {self.low})")
        c = self.center
        if (self.low is not None and c < self.low) or (self.high is not None and c > self.high):
            raise ValueError(f"the prior's {'mean' if self.prior == 'normal' else 'median'} ({c}) lies outside [low, high]")
        return self

    @property
    def log(self) -> bool:
        """Sampled in ln(value) space."""
        return self.prior in ("loguniform", "lognormal")

    @property
    def center(self) -> float:
        """A typical value (for validation and the did-it-move comparison): mean, median or midpoint."""
        if self.prior == "normal":
            return float(self.mean)
        if self.prior == "lognormal":
            return float(self.median)
        if self.prior == "loguniform":
            return float(math.sqrt(self.low * self.high))
        return 0.5 * (self.low + self.high)

    def fit_bounds(self) -> tuple[float, float]:
        """Bounds in the fit space (ln for log priors); ±inf where none."""
        f = math.log if self.log else float
        return (f(self.low) if self.low is not None else -math.inf, f(self.high) if self.high is not None else math.inf)

    def fit_loc_scale(self) -> tuple[float, float]:
        """(location, scale) of the normal in fit space, or (low, width) of the uniform."""
        if self.prior == "normal":
            return float(self.mean), float(self.sd)
        if self.prior == "lognormal":
            return math.log(self.median), float(self.sigma)
        lo, hi = self.fit_bounds()
        return lo, hi - lo

    def to_natural(self, x: float) -> float:
        return math.exp(x) if self.log else float(x)

    def to_fit(self, v: float) -> float:
        return math.log(v) if self.log else float(v)

    def natural_pdf(self, v: np.ndarray) -> np.ndarray:
        """Prior density in natural units (for the marginal plots)."""
        from scipy import stats

        v = np.asarray(v, dtype=float)
        lo, hi = (self.low if self.low is not None else -np.inf), (self.high if self.high is not None else np.inf)
        inside = (v >= lo) & (v <= hi)
        if self.prior == "uniform":
            return np.where(inside, 1.0 / (self.high - self.low), 0.0)
        if self.prior == "loguniform":
            return np.where(inside & (v > 0), 1.0 / (np.maximum(v, 1e-300) * math.log(self.high / self.low)), 0.0)
        if self.prior == "normal":
            d = stats.norm(self.mean, self.sd)
            mass = d.cdf(hi) - d.cdf(lo)
            return np.where(inside, d.pdf(v) / mass, 0.0)
        d = stats.lognorm(s=self.sigma, scale=self.median)
        mass = d.cdf(hi) - d.cdf(max(lo, 0.0))
        return np.where(inside & (v > 0), d.pdf(np.maximum(v, 1e-300)) / mass, 0.0)

    def describe(self) -> str:
        if self.prior in ("uniform", "loguniform"):
            return f"{self.prior}({self.low:g}, {self.high:g})"
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        bounds = "" if self.low is None and self.high is None else f" on [{lo}, {hi}]"
        if self.prior == "normal":
            return f"normal(mean {self.mean:g}, sd {self.sd:g}){bounds}"
        return f"lognormal(median {self.median:g}, sigma {self.sigma:g}){bounds}"


class AssaySpec(_Block):
    """One in vitro well (`sim.assays.assay_overrides`): E:T ratio, product and targets."""

    et: float = Field(gt=0, description="effector : target ratio")
    product: Literal["car", "nt"] = "car"
    targets: Literal["pos", "neg"] = "pos"


class ConditionSpec(_Block):
    """An experimental condition: assay overrides and/or dotted `set:` overrides (set wins)."""

    assay: AssaySpec | None = None
    set: dict[str, Any] = Field(default_factory=dict)
    hours: float | None = P(None, "h", "default: the latest data time of this condition", "run length", gt=0)


class ObservableSpec(_Block):
    """How an observable is computed from one run.

    - `metric: NAME`: a scalar of summary["metrics"] at the end of the run;
    - `metric: kills_per_nk_hist` with `kills: [lo, hi]` (hi null = no upper limit): the fraction of
      NK cells with lo..hi kills (`weight: cells`) or the share of all kills they made (`weight: kills`);
    - `columns: [a, b, ...]`: the sum of time-series columns at the data row's time (linear
      interpolation), divided by column `per_initial` at t = 0 if given, times `scale`.
    """

    metric: str | None = None
    kills: tuple[int, int | None] | None = None
    weight: Literal["cells", "kills"] = "cells"
    columns: list[str] | None = Field(None, min_length=1)
    per_initial: str | None = None
    scale: float = P(1.0, "-", "identity", "factor applied to the computed value (100 for %)")

    @model_validator(mode="after")
    def _one_kind(self) -> "ObservableSpec":
        if (self.metric is None) == (self.columns is None):
            raise ValueError("give exactly one of metric: (a summary metric) or columns: (time-series columns)")
        if self.metric is not None and self.per_initial is not None:
            raise ValueError("per_initial is for columns: observables")
        if self.kills is not None and self.metric not in LIST_METRICS:
            raise ValueError(f"kills: [lo, hi] selects bins of a list metric ({', '.join(LIST_METRICS)})")
        if self.metric in LIST_METRICS and self.kills is None:
            raise ValueError(f"{self.metric} is a list; add kills: [lo, hi] to turn it into one number")
        if self.kills is not None and (self.kills[0] < 0 or (self.kills[1] is not None and self.kills[1] < self.kills[0])):
            raise ValueError(f"kills: [lo, hi] needs 0 <= lo <= hi (got {list(self.kills)})")
        return self

    @property
    def kind(self) -> str:
        return "series" if self.columns is not None else "metric"


class CalibrateSpec(_Block):
    """The `calibrate:` block."""

    parameters: dict[str, Prior] = Field(min_length=1)
    data: str | list[str]
    conditions: dict[str, ConditionSpec] = Field(min_length=1)
    observables: dict[str, ObservableSpec] = Field(min_length=1)
    overrides: dict[str, Any] = Field(default_factory=dict, description="constant dotted overrides of the base")
    population: int = P(100, "particles", "pyabc's default population size", "particles per generation", ge=2)
    generations: int = P(6, "generations", "assumed (the in vitro fit reaches T = 1 by generation 3)",
                         "ABC-SMC generations in total (the last one at temperature 1)", ge=1)
    replicates: int = P(1, "wells", "assumed", "wells per condition per particle (the observable is their mean)", ge=1)
    predictive_draws: int = P(100, "draws", "assumed", "posterior draws simulated for the predictive check", ge=0)
    seed: int | None = P(None, "-", "default: the base scenario's seed", "calibration seed", ge=0)


class CalibrationFile(_Block):
    """A stand-alone calibration file: `base:` (a scenario YAML relative to this file) + `calibrate:`."""

    base: str
    calibrate: dict  # validated as CalibrateSpec with its own path prefix


@dataclass
class Plan:
    """A validated calibration: what the ABC model, the outputs and the figures need."""

    spec_path: Path
    name: str
    spec: CalibrateSpec
    document: dict  # the base scenario as written (sparse), without __source__ and calibrate:
    seed: int
    data: pd.DataFrame  # condition, time, observable, value, uncertainty (+ any extra columns), one row per datum
    keys: list[str]  # summary-statistic key of each data row, in row order
    condition_layers: dict[str, dict[str, Any]]  # per condition: constant overrides + assay + set (origin "calibrate")
    condition_hours: dict[str, float]
    base_values: dict[str, Any]  # each fitted parameter's value in the effective base scenario
    integer: dict[str, bool] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.spec.parameters)

    def fingerprint(self) -> str:
        """Hash of everything that defines the posterior (not generations/draws): a history is only
        continued by the same problem."""
        spec = self.spec.model_dump(mode="json", exclude={"generations", "predictive_draws"})
        text = json.dumps({"spec": spec, "document": self.document, "seed": self.seed,
                           "data": self.data[list(DATA_COLUMNS)].to_dict(orient="list")}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# errors


def _err(src: dict, path: tuple, msg: str) -> ScenarioError:
    """A ScenarioError at `path` with its YAML line (the sweep/cohort locator, `sim.sweep.spec._err`)."""
    return _located_error((), path, msg, src)


_SUBMODELS = {"parameters": Prior, "conditions": ConditionSpec, "observables": ObservableSpec}


def _parent_block(loc: tuple) -> type[BaseModel]:
    """The block holding the key at `loc` (calibrate: keys, a prior, a condition or its assay, an observable)."""
    model: type[BaseModel] = CalibrateSpec
    if len(loc) >= 3 and loc[0] in _SUBMODELS:
        model = _SUBMODELS[loc[0]]
        if loc[0] == "conditions" and len(loc) >= 4 and loc[2] == "assay":
            model = AssaySpec
    return model


def _pydantic_error(e: ValidationError, data: dict, prefix: tuple, src: dict) -> ScenarioError:
    """The first pydantic error (a typo before the "missing" it explains), in the project's one wording."""
    errs = e.errors()
    err = next((x for x in errs if x["type"] == "extra_forbidden"), errs[0])
    loc = _real_loc(data, err)
    return _err(src, prefix + loc, error_message(err, loc, _parent_block(loc)))


# ---------------------------------------------------------------------------------------------
# loading


def load_calibration(path: str | Path) -> Plan:
    """Read a calibration file (`base:` + `calibrate:`) or a scenario with a `calibrate:` block."""
    spec_path = Path(path)
    raw = load_raw(spec_path)
    src = raw.pop("__source__", {})
    if "base" in raw:
        try:
            cf = CalibrationFile.model_validate(raw)
        except ValidationError as e:
            raise _pydantic_error(e, raw, (), src) from None
        base_path = Path(cf.base)
        if not base_path.is_absolute():
            base_path = spec_path.parent / base_path
        if not base_path.is_file():
            raise _err(src, ("base",), f"base scenario not found: {base_path} (relative paths start at the calibration file's folder)")
        base_raw = load_raw(base_path)
        block = cf.calibrate
    else:
        if "calibrate" not in raw:
            raise ScenarioError("calibrate", "no calibrate: block in this file (add one, or use a calibration file with base:)",
                                file=src.get("file"))
        block = raw["calibrate"]
        base_raw = {**{k: v for k, v in raw.items() if k != "calibrate"}, "__source__": src}
    if not isinstance(block, dict):
        raise _err(src, ("calibrate",), "must be a mapping (parameters:, data:, conditions:, observables:, ...)")
    prefix = ("calibrate",)
    try:
        spec = CalibrateSpec.model_validate(block)
    except ValidationError as e:
        raise _pydantic_error(e, block, prefix, src) from None
    for k in ("calibrate", "sweep"):
        base_raw.pop(k, None)
    base_src = base_raw.pop("__source__", None)
    document = copy.deepcopy(base_raw)
    resolve({**document, "__source__": base_src} if base_src else document)  # errors in the base name its own file and line
    return _plan(spec_path, spec, document, src, prefix)


def _check_paths(overrides: dict, where: tuple, src: dict) -> None:
    for p, v in overrides.items():
        try:
            apply_overrides({}, {p: v})
        except ScenarioError as e:
            raise _err(src, where + (p,), e.detail) from None


def _plan(spec_path: Path, spec: CalibrateSpec, document: dict, src: dict, prefix: tuple) -> Plan:
    # constant overrides and parameter paths
    _check_paths(spec.overrides, prefix + ("overrides",), src)
    try:
        base = resolve(document, spec.overrides, "calibrate").scenario
    except ScenarioError as e:
        raise _err(src, prefix + ("overrides", e.path), e.detail.split(" (in the ")[0]) from None
    _check_paths({p: 0 for p in spec.parameters}, prefix + ("parameters",), src)
    base_values, integer = {}, {}
    for p, prior in spec.parameters.items():
        if p in spec.overrides:
            raise _err(src, prefix + ("parameters", p), "is also in calibrate.overrides; remove one of them")
        v = dotted_get(base, p)
        if isinstance(v, bool) or not isinstance(v, (int, float)) and v is not None:
            raise _err(src, prefix + ("parameters", p), f"is not a numeric parameter (its value is {v!r}); only numbers can be fitted")
        base_values[p] = v
        integer[p] = isinstance(v, int)
        for label, value in (("low", prior.low), ("high", prior.high), ("median" if prior.log else "mean", prior.center)):
            if value is None:
                continue
            try:
                resolve(document, {**spec.overrides, p: int(round(value)) if integer[p] else value}, "calibrate")
            except ScenarioError as e:
                raise _err(src, prefix + ("parameters", p), f"the prior's {label} ({value:g}) is not a valid value: "
                           f"{e.detail.split(' (in the ')[0]}") from None

    # conditions
    layers: dict[str, dict] = {}
    n_targets = int(base.tumor.init.count)
    for name, c in spec.conditions.items():
        where = prefix + ("conditions", name)
        _check_paths(c.set, where + ("set",), src)
        clash = sorted(set(c.set) & set(spec.parameters))
        if clash:
            raise _err(src, where + ("set", clash[0]), "is a fitted parameter; a condition cannot fix it")
        layer = dict(spec.overrides)
        if c.assay is not None:
            n_t = int(c.set.get("tumor.init.count", spec.overrides.get("tumor.init.count", n_targets)))
            layer.update(assay_overrides(c.assay.et, c.assay.product, c.assay.targets, n_targets=n_t))
        layer.update(c.set)
        if c.assay is None and not c.set and len(spec.conditions) > 1:
            raise _err(src, where, "sets nothing (give assay: {et: ...} or set: {path: value})")
        try:
            resolve(document, {**layer, **{p: (int(round(pr.center)) if integer[p] else pr.center) for p, pr in spec.parameters.items()}},
                    "calibrate")
        except ScenarioError as e:
            raise _err(src, where + (("set", e.path) if e.path in c.set else ()), e.detail.split(" (in the ")[0]) from None
        layers[name] = layer

    # observables
    for name, o in spec.observables.items():
        where = prefix + ("observables", name)
        if o.metric is not None and o.metric not in KNOWN_METRICS:
            close = difflib.get_close_matches(o.metric, KNOWN_METRICS, n=1, cutoff=0.5)
            raise _err(src, where + ("metric",), f"unknown metric '{o.metric}'" + (f"; did you mean '{close[0]}'?" if close else ""))
        cols = [(("columns", i), c) for i, c in enumerate(o.columns or [])]
        cols += [(("per_initial",), o.per_initial)] if o.per_initial else []
        for key, col in cols:
            if col not in TIMESERIES_COLUMNS:
                close = difflib.get_close_matches(col, TIMESERIES_COLUMNS, n=1, cutoff=0.5)
                raise _err(src, where + key, f"unknown time-series column '{col}'"
                           + (f"; did you mean '{close[0]}'?" if close else f"; columns: {', '.join(TIMESERIES_COLUMNS)}"))

    # data
    table = _load_data(spec, spec_path, src, prefix)
    hours = {}
    for name, c in spec.conditions.items():
        rows = table[table["condition"] == name]
        if rows.empty:
            raise _err(src, prefix + ("conditions", name), "has no rows in the data (remove it, or add its data)")
        hours[name] = float(c.hours if c.hours is not None else rows["time"].max())
    used = set(table["observable"])
    for name in spec.observables:
        if name not in used:
            raise _err(src, prefix + ("observables", name), "has no rows in the data (remove it, or add its data)")
    for i, r in table.iterrows():
        o = spec.observables[r["observable"]]
        h = hours[r["condition"]]
        where = f"{r['__file__']} data row {r['__row__']}"
        if o.kind == "metric" and not math.isclose(float(r["time"]), h, rel_tol=0, abs_tol=1e-6):
            raise _err(src, prefix + ("data",), f"{where}: '{r['observable']}' is an end-of-run metric, so its time must be the "
                       f"condition's run length ({h:g} h), got {r['time']:g}")
        if float(r["time"]) > h + 1e-9:
            raise _err(src, prefix + ("data",), f"{where}: time {r['time']:g} h is after the end of condition "
                       f"'{r['condition']}' ({h:g} h, its hours:)")
    keys = [f"{r.condition}/{r.observable}@{float(r.time):g}h" for r in table.itertuples()]
    dup = pd.Series(keys)[pd.Series(keys).duplicated()]
    if len(dup):
        raise _err(src, prefix + ("data",), f"two rows for {dup.iloc[0]} (condition, observable and time must be unique)")
    seed = spec.seed if spec.seed is not None else int(base.seed)
    name = spec_path.stem
    table = table.drop(columns=["__file__", "__row__"]).reset_index(drop=True)
    return Plan(spec_path, name, spec, document, seed, table, keys, layers, hours, base_values, integer)


def data_path(entry: str, spec_path: Path) -> Path:
    """Where a `data:` entry points: `nksim:<file>` in sim/data/, else relative to the calibration file."""
    if entry.startswith(PACKAGE_PREFIX):
        return packaged.path(entry[len(PACKAGE_PREFIX):])
    p = Path(entry)
    return p if p.is_absolute() else spec_path.parent / p


def _load_data(spec: CalibrateSpec, spec_path: Path, src: dict, prefix: tuple) -> pd.DataFrame:
    entries = [spec.data] if isinstance(spec.data, str) else list(spec.data)
    if not entries:
        raise _err(src, prefix + ("data",), "name at least one table (CSV or Parquet)")
    frames = []
    for i, entry in enumerate(entries):
        where = prefix + (("data",) if isinstance(spec.data, str) else ("data", i))
        p = data_path(entry, spec_path)
        if not p.is_file():
            raise _err(src, where, f"data table not found: {p} (relative paths start at the calibration file's folder; "
                       f"'{PACKAGE_PREFIX}<file>' names a table shipped in sim/data/)")
        try:
            if p.suffix.lower() in (".parquet", ".pq"):
                df = read_parquet(p)
            elif p.suffix.lower() in (".csv", ".txt"):
                df = pd.read_csv(p, comment="#", skipinitialspace=True)
            else:
                raise _err(src, where, f"{p.name}: a data table must be .csv or .parquet")
        except ScenarioError:
            raise
        except Exception as e:  # unreadable file
            raise _err(src, where, f"cannot read {p.name}: {e}") from None
        missing = [c for c in DATA_COLUMNS if c not in df.columns]
        if missing:
            raise _err(src, where, f"{p.name}: missing column(s) {', '.join(missing)} (needs {', '.join(DATA_COLUMNS)})")
        df = df.copy()
        df["__file__"], df["__row__"] = p.name, np.arange(len(df)) + 1  # data rows, 1-based (comment lines and the header not counted)
        for col in ("time", "value", "uncertainty"):
            num = pd.to_numeric(df[col], errors="coerce")
            bad = df[num.isna() | ~np.isfinite(num.astype(float))]
            if len(bad):
                raise _err(src, where, f"{p.name} data row {bad['__row__'].iloc[0]}: {col} must be a finite number (got {bad[col].iloc[0]!r})")
            df[col] = num.astype(float)
        for col, ok, what in (("uncertainty", df["uncertainty"] > 0, "must be > 0 (one standard deviation)"),
                              ("time", df["time"] >= 0, "must be >= 0 (hours)")):
            if not ok.all():
                r = df[~ok].iloc[0]
                raise _err(src, where, f"{p.name} data row {r['__row__']}: {col} {what}, got {r[col]:g}")
        for col, known, block in (("condition", spec.conditions, "conditions"), ("observable", spec.observables, "observables")):
            df[col] = df[col].astype(str).str.strip()
            bad = df[~df[col].isin(list(known))]
            if len(bad):
                v = bad[col].iloc[0]
                close = difflib.get_close_matches(v, list(known), n=1, cutoff=0.5)
                raise _err(src, where, f"{p.name} data row {bad['__row__'].iloc[0]}: {col} '{v}' is not in calibrate.{block}"
                           + (f"; did you mean '{close[0]}'?" if close else f" ({', '.join(known)})"))
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# observables


def observe(spec: ObservableSpec, timeseries: pd.DataFrame, metrics: dict, times: np.ndarray) -> np.ndarray:
    """The observable at `times` (hours) from one run's time series and metrics (metrics: one value)."""
    times = np.atleast_1d(np.asarray(times, dtype=float))
    if spec.kind == "series":
        ts = timeseries
        y = ts[spec.columns].to_numpy(dtype=float).sum(axis=1)
        if spec.per_initial:
            d = float(ts[spec.per_initial].iloc[0])
            y = y / d if d else np.full_like(y, np.nan)
        return spec.scale * np.interp(times, ts["time_h"].to_numpy(dtype=float), y)
    v = metrics.get(spec.metric)
    if spec.kills is not None:
        h = np.asarray(v, dtype=float)
        k = np.arange(h.size)
        lo, hi = spec.kills
        mask = (k >= lo) & (k <= (hi if hi is not None else np.inf))
        w = h if spec.weight == "cells" else k * h
        v = float(w[mask].sum() / w.sum()) if w.sum() > 0 else 0.0
    v = np.nan if v is None else float(v)
    return np.full(times.shape, spec.scale * v)
