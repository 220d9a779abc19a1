"""Compatibility import path: everything here lives in `sim.scenario` (schema by block, loader,
resolution, parameter table). New code imports from `sim.scenario`."""
from .scenario import *  # noqa: F401,F403
from .scenario.base import _Block  # noqa: F401
from .scenario.comparator import *  # noqa: F401,F403
from .scenario.dosing import *  # noqa: F401,F403
from .scenario.drugs import *  # noqa: F401,F403
from .scenario.microenvironment import *  # noqa: F401,F403
from .scenario.nk import *  # noqa: F401,F403
from .scenario.product import *  # noqa: F401,F403
from .scenario.space_time import *  # noqa: F401,F403
from .scenario.tumor import *  # noqa: F401,F403
from .scenario.loader import *  # noqa: F401,F403
from .scenario.resolve import *  # noqa: F401,F403
from .scenario.table import *  # noqa: F401,F403
