"""Tumor escape rules applied in the tumor step: antigen loss on division."""
from numba import njit


@njit(cache=True, inline='always')
def daughter_antigen(rng, parent_antigen, loss_probability):
    """Antigen level of a new daughter: the parent's, or 0 (antigen-negative) with `loss_probability`.

    No random number is drawn when the rate is 0, so runs without escape keep their random stream."""
    if loss_probability > 0.0 and rng.random() < loss_probability:
        return 0.0
    return parent_antigen
