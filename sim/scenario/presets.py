"""Preset tables for cell products and CAR costimulatory domains, as pydantic-validated data.

Every value carries its source or "assumed"; `preset_tables_markdown()` renders them into
docs/parameters.md (via `nksim params`), so the table and the code cannot drift apart.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Sourced(BaseModel):
    """A preset value with its literature source (short name from literature.md) or "assumed"."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    value: float = Field(ge=0)
    source: str = Field(min_length=1)


class _Frac(Sourced):
    value: float = Field(ge=0, le=1)


class _Pos(Sourced):
    value: float = Field(gt=0)


class ProductPreset(BaseModel):
    """What distinguishes one NK cell source from another (resolved into nk.* parameters)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    description: str
    car_fraction: _Frac  # CAR transduction efficiency → per-cell CAR level (CAR+ or CAR−)
    viability: _Frac  # viable fraction at release → infused viable dose
    cytotoxicity: Sourced  # baseline potency → multiplies the net activating signal
    max_divisions: Sourced  # expansion capacity → nk.il15.max_divisions
    proliferation_per_day: Sourced  # → nk.il15.proliferation_per_day (0: cannot divide)
    half_life_days: _Pos  # persistence → nk.persistence.half_life_days
    cd16: Sourced  # → nk.receptors.cd16 (ADCC)
    hla_mismatch: _Frac  # → product.rejection.hla_mismatch (host-versus-graft rejection)


def _s(value: float, source: str = "assumed") -> dict:
    return {"value": value, "source": source}


PRODUCTS: dict[str, ProductPreset] = {
    name: ProductPreset.model_validate(d)
    for name, d in {
        "peripheral_blood": {
            "description": "autologous/allogeneic peripheral-blood NK, expanded ex vivo and virally transduced",
            "car_fraction": _s(0.4, "assumed (primary NK transduce poorly)"),
            "viability": _s(0.9, "assumed"),
            "cytotoxicity": _s(1.0, "assumed (reference product)"),
            "max_divisions": _s(4, "assumed"),
            "proliferation_per_day": _s(0.3, "assumed (same as nk.il15 default)"),
            "half_life_days": _s(7.0, "Zhang 2007 (t½ < 10 days)"),
            "cd16": _s(1.0, "assumed (mature CD56dim NK are CD16+)"),
            "hla_mismatch": _s(0.5, "assumed (a haploidentical donor)"),
        },
        "cord_blood": {
            "description": "cord-blood NK, retrovirally transduced (Liu 2018/2020 CD19-CAR/IL-15/iCasp9 product)",
            "car_fraction": _s(0.6, "assumed (Liu 2020 reports variable transduction) [unverified]"),
            "viability": _s(0.9, "assumed"),
            "cytotoxicity": _s(0.9, "assumed (cord-blood NK less mature)"),
            "max_divisions": _s(5, "assumed (high ex vivo expansion of cord-blood NK)"),
            "proliferation_per_day": _s(0.6, "calibrated to Liu 2020 (IL-15-armored CB CAR-NK expand within the first two weeks; docs/validation.md §4)"),
            "half_life_days": _s(7.0, "Zhang 2007; Liu 2020 (detectable ≥ 12 months at low level with IL-15)"),
            "cd16": _s(0.8, "assumed"),
            "hla_mismatch": _s(0.33, "Liu 2020: cord-blood units ≥ 4/6 HLA-matched [unverified] → ≤ 2/6 loci mismatched"),
        },
        "ipsc": {
            "description": "iPSC-derived NK from a clonal engineered master line (off the shelf)",
            "car_fraction": _s(0.95, "assumed (clonal line: nearly uniform CAR)"),
            "viability": _s(0.9, "assumed"),
            "cytotoxicity": _s(0.8, "assumed (iPSC-NK less cytotoxic than PB-NK without engineering)"),
            "max_divisions": _s(3, "assumed"),
            "proliferation_per_day": _s(0.3, "assumed"),
            "half_life_days": _s(5.0, "assumed"),
            "cd16": _s(0.3, "assumed (low native CD16; hnCD16-engineered lines would use 1.0)"),
            "hla_mismatch": _s(1.0, "assumed (one master line for every patient)"),
        },
        "nk92": {
            "description": "CAR-NK-92 line, irradiated before infusion: cannot divide, short-lived, CD16-negative",
            "car_fraction": _s(0.9, "assumed (sorted CAR+ line)"),
            "viability": _s(0.85, "assumed"),
            "cytotoxicity": _s(1.2, "assumed (NK-92 is highly cytotoxic in vitro)"),
            "max_divisions": _s(0, "assumed (irradiated: no proliferation)"),
            "proliferation_per_day": _s(0.0, "assumed (irradiated: no proliferation)"),
            "half_life_days": _s(1.5, "assumed (irradiated cells are cleared within days)"),
            "cd16": _s(0.0, "assumed (NK-92 lacks CD16, so no ADCC; Gong 1994) [not in literature.md]"),
            "hla_mismatch": _s(1.0, "assumed (an unmatched cell line)"),
        },
    }.items()
}


class CostimPreset(BaseModel):
    """A CAR signalling/costimulatory domain as activation-strength and persistence multipliers."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    description: str
    activation: _Pos  # multiplies the net activating signal
    persistence: _Pos  # multiplies the persistence half-life


