"""Sections and patients: what the simulated section stands for, and the tumor outside it.

A section is a whole lesion (`domain.section.represents: lesion`, the default: the lattice holds all of
the tumor, its read-outs are the patient's) or a sample of a larger burden (`sample`: a marrow or
lymph-node sample of disseminated disease). A closed boundary caps growth at the lattice: a division
with no free neighbour waits (contact inhibition). An open one (`boundary: open`, samples only) does
not: the division happens and the daughter leaves the section (`tumor_step` counts it in
`TUMOR_STATS` "exported") into the rest of the disease, the *outside*.

The outside is taken to behave as the section does on average (the sample is representative of the
disease, NK exposure included): over each tumor step every outside cell does what the average section
cell did,

    outside ← outside · (live + exported during the step) / live before the step + exported during it,

so an untreated open sample grows as N0·e^{(λ−μ)t} in total (N0·2^(t/Td) without cell loss μ) while its section stays full, and an outside
with no cells stays empty. While the section holds no tumor cell it no longer samples anything; the
outside then grows at the intrinsic net rate (division − spontaneous loss). The outside carries no
antigen or spatial state: antigen shares are the section's.

Read-outs (time-series columns, only for samples): `tumor_outside` and `tumor_total` (live + outside, in
section cells); with `patient_cells`, `tumor_patient_cells` = tumor_total × patient_cells / tumor_total at
day 0. A cohort reads `tumor_total` where it exists (sim/cohort/response.py).
"""
from __future__ import annotations

import math

import numpy as np

from .kernels.records import S_EXPORTED, S_LIVE

#: The outside compartment's state, one float64 array per model (checkpointed with the model):
OUT_CELLS, OUT_LIVE_PREV, OUT_EXPORTED_PREV, OUT_TOTAL0 = range(4)


def new_state(tstats: np.ndarray) -> np.ndarray:
    """The outside state at day 0: no cell outside; the section's live count as the baseline."""
    s = np.zeros(4, dtype=np.float64)
    s[OUT_LIVE_PREV] = s[OUT_TOTAL0] = tstats[S_LIVE]
    s[OUT_EXPORTED_PREV] = tstats[S_EXPORTED]
    return s


def advance_outside(state: np.ndarray, tstats: np.ndarray, intrinsic_rate_per_min: float, dt_min: float) -> None:
    """One tumor step of the outside compartment (in place): every outside cell does what the average
    section cell did since the last call, then the daughters exported meanwhile join it."""
    live = float(tstats[S_LIVE])
    exported = float(tstats[S_EXPORTED]) - state[OUT_EXPORTED_PREV]
    before = state[OUT_LIVE_PREV]
    if state[OUT_CELLS] > 0.0:
        factor = (live + exported) / before if before > 0.0 else math.exp(intrinsic_rate_per_min * dt_min)
        state[OUT_CELLS] *= factor
    state[OUT_CELLS] += exported
    state[OUT_LIVE_PREV] = live
    state[OUT_EXPORTED_PREV] = tstats[S_EXPORTED]


def reporters(state: np.ndarray, tstats: np.ndarray, patient_cells: float | None) -> dict:
    """The sample's time-series columns (`model.reporters`): outside, total and, with a patient burden,
    the patient-level burden in cells."""
    def total(_m=None) -> float:
        return float(tstats[S_LIVE]) + float(state[OUT_CELLS])

    cols = {"tumor_outside": lambda m: float(state[OUT_CELLS]), "tumor_total": total}
    if patient_cells is not None:
        cols["tumor_patient_cells"] = lambda m: total() * patient_cells / state[OUT_TOTAL0] if state[OUT_TOTAL0] > 0 else 0.0
    return cols


def entry_enrichment(tissue_fraction: float, state: np.ndarray, patient_cells: float | None) -> float | None:
    """How many times an even spread of the patient's tumor-bed entries over the disease a sample
    receives: `dosing.tissue_fraction` over the section's share of the disease at day 0 (its tumor cells
    over `patient_cells`); None without a patient burden. Far above 1, the section is enriched in
    effectors by that factor, which nothing in the model explains (docs/cohorts.md, the tissue-entry knob)."""
    if patient_cells is None or state[OUT_TOTAL0] <= 0:
        return None
    return float(tissue_fraction * patient_cells / state[OUT_TOTAL0])
