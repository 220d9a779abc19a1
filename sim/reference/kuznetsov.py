"""Effector–tumor ODE of Kuznetsov, Makalkin, Taylor & Perelson 1994 (Bull Math Biol 56:295).

    dE/dt = s + p·E·T/(g+T) − m·E·T − d·E
    dT/dt = a·T·(1 − b·T) − n·E·T

Solved with scipy's `solve_ivp`; fixed points are found numerically (brentq on the nullcline
intersection) and classified from the eigenvalues of the Jacobian, so nothing is typed in.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import brentq


@dataclass(frozen=True)
class KuznetsovParams:
    """Dimensional parameters (cells, days); defaults are Kuznetsov 1994 / BIOMD0000000762."""

    s: float = 1.3e4  # effector influx, cells/day
    p: float = 0.1245  # maximal tumor-stimulated proliferation, 1/day
    g: float = 2.019e7  # half-saturation of that stimulation, cells
    m: float = 3.422e-10  # effector inactivation by tumor, 1/(cell·day)
    d: float = 0.0412  # effector death, 1/day
    a: float = 0.18  # tumor growth, 1/day
    b: float = 2.0e-9  # inverse carrying capacity, 1/cell
    n: float = 1.101e-7  # kill rate, 1/(cell·day)

    def as_dict(self) -> dict:
        return asdict(self)


def rhs(t: float, y: np.ndarray, k: KuznetsovParams) -> np.ndarray:
    """Right-hand side (dE/dt, dT/dt) in cells/day."""
    E, T = y
    return np.array([
        k.s + k.p * E * T / (k.g + T) - k.m * E * T - k.d * E,
        k.a * T * (1.0 - k.b * T) - k.n * E * T,
    ])


def jacobian(y: np.ndarray, k: KuznetsovParams) -> np.ndarray:
    """Analytic Jacobian of `rhs` at state y = (E, T)."""
    E, T = y
    return np.array([
        [k.p * T / (k.g + T) - k.m * T - k.d, k.p * E * k.g / (k.g + T) ** 2 - k.m * E],
        [-k.n * T, k.a - 2.0 * k.a * k.b * T - k.n * E],
    ])


def solve(E0: float, T0: float, days: float, k: KuznetsovParams | None = None,
          t_eval: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integrate from (E0, T0) for `days`; returns (t_days, E, T). Stiff-safe LSODA, rtol 1e-8."""
    k = k or KuznetsovParams()
    if t_eval is None:
        t_eval = np.linspace(0.0, days, int(days * 4) + 1)
    sol = solve_ivp(rhs, (0.0, days), [E0, T0], method="LSODA", t_eval=t_eval, args=(k,),
                    rtol=1e-8, atol=1e-6, jac=lambda t, y, k: jacobian(y, k))
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    return sol.t, sol.y[0], sol.y[1]


def _classify(eig: np.ndarray) -> str:
    re, im = eig.real, eig.imag
    if np.all(re < 0):
        return "stable focus" if np.any(np.abs(im) > 1e-14) else "stable node"
    if np.all(re > 0):
        return "unstable focus" if np.any(np.abs(im) > 1e-14) else "unstable node"
    return "saddle"


def fixed_points(k: KuznetsovParams | None = None) -> list[dict]:
    """All non-negative fixed points, sorted by T, with eigenvalues, type and oscillation period.

    Tumor-free: T = 0, E = s/d. Tumor-bearing: on the T-nullcline E = a(1 − bT)/n, so the
    E-equation becomes a scalar function of T whose sign changes on a log grid bracket brentq.
    """
    k = k or KuznetsovParams()
    pts = [(k.s / k.d, 0.0)]

    def e_of(T):
        return k.a * (1.0 - k.b * T) / k.n

    def f(T):
        E = e_of(T)
        return k.s + k.p * E * T / (k.g + T) - k.m * E * T - k.d * E

    grid = np.geomspace(1.0, 1.0 / k.b, 4000)
    vals = np.array([f(T) for T in grid])
    for i in np.flatnonzero(np.sign(vals[:-1]) * np.sign(vals[1:]) < 0):
        T = brentq(f, grid[i], grid[i + 1], xtol=1e-6, rtol=1e-14)
        pts.append((e_of(T), T))
    out = []
    for E, T in sorted(pts, key=lambda x: x[1]):
        eig = np.linalg.eigvals(jacobian(np.array([E, T]), k))
        im = float(np.max(np.abs(eig.imag)))
        out.append({
            "E": float(E), "T": float(T), "eigenvalues": [complex(x) for x in eig],
            "type": _classify(eig), "period_days": float(2 * np.pi / im) if im > 0 else None,
        })
    return out
