"""Companion drugs, tumor escape and the toxicity monitor (effector arms CAR-NK/CAR-T, docs/therapy.md).
Each part installs step hooks on the model; the biology stays in `sim/kernels/`."""
from __future__ import annotations

from . import drugs, escape, toxicity


def install(model) -> None:
    """Install every therapy component the scenario asks for (called once by the model)."""
    model.extra_reporters = getattr(model, "extra_reporters", {})
    # All mutable therapy state lives in this JSON-serializable dict (saved by sim/checkpoint.py), so
    # hooks read it through the model and a resumed run continues bit-identically.
    model.therapy_state = {"stats": {}, "occupancy": {}, "cytokine_bins": []}
    escape.install(model)
    drugs.install(model)
    toxicity.install(model)


#: Counters the therapy components write into therapy_state["stats"] (only when that component is used).
THERAPY_STATS = ("antigen_low_cells_initial", "chemo_tumor_kills", "chemo_nk_depleted")


def therapy_metrics(model) -> dict:
    """Run-level therapy metrics (toxicity indices, GvHD flag, chemo kills) for the summary."""
    if not hasattr(model, "therapy_state"):  # well-mixed model: no therapy layer
        return {}
    out = dict(model.therapy_state["stats"])
    out.update(toxicity.risk_metrics(model))
    return out
