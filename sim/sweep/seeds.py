"""Seeds and run ids: replicate seeds from one SeedSequence, and content-hash run ids.

Replicate r always gets the r-th child of ``SeedSequence(seed)`` whatever the design point, so
outcomes are paired across parameter values (common random numbers) and stable across sweeps.
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np

from sim.provenance import ENGINE

SEED_MASK = (1 << 63) - 1
#: Extra entropy word that separates the design sampler's stream from the replicate seeds.
DESIGN_STREAM = 0x5EED_DE51


def child_seed(child: np.random.SeedSequence) -> int:
    """One non-negative 63-bit int seed from a SeedSequence child (fits int64 and JSON)."""
    return int(child.generate_state(1, dtype=np.uint64)[0]) & SEED_MASK


def replicate_seeds(seed: int, n: int) -> list[int]:
    """Int seeds for replicates 0..n-1: ``SeedSequence(seed).spawn(n)``, each child to 63 bits.

    Child r depends only on (seed, r), so replicate r has the same seed in a sweep of any size.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    return [child_seed(c) for c in np.random.SeedSequence(int(seed)).spawn(n)]


def design_seed(seed: int) -> int:
    """A 32-bit seed for the design sampler (LHS/Sobol/Morris), independent of replicate seeds."""
    return int(np.random.SeedSequence([int(seed), DESIGN_STREAM]).generate_state(1, dtype=np.uint32)[0])


def _canon(obj: Any) -> Any:
    """Normalise values for hashing: numpy scalars to Python, integral floats stay floats."""
    if isinstance(obj, dict):
        return {str(k): _canon(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canon(v) for v in obj]
    if isinstance(obj, np.generic):
        return _canon(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)
    return obj


def canonical_json(obj: Any) -> str:
    """Sorted-key, compact, ASCII JSON: the same content always gives the same text."""
    return json.dumps(_canon(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def run_id(scenario: dict, overrides: dict[str, Any], seed: int) -> str:
    """Content hash of (effective scenario, overrides, seed, engine version): 16 hex chars of sha256.

    The engine version is part of the hash, so results of an older nksim are never reused as current."""
    text = canonical_json({"base": scenario, "overrides": overrides, "seed": int(seed), "engine": ENGINE})
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:16]
