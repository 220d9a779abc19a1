"""Whether the simulated section, not the therapy, limits the tumor: the domain-boundary watch.

A tumor that reaches the edge of the lattice, or fills most of it, grows against the section size
(no site left to divide into), so its trajectory says little about the therapy. The watch reads the
kernels' running totals (`TUMOR_STATS`: `at_boundary`, the live tumor cells on boundary sites, kept by
`step.add_tumor_stats`; `live`) after every tumor step, so it costs a few scalar reads, and reports:

    tumor_at_boundary          whether a live tumor cell ever stood on a boundary site
    tumor_boundary_day         the first day it did (null if never; 0 for a tumor seeded there)
    domain_fill_fraction_max   the largest share of lattice sites holding live tumor cells
    immune_crowded_out         arriving immune cells that found no room (volume exclusion, nk.crowding)
    tumor_exported             daughters an open section sent out of the lattice (`sim/section.py`; 0 if closed)

It warns once per condition (a `DomainEdgeWarning`, one line): when the tumor first reaches the
boundary during the run, and when it first fills more than `FILL_WARN` of the domain. A tumor seeded on
boundary sites (scattered cells: an in vitro well, disseminated disease) is flagged from day 0 but not
warned about, since it did not grow there; its growth against the section shows in the fill warning.
An open section (`domain.section.boundary: open`) is not capped by its size, so it flags without warning.
"""
from __future__ import annotations

import warnings

from .errors import DomainEdgeWarning
from .kernels.records import S_EDGE, S_EXPORTED, S_LIVE
from .units import MIN_PER_DAY

#: Share of the lattice sites filled by tumor above which the run warns.
FILL_WARN = 0.9
#: The summary metrics of the watch (sim/sweep/spec.py: KNOWN_METRICS).
DOMAIN_METRICS = ("tumor_at_boundary", "tumor_boundary_day", "domain_fill_fraction_max", "immune_crowded_out", "tumor_exported")


class DomainWatch:
    """Tracks boundary contact and the fill fraction of one lattice model (`model.domain_watch`)."""

    def __init__(self, n_sites: int, name: str = "", open_boundary: bool = False):
        self.n_sites = int(n_sites)
        self.name = name
        self.open_boundary = bool(open_boundary)  # daughters leave instead of waiting: the size caps nothing
        self.exported = 0
        self.boundary_day: float | None = None
        self.fill_max = 0.0
        self.fill_warned = False
        self.crowded_out = 0

    def update(self, tstats, now_min: float, setup: bool = False) -> None:
        """Read the running totals after a tumor step (or, with `setup`, the seeded tumor) at `now_min`."""
        live = float(tstats[S_LIVE])
        self.exported = int(tstats[S_EXPORTED])
        warn = not self.open_boundary  # an open section is not capped by its size: flagged, not warned about
        fill = live / self.n_sites if self.n_sites else 0.0
        if fill > self.fill_max:
            self.fill_max = fill
        day = now_min / MIN_PER_DAY
        where = f"{self.name}: " if self.name else ""
        if self.boundary_day is None and tstats[S_EDGE] > 0:
            self.boundary_day = day
            if warn and not setup:  # a tumor seeded on the boundary did not grow there: flagged, not warned about
                warnings.warn(f"{where}tumor cells reached the domain boundary on day {day:.2f} ({int(tstats[S_EDGE])} "
                              "on boundary sites): growth from here on is limited by the section size, not only by the "
                              "therapy (summary.json: metrics.tumor_at_boundary; enlarge domain.size_um)",
                              DomainEdgeWarning, stacklevel=3)
        if warn and not self.fill_warned and fill > FILL_WARN:
            self.fill_warned = True
            warnings.warn(f"{where}the tumor fills {fill:.0%} of the domain's {self.n_sites} sites on day {day:.2f}: "
                          "growth is capped by the section size (summary.json: metrics.domain_fill_fraction_max; "
                          "enlarge domain.size_um)", DomainEdgeWarning, stacklevel=3)

    def metrics(self) -> dict:
        return {
            "tumor_at_boundary": self.boundary_day is not None,
            "tumor_boundary_day": self.boundary_day,
            "domain_fill_fraction_max": float(self.fill_max),
            "immune_crowded_out": int(self.crowded_out),
            "tumor_exported": self.exported,
        }

    def state_dict(self) -> dict:
        return {"boundary_day": self.boundary_day, "fill_max": self.fill_max, "fill_warned": self.fill_warned, "crowded_out": self.crowded_out}

    def load_state_dict(self, d: dict) -> None:
        self.boundary_day = d.get("boundary_day")
        self.fill_max = float(d.get("fill_max", 0.0))
        self.fill_warned = bool(d.get("fill_warned", False))
        self.crowded_out = int(d.get("crowded_out", 0))
