"""Scenarios: the schema (one module per block), loading and validation, resolution into the
effective scenario, and the parameter table.

    base.py        P (unit + source per default), the strict block class and number types, input limits,
                   ScenarioError
    space_time.py, tumor.py, nk.py, microenvironment.py, dosing.py, product.py, wellmixed.py,
    comparator.py, drugs.py      one schema module per YAML block
    scenario.py    the root Scenario model (+ arms, output)
    presets.py     product and CAR-costimulation preset tables (sourced data)
    loader.py      YAML → raw dict with line numbers, dotted overrides, validation
    resolve.py     the one resolution step: user document + arm/sweep overrides → effective scenario
    preflight.py   what a run costs, checked before allocating: feasibility rules (called by resolve),
                   the memory estimate against available memory or --max-memory, output-volume warnings
    table.py       docs/parameters.md
"""
from .base import P, ScenarioError  # noqa: F401
from .comparator import CART, RiskModel, Toxicity  # noqa: F401
from .dosing import Dosing, Infusion  # noqa: F401
from .drugs import PK, Antibody, Chemo, ChemoDose, DrugDose, Drugs  # noqa: F401
from .microenvironment import Fields, FieldSpec  # noqa: F401
from .nk import NK, COSTIM_DOMAINS  # noqa: F401
from .product import ColdChain, Excursion, Lot, Product, Release  # noqa: F401
from .scenario import Arm, Output, Scenario  # noqa: F401
from .space_time import Domain, TimeCfg  # noqa: F401
from .tumor import Tumor  # noqa: F401
from .wellmixed import WellMixed  # noqa: F401
from .loader import apply_overrides, load_raw, validate  # noqa: F401
from .resolve import Effective, arm_effectives, arm_scenarios, coerce, load_scenario, resolve  # noqa: F401
from .table import parameter_rows, parameter_table_markdown  # noqa: F401
