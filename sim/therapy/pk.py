"""Linear one- or two-compartment antibody pharmacokinetics with bolus doses (per kg body weight).

The system is linear, so the plasma concentration is a superposition of each dose's response,
exp(A·τ)·x₀, computed from the eigen-decomposition of A (scipy.linalg.eig)."""
from __future__ import annotations

import numpy as np
from scipy.linalg import eig

from ..kernels.rates import saturation


class PKCurve:
    """Plasma and tissue concentration (µg/mL) of a drug given as bolus doses in mg/kg."""

    def __init__(self, pk, doses):
        self.tissue_ratio = float(pk.tissue_to_plasma)
        self.days = np.array([d.day for d in doses], dtype=np.float64)
        self.mg_per_kg = np.array([d.mg_per_kg for d in doses], dtype=np.float64)
        self.A = rate_matrix(pk)
        self.v1 = float(pk.v_central_ml_per_kg)
        lam, vec = eig(self.A)
        self.lam = lam.real
        x0 = np.zeros(self.A.shape[0])
        x0[0] = 1.0  # 1 mg/kg into the central compartment
        coef = np.linalg.solve(vec.real, x0)
        self.weights = vec.real[0] * coef  # central amount per mg/kg: Σ_k w_k e^{λ_k τ}

    def plasma_ug_ml(self, t_day: float) -> float:
        """Plasma (central) concentration at `t_day` days."""
        tau = t_day - self.days
        on = tau >= 0
        if not on.any():
            return 0.0
        amt = (self.mg_per_kg[on, None] * self.weights[None, :] * np.exp(self.lam[None, :] * tau[on, None])).sum()
        return float(max(amt, 0.0) / self.v1 * 1000.0)  # mg/mL → µg/mL

    def tissue_ug_ml(self, t_day: float) -> float:
        """Tumor interstitial concentration: plasma × tissue-to-plasma ratio."""
        return self.plasma_ug_ml(t_day) * self.tissue_ratio


def rate_matrix(pk) -> np.ndarray:
    """dx/dt = A·x for the amounts (mg/kg) in the central (and peripheral) compartment, per day."""
    k10 = pk.clearance_ml_per_day_per_kg / pk.v_central_ml_per_kg
    if pk.compartments == 1:
        return np.array([[-k10]])
    k12 = pk.q_ml_per_day_per_kg / pk.v_central_ml_per_kg
    k21 = pk.q_ml_per_day_per_kg / pk.v_peripheral_ml_per_kg
    return np.array([[-(k10 + k12), k21], [k12, -k21]])


def occupancy(conc: float, kd: float) -> float:
    """Fraction of target bound at equilibrium: C/(C + K_D) (the kernels' saturation rule)."""
    return float(saturation(conc, kd))
