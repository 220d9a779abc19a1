"""Numerical guard of a run: fields and per-cell levels stay finite and below stated ceilings.

`sim.api.run` calls `NumericGuard.after_step` after every model step. It costs one max() per field
after each field step (the field grid is the coarse voxel grid, already swept by the DCT), and at
each output row a finiteness check of the row and one max() per per-cell level array. A value past
its ceiling, an infinity or a NaN stops the run with a NumericalError naming the quantity, the time
and the parameters that drive it; the run folder is then not written.

Ceilings (far above anything physiological, far below float overflow):

* cytokine fields (IFN-γ, TGF-β, IL-15), total concentration: ``FIELD_CEILING_NG_ML`` = 1e6 ng/mL
  (1 mg/mL of one cytokine; tissue levels are pg/mL to tens of ng/mL);
* per-cell surface levels (antigen, MHC-I, NKG2D ligand, antibody coat, CAR), relative to the
  reference expression 1: ``LEVEL_CEILING`` = 1e6;
* every time-series value: finite.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import NumericalError

FIELD_CEILING_NG_ML = 1e6
LEVEL_CEILING = 1e6

#: field → (label, parameters that drive it)
FIELD_DRIVERS = {
    "ifng": ("IFN-γ", ("fields.ifng.half_life_min", "fields.ifng.background_ng_ml", "nk.secretion.ifng_engaged")),
    "tgfb": ("TGF-β", ("fields.tgfb.half_life_min", "fields.tgfb.background_ng_ml", "tumor.tgfb_secretion",
                       "fields.stroma.tgfb_secretion")),
    "il15": ("IL-15", ("fields.il15.half_life_min", "fields.il15.background_ng_ml", "nk.il15.mode", "nk.il15.secretion")),
}
#: (population, array) → (label, parameters that drive it)
LEVEL_DRIVERS = {
    ("tumor", "antigen"): ("tumor antigen level", ("tumor.antigen.mean", "tumor.antigen.cv")),
    ("tumor", "mhc"): ("tumor MHC-I level", ("tumor.mhc_i.mean", "tumor.mhc_i.cv")),
    ("tumor", "ligand"): ("tumor NKG2D-ligand level", ("tumor.nkg2d_ligand.mean", "tumor.nkg2d_ligand.cv")),
    ("tumor", "coat"): ("tumor antibody coating", ("drugs.antibody",)),
    ("nk", "car"): ("CAR-NK CAR level", ("nk.receptors.car_expression",)),
}


def _value(cfg, dotted: str):
    obj = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if hasattr(v, "model_dump"):
        return "set" if v.model_dump(exclude_defaults=True) else "default"
    return repr(v) if isinstance(v, str) else str(v)


#: parameters that matter only when a switch is on
_ONLY_IF = {"fields.stroma.tgfb_secretion": "fields.stroma.enabled"}


def _drivers(cfg, paths) -> str:
    paths = [p for p in paths if p not in _ONLY_IF or _value(cfg, _ONLY_IF[p])]
    parts = [f"{p} is {_fmt(v)}" for p in paths if (v := _value(cfg, p)) is not None]
    if len(parts) > 1:
        return ", ".join(parts[:-1]) + " and " + parts[-1]
    return parts[0] if parts else ""


def _what(v: float, unit: str) -> str:
    if math.isnan(v):
        return "became NaN (not a number)"
    if math.isinf(v):
        return "became infinite"
    return f"reached {v:.3g}{unit}"


class NumericGuard:
    """Checks one model (lattice or well-mixed) as it runs; see the module docstring."""

    def __init__(self, model):
        self.model = model
        self.lattice = hasattr(model, "fields")
        self.rows = 0

    def _stop(self, what: str, ceiling: str, drivers: str) -> None:
        t_h = self.model.now_min / 60.0
        why = f": {drivers}" if drivers else ""
        raise NumericalError(f"{what} at t = {t_h:.3g} h (ceiling {ceiling}){why}; nksim stopped the run and wrote "
                             f"no results (check these parameters)")

    def check_fields(self) -> None:
        f = self.model.fields
        if float(f.values.max()) + float(f.background.max()) <= FIELD_CEILING_NG_ML:  # one reduction; False for NaN
            return
        for i, name in enumerate(f.names):
            top = float(f.values[i].max()) + float(f.background[i])
            if not top <= FIELD_CEILING_NG_ML:
                label, paths = FIELD_DRIVERS.get(name, (name, ()))
                self._stop(f"{label} {_what(top, ' ng/mL')}", f"{FIELD_CEILING_NG_ML:.0e} ng/mL",
                           _drivers(self.model.config, paths))

    def check_levels(self) -> None:
        m = self.model
        for (pop_name, arr), (label, paths) in LEVEL_DRIVERS.items():
            pop = getattr(m, pop_name, None)
            a = getattr(pop, arr, None) if pop is not None else None
            if a is None or pop.used == 0:
                continue
            a = a[: pop.used]
            top = float(a.max())
            if not (top <= LEVEL_CEILING and np.isfinite(a).all()):
                bad = top if not math.isfinite(top) or top > LEVEL_CEILING else float(a.min())
                self._stop(f"{label} {_what(bad, '')}", f"{LEVEL_CEILING:.0e} × the reference level",
                           _drivers(m.config, paths))

    def check_rows(self) -> None:
        mv = self.model.datacollector.model_vars
        n = len(mv.get("time_h", ()))
        for col, values in mv.items():
            for v in values[self.rows:n]:
                if isinstance(v, (float, np.floating)) and not math.isfinite(v):
                    self._stop(f"time series column {col} {_what(float(v), '')}", "finite", "")
        self.rows = n

    def check_all(self) -> None:
        """Everything, as at an output row (the initial state, a resumed state)."""
        if self.lattice:
            self.check_fields()
            self.check_levels()
        self.check_rows()

    def after_step(self) -> None:
        m = self.model
        if self.lattice and m.steps % m._field_every == 0:
            self.check_fields()
        if len(self._times) > self.rows:
            if self.lattice:
                self.check_levels()
            self.check_rows()

    @property
    def _times(self) -> list:
        return self.model.datacollector.model_vars["time_h"]
