"""The one resolution step: what the user wrote, plus arm or sweep overrides, becomes the effective
scenario, with the origin of every value.

Order (later wins): schema default < product preset < rules (infusions scheduled ⇒ no cells at t = 0)
< the user's document < each override layer (``run``, ``arm:<name>``, ``sweep``) in turn. "Set by the
user" means *present in the written document or a layer*, never pydantic's ``model_fields_set``: a
re-validated ``model_dump()`` sets every field, which is how presets used to be lost in arms and
sweeps. Every entry point (`sim.run`, arms, sweep workers, cohorts, `TumorImmuneModel` and hence
`mesa.batch_run`, checkpoint resume) calls `resolve` and nothing else resolves.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import ScenarioError
from .loader import apply_overrides, load_raw, validate
from .preflight import check_feasible
from .presets import PRODUCTS
from .scenario import Scenario

#: preset field → the dotted nk path it resolves into
PRESET_TARGETS = {
    "max_divisions": "nk.il15.max_divisions",
    "proliferation_per_day": "nk.il15.proliferation_per_day",
    "half_life_days": "nk.persistence.half_life_days",
    "cd16": "nk.receptors.cd16",
    "hla_mismatch": "product.rejection.hla_mismatch",
}


@dataclass(frozen=True, eq=False)
class Effective:
    """A resolved scenario: every value explicit, each with its origin; `document` + `layers` rebuild it."""

    scenario: Scenario
    origins: dict[str, str]
    document: dict = field(repr=False)  # what the user wrote (sparse), without __source__
    layers: tuple = ()  # ((origin, {dotted: value}), ...) applied in order on top of the document
    source: dict | None = field(default=None, repr=False)  # {"file", "lines"} of the document, for messages

    def with_layer(self, origin: str, overrides: dict[str, Any] | None) -> "Effective":
        """The same document with one more override layer, resolved again from scratch."""
        if not overrides:
            return self
        out = _resolve(self.document, self.layers + ((origin, dict(overrides)),), None)
        object.__setattr__(out, "source", self.source)  # the document's lines still name its keys
        return out

    def explain(self) -> list[tuple[str, Any, str]]:
        """(dotted path, effective value, origin) for every leaf, in schema order."""
        flat = _leaves(self.scenario.model_dump(mode="json"))
        return [(p, v, self.origins.get(p, "default")) for p, v in flat.items()]

    def provenance(self) -> dict[str, str]:
        """Origins of every value that is not a schema default (for summary.json)."""
        return {p: o for p, o in self.origins.items() if o != "default"}


def resolve(source: Any = None, overrides: dict[str, Any] | None = None, origin: str = "override") -> Effective:
    """The effective scenario of a YAML path, raw dict, Scenario, Effective or None (all defaults).

    `overrides` (dotted paths) form one more layer named `origin` (``override``, ``run``, ``arm:x``,
    ``sweep``). A Scenario that came out of `resolve` keeps its document and layers, so resolving it
    again is the identity and further overrides stack instead of freezing its values as "user"."""
    if isinstance(source, Effective):
        return source.with_layer(origin, overrides)
    if isinstance(source, Scenario):
        eff = source.__dict__.get("_effective")
        if eff is not None and eff.scenario is source:  # a copy (model_copy) may differ: resolve it afresh
            return eff.with_layer(origin, overrides)
        doc, src = source.model_dump(exclude_unset=True), None
    elif isinstance(source, (str, Path)):
        doc = load_raw(source)
        src = doc.pop("__source__", None)
    elif source is None:
        doc, src = {}, None
    elif isinstance(source, dict):
        doc = copy.deepcopy({k: v for k, v in source.items() if k != "__source__"})
        src = source.get("__source__")
    else:
        raise TypeError(f"cannot resolve a scenario from {type(source).__name__}")
    doc.pop("sweep", None)
    doc.pop("cohort", None)
    layers = ((origin, dict(overrides)),) if overrides else ()
    return _resolve(doc, layers, src)


def _resolve(doc: dict, layers: tuple, src: dict | None) -> Effective:
    merged = doc
    for label, ov in layers:
        try:
            merged = apply_overrides(merged, ov)
        except ScenarioError as e:
            raise ScenarioError(e.path, f"{e.detail} (in the {label} overrides)") from None
    cfg = validate({**merged, "__source__": src} if src else merged)
    origins = {p: "user" for p in _leaves(doc)}
    for label, ov in layers:
        for dotted in ov:
            for p in list(origins):  # a layer that sets a block replaces what was under it
                if p == dotted or p.startswith(dotted + "."):
                    del origins[p]
            for p in _leaves(_nest(dotted, ov[dotted])):
                origins[p] = label
    explicit = lambda path: any(path == p or path.startswith(p + ".") for p in origins)  # noqa: E731
    eff = cfg.model_copy(deep=True)
    if cfg.dosing.infusions and not explicit("nk.dose.cells"):
        eff.nk.dose.cells = 0
        origins["nk.dose.cells"] = "rule:infusions_scheduled"
    if cfg.product.type != "none":
        pre = PRODUCTS[cfg.product.type]
        for key, dotted in PRESET_TARGETS.items():
            if not explicit(dotted):
                *parents, name = dotted.split(".")
                obj = eff
                for part in parents:
                    obj = getattr(obj, part)
                value = getattr(pre, key).value
                setattr(obj, name, int(value) if name == "max_divisions" else float(value))
                origins[dotted] = f"preset:{cfg.product.type}"
    check_feasible(eff, (src or {}).get("lines"), (src or {}).get("file"))  # the same rules for check, run, arms, sweeps
    out = Effective(eff, origins, doc, layers, src)
    object.__setattr__(eff, "_effective", out)  # plain attribute on the instance: not part of the schema
    if eff.arms:
        arm_effectives(out, src)  # every arm must resolve too (errors name arms.<i>.set.<path>)
    return out


def coerce(source: Any = None, overrides: dict[str, Any] | None = None) -> Scenario:
    """The effective Scenario of any accepted input (see `resolve`)."""
    return resolve(source, overrides).scenario


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Load a scenario YAML file (with optional dotted overrides) as its effective Scenario."""
    return resolve(Path(path), overrides).scenario


