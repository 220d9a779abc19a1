"""Host-versus-graft rejection of allogeneic CAR-NK products (`product.rejection`).

The host's T cells reject HLA-mismatched cells once they recover from lymphodepletion:

    recovery(t) = 0 before t_r,  1 − 2^{−(t − t_r)/T}  after;   t_r = conditioning start + plateau + delay
    hazard(t)   = max_rate · hla_mismatch · recovery(t)       (0 for a hypoimmune product or a CAR-T arm)

Without lymphodepletion the host is recovered from the start. The hazard is one declared modulator of
the kernel's `rejection_per_min` (an extra death hazard IL-15 does not extend) and the same function
adds to the death rate of the blood compartment, so blood and tissue lose cells alike.
"""
from __future__ import annotations

from ..units import MIN_PER_DAY


def host_recovery(ld, rej, t_day: float) -> float:
    """Fraction of the host's alloreactive capacity back at t (days; 1 without lymphodepletion)."""
    if ld.regimen == "none":
        return 1.0
    since = t_day - (ld.start_day + ld.duration_days + rej.recovery_delay_days)
    return 0.0 if since <= 0 else 1.0 - 0.5 ** (since / rej.recovery_half_time_days)


def rejection_per_day(scenario, t_day: float) -> float:
    """The rejection hazard (1/day) of the scenario's product at t."""
    rej = scenario.product.rejection
    if rej.hypoimmune or scenario.effector == "cart" or rej.hla_mismatch <= 0 or rej.max_rate_per_day <= 0:
        return 0.0
    return rej.max_rate_per_day * rej.hla_mismatch * host_recovery(scenario.dosing.lymphodepletion, rej, t_day)


def rejected(scenario) -> bool:
    """Whether the product can be rejected at all (else nothing is declared and nothing changes)."""
    rej = scenario.product.rejection
    return not (rej.hypoimmune or scenario.effector == "cart" or rej.hla_mismatch <= 0 or rej.max_rate_per_day <= 0)


def hazard_per_min(scenario):
    """t (min) → rejection hazard (1/min): the modulator's course and the blood compartment's extra loss."""
    return lambda t_min: rejection_per_day(scenario, t_min / MIN_PER_DAY) / MIN_PER_DAY
