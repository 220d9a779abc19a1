"""Therapy layer around the CAR-NK cells: dosing and trafficking, products, armoring and engineering."""
from .dosing import Therapy
from .products import resolve_product

__all__ = ["Therapy", "resolve_product"]