COSTIM: dict[str, CostimPreset] = {
    name: CostimPreset.model_validate(d)
    for name, d in {
        "cd3z": {"description": "first-generation CD3ζ only (reference)",
                 "activation": _s(1.0, "reference"), "persistence": _s(1.0, "reference")},
        "2b4": {"description": "NK-specific 2B4 (CD244) costimulation with CD3ζ",
                "activation": _s(1.2, "ASSUMED (nothing quantitative published in literature.md)"),
                "persistence": _s(1.2, "ASSUMED (nothing quantitative published in literature.md)")},
        "dap10": {"description": "DAP10 (NKG2D adaptor, PI3K signal) with CD3ζ",
                  "activation": _s(1.1, "ASSUMED (nothing quantitative published in literature.md)"),
                  "persistence": _s(1.0, "ASSUMED (nothing quantitative published in literature.md)")},
        "dap12": {"description": "DAP12 (ITAM adaptor) as the signalling domain",
                  "activation": _s(1.3, "ASSUMED (nothing quantitative published in literature.md)"),
                  "persistence": _s(0.9, "ASSUMED (nothing quantitative published in literature.md)")},
    }.items()
}

PRODUCT_TARGETS = {
    "car_fraction": "per-cell CAR level: CAR+ cells get nk.receptors.car_expression, CAR− cells 0",
    "viability": "infused viable cells = dose × viability × cold-chain survival",
    "cytotoxicity": "potency: multiplies the net activating signal (kernel half_activation ÷ potency)",
    "max_divisions": "nk.il15.max_divisions",
    "proliferation_per_day": "nk.il15.proliferation_per_day",
    "half_life_days": "nk.persistence.half_life_days",
    "cd16": "nk.receptors.cd16",
    "hla_mismatch": "product.rejection.hla_mismatch (rejection hazard ∝ mismatch, sim/therapy/rejection.py)",
}


def preset_tables_markdown() -> str:
    """The product and costimulatory preset tables (value, then source) for docs/parameters.md."""
    keys = list(PRODUCT_TARGETS)
    out = ["", "## Product presets (`product.type`)", "",
           "Resolved into the nk parameters at model set-up; a value set explicitly in the scenario wins "
           "(see docs/products.md).", "",
           "| preset | " + " | ".join(f"`{k}`" for k in keys) + " |",
           "|---|" + "---|" * len(keys)]
    for name, p in PRODUCTS.items():
        out.append(f"| `{name}` | " + " | ".join(f"{getattr(p, k).value:g}" for k in keys) + " |")
    out += ["", "| preset | field | value | maps to | source |", "|---|---|---|---|---|"]
    for name, p in PRODUCTS.items():
        for k in keys:
            v = getattr(p, k)
            out.append(f"| `{name}` | `{k}` | {v.value:g} | {PRODUCT_TARGETS[k]} | {v.source} |")
    out += ["", "## CAR costimulatory presets (`nk.car_design.costim`)", "",
            "| preset | description | activation × | source | persistence × | source |", "|---|---|---|---|---|---|"]
    for name, c in COSTIM.items():
        out.append(f"| `{name}` | {c.description} | {c.activation.value:g} | {c.activation.source} | "
                   f"{c.persistence.value:g} | {c.persistence.source} |")
    return "\n".join(out) + "\n"
