"""One page's model: built from the scenario file plus the page's overrides, stepped, timed.

Plain Python (no Solara), so it is testable without a browser. The model is always built through
the one resolution path, `TumorImmuneModel(path, rng=seed, **{"dotted.path": value})`, and advanced
only with `model.step()`.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..scenario.base import dotted_get
from . import render


@dataclass(frozen=True)
class Param:
    """A parameter users sweep, shown as a slider or a select; changing it rebuilds the model."""

    path: str  # dotted path in the scenario
    label: str
    kind: str  # "int", "float" or "select"
    lo: float = 0.0
    hi: float = 1.0
    step: float = 1.0
    values: tuple = ()


def sweep_params(cfg) -> list[Param]:
    """The page's parameters for one scenario (slider ranges around its own values)."""
    dose = int(cfg.nk.dose.cells)
    modes = ["none", "secreted", "membrane_bound"] + (["exogenous"] if cfg.nk.il15.superagonist.doses else [])
    hl = float(cfg.nk.persistence.half_life_days)
    tg = float(cfg.tumor.tgfb_secretion)
    return [
        Param("nk.dose.cells", "CAR-NK dose (cells)", "int", 0, max(1000, 4 * dose), max(1, (max(1000, 4 * dose)) // 100)),
        Param("nk.il15.mode", "IL-15 armoring", "select", values=tuple(modes)),
        Param("nk.persistence.half_life_days", "NK half-life (days)", "float", 0.5, max(30.0, 2 * hl), 0.5),
        Param("tumor.tgfb_secretion", "tumor TGF-β secretion (ng/10⁶ cells/day)", "float", 0.0, max(40.0, 2 * tg), 0.5),
        Param("tumor.antigen.negative_fraction", "antigen-negative fraction", "float", 0.0, 1.0, 0.01),
    ]


@dataclass
class Speed:
    """Throughput of the last advance: model steps per wall second and simulated hours per wall second."""

    steps_per_s: float = 0.0
    sim_h_per_s: float = 0.0
    frame_ms: float = 0.0  # model → PNG, the last frame


@dataclass
class ViewSession:
    scenario: str | Path | dict
    seed: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.lock = threading.RLock()  # stepping and drawing never overlap
        self.model = None
        self.build()

    # ------------------------------------------------------------------ model
    def build(self, **changes: Any) -> None:
        """(Re)build the model from the scenario with the current overrides (+ `changes`): time 0."""
        from ..model import TumorImmuneModel

        with self.lock:
            overrides = {**self.overrides, **changes}
            model = TumorImmuneModel(self.scenario, rng=self.seed, **overrides)  # a bad value raises here, nothing changed
            self.model, self.overrides, self.seed = model, overrides, model.seed
            self.history = [render.history_row(self.model)]
            self.speed = Speed()
            self.builds = getattr(self, "builds", 0) + 1
            self._curves = None

    def value(self, path: str) -> Any:
        """The effective value at a dotted path in the current model's scenario."""
        return dotted_get(self.model.config, path)

    @property
    def params(self) -> list[Param]:
        return sweep_params(self.model.config)

    def advance(self, n: int) -> None:
        """`n` model steps (model.step()), then one history point; records the speed."""
        with self.lock:
            m = self.model
            t0 = time.perf_counter()
            for _ in range(int(n)):
                m.step()
            wall = max(time.perf_counter() - t0, 1e-9)
            self.speed.steps_per_s = n / wall
            self.speed.sim_h_per_s = n * m.dt / 60.0 / wall
            self.history.append(render.history_row(m))

    # ------------------------------------------------------------------ views
    @property
    def time_h(self) -> float:
        return self.model.now_min / 60.0

    def frame(self, field: str | None, mode: str = "slice", z: int | None = None,
              max_px: int = render.MAX_PX) -> tuple[bytes, dict]:
        """One tissue image (PNG bytes) and its legend facts; records the frame time."""
        with self.lock:
            t0 = time.perf_counter()
            data, info = render.frame_png(self.model, field, mode, z, max_px=max_px)
            self.speed.frame_ms = (time.perf_counter() - t0) * 1e3
            return data, info

    def curves(self, max_age_s: float = 0.0) -> bytes:
        """The live curves, redrawn after an advance, but at most every `max_age_s` wall seconds
        (matplotlib costs tens of ms: while playing the page redraws them about once a second)."""
        with self.lock:
            stale = self._curves is None or self._curves[1] != len(self.history)
            if stale and (self._curves is None or time.perf_counter() - self._curves[2] >= max_age_s):
                c = self.model.config
                eff = "CAR-T" if c.effector == "cart" else "CAR-NK"
                png = render.curves_png(self.history, antigen=c.tumor.antigen.name or "antigen", effector=eff)
                self._curves = (png, len(self.history), time.perf_counter())
            return self._curves[0]

    def readout(self) -> str:
        m = self.model
        return f"t = {self.time_h:.2f} h (day {self.time_h / 24:.2f}) · step {m.steps}"
