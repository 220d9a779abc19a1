"""Cell products: per-replicate lot draw, release QC and the cold-chain loss model.

The product preset itself is resolved into nk.* once, by `sim.scenario.resolve` (docs/products.md);
product.car_fraction/viability/cytotoxicity override the preset here the same way.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..kernels.phenotype import lognormal
from ..scenario import ColdChain, Scenario, ScenarioError
from ..scenario.presets import COSTIM, PRODUCTS

def cold_chain_factors(cc: ColdChain) -> tuple[float, float]:
    """(viable-cell survival, potency factor) of the cold chain.

    survival = (1 − thaw loss) · exp(−H), H = transport hazard · hours + Σ excursion hazard · hours,
    excursion hazard = excursion_loss_per_h · q10^((T − limit − 10)/10) for T > limit (0 otherwise);
    potency = (1 − thaw potency loss) · exp(−H)^potency_coupling.
    """
    hazard = cc.transport_loss_per_h * cc.transport_h
    for e in cc.excursions:
        if e.temperature_c > cc.limit_c:
            hazard += cc.excursion_loss_per_h * cc.q10 ** ((e.temperature_c - cc.limit_c - 10.0) / 10.0) * e.duration_h
    surv = math.exp(-hazard)
    thaw_v = 1.0 - cc.thaw_viability_loss if cc.cryopreserved else 1.0
    thaw_p = 1.0 - cc.thaw_potency_loss if cc.cryopreserved else 1.0
    return thaw_v * surv, thaw_p * surv ** cc.potency_coupling


def _beta(rng: np.random.Generator, mean: float, cv: float, path: str) -> float:
    """A fraction drawn from a beta distribution with the given mean and coefficient of variation."""
    if cv <= 0 or mean <= 0 or mean >= 1:
        return mean
    var = (cv * mean) ** 2
    if var >= mean * (1 - mean):
        cv_max = math.sqrt((1 - mean) / mean)
        raise ScenarioError(path, f"a CV of {cv} is impossible for a fraction with mean {mean:.3g}; use a CV < {cv_max:.3g}")
    k = mean * (1 - mean) / var - 1
    return float(rng.beta(mean * k, (1 - mean) * k))


@dataclass
class LotRecord:
    """The drawn lot and what became of it (written to the run summary)."""

    product: str
    potency: float  # lot potency relative to the product mean (QC is applied to this)
    viability: float  # viable fraction at release
    car_fraction: float  # CAR+ fraction
    passed_qc: bool
    failed: list = field(default_factory=list)
    infused: bool = True
    cold_chain_survival: float = 1.0
    cold_chain_potency: float = 1.0
    viable_fraction_infused: float = 1.0  # viability × cold-chain survival
    potency_infused: float = 1.0  # cytotoxicity × lot potency × cold chain × CAR costim
    costim: str = "cd3z"
    persistence_multiplier: float = 1.0

    def as_dict(self) -> dict:
        return asdict(self)


def draw_lot(cfg: Scenario, rng: np.random.Generator) -> LotRecord:
    """Draw this replicate's lot (only when product.lot.enabled), run QC and the cold chain."""
    pr = cfg.product
    pre = PRODUCTS.get(pr.type)
    car_mean = pr.car_fraction if pr.car_fraction is not None else (pre.car_fraction.value if pre else 1.0)
    via_mean = pr.viability if pr.viability is not None else (pre.viability.value if pre else 1.0)
    cyto = pr.cytotoxicity if pr.cytotoxicity is not None else (pre.cytotoxicity.value if pre else 1.0)
    potency, via, car = 1.0, via_mean, car_mean
    if pr.lot.enabled:
        potency = float(lognormal(rng, 1.0, pr.lot.potency_cv))
        via = _beta(rng, via_mean, pr.lot.viability_cv, "product.lot.viability_cv")
        car = _beta(rng, car_mean, pr.lot.car_fraction_cv, "product.lot.car_fraction_cv")
    rel = pr.release
    failed = [name for name, ok in (("viability", via >= rel.min_viability), ("car_fraction", car >= rel.min_car_fraction),
                                    ("potency", potency >= rel.min_potency)) if not ok]
    passed = not failed
    surv, pot_cc = cold_chain_factors(pr.cold_chain)
    cd = cfg.nk.car_design
    costim = COSTIM[cd.costim]
    act = cd.activation_multiplier if cd.activation_multiplier is not None else costim.activation.value
    pers = cd.persistence_multiplier if cd.persistence_multiplier is not None else costim.persistence.value
    return LotRecord(
        product=pr.type, potency=potency, viability=via, car_fraction=car, passed_qc=passed, failed=failed,
        infused=passed or rel.on_fail == "infuse", cold_chain_survival=surv, cold_chain_potency=pot_cc,
        viable_fraction_infused=via * surv, potency_infused=cyto * potency * pot_cc * act,
        costim=cd.costim, persistence_multiplier=pers,
    )
