"""Published reference models that nksim is validated against (see docs/validation.md)."""
from .kuznetsov import KuznetsovParams, fixed_points, jacobian, solve  # noqa: F401
from .depillis import DePillisParams  # noqa: F401
