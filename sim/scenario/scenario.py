"""The root `Scenario` model: every block, the treatment arms and what a run writes."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .base import Int, Name, P, _Block
from .comparator import CART, Toxicity
from .dosing import Dosing
from .drugs import Drugs
from .microenvironment import Fields
from .nk import NK
from .product import Product
from .space_time import Domain, TimeCfg
from .tumor import Tumor
from .wellmixed import WellMixed


class Arm(_Block):
    """One treatment arm: dotted-path overrides applied to the scenario (same tumor, same seed)."""

    name: Name = Field("arm", description="arm name (output subfolder; unique; letters, digits, . _ -)")
    set: dict[str, Any] = P({}, "-", "scenario input", "dotted-path overrides, e.g. {effector: cart}")


class Output(_Block):
    """What a run writes."""

    snapshots: bool = Field(True, description="write spatial snapshots (.npz)")
    figure: bool = Field(True, description="write the tumor/CAR-NK PNG")


class Scenario(_Block):
    """A complete nksim scenario."""

    name: Name = Field("scenario", description="scenario name (output folder name; letters, digits, . _ -)")
    description: str = Field("", description="free text")
    seed: Int = P(12345, "-", "-", "random seed (recorded in every output)", ge=0)
    domain: Domain = Field(default_factory=Domain)
    time: TimeCfg = Field(default_factory=TimeCfg)
    tumor: Tumor = Field(default_factory=Tumor)
    nk: NK = Field(default_factory=NK)
    fields: Fields = Field(default_factory=Fields)
    dosing: Dosing = Field(default_factory=Dosing)
    product: Product = Field(default_factory=Product)
    output: Output = Field(default_factory=Output)
    wellmixed: WellMixed = Field(default_factory=WellMixed, description="well-mixed (mass-action) mode parameters; used only when domain.space is well_mixed")
    effector: Literal["carnk", "cart"] = Field("carnk", description="infused effector: carnk, or cart (comparator arm; see cart:)")
    cart: CART = Field(default_factory=CART)
    drugs: Drugs = Field(default_factory=Drugs)
    toxicity: Toxicity = Field(default_factory=Toxicity)
    arms: list[Arm] = P([], "list", "scenario input", "treatment arms run on identical tumors and seeds (empty = one run)")
