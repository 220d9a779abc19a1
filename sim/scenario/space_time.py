"""Space and time: the lattice domain and the multi-rate clock."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from .base import Float, Int, NoBool, OptFloat, P, _Block


class Section(_Block):
    """What the simulated tissue stands for, and whether its edge caps the tumor (`sim/section.py`)."""

    represents: Literal["lesion", "sample"] = P(
        "lesion", "-", "assumed", "lesion: the whole tumor (a nodule, a well); sample: a window onto a larger burden (a marrow "
        "or lymph-node sample of disseminated disease), whose read-outs are scaled to the patient")
    boundary: Literal["closed", "open"] = P(
        "closed", "-", "assumed", "closed: a division with no free neighbour waits (contact inhibition, the lattice caps "
        "growth); open (samples only): it happens and the daughter leaves the section into the rest of the disease, which "
        "grows as the section's cells do (docs/model.md, 'Sections and patients')")
    patient_cells: OptFloat = P(
        None, "cells", "assumed (per patient; e.g. 1e11-1e12 blasts in relapsed B-ALL marrow)", "the patient's tumor burden "
        "at day 0 that the section samples (null = report in section cells only)", gt=0, le=1e15)

    @model_validator(mode="after")
    def _open_only_for_samples(self) -> "Section":
        if self.boundary == "open" and self.represents != "sample":
            raise ValueError("boundary: open needs represents: sample (a whole lesion has nowhere outside to grow into); "
                             "set represents: sample or boundary: closed")
        return self


class Domain(_Block):
    """The simulated tissue: a 2D or 3D lattice of cell-sized sites."""

    space: Literal["lattice", "well_mixed"] = Field("lattice", description="lattice (spatial) or well_mixed (mass action, no space)")
    dims: Annotated[Literal[2, 3], NoBool] = P(2, "-", "assumed", "lattice dimension")
    size_um: list[Float] = P([1000.0, 1000.0], "µm", "assumed", "domain edge lengths (2 or 3 values; a single value means a cube)")
    spacing_um: Float = P(20.0, "µm", "assumed (about one tumor-cell diameter)", "lattice site spacing", gt=0)
    field_coarsen: Int = P(2, "sites", "assumed; error bounded in tests/test_fields.py", "field voxel edge in lattice sites", ge=1, le=16)
    field_precision: Literal["auto", "double"] = P(
        "auto", "-", "measured (docs/performance.md; tests/test_fields.py)", "auto: the DCTs of field grids above 16,384 "
        "voxels run in single precision (2× faster; error ~1e-7 of the field's maximum per step, 4.5e-6 after a day for a "
        "10-h half-life; values stay float64), smaller grids in double; double: every grid in double precision")
    section: Section = Field(default_factory=Section, description="what the section represents and its boundary")

    @model_validator(mode="after")
    def _size_matches_dims(self) -> "Domain":
        if len(self.size_um) == 1:
            object.__setattr__(self, "size_um", self.size_um * self.dims)
        if len(self.size_um) != self.dims:
            raise ValueError(f"size_um has {len(self.size_um)} values but dims is {self.dims}; give {self.dims} edge lengths")
        if any(s <= 0 for s in self.size_um):
            raise ValueError("size_um values must be > 0")
        return self

    def lattice_shape(self) -> tuple[int, int, int]:
        """Lattice sites per axis (nx, ny, nz); nz = 1 in 2D."""
        n = [max(1, int(round(s / self.spacing_um))) for s in self.size_um]
        return (n[0], n[1], n[2] if self.dims == 3 else 1)


class TimeCfg(_Block):
    """Clock: the cell step, the slower tumor and field steps, and output cadence."""

    days: Float = P(3.0, "day", "assumed", "simulated duration (at most ten years)", gt=0, le=3650)
    dt_min: Float = P(2.0, "min", "assumed (CAR-T speed 5 µm/min moves ~0.5 site per step; Luque 2024)", "motility/contact step", gt=0, le=60)
    tumor_dt_min: Float = P(10.0, "min", "assumed (≪ 38.6 h cycle)", "division/apoptosis step (multi-rate)", gt=0, le=240)
    field_dt_min: Float = P(10.0, "min", "assumed; solver exact for any step", "cytokine field step", gt=0, le=1440)
    output_every_h: Float = P(2.0, "h", "assumed", "time-series output interval", gt=0)
    snapshot_every_h: Float = P(24.0, "h", "assumed", "spatial snapshot interval (0 = none)", ge=0)

    @model_validator(mode="after")
    def _snapshots_apart(self) -> "TimeCfg":
        # files are named by time to 0.01 h (`output.snapshot_name`) and taken at the first step past each
        # interval (at most one a step), so two are at least max(dt, snapshot_every_h − dt) apart: closer than
        # 0.01 h (possible only with dt under 0.6 min), one would replace another
        least = 0.01 + self.dt_min / 60.0
        if self.dt_min < 0.6 and 0 < self.snapshot_every_h < least:
            raise ValueError(f"snapshot_every_h {self.snapshot_every_h:g} h is too short for dt_min {self.dt_min:g} min: snapshot files "
                             f"are named to 0.01 h, so give at least {least:.4g} h (0.01 h plus one step), or 0 for none")
        return self
