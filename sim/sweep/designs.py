"""Design generators: grid, zip, Latin hypercube, Sobol (Saltelli) and Morris samples.

Each returns the design points as a list of ``{dotted.path: value}`` dicts in a fixed order;
the sampling designs also keep the unrounded sample matrix, which the sensitivity analysis needs.
"""
from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DESIGNS = ("grid", "zip", "lhs", "sobol", "morris")
SAMPLING_DESIGNS = ("lhs", "sobol", "morris")


@dataclass(frozen=True)
class Range:
    """A continuous parameter range for lhs/sobol/morris; integer ranges are rounded."""

    low: float
    high: float
    integer: bool = False


@dataclass
class Design:
    """Design points in run order, plus (for sampling designs) the raw matrix and SALib problem."""

    kind: str
    names: list[str]
    points: list[dict[str, Any]]
    X: np.ndarray | None = None
    problem: dict | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.points)


def _py(v: Any) -> Any:
    """Numpy scalars to plain Python values (JSON- and hash-friendly)."""
    return v.item() if isinstance(v, np.generic) else v


def grid(parameters: dict[str, list]) -> list[dict[str, Any]]:
    """Full factorial: every combination, the last parameter varying fastest."""
    names = list(parameters)
    return [dict(zip(names, map(_py, combo))) for combo in itertools.product(*(parameters[n] for n in names))]


def zip_points(parameters: dict[str, list]) -> list[dict[str, Any]]:
    """Paired lists: point i takes the i-th value of every parameter (lists must match in length)."""
    names = list(parameters)
    lengths = {len(parameters[n]) for n in names}
    if len(lengths) > 1:
        raise ValueError(f"zip needs lists of equal length, got {[len(parameters[n]) for n in names]}")
    return [dict(zip(names, map(_py, vals))) for vals in zip(*(parameters[n] for n in names))]


def _to_points(X: np.ndarray, names: list[str], ranges: list[Range]) -> list[dict[str, Any]]:
    """Rows of a sample matrix to point dicts, rounding integer parameters inside their bounds."""
    points = []
    for row in X:
        p: dict[str, Any] = {}
        for name, r, x in zip(names, ranges, row):
            if r.integer:
                v = int(math.floor(float(x) + 0.5))
                p[name] = min(max(v, math.ceil(r.low)), math.floor(r.high))
            else:
                p[name] = float(x)
        points.append(p)
    return points


def _problem(names: list[str], ranges: list[Range]) -> dict:
    return {"num_vars": len(names), "names": list(names), "bounds": [[float(r.low), float(r.high)] for r in ranges]}


def lhs(parameters: dict[str, Range], samples: int, seed: int) -> Design:
    """Latin hypercube (scipy.stats.qmc) with `samples` points scaled to the ranges."""
    from scipy.stats import qmc

    names, ranges = list(parameters), list(parameters.values())
    unit = qmc.LatinHypercube(d=len(names), rng=np.random.default_rng(seed)).random(samples)
    X = qmc.scale(unit, [r.low for r in ranges], [r.high for r in ranges])
    return Design("lhs", names, _to_points(X, names, ranges), X, _problem(names, ranges))


def sobol(parameters: dict[str, Range], samples: int, seed: int) -> Design:
    """Saltelli/Sobol sample (SALib): samples × (D + 2) points, first-order and total indices."""
    from SALib.sample import sobol as sobol_sample

    names, ranges = list(parameters), list(parameters.values())
    problem = _problem(names, ranges)
    with warnings.catch_warnings():
        # SALib warns when N is not a power of 2; the convergence note belongs in the docs.
        warnings.simplefilter("ignore")
        X = sobol_sample.sample(problem, samples, calc_second_order=False, seed=seed)
    return Design("sobol", names, _to_points(X, names, ranges), X, problem, {"calc_second_order": False})


def morris(parameters: dict[str, Range], samples: int, seed: int, levels: int = 4) -> Design:
    """Morris elementary-effects trajectories (SALib): samples × (D + 1) points."""
    from SALib.sample import morris as morris_sample

    names, ranges = list(parameters), list(parameters.values())
    problem = _problem(names, ranges)
    X = morris_sample.sample(problem, samples, num_levels=levels, seed=seed)
    return Design("morris", names, _to_points(X, names, ranges), X, problem, {"num_levels": levels})


def make_design(kind: str, parameters: dict[str, Any], samples: int | None = None, seed: int = 0, levels: int = 4) -> Design:
    """Build a design of the given kind from lists (grid/zip) or Ranges (lhs/sobol/morris)."""
    if kind == "grid":
        return Design("grid", list(parameters), grid(parameters))
    if kind == "zip":
        return Design("zip", list(parameters), zip_points(parameters))
    if samples is None or samples < 1:
        raise ValueError(f"{kind} needs samples >= 1")
    if kind == "lhs":
        return lhs(parameters, samples, seed)
    if kind == "sobol":
        return sobol(parameters, samples, seed)
    if kind == "morris":
        return morris(parameters, samples, seed, levels)
    raise ValueError(f"unknown design {kind!r}; use one of {', '.join(DESIGNS)}")
