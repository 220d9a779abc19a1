"""NK-only tumor model of de Pillis, Radunskaya & Wiseman 2005 (Cancer Res 65:7950,
doi:10.1158/0008-5472.CAN-05-0564), the submodel with tumor cells T and NK cells N only:

    dT/dt = a·T·(1 − b·T) − c·N·T
    dN/dt = σ − f·N + g·T²/(h + T²)·N − p·N·T

Solved with scipy's `solve_ivp` (LSODA with the analytic Jacobian). The NK recruitment is a Hill
function of order 2 in T; nksim's well-mixed mode writes it as `proliferation_hill: 2` with
`proliferation_half_cells` g_half = √h (so that T²/(h + T²) = T²/(g_half² + T²)).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.integrate import solve_ivp


@dataclass(frozen=True)
class DePillisParams:
    """Dimensional parameters (cells, days), as listed in `shared/reference/literature.md` §7."""

    a: float = 0.514  # tumor growth, 1/day
    b: float = 1.02e-9  # inverse carrying capacity, 1/cell
    c: float = 3.23e-7  # NK kill rate, 1/(cell·day)
    sigma: float = 1.3e4  # constant NK source, cells/day
    f: float = 0.0412  # NK death, 1/day
    g: float = 0.025  # maximal tumor-induced NK recruitment, 1/day
    h: float = 2.02e7  # recruitment steepness, cells²
    p: float = 1e-7  # NK inactivation by tumor, 1/(cell·day)

    @property
    def half_cells(self) -> float:
        """Tumor size of half-maximal recruitment, √h (cells)."""
        return math.sqrt(self.h)

    def as_dict(self) -> dict:
        return asdict(self)


def rhs(t: float, y: np.ndarray, k: DePillisParams) -> np.ndarray:
    """Right-hand side (dN/dt, dT/dt) in cells/day (effectors first, as in `reference.kuznetsov`)."""
    N, T = y
    return np.array([
        k.sigma - k.f * N + k.g * T * T / (k.h + T * T) * N - k.p * N * T,
        k.a * T * (1.0 - k.b * T) - k.c * N * T,
    ])


def jacobian(y: np.ndarray, k: DePillisParams) -> np.ndarray:
    """Analytic Jacobian of `rhs` at y = (N, T)."""
    N, T = y
    rec = T * T / (k.h + T * T)
    drec = 2.0 * k.h * T / (k.h + T * T) ** 2
    return np.array([
        [-k.f + k.g * rec - k.p * T, k.g * drec * N - k.p * N],
        [-k.c * T, k.a - 2.0 * k.a * k.b * T - k.c * N],
    ])


def solve(N0: float, T0: float, days: float, k: DePillisParams | None = None,
          t_eval: np.ndarray | None = None, rtol: float = 1e-8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integrate from (N0, T0) for `days`; returns (t_days, N, T). LSODA, rtol 1e-8, atol 1e-6 cells."""
    k = k or DePillisParams()
    if t_eval is None:
        t_eval = np.linspace(0.0, days, int(days * 4) + 1)
    sol = solve_ivp(rhs, (0.0, days), [N0, T0], method="LSODA", t_eval=t_eval, args=(k,),
                    rtol=rtol, atol=1e-6, jac=lambda t, y, k: jacobian(y, k))
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    return sol.t, sol.y[0], sol.y[1]
