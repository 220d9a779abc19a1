"""The random-sequential order: every step visits its cells in a fresh uniformly random order."""
from numba import njit

from .rates import uniform_index


@njit(cache=True)
def shuffled(rng, idx):
    """Fisher–Yates shuffle of `idx` in place (and returned), from `rng.random()` draws: the kernel
    stream in the batch steps, a NumPy Generator in the well-mixed step."""
    for i in range(idx.shape[0] - 1, 0, -1):
        j = uniform_index(rng, i + 1)
        t = idx[i]
        idx[i] = idx[j]
        idx[j] = t
    return idx
