"""The effective scenario in kernel units (minutes, lattice sites, ng/mL/min): the last part of
resolution. Static product facts live here as named rules (IL-15 routes, TGF-βR2 edits, the CAR-T
effector, the drawn lot); time-varying effects are declared modulators (`sim/therapy/modulators.py`)."""
from __future__ import annotations

import math

from ..kernels.noise import log_params, memory_rho
from ..kernels.params import NKParams, TumorParams
from ..units import LN2, MIN_PER_DAY
from .scenario import Scenario


def secretion_rate(q_ng_per_1e6_cells_day: float, voxel_volume_ml: float) -> float:
    """Convert a secretion rate in ng/(10⁶ cells·day) into ng/mL/min added to one field voxel."""
    return q_ng_per_1e6_cells_day * 1e-6 / MIN_PER_DAY / voxel_volume_ml


def il15_routes(mode: str) -> tuple[bool, bool]:
    """(into the IL-15 field, autocrine) for an IL-15 armoring mode.

    Secreted IL-15 reaches the field and the cell itself; membrane-bound IL-15 signals only to its own
    cell (nothing enters the field); none and exogenous (a superagonist given to the patient) neither."""
    return mode == "secreted", mode in ("secreted", "membrane_bound")


def tgfbr2_suppression(p: NKParams, c: Scenario) -> NKParams:
    """TGF-βR2 edits: a knockout, or a dominant-negative receptor with no residual signalling, removes
    TGF-β suppression; a leaky dominant-negative scales each suppression by its residual signalling."""
    e = c.nk.engineering
    if e.tgfbr2 == "knockout" or (e.tgfbr2 == "dominant_negative" and e.dnr_residual_signalling == 0.0):
        return p._replace(tgfb_resistant=True)
    if e.tgfbr2 == "dominant_negative":
        r = e.dnr_residual_signalling
        return p._replace(tgfb_activation_max=p.tgfb_activation_max * r, tgfb_nkg2d_max=p.tgfb_nkg2d_max * r,
                          tgfb_ifng_max=p.tgfb_ifng_max * r)
    return p


def organ_return_per_min(c: Scenario) -> float:
    """The blood compartment's organ → blood return rate (k_back, `therapy/blood.py`)."""
    return LN2 / (c.dosing.blood.return_half_life_h * 60.0)


def egress_per_min(c: Scenario) -> float:
    """Rate at which free effector cells leave the section for blood: the organ return rate (the tumor bed
    is one of the organs) where cells come from blood (`dosing.infusions`); 0 for cells placed in the
    tissue with no blood compartment to return to."""
    return organ_return_per_min(c) if c.dosing.infusions else 0.0


def cart_effector(p: NKParams, c: Scenario, voxel_volume_ml: float) -> NKParams:
    """The CAR-T comparator in the same kernel: MHC-independent CAR killing only (no NKG2D, KIR/NKG2A
    or CD16), its own triggering threshold and kill time, persistence, memory, antigen-driven expansion
    and IFN-γ release."""
    t = c.cart
    return p._replace(
        nkg2d=0.0, inhibitory=0.0, cd16=0.0,
        half_activation=t.activation.half_activation, responsiveness_sd=t.activation.responsiveness_sd,
        kill_min=t.activation.kill_time_min,
        half_life_min=t.persistence.half_life_days * MIN_PER_DAY,
        memory_fraction=t.persistence.memory_fraction,
        memory_half_life_min=t.persistence.memory_half_life_days * MIN_PER_DAY,
        stim_division_prob=t.expansion.division_probability_per_kill,
        max_divisions=int(t.expansion.max_divisions),
        ifng_rate=secretion_rate(t.secretion.ifng_engaged, voxel_volume_ml),
    )


def with_lot(p: NKParams, potency: float, persistence_multiplier: float) -> NKParams:
    """The drawn product lot: potency scales the net signal (≡ dividing the half-activation), the CAR
    costimulation preset stretches the half-life."""
    return p._replace(half_activation=p.half_activation / max(potency, 1e-12),
                      half_life_min=p.half_life_min * persistence_multiplier)


