"""Cytokine fields, TGF-β effects and the stroma."""
from __future__ import annotations


from pydantic import Field

from .base import Float, P, _Block


class FieldSpec(_Block):
    """One cytokine: diffusion, decay and a background level."""

    diffusion_um2_min: Float = P(600.0, "µm²/min", "assumed (~10 µm²/s for a cytokine in tissue)", "diffusion coefficient", ge=0)
    half_life_min: Float = P(60.0, "min", "assumed", "decay half-life (uptake and clearance)", gt=0)
    background_ng_ml: Float = P(0.0, "ng/mL", "assumed", "systemic background level", ge=0)


def _tgfb_default() -> FieldSpec:
    return FieldSpec(diffusion_um2_min=600.0, half_life_min=3.0, background_ng_ml=0.0)


class TGFbEffects(_Block):
    """TGF-β suppression of NK function, each a fraction at saturating TGF-β (Hill, n = 1)."""

    ic50_ng_ml: Float = P(2.0, "ng/mL", "literature.md §5 (2 ng/mL ~ patient plasma)", "TGF-β half-suppression concentration", gt=0)
    activation_max: Float = P(0.5, "fraction", "Bellone 1995 (cytotoxicity weakly inhibited)", "max suppression of the net activating signal", ge=0, le=1)
    nkg2d_max: Float = P(0.6, "fraction", "Crane 2010 (NKG2D down-regulation)", "max NKG2D down-regulation", ge=0, le=1)
    ifng_max: Float = P(0.9, "fraction", "Bellone 1995; Trotta 2008 (IFN-γ strongly inhibited)", "max suppression of IFN-γ secretion", ge=0, le=1)
    resistant: bool = Field(False, description="NK carry a dominant-negative/knocked-out TGF-βR2 (Yvon 2017; Burga 2019)")


class Stroma(_Block):
    """TGF-β-secreting stroma: a shell of sites around the tumor."""

    enabled: bool = Field(False, description="add a stromal TGF-β source around the tumor")
    thickness_um: Float = P(60.0, "µm", "assumed", "stromal shell thickness", ge=0)
    tgfb_secretion: Float = P(20.0, "ng/(10⁶ sites·day)", "assumed (stromal fibroblasts/Tregs as a lumped source)", "TGF-β secretion per stromal site", ge=0)


class Fields(_Block):
    """Cytokine fields and their effects."""

    ifng: FieldSpec = Field(default_factory=FieldSpec)
    tgfb: FieldSpec = Field(default_factory=_tgfb_default, description="TGF-β1; default half-life 3 min (assumed: active TGF-β is cleared within minutes)")
    il15: FieldSpec = Field(default_factory=lambda: FieldSpec(diffusion_um2_min=600.0, half_life_min=90.0))
    tgfb_effects: TGFbEffects = Field(default_factory=TGFbEffects)
    stroma: Stroma = Field(default_factory=Stroma)
