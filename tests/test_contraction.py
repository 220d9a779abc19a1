"""Contraction mechanisms: exhaustion-driven loss and activation-induced cell death (AICD), each one
rule in sim/kernels/persistence.py used by the batch kernel and the Mesa agents."""
from __future__ import annotations

import math

import numpy as np
import pytest

from helpers import pairs_model
from sim.agents import CARNKCell
from sim.kernels import step as K
from sim.kernels.persistence import exhaustion_half_life


def test_exhaustion_half_life_rule():
    assert exhaustion_half_life(100.0, True, 0.5) == 50.0
    assert exhaustion_half_life(100.0, False, 0.5) == 100.0
    assert exhaustion_half_life(100.0, True, 1.0) == 100.0


@pytest.mark.parametrize("aicd", [0.0, 1.0])
def test_aicd_kills_the_effector_as_its_conjugate_completes(aicd):
    """Immortal, motionless CAR-NK next to antigen-bright targets: with AICD certain, every NK that
    completed a triggered conjugate is dead (deaths = triggers completed; no live NK has a kill); with
    AICD off nothing dies."""
    m = pairs_model(40, antigen=3.0, mhc=0.0, ligand=0.0, seed=4,
                    extra={"nk": {"persistence": {"aicd_per_trigger": aicd}}})
    m.run_days(0.5)
    c = m.nk_counts
    kills = c.kills_car + c.kills_innate + c.kills_adcc
    live = m.nk.state[: m.nk.used] != K.NK_EMPTY
    assert kills > 20
    if aicd == 0.0:
        assert c.nk_deaths == 0 and live.sum() == 40
    else:
        assert c.nk_deaths >= kills and (m.nk.kills[: m.nk.used][live] == 0).all()


def test_exhausted_cells_are_lost_faster():
    """Cells marked exhausted (stimulations at the limit) die at ln2/(factor · t½): with factor 0.25 and
    t½ = 1 d, 2,000 exhausted cells lose ≈ 1 − 2^(−4·0.5) = 75 % in half a day (SE of the fraction
    ≈ 1 %; tolerance 4 SE); the agents report the same half-life."""
    m = pairs_model(1, antigen=0.0, mhc=0.0, ligand=0.0, seed=2,
                    extra={"nk": {"dose": {"cells": 2000, "placement": "random"},
                                  "persistence": {"half_life_days": 1.0, "exhausted_half_life_factor": 0.25}}})
    n = m.nk.used
    m.nk.stims[:n] = m.p_nk.exhaustion_stims
    agent = next(iter(m.agents_by_type[CARNKCell]))
    assert agent.half_life_days() == pytest.approx(0.25)
    m.run_days(0.5)
    lost = 1 - (m.nk.state[:n] != K.NK_EMPTY).mean()
    assert lost == pytest.approx(1 - 2 ** (-2.0), abs=0.04)
