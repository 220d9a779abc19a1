"""Schema building blocks: the `P` field helper (unit + source on every default), the strict block
base class and the one error type that every bad input becomes."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def P(default: Any, unit: str, source: str, desc: str, **bounds: Any) -> Any:
    """A schema field with its unit, literature source (or "assumed") and description."""
    return Field(default, description=desc, json_schema_extra={"unit": unit, "source": source}, **bounds)


class ScenarioError(ValueError):
    """Bad scenario input: the message names the YAML path and how to fix it."""

    def __init__(self, path: str, message: str, line: int | None = None, file: str | None = None):
        self.path, self.line, self.file, self.detail = path, line, file, message
        where = f"{file}:" if file else ""
        where += f"line {line}: " if line else ""
        super().__init__(f"{where}{path}: {message}" if path else f"{where}{message}")


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def dotted_get(obj: Any, dotted: str) -> Any:
    """The value at a dotted path in nested dicts or pydantic blocks (``nk.il15.mode``)."""
    for k in dotted.split("."):
        obj = obj[k] if isinstance(obj, dict) else getattr(obj, k)
    return obj
