"""Loading scenarios: YAML → raw dict (with line numbers), dotted-path overrides, and validation with
errors that name the file, line, dotted path and fix."""
from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .base import ScenarioError
from .scenario import Scenario


def _line_index(text: str) -> dict[tuple, int]:
    """Map each key path in a YAML document to its 1-based line number."""
    lines: dict[tuple, int] = {}

    def walk(node: Any, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                p = path + (str(k.value),)
                lines[p] = k.start_mark.line + 1
                walk(v, p)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                lines[path + (i,)] = v.start_mark.line + 1
                walk(v, path + (i,))

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lines
    if root is not None:
        walk(root, ())
    return lines


def load_raw(path: str | Path) -> dict:
    """Read a scenario YAML into a plain dict; ScenarioError on a missing file or bad YAML."""
    p = Path(path)
    if not p.is_file():
        raise ScenarioError("", f"scenario file not found: {p} (check the path)")
    text = p.read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(e, "problem", None) or str(e)
        raise ScenarioError("", f"malformed YAML: {problem} (fix the indentation or quoting)", line=line, file=str(p)) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ScenarioError("", "the top level must be a mapping of blocks (name:, tumor:, nk:, ...)", file=str(p))
    raw["__source__"] = {"file": str(p), "lines": _line_index(text)}
    return raw


def _model_for_path(model: type[BaseModel], path: tuple) -> type[BaseModel] | None:
    """The pydantic block class at a key path, for "did you mean" hints."""
    for key in path:
        if isinstance(key, int):
            continue
        f = model.model_fields.get(key)
        ann = getattr(f, "annotation", None) if f else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def _format_error(err: dict, lines: dict, file: str | None) -> ScenarioError:
    """Turn one pydantic error into a ScenarioError naming the dotted path, line and fix."""
    loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x.startswith("function-")))
    dotted = ".".join(str(x) for x in loc)
    typ, msg = err["type"], err["msg"]
    if typ == "extra_forbidden":
        parent = _model_for_path(Scenario, loc[:-1])
        options = list(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), options, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else (f"; allowed keys: {', '.join(options)}" if options else "")
        msg = f"unknown key '{loc[-1]}'{hint}"
    elif typ in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        parent = _model_for_path(Scenario, loc[:-1])
        f = parent.model_fields.get(str(loc[-1])) if parent else None
        unit = (f.json_schema_extra or {}).get("unit") if f is not None else None
        msg = f"{msg} (got {err.get('input')!r}{f' {unit}' if unit and unit != '-' else ''}); set a value in the allowed range"
    elif "type" in typ or typ.endswith("_parsing"):
        msg = f"{msg} (got {err.get('input')!r})"
    elif typ == "literal_error":
        msg = f"{msg} (got {err.get('input')!r})"
    line = None
    for k in range(len(loc), 0, -1):
        line = lines.get(tuple(str(x) if not isinstance(x, int) else x for x in loc[:k]))
        if line:
            break
    return ScenarioError(dotted, msg, line=line, file=file)


def validate(raw: dict) -> Scenario:
    """Validate a raw scenario dict against the schema (arms are checked by `resolve`); raise
    ScenarioError naming the first bad YAML path."""
    raw = dict(raw)
    src = raw.pop("__source__", {}) or {}
    raw.pop("sweep", None)
    try:
        cfg = Scenario.model_validate(raw)
    except ValidationError as e:
        errs = e.errors()
        first = _format_error(errs[0], src.get("lines", {}), src.get("file"))
        if len(errs) > 1:
            others = "; ".join(str(_format_error(x, src.get("lines", {}), None)) for x in errs[1:4])
            raise ScenarioError(first.path, f"{first.detail} (also: {others})", first.line, first.file) from None
        raise first from None
    if cfg.effector == "cart" and cfg.product.type != "none":
        raise ScenarioError("product.type", f"the NK product preset '{cfg.product.type}' does not apply to effector: cart; "
                            "set product.type: none", line=src.get("lines", {}).get(("product", "type")), file=src.get("file"))
    if cfg.domain.space == "well_mixed":
        d = cfg.drugs
        used = [f"drugs.{k}.doses" for k in ("antibody", "anti_nkg2a", "anti_tigit", "anti_pd1", "chemo") if getattr(d, k).doses]
        used += ["effector"] if cfg.effector != "carnk" else []
        if used:
            raise ScenarioError(used[0], "well-mixed mode has no therapy layer (drugs, CAR-T arm); use domain.space: lattice",
                                line=src.get("lines", {}).get(tuple(used[0].split(".")[:2])), file=src.get("file"))
    return cfg


def apply_overrides(raw: dict, overrides: dict[str, Any]) -> dict:
    """Return a copy of `raw` with dotted-path overrides set; unknown paths raise ScenarioError."""
    out = copy.deepcopy({k: v for k, v in raw.items() if k != "__source__"})
    for dotted, value in overrides.items():
        keys = dotted.split(".")
        model: type[BaseModel] | None = Scenario
        node = out
        for i, key in enumerate(keys):
            if model is not None and key not in model.model_fields:
                close = difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.5)
                hint = f"; did you mean '{'.'.join(keys[:i] + [close[0]])}'?" if close else ""
                raise ScenarioError(dotted, f"unknown parameter path{hint}")
            sub = _model_for_path(model, (key,)) if model is not None else None
            if i == len(keys) - 1:
                node[key] = value
            else:
                node = node.setdefault(key, {})
                if not isinstance(node, dict):
                    raise ScenarioError(dotted, f"'{'.'.join(keys[: i + 1])}' is not a block")
            model = sub
    return out
