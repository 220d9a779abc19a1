"""Well-mixed mode (`domain.space: well_mixed`): NK agents and a tumor count without space.

Encounters follow mass action, and each Kuznetsov 1994 term is one agent rule
(`sim/kernels/wellmixed.py`). The model writes the same time-series columns as the lattice model,
so `sim.api.run`, outputs and plots work unchanged; counts are agents (cells × Ω).

Relation to the lattice model: there, a kill needs a contact (motility), a conjugate
(`attach_rate`) and triggering (`trigger_probability` of the net receptor signal), with granule
and exhaustion limits. Kuznetsov's n lumps all of that into one mass-action constant,
n ≈ (encounter rate per pair) × (probability an encounter kills); to reproduce the ODE exactly,
well-mixed mode uses n directly and has no granule, exhaustion or signal limits.
"""
from __future__ import annotations

from typing import Any

import mesa
import numpy as np

from . import scenario as cfgmod
from .interrupts import run_steps
from .kernels.rates import LN2
from .kernels.wellmixed import WM_COUNTS, WellMixedParams, mass_action_probabilities, wellmixed_step
from .output import TIMESERIES_COLUMNS
from .state import Tally
from .scenario.preflight import preflight
from .scenario.resolve import resolve
from .units import MIN_PER_DAY



def wellmixed_params(c: cfgmod.Scenario) -> WellMixedParams:
    """Kuznetsov rates in agent units per minute: pair rates ÷ Ω, cell-number constants × Ω (the
    Hill exponent is dimensionless and passes through)."""
    w, om = c.wellmixed, c.wellmixed.omega
    return WellMixedParams(
        dt=c.time.dt_min,
        influx=w.influx_cells_day * om / MIN_PER_DAY,
        prolif=w.proliferation_per_day / MIN_PER_DAY,
        prolif_half=w.proliferation_half_cells * om,
        prolif_hill=float(w.proliferation_hill),
        inact=w.inactivation_per_cell_day / om / MIN_PER_DAY,
        half_life_min=LN2 / (w.death_per_day / MIN_PER_DAY),
        growth=w.growth_per_day / MIN_PER_DAY,
        capacity=om / w.inverse_capacity_per_cell,
        kill=w.kill_per_cell_day / om / MIN_PER_DAY,
    )


class WellMixedModel(mesa.Model):
    """Kuznetsov effector–tumor dynamics as agents: NK cells are array slots (with kill counts),
    tumor cells are a count (they are identical, so per-cell draws reduce to binomials)."""

    def __init__(self, config: Any = None, *, rng: Any = None, **overrides: Any):
        eff = resolve(config, overrides)
        preflight(eff, arms=False)  # refuse before allocating what this machine does not have
        cfg = eff.scenario
        if cfg.dosing.infusions:
            raise cfgmod.ScenarioError("dosing.infusions", "well-mixed mode has no dosing layer: set the start with wellmixed.effector_cells")
        if rng is None:
            rng = cfg.seed
        super().__init__(rng=rng)
        self.config = cfg
        self.seed = int(rng) if isinstance(rng, (int, np.integer)) else int(self._seed)
        self.omega = cfg.wellmixed.omega
        self.w = wellmixed_params(cfg)
        self.dt = cfg.time.dt_min
        self.now_min = 0.0
        self.hooks: list = []
        self.n_tumor = int(round(cfg.wellmixed.tumor_cells * self.omega))
        self.n_nk = int(round(cfg.wellmixed.effector_cells * self.omega))
        self.kills = np.zeros(max(64, 4 * self.n_nk), dtype=np.int64)
        self.order = np.zeros_like(self.kills)
        self.dead_buf = np.zeros_like(self.kills)
        self._dead_kills: list[np.ndarray] = []
        self.counters = np.zeros(8, dtype=np.int64)
        self.nk_exposure_min = 0.0
        self.datacollector = mesa.DataCollector(model_reporters=self.reporters())
        self.datacollector.collect(self)
        self._next_output = cfg.time.output_every_h * 60.0

    @property
    def counts(self) -> Tally:
        """The event counts by name (`WM_COUNTS`: kills, nk_births, nk_deaths, inactivations, influx,
        tumor_births, crowding_losses), a view of `counters`."""
        return Tally(self.counters, WM_COUNTS)

    def reporters(self) -> dict:
        """The lattice model's time-series columns; those without a well-mixed meaning (antigen loss,
        exhaustion, fields, blood) are 0."""
        own = {
            "time_h": lambda m: m.now_min / 60.0,
            "tumor": lambda m: m.n_tumor,
            "tumor_ag_pos": lambda m: m.n_tumor,
            "tumor_ag_neg": lambda m: 0,
            "nk_live": lambda m: m.n_nk,
            "nk_exhausted": lambda m: 0,
            "kills_car": lambda m: 0,
            "kills_innate": lambda m: m.counts.kills,
            "kills_adcc": lambda m: 0,
            "mean_ifng_ng_ml": lambda m: 0.0,
            "mean_tgfb_ng_ml": lambda m: 0.0,
            "mean_il15_ng_ml": lambda m: 0.0,
        }
        return {c: own.get(c, lambda m: 0) for c in TIMESERIES_COLUMNS}

    def step(self) -> None:
        """Advance all agents by dt (one synchronous mass-action step)."""
        for hook in self.hooks:
            hook(self)
        influx_mean = mass_action_probabilities(self.w, self.n_tumor)[0]
        n_in = int(self.rng.poisson(influx_mean))
        need = 2 * self.n_nk + n_in + 1
        if need > self.kills.size:
            cap = max(need, int(self.kills.size * 1.5))
            k = np.zeros(cap, dtype=np.int64)
            k[: self.n_nk] = self.kills[: self.n_nk]
            self.kills, self.order, self.dead_buf = k, np.zeros_like(k), np.zeros_like(k)
        self.nk_exposure_min += self.n_nk * self.dt
        self.n_tumor, self.n_nk, nd = wellmixed_step(
            self.rng, self.w, self.n_tumor, self.n_nk, n_in, self.kills, self.order, self.dead_buf, self.counters)
        if nd:
            self._dead_kills.append(self.dead_buf[:nd].copy())
        self.now_min += self.dt
        if self.now_min + 1e-9 >= self._next_output:
            self.datacollector.collect(self)
            self._next_output += self.config.time.output_every_h * 60.0

    def run_days(self, days: float, progress=None) -> None:
        """Run for `days` simulated days (`run_for(n)` is Mesa's: n steps)."""
        run_steps(self, int(round(days * MIN_PER_DAY / self.dt)), progress)

    def tumor_count(self) -> int:
        return int(self.n_tumor)

    def nk_live(self) -> int:
        return int(self.n_nk)

    def kills_per_nk(self) -> np.ndarray:
        """Kills of every NK agent that ever lived in this run."""
        return np.concatenate([self.kills[: self.n_nk]] + self._dead_kills)

    def observed_nk_half_life_days(self) -> float | None:
        """Half-life from persistence deaths over NK-time at risk (inactivation excluded)."""
        deaths = self.counts.nk_deaths
        return None if deaths == 0 else LN2 * self.nk_exposure_min / deaths / MIN_PER_DAY

    def snapshot(self) -> dict[str, np.ndarray]:
        """No positions in well-mixed mode: the counts only."""
        return {"time_h": np.float64(self.now_min / 60.0), "tumor": np.int64(self.n_tumor), "nk": np.int64(self.n_nk)}
