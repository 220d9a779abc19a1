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
        for m in self.modulators:
            v = m.course(t_min)
            self.values[m.name] = v
            kind, name = m.target.split(".", 1)
            if kind == "nk":
                changes[name] = RULES[m.rule](getattr(base_nk, name), v, m.gain)
            else:
                backgrounds(name, RULES[m.rule](0.0, v, m.gain))
        if not changes:
            return base_nk
        last_base, last_changes, last_p = self._last
        if base_nk is last_base and _identical(changes, last_changes):
            return last_p  # the same values: the same tuple (the kernels' parameter record is then reused)
        p = base_nk._replace(**changes)
        self._last = (base_nk, changes, p)
        return p

    def reporters(self) -> dict:
        """Timeseries columns: each modulator's value at the output time."""
        return {m.name: (lambda mod, c=m.course: c(mod.now_min)) for m in self.modulators}

    def describe(self) -> list[dict]:
        """What the summary records about each modulator."""
        return [{"name": m.name, "target": m.target, "rule": m.rule, "gain": m.gain, "source": m.source}
                for m in self.modulators]