def arm_scenarios(cfg: Any) -> list[tuple[str, Scenario]]:
    """(name, effective Scenario) of each arm of a scenario."""
    return [(name, e.scenario) for name, e in arm_effectives(resolve(cfg))]


def arm_effectives(eff: Effective, src: dict | None = None) -> list[tuple[str, Effective]]:
    """Each arm of a resolved scenario: its document without `arms`, plus the arm's `set` as a layer."""
    base_doc = {k: v for k, v in eff.document.items() if k != "arms"}
    base_layers = tuple((o, {p: v for p, v in ov.items() if p.split(".")[0] != "arms"}) for o, ov in eff.layers)
    lines = (src or {}).get("lines", {})
    out, names = [], set()
    for i, arm in enumerate(eff.scenario.arms):
        where, line = f"arms.{i}.set", lines.get(("arms", i))
        if arm.name in names:
            raise ScenarioError(f"arms.{i}.name", f"duplicate arm name '{arm.name}'", line=line, file=(src or {}).get("file"))
        names.add(arm.name)
        if any(k.split(".")[0] == "arms" for k in arm.set):
            raise ScenarioError(where, "an arm cannot set arms", line=line, file=(src or {}).get("file"))
        try:
            out.append((arm.name, _resolve(base_doc, base_layers + ((f"arm:{arm.name}", dict(arm.set)),), None)))
        except ScenarioError as e:
            path = e.path
            raise ScenarioError(f"{where}.{path}" if path else where, e.detail.replace(f" (in the arm:{arm.name} overrides)", ""),
                                line=line, file=(src or {}).get("file")) from None
    return out


UNTREATED_ARM = "untreated"


def untreated_overrides(scenario: Scenario) -> dict[str, Any]:
    """The overrides that turn a scenario into its untreated control: no effector cells at t = 0, no
    infusions, no lymphodepletion, no companion drug and no IL-15 superagonist."""
    ov: dict[str, Any] = {"nk.dose.cells": 0, "dosing.infusions": [], "dosing.lymphodepletion.regimen": "none"}
    for name in type(scenario.drugs).model_fields:
        if getattr(getattr(scenario.drugs, name), "doses", None):
            ov[f"drugs.{name}.doses"] = []
    if scenario.nk.il15.mode == "exogenous" or scenario.nk.il15.superagonist.doses:
        ov["nk.il15.mode"] = "none"
        ov["nk.il15.superagonist.doses"] = []
    return ov


def is_untreated(scenario: Scenario) -> bool:
    """No effector cells, infusions, lymphodepletion, companion drug or superagonist."""
    drugs_or_il15 = [k for k in untreated_overrides(scenario) if k.startswith(("drugs.", "nk.il15."))]
    return (not drugs_or_il15 and scenario.nk.dose.cells == 0 and not scenario.dosing.infusions
            and scenario.dosing.lymphodepletion.regimen == "none")


def untreated_effective(eff: Effective) -> Effective:
    """The untreated control of a resolved scenario with arms, through the same path as an arm: its
    document without `arms`, plus `untreated_overrides` as the layer 'arm:untreated'."""
    base_doc = {k: v for k, v in eff.document.items() if k != "arms"}
    base_layers = tuple((o, {p: v for p, v in ov.items() if p.split(".")[0] != "arms"}) for o, ov in eff.layers)
    base = _resolve(base_doc, base_layers, None)
    return _resolve(base_doc, base_layers + ((f"arm:{UNTREATED_ARM}", untreated_overrides(base.scenario)),), None)


def _nest(dotted: str, value: Any) -> dict:
    out: dict = {}
    node = out
    keys = dotted.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return out


def _leaves(d: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts into {dotted path: value}; lists and scalars are leaves."""
    out: dict[str, Any] = {}
    if isinstance(d, dict) and d:
        for k, v in d.items():
            out.update(_leaves(v, f"{prefix}{k}."))
    elif prefix:
        out[prefix[:-1]] = d
    return out