def nk_params(c: Scenario, voxel_volume_ml: float) -> NKParams:
    """The effector blocks of an effective scenario in kernel units (before the lot is drawn)."""
    nk, f = c.nk, c.fields
    into_field, autocrine = il15_routes(nk.il15.mode)
    p = NKParams(
        dt=c.time.dt_min, dims=c.domain.dims,
        sites_per_step=nk.motility.speed_um_min * c.time.dt_min / c.domain.spacing_um,
        persistence_min=nk.motility.persistence_min, tumor_bias=nk.motility.tumor_bias,
        car_expression=nk.receptors.car_expression, car_affinity=nk.receptors.car_affinity,
        nkg2d=nk.receptors.nkg2d, inhibitory=nk.receptors.inhibitory, cd16=nk.receptors.cd16,
        inhibitory_block=0.0,
        attach_rate=nk.activation.attach_rate_per_min, half_activation=nk.activation.half_activation,
        hill=nk.activation.hill, release_min=nk.activation.release_min,
        responsiveness_sd=nk.activation.responsiveness_sd,
        perforin=bool(nk.killing.perforin), kill_min=nk.killing.kill_time_min,
        max_granules=nk.killing.granules, regen_min=nk.killing.granule_regen_h * 60.0,
        dr_kill_min=nk.killing.death_receptor_kill_time_min, dr_capacity=nk.killing.death_receptor_capacity,
        exhaustion_stims=nk.killing.exhaustion_stimulations,
        half_life_min=nk.persistence.half_life_days * MIN_PER_DAY,
        il15_extension=nk.il15.half_life_extension, il15_ec50=nk.il15.ec50_ng_ml,
        prolif_rate=nk.il15.proliferation_per_day / MIN_PER_DAY, max_divisions=nk.il15.max_divisions,
        ifng_rate=secretion_rate(nk.secretion.ifng_engaged, voxel_volume_ml),
        ifng_exhausted_fraction=nk.secretion.ifng_exhausted_fraction,
        il15_rate=secretion_rate(nk.il15.secretion, voxel_volume_ml) if into_field else 0.0,
        il15_autocrine=nk.il15.autocrine_ng_ml if autocrine else 0.0,
        tgfb_ic50=f.tgfb_effects.ic50_ng_ml, tgfb_activation_max=f.tgfb_effects.activation_max,
        tgfb_nkg2d_max=f.tgfb_effects.nkg2d_max, tgfb_ifng_max=f.tgfb_effects.ifng_max,
        tgfb_resistant=bool(f.tgfb_effects.resistant),
        mhc_max_fold=c.tumor.ifng_response.mhc_max_fold, tumor_ifng_ec50=c.tumor.ifng_response.ec50_ng_ml,
        apoptosis_delay_min=c.tumor.apoptosis_delay_min,
        stim_division_prob=0.0, memory_fraction=nk.persistence.memory_fraction,
        memory_half_life_min=nk.persistence.memory_half_life_days * MIN_PER_DAY,
        rejection_per_min=0.0,  # a modulator when the product is rejected (sim/therapy/rejection.py)
        exhausted_half_life_factor=nk.persistence.exhausted_half_life_factor,
        aicd_per_trigger=nk.persistence.aicd_per_trigger,
        immune_cap=nk.crowding.per_site(c.domain.spacing_um),
        egress_per_min=egress_per_min(c),
    )
    p = tgfbr2_suppression(p, c)
    return cart_effector(p, c, voxel_volume_ml) if c.effector == "cart" else p


def tumor_params(c: Scenario) -> TumorParams:
    """The tumor block in kernel units."""
    t = c.tumor
    mhc_mu, mhc_sd = log_params(t.mhc_i.mean, t.mhc_i.cv)
    lig_mu, lig_sd = log_params(t.nkg2d_ligand.mean, t.nkg2d_ligand.cv)
    return TumorParams(
        division_rate=math.log(2.0) / (t.doubling_time_h * 60.0),
        death_rate=t.death_per_day / MIN_PER_DAY,
        ifng_growth_max=t.ifng_response.growth_max_inhibition, ifng_ec50=t.ifng_response.ec50_ng_ml,
        apoptosis_delay_min=t.apoptosis_delay_min, clearance_min=t.clearance_min,
        antigen_loss=t.escape.antigen_loss_per_division,
        expression_rho=memory_rho(t.expression_memory_generations),
        antigen_log_sd=log_params(1.0, t.antigen.cv)[1],
        mhc_log_mean=mhc_mu, mhc_log_sd=mhc_sd, ligand_log_mean=lig_mu, ligand_log_sd=lig_sd,
        open_boundary=c.domain.section.boundary == "open",
    )


def tissue_tgfb_rates(c: Scenario, voxel_volume_ml: float) -> tuple[float, float]:
    """TGF-β added per live tumor cell and per stromal site to its voxel (ng/mL/min)."""
    stroma = c.fields.stroma
    return (secretion_rate(c.tumor.tgfb_secretion, voxel_volume_ml),
            secretion_rate(stroma.tgfb_secretion, voxel_volume_ml) if stroma.enabled else 0.0)
