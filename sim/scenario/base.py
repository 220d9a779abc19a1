"""Schema building blocks: the `P` field helper (unit + source on every default), the strict block
base class, the strict number types, the input limits and the one error type that every bad input
becomes."""
from __future__ import annotations

import math
import numbers
import re
from typing import Annotated, Any, Optional

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

# ------------------------------------------------------------------------------------ input limits
#: A scenario or sweep file larger than this is refused before it is parsed (scenarios are a few kB).
MAX_FILE_BYTES = 1 << 20
#: Deepest nesting of mappings and lists (after alias expansion); the schema itself is 6 deep.
MAX_DEPTH = 32
#: Alias uses (*name) per file, and YAML nodes after expanding them (alias bombs).
MAX_ALIASES = 100
MAX_NODES = 200_000
#: Largest magnitude of any real number (a finite but absurd 1e308 overflows later in the model).
MAX_MAGNITUDE = 1e15
#: Integers must fit a signed 64-bit integer (seeds are 63-bit; counts are bounded by memory).
MAX_INT = 2**63 - 1
#: Scenario and arm names become folder names: letters, digits, '.', '_' and '-', at most 100.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def P(default: Any, unit: str, source: str, desc: str, **bounds: Any) -> Any:
    """A schema field with its unit, literature source (or "assumed") and description."""
    return Field(default, description=desc, json_schema_extra={"unit": unit, "source": source}, **bounds)


class ScenarioError(ValueError):
    """Bad scenario input: the message names the YAML path and how to fix it.

    Rendered as ``file:line: dotted.path: message`` (the parts that are known)."""

    def __init__(self, path: str, message: str, line: int | None = None, file: str | None = None):
        self.path, self.line, self.file, self.detail = path, line, file, message
        if file:
            where = f"{file}:{line}: " if line else f"{file}: "
        else:
            where = f"line {line}: " if line else ""
        text = f"{where}{path}: {message}" if path else f"{where}{message}"
        super().__init__(" ".join(text.split()))  # always one line


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def dotted_get(obj: Any, dotted: str) -> Any:
    """The value at a dotted path in nested dicts or pydantic blocks (``nk.il15.mode``)."""
    for k in dotted.split("."):
        obj = obj[k] if isinstance(obj, dict) else getattr(obj, k)
    return obj


# ------------------------------------------------------------------------------------ strict numbers
def _real(v: Any, kind: str) -> Any:
    if isinstance(v, bool) or type(v).__name__ == "bool_":
        raise PydanticCustomError("number_is_bool", "expected a number, got a boolean ({got}); write the number itself",
                                  {"got": str(v).lower()})
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        return float(v)
    what = "text" if isinstance(v, str) else type(v).__name__
    raise PydanticCustomError("number_type", "Input should be a valid {kind}, not {what} (got {got})",
                              {"kind": kind, "what": what, "got": repr(v)[:60]})


def check_real(v: Any) -> float:
    """A finite real number of magnitude ≤ MAX_MAGNITUDE (ints accepted); booleans and text refused."""
    v = _real(v, "number")
    if isinstance(v, int):
        if abs(v) > MAX_MAGNITUDE:
            raise PydanticCustomError("number_too_large", "magnitude above the ceiling {ceiling} (got {got})",
                                      {"ceiling": f"{MAX_MAGNITUDE:g}", "got": f"{float(v):.3g}"})
        return float(v)
    if not math.isfinite(v):
        raise PydanticCustomError("number_not_finite", "must be a finite number (got {got})", {"got": repr(v)})
    if abs(v) > MAX_MAGNITUDE:
        raise PydanticCustomError("number_too_large", "magnitude above the ceiling {ceiling} (got {got})",
                                  {"ceiling": f"{MAX_MAGNITUDE:g}", "got": f"{v:.3g}"})
    return v


def check_int(v: Any) -> int:
    """An integer (a float with no fractional part is accepted, so 1e6 works); booleans and text refused."""
    v = _real(v, "integer")
    if isinstance(v, float):
        if not math.isfinite(v):
            raise PydanticCustomError("number_not_finite", "must be a finite integer (got {got})", {"got": repr(v)})
        if not v.is_integer():
            raise PydanticCustomError("int_fraction", "Input should be a valid integer, got a number with a fractional part ({got})",
                                      {"got": repr(v)})
        v = int(v)
    if abs(v) > MAX_INT:
        raise PydanticCustomError("number_too_large", "outside the 64-bit integer range (got {got})", {"got": f"{float(v):.3g}"})
    return v


def _opt(fn):
    return lambda v: None if v is None else fn(v)


def check_name(v: str) -> str:
    if not NAME_RE.fullmatch(v):
        raise PydanticCustomError("unsafe_name", "must be a simple name (it names the output folder): letters, digits, "
                                  "'.', '_' or '-', starting with a letter or digit, at most 100 characters (got {got})",
                                  {"got": repr(v)[:60]})
    return v


#: Strict number types for every numeric schema field (bounds still go on the Field).
Float = Annotated[float, BeforeValidator(check_real)]
Int = Annotated[int, BeforeValidator(check_int)]
OptFloat = Annotated[Optional[float], BeforeValidator(_opt(check_real))]
OptInt = Annotated[Optional[int], BeforeValidator(_opt(check_int))]
#: Literal integer choices (dims, compartments): a boolean is not 1.
NoBool = BeforeValidator(lambda v: _real(v, "integer") if isinstance(v, bool) else v)
#: A name that is safe as one folder name.
Name = Annotated[str, AfterValidator(check_name)]
