"""Systemic compartment for infused CAR-NK cells: a small ODE solved with scipy, segment by segment.

State (patient-level cell counts): B blood, O other organs (lung, liver, spleen, ...), X cells made
by IL-15-driven expansion so far, E cumulative entries into the tumor bed. With IL-15 level c(t):

    dB/dt = −(k_out + k_inf + k_d) B + k_back O + r B
    dO/dt =   (k_out + k_inf) B − (k_back + k_d) O + r O
    dX/dt = r (B + O),       dE/dt = k_inf B

The tumor bed is one of the tissues cells visit: cells that enter it (the tumor-bed entries E, which
feed the simulated section) return to blood like cells in any other organ (lymphocyte recirculation),
so tissue entry is not a one-way sink that would cut the long-term persistence short.
    k_d = ln2 / t½_eff(c) + k_rej(t),   r = (r_max · c/(c + EC50) + r_ag) · max(0, 1 − X / X_max)

t½_eff is the kernel's `effective_half_life` (one source of truth with the tissue cells) and
X_max = infused · (2^max_divisions − 1) is the lineage division budget; r_ag is the programmed clonal
expansion of CAR-T after antigen contact (0 for NK cells, which do not expand clonally on antigen). Infusions add to B as
boluses; the suicide switch scales B and O. Time is in minutes, like the model clock.

A product with a long-lived memory fraction f (the CAR-T comparator, or memory-like NK: `memory_fraction` in the kernel
parameters) carries two more states, Bm and Om, with the memory half-life: a fraction f of each bolus
and of each daughter joins them, exactly as `persistence.memory_fate` assigns tissue cells, so the
blood shows the biphasic contraction of CAR-T kinetics (Stein 2019). B, O and E then count both pools.
With f = 0 the state and the solver are those above, unchanged.
"""
from __future__ import annotations

import bisect
import math
from collections.abc import Callable

import numpy as np

from ..kernels.persistence import effective_half_life
from ..kernels.rates import saturation
from ..units import MIN_PER_DAY

LN2 = math.log(2.0)
B, O, X, E, BM, OM = 0, 1, 2, 3, 4, 5


def _single_time(sol):
    """`sol` (a solve_ivp OdeSolution) as a function of one time that picks the same local interpolant
    as `OdeSolution.__call__` (the same search, on a list) and calls it directly: the same numbers at
    half the cost per evaluation (the blood state is read every step). `sol` itself if it lacks the
    attributes that choice needs."""
    try:
        ts, side, last, up, interps = sol.ts_sorted.tolist(), sol.side, sol.n_segments - 1, sol.ascending, sol.interpolants
    except AttributeError:
        return sol
    search = bisect.bisect_left if side == "left" else bisect.bisect_right

    def at(t: float) -> np.ndarray:
        seg = min(max(search(ts, t) - 1, 0), last)
        return interps[seg if up else last - seg](t)

    return at


