"""Therapy layer around the CAR-NK cells: dosing and trafficking, products, armoring and engineering."""
from .dosing import Therapy

__all__ = ["Therapy"]
