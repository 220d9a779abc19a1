"""Time-varying therapy effects as declared data: each modulator names its time course, the one
kernel parameter (or field background) it changes and the rule that combines them.

Every step the model evaluates all modulators once, at the step's start time, and rebuilds the kernel
parameters from the static base (resolution + lot) — never from the previous step's values — so the
result cannot depend on the order components were installed in; at most one modulator per target.
Each modulator's value is a column of timeseries.parquet."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

#: How a modulator's value v (with gain g) changes the base value b of its target.
RULES: dict[str, Callable[[float, float, float], float]] = {
    "scale": lambda b, v, g: b * v,  # e.g. NKG2D × remaining engagement under ligand shedding
    "block": lambda b, v, g: b + (1.0 - b) * g * v,  # a blockade moves b toward 1 (anti-NKG2A)
    "lower": lambda b, v, g: b * (1.0 - g * v),  # e.g. half-activation lowered by anti-TIGIT
    "raise_count": lambda b, v, g: int(round(b * (1.0 + g * v))),  # e.g. stimulations before exhaustion (anti-PD-1)
    "set": lambda b, v, g: v,  # e.g. the systemic IL-15 background
}


@dataclass(frozen=True)
class Modulator:
    """One declared effect. `target` is ``nk.<NKParams field>`` or ``background.<field name>``."""

    name: str  # timeseries column
    target: str
    rule: str
    course: Callable[[float], float]  # value at a time (min on the simulation clock)
    gain: float = 1.0
    source: str = ""  # the scenario block that declared it, e.g. drugs.anti_nkg2a

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"unknown modulator rule {self.rule!r}; one of {', '.join(RULES)}")
        if not self.target.startswith(("nk.", "background.")):
            raise ValueError(f"modulator target must be nk.<param> or background.<field>, got {self.target!r}")


def _identical(a: dict, b: dict | None) -> bool:
    """Whether two parameter changes are the same values of the same types (0.0 and -0.0 differ; a
    NaN never matches, so it only costs a fresh tuple)."""
    if b is None or a.keys() != b.keys():
        return False
    for k, v in a.items():
        w = b[k]
        if type(v) is not type(w) or not v == w:
            return False
        if v == 0 and isinstance(v, float) and math.copysign(1.0, v) != math.copysign(1.0, w):
            return False
    return True


def _replaced(base, changes: dict):
    """`base._replace(**changes)` (a namedtuple with some fields changed), built from a list of its
    values: the same tuple, without `_replace`'s pass over every field name."""
    fields = base._fields
    vals = list(base)
    for k, v in changes.items():
        vals[fields.index(k)] = v
    return base._make(vals)


class Modulation:
    """The model's declared modulators and their values at the current step."""

    def __init__(self):
        self.modulators: list[Modulator] = []
        self.values: dict[str, float] = {}
        self._last: tuple = (None, None, None)  # (base, changes, parameters) of the last evaluation

    def declare(self, m: Modulator) -> None:
        if any(x.target == m.target for x in self.modulators):
            other = next(x for x in self.modulators if x.target == m.target)
            raise ValueError(f"{m.source or m.name} and {other.source or other.name} both modulate {m.target}; "
                             "combine them into one declared effect")
        if any(x.name == m.name for x in self.modulators):
            raise ValueError(f"two modulators named {m.name!r}")
        self.modulators.append(m)

    def __bool__(self) -> bool:
        return bool(self.modulators)

    def evaluate(self, t_min: float, base_nk, backgrounds) -> object:
        """The kernel parameters at time t from the static base; field backgrounds are set in place."""
        changes = {}
        values = self.values
        for name, course, to_nk, target, rule, gain in self._plan():
            v = course(t_min)
            values[name] = v
            if to_nk:
                changes[target] = rule(getattr(base_nk, target), v, gain)
            else:
                backgrounds(target, rule(0.0, v, gain))
        if not changes:
            return base_nk
        last_base, last_changes, last_p = self._last
        if base_nk is last_base and _identical(changes, last_changes):
            return last_p  # the same values: the same tuple (the kernels' parameter record is then reused)
        p = _replaced(base_nk, changes)
        self._last = (base_nk, changes, p)
        return p

    def _plan(self) -> list[tuple]:
        """Per modulator, what `evaluate` needs of it: (name, course, whether it targets a kernel
        parameter, the parameter or field name, the rule's function, gain); parsed once, not per step."""
        plan = self.__dict__.get("_parsed")
        if plan is None or len(plan) != len(self.modulators):
            plan = self._parsed = []
            for m in self.modulators:
                kind, target = m.target.split(".", 1)
                plan.append((m.name, m.course, kind == "nk", target, RULES[m.rule], m.gain))
        return plan

    def reporters(self) -> dict:
        """Timeseries columns: each modulator's value at the output time."""
        return {m.name: (lambda mod, c=m.course: c(mod.now_min)) for m in self.modulators}

    def describe(self) -> list[dict]:
        """What the summary records about each modulator."""
        return [{"name": m.name, "target": m.target, "rule": m.rule, "gain": m.gain, "source": m.source}
                for m in self.modulators]
