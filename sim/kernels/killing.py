"""Cytotoxic machinery: granule stock, its regeneration, the death-receptor fallback and exhaustion."""
from numba import njit

PATH_NONE = 0
PATH_GRANULE = 1
PATH_DEATH_RECEPTOR = 2


@njit(cache=True, inline='always')
def granules_per_step(regen_min, dt_min):
    """Granules regenerated in one step of `dt_min` (linear regeneration, one granule per `regen_min`)."""
    return dt_min / regen_min


@njit(cache=True, inline='always')
def regenerate_granules(granules, max_granules, per_step):
    """Granule stock after one step's regeneration (`granules_per_step`, computed once per step: the
    kernel reads parameters through a record, so LLVM cannot hoist the division), capped at the full stock."""
    g = granules + per_step
    return max_granules if g > max_granules else g


@njit(cache=True, inline='always')
def choose_kill_path(perforin, granules, dr_left):
    """Perforin/granzyme if granules are left, else a death-receptor kill if any remain, else none."""
    if perforin and granules >= 1.0:
        return PATH_GRANULE
    if dr_left >= 1.0:
        return PATH_DEATH_RECEPTOR
    return PATH_NONE


@njit(cache=True, inline='always')
def is_exhausted(stimulations, exhaustion_stimulations):
    """An NK cell is exhausted after a fixed number of triggering conjugates."""
    return stimulations >= exhaustion_stimulations