class BloodCompartment:
    """Blood/organ CAR-NK kinetics; `entered(t0, t1)` gives the tumor-bed entries in [t0, t1] (cells)."""

    def __init__(self, *, infusions: list[tuple[float, float]], k_out: float, k_back: float, k_inf: float,
                 half_life_min: float, il15_extension: float, il15_ec50: float, prolif_rate: float,
                 max_divisions: int, il15: Callable[[float], float], chunk_min: float = 7 * MIN_PER_DAY,
                 extra_death: Callable[[float], float] | None = None, memory_fraction: float = 0.0,
                 memory_half_life_min: float | None = None, antigen_division_per_min: float = 0.0):
        """Rates in 1/min; `infusions` is [(time_min, viable cells)] sorted; `il15(t)` the systemic IL-15 (ng/mL);
        `extra_death(t)` a death hazard (1/min) IL-15 does not extend (host rejection), added to k_d;
        `memory_fraction` of new cells are long-lived with `memory_half_life_min`; `antigen_division_per_min`
        is r_ag."""
        self.infusions = [(float(t), float(n)) for t, n in infusions]
        self.k_out, self.k_back, self.k_inf = k_out, k_back, k_inf
        self.half_life_min, self.ext, self.ec50 = half_life_min, il15_extension, il15_ec50
        self.prolif_rate, self.max_divisions = prolif_rate, max_divisions
        self.il15 = il15
        self.extra_death = extra_death
        self.chunk = chunk_min
        self.mem_f = float(memory_fraction)
        self.ag_rate = float(antigen_division_per_min)
        self.mem_half_life_min = float(memory_half_life_min if memory_half_life_min is not None else half_life_min)
        self.infused = 0.0  # cells given so far (sets the division budget)
        self.events: list[tuple[float, float]] = []  # (time, factor) of scale() calls, for checkpoints
        self._t0: list[float] = []  # segment start times
        self._segs: list = []  # (t0, t1, dense solution)
        self._next_inf = 0
        # states at the last few times asked for, valid while the segments are unchanged: a step asks
        # for its start (the previous step's end) and its end, and the arrivals for the start again
        self._memo: dict[float, np.ndarray] = {}
        self._memo_segs = -1
        y0 = np.zeros(6 if self.mem_f > 0 else 4)
        self._start_segment(0.0, y0)

    # ------------------------------------------------------------------ the ODE
    def _rhs(self, t: float, y: np.ndarray) -> np.ndarray:
        c = self.il15(t)
        kd = LN2 / effective_half_life(self.half_life_min, c, self.ext, self.ec50)
        if self.extra_death is not None:
            kd += self.extra_death(t)
        r = 0.0
        if (self.prolif_rate > 0 or self.ag_rate > 0) and self.infused > 0:
            x_max = self.infused * (2.0 ** self.max_divisions - 1.0)
            drive = self.prolif_rate * saturation(c, self.ec50) + self.ag_rate
            r = drive * max(0.0, 1.0 - y[X] / x_max) if x_max > 0 else 0.0
        b, o = y[B], y[O]
        if self.mem_f <= 0:
            return np.array([
                -(self.k_out + self.k_inf + kd) * b + self.k_back * o + r * b,
                (self.k_out + self.k_inf) * b - (self.k_back + kd) * o + r * o,
                r * (b + o),
                self.k_inf * b,
            ])
        f, bm, om = self.mem_f, y[BM], y[OM]
        km = LN2 / effective_half_life(self.mem_half_life_min, c, self.ext, self.ec50)
        if self.extra_death is not None:
            km += self.extra_death(t)
        return np.array([
            -(self.k_out + self.k_inf + kd) * b + self.k_back * o + (1.0 - f) * r * (b + bm),
            (self.k_out + self.k_inf) * b - (self.k_back + kd) * o + (1.0 - f) * r * (o + om),
            r * (b + o + bm + om),
            self.k_inf * (b + bm),
            -(self.k_out + self.k_inf + km) * bm + self.k_back * om + f * r * (b + bm),
            (self.k_out + self.k_inf) * bm - (self.k_back + km) * om + f * r * (o + om),
        ])

    def _start_segment(self, t0: float, y0: np.ndarray) -> None:
        """Apply boluses due at t0, then integrate to the next infusion (or one chunk ahead)."""
        y0 = y0.copy()
        while self._next_inf < len(self.infusions) and self.infusions[self._next_inf][0] <= t0 + 1e-9:
            n = self.infusions[self._next_inf][1]
            if self.mem_f > 0:
                y0[B] += (1.0 - self.mem_f) * n
                y0[BM] += self.mem_f * n
            else:
                y0[B] += n
            self.infused += self.infusions[self._next_inf][1]
            self._next_inf += 1
        self._t0.append(t0)
        self._segs.append(self._pending(t0, y0))

    def _extend(self, t: float) -> None:
        while self._segs[-1][1] < t:
            t1 = self._segs[-1][1]
            self._start_segment(t1, self._eval_seg(self._segs[-1], t1))

    @staticmethod
    def _eval_seg(seg, t: float) -> np.ndarray:
        t0, t1, sol, y0 = seg
        return y0.copy() if sol is None else np.maximum(sol(min(max(t, t0), t1)), 0.0)

    def state(self, t: float) -> np.ndarray:
        """(blood, organs, expanded, entered[, memory in blood, memory in organs]) at time t (minutes);
        blood and organs here are the short-lived pool (`blood()` adds the memory pool)."""
        return self._state(t).copy()

    #: states kept (the oldest goes first); `entered(..., ahead=dt)` fills up to PREFETCH of them at once
    MEMO_SIZE = 64
    PREFETCH = 32

    def _state(self, t: float, ahead: float | None = None) -> np.ndarray:
        """`state(t)` itself, memoised: the caller must not modify it. On a miss with `ahead`, also the
        states at t + ahead, t + ahead + ahead, ... (the clock's own sums) inside the segments solved so
        far, in one go: the same evaluations a later call would make, done while the cache is warm."""
        self._extend(t)
        memo = self._memo
        if self._memo_segs != len(self._segs):
            memo.clear()
            self._memo_segs = len(self._segs)
        y = memo.get(t)
        if y is None:
            y = self._evaluate(t)
            if ahead is not None and ahead > 0:
                end = self._segs[-1][1]  # strictly inside: a later segment may start at `end`
                tk = t
                for _ in range(self.PREFETCH):
                    tk = tk + ahead
                    if not tk < end:
                        break
                    if tk not in memo:
                        self._remember(tk, self._evaluate(tk))
            self._remember(t, y)
        return y

    def _evaluate(self, t: float) -> np.ndarray:
        i = max(0, bisect.bisect_right(self._t0, t) - 1)
        return self._eval_seg(self._segs[i], t)

    def _remember(self, t: float, y: np.ndarray) -> None:
        memo = self._memo
        if len(memo) >= self.MEMO_SIZE:
            del memo[next(iter(memo))]  # the oldest
        memo[t] = y

    def entered(self, t0: float, t1: float, ahead: float | None = None) -> float:
        """Cells that entered the tumor bed between t0 and t1 (patient level). `ahead`: the clock's
        step, to evaluate the coming steps' ends together (`_state`); the result is the same."""
        return max(0.0, float(self._state(t1, ahead)[E] - self._state(t0)[E]))

    def blood(self, t: float) -> float:
        """CAR cells circulating at time t (both pools)."""
        y = self._state(t)
        return float(y[B] + (y[BM] if self.mem_f > 0 else 0.0))

    def divisions_so_far(self, t: float) -> int:
        """Mean lineage divisions used by expansion (for the division counter of arriving cells)."""
        if self.infused <= 0:
            return 0
        return int(min(self.max_divisions, round(math.log2(1.0 + self._state(t)[X] / self.infused))))

    def scale(self, t: float, factor: float) -> None:
        """Multiply circulating cells by `factor` from time t on (suicide switch)."""
        self.events.append((float(t), float(factor)))
        y = self.state(t)
        self._memo_segs = -1  # forget the memo: the segments change below
        i = max(0, bisect.bisect_right(self._t0, t) - 1)
        del self._segs[i + 1:]
        del self._t0[i + 1:]
        t0, _, sol, y0 = self._segs[i]
        self._segs[i] = (t0, t, sol, y0)  # truncate the current segment at t
        self._next_inf = bisect.bisect_right([ti for ti, _ in self.infusions], t + 1e-9)
        y[B] *= factor
        y[O] *= factor
        if self.mem_f > 0:
            y[BM] *= factor
            y[OM] *= factor
        self._t0.append(t)
        self._segs.append(self._pending(t, y))

    def _pending(self, t0: float, y0: np.ndarray):
        """A new segment starting at t0 with state y0 (no boluses re-applied)."""
        t1 = t0 + self.chunk
        if self._next_inf < len(self.infusions):
            t1 = min(t1, self.infusions[self._next_inf][0])
        sol = None
        cells = y0[B] + y0[O] + (y0[BM] + y0[OM] if self.mem_f > 0 else 0.0)
        if cells > 0:
            from scipy.integrate import solve_ivp  # here, not at import: scipy.integrate costs ~0.1 s of start-up

            sol = _single_time(solve_ivp(self._rhs, (t0, t1), y0, method="LSODA", dense_output=True,
                                         rtol=1e-6, atol=1e-6 * max(1.0, cells)).sol)
        return (t0, t1, sol, y0)
