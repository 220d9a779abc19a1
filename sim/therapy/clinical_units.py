"""Blood read-outs in the units trials report: CAR+ cells per µL of blood and transgene copies per µg
of genomic DNA (qPCR of peripheral blood), from the patient-level blood compartment.

    CAR+/µL          = blood cells × CAR+ fraction / (weight · mL/kg · 1000 µL/mL)
    copies/µg gDNA   = CAR+/µL × vector copies per cell / (leukocytes/µL + CAR+/µL) × cells per µg
    cells per µg     = 10⁶ pg / 6.6 pg (one diploid human genome; Gregory 2005, doi:10.1093/aob/mci009)
"""
from __future__ import annotations

DIPLOID_GENOME_PG = 6.6  # pg DNA per diploid human nucleus (C-value 3.3 pg; Gregory 2005, Ann Bot 95:133)
CELLS_PER_UG_GDNA = 1e6 / DIPLOID_GENOME_PG  # ≈ 1.5e5 nucleated cells per µg of genomic DNA


def car_per_ul(blood_cells: float, car_fraction: float, weight_kg: float, ml_per_kg: float) -> float:
    """CAR+ cells per µL of blood for `blood_cells` product cells in a patient's circulation."""
    return blood_cells * car_fraction / (weight_kg * ml_per_kg * 1000.0)


def transgene_copies_per_ug(car_ul: float, leukocytes_ul: float, copies_per_cell: float) -> float:
    """Transgene copies per µg genomic DNA of peripheral blood (CAR+ cells among all nucleated cells)."""
    total = leukocytes_ul + car_ul
    return 0.0 if total <= 0 else car_ul * copies_per_cell / total * CELLS_PER_UG_GDNA
