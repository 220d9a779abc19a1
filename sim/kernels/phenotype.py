"""Per-cell phenotype variation: levels drawn from a lognormal given by its mean and coefficient of
variation (tumor antigen, MHC-I and NKG2D-ligand levels; the potency of a product lot)."""
from __future__ import annotations

import numpy as np

from .noise import log_params


def lognormal(rng: np.random.Generator, mean: float, cv: float, size: int | None = None):
    """Draws (float64; one number when `size` is None) from the lognormal with this mean and CV:
    σ² = ln(1 + cv²), μ = ln(mean) − σ²/2. Degenerate cases draw nothing: 0 when mean ≤ 0, the mean
    itself when cv ≤ 0."""
    if mean <= 0 or cv <= 0:
        v = float(mean) if mean > 0 else 0.0
        return v if size is None else np.full(size, v)
    mu, sd = log_params(mean, cv)
    return rng.lognormal(mu, sd, size)


def lognormal_levels(rng: np.random.Generator, n: int, mean: float, cv: float) -> np.ndarray:
    """`n` per-cell levels from `lognormal`, as the float32 the cell arrays store."""
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    return np.asarray(lognormal(rng, mean, cv, n)).astype(np.float32)
