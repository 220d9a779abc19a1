"""Well-mixed (mass-action) mode parameters: the Kuznetsov 1994 model as agents."""
from __future__ import annotations

from .base import Float, P, _Block

class WellMixed(_Block):
    """Well-mixed mode (`domain.space: well_mixed`): the Kuznetsov 1994 effector–tumor model as agents.

    Counts are ODE cells times the system size Ω (N = Ω·X); rates are rescaled so the agent mean
    follows the ODE as Ω grows. Mapping of each term: `sim/kernels/wellmixed.py`. With
    `proliferation_hill: 2` (and g = √h) the same block is the NK-only model of de Pillis 2005.
    """

    omega: Float = P(1e-3, "agents/cell", "assumed (≈1e4 agents near the dormant state)", "system size Ω: agents per ODE cell", gt=0, le=1)
    effector_cells: Float = P(3.2e5, "cells", "Kuznetsov 1994 (E0 of the dormancy/escape example)", "initial effector cells E0 (ODE units)", ge=0)
    tumor_cells: Float = P(1e6, "cells", "Kuznetsov 1994 (T0 ≤ 1e7 → dormancy)", "initial tumor cells T0 (ODE units)", ge=0)
    influx_cells_day: Float = P(1.3e4, "cells/day", "Kuznetsov 1994 (s)", "s: constant effector influx", ge=0)
    proliferation_per_day: Float = P(0.1245, "1/day", "Kuznetsov 1994 (p)", "p: maximal tumor-stimulated effector proliferation", ge=0)
    proliferation_half_cells: Float = P(2.019e7, "cells", "Kuznetsov 1994 (g)", "g: tumor size giving half-maximal stimulation", gt=0)
    proliferation_hill: Float = P(1.0, "-", "Kuznetsov 1994 (Michaelis–Menten, n = 1); de Pillis 2005 uses n = 2",
                                  "n: Hill exponent of the stimulation Tⁿ/(gⁿ + Tⁿ) (a published h in cellsⁿ is gⁿ)", ge=1)
    inactivation_per_cell_day: Float = P(3.422e-10, "1/(cell·day)", "Kuznetsov 1994 (m)", "m: effector inactivation per tumor cell", ge=0)
    death_per_day: Float = P(0.0412, "1/day", "Kuznetsov 1994 (d)", "d: effector death (persistence hazard)", gt=0)
    growth_per_day: Float = P(0.18, "1/day", "Kuznetsov 1994 (a)", "a: maximal tumor growth rate", ge=0)
    inverse_capacity_per_cell: Float = P(2.0e-9, "1/cell", "Kuznetsov 1994 (b)", "b: inverse tumor carrying capacity", gt=0)
    kill_per_cell_day: Float = P(1.101e-7, "1/(cell·day)", "Kuznetsov 1994 (n)", "n: kill rate per effector–tumor pair", ge=0)
