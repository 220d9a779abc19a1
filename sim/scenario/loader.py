"""Loading scenarios: YAML → raw dict (with line numbers), dotted-path overrides, and validation with
errors that name the file, line, dotted path and fix."""
from __future__ import annotations

import copy
import difflib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from .base import MAX_ALIASES, MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, ScenarioError, check_int, check_real
from .scenario import Scenario


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with the limits that keep a bad file cheap to refuse: nesting depth and
    alias uses are counted while composing (before any recursion gets deep), and ``1e6`` is a float
    (YAML 1.2; PyYAML's 1.1 rules read it, and ``1.0e6``, as text)."""

    def __init__(self, text: str):
        super().__init__(text)
        self.depth, self.aliases = 0, 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _Refused(f"more than {MAX_ALIASES} alias uses (*name); write the values out or use fewer aliases",
                               self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Refused(f"nested more than {MAX_DEPTH} levels deep; scenarios need about 6", self.peek_event().start_mark.line + 1)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


class _Refused(Exception):
    def __init__(self, message: str, line: int | None = None, path: str = ""):
        super().__init__(message)
        self.message, self.line, self.path = message, line, path


#: What PyYAML's reader refuses (C0/C1 controls except tab/newline/CR/NEL, surrogates, U+FFFE/F).
_NON_PRINTABLE = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _Refused(f"not valid UTF-8 (byte 0x{data[e.start]:02x}); save the file as UTF-8",
                       data[: e.start].count(b"\n") + 1) from None
    text = text.removeprefix("\ufeff")
    m = _NON_PRINTABLE.search(text)
    if m:
        ch = m.group()
        name = "NUL" if ch == "\x00" else f"U+{ord(ch):04X}"
        raise _Refused(f"control character {name} is not allowed in a scenario file; remove it", text[: m.start()].count("\n") + 1)
    return text


def _check_graph(root: yaml.Node) -> None:
    """Refuse alias cycles and documents whose alias expansion exceeds MAX_NODES nodes or MAX_DEPTH levels.

    Iterative and memoised per node, so an alias bomb costs its composed size, not its expansion."""
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, expanded depth)
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, exiting = stack.pop()
        key = id(node)
        kids = ([x for kv in node.value for x in kv] if isinstance(node, yaml.MappingNode)
                else list(node.value) if isinstance(node, yaml.SequenceNode) else [])
        if exiting:
            active.discard(key)
            size = 1 + sum(done[id(k)][0] for k in kids)
            depth = 1 + max((done[id(k)][1] for k in kids), default=0)
            if size > MAX_NODES:
                raise _Refused(f"expands to more than {MAX_NODES} YAML nodes (aliases repeat their anchors' content); "
                               "write a smaller document or fewer aliases", node.start_mark.line + 1)
            if depth > MAX_DEPTH:
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep once aliases are expanded", node.start_mark.line + 1)
            done[key] = (size, depth)
            continue
        if key in done:
            continue
        if key in active:
            raise _Refused("recursive alias (an anchor used inside itself); remove the alias", node.start_mark.line + 1)
        active.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in kids if id(k) not in done)


def _walk_nodes(root: yaml.Node) -> dict[tuple, int]:
    """Map each key path to its 1-based line; refuse duplicate and non-string keys (naming both lines)."""
    lines: dict[tuple, int] = {}
    stack: list[tuple[yaml.Node, tuple]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for k, v in node.value:
                line = k.start_mark.line + 1
                if k.tag == "tag:yaml.org,2002:merge":
                    stack.append((v, path))
                    continue
                if not isinstance(k, yaml.ScalarNode) or k.tag != "tag:yaml.org,2002:str":
                    shown = (repr(k.value[:40]) if isinstance(k, yaml.ScalarNode)
                             else "(a list)" if isinstance(k, yaml.SequenceNode) else "(a mapping)")
                    raise _Refused(f"the key {shown} is not a name; keys must be strings (YAML reads on/off/yes/no, "
                                   "null and numbers as other types: quote the key)", line, _dotted(path))
                if k.value in seen:
                    raise _Refused(f"duplicate key '{k.value}' (first given on line {seen[k.value]}); remove one of them",
                                   line, _dotted(path + (k.value,)))
                seen[k.value] = line
                lines[path + (k.value,)] = line
                stack.append((v, path + (k.value,)))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                lines[path + (i,)] = v.start_mark.line + 1
                stack.append((v, path + (i,)))
    return lines


def _dotted(path: tuple) -> str:
    return ".".join(str(x) for x in path)


def _check_numbers(data: Any, lines: dict[tuple, int]) -> None:
    """Every real number in the document is finite and within MAX_MAGNITUDE; every int fits 64 bits."""
    stack: list[tuple[Any, tuple]] = [(data, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            stack.extend((v, path + (k,)) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, path + (i,)) for i, v in enumerate(node))
        elif isinstance(node, bool):
            continue
        elif isinstance(node, (int, float)):
            try:
                check_real(node) if isinstance(node, float) else check_int(node)
            except PydanticCustomError as e:
                raise _Refused(e.message(), lines.get(path), _dotted(path)) from None


def _parse(text: str) -> tuple[Any, dict[tuple, int]]:
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, {}
        _check_graph(root)
        lines = _walk_nodes(root)
        data = loader.construct_document(root)
    finally:
        loader.dispose()
    _check_numbers(data, lines)
    return data, lines


def _yaml_problem(e: yaml.YAMLError) -> tuple[str, int | None]:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    parts = [getattr(e, "context", None), getattr(e, "problem", None)]
    text = ", ".join(str(p) for p in parts if p) or str(e)
    return text, (mark.line + 1 if mark else None)


def load_raw(path: str | Path) -> dict:
    """Read a scenario YAML into a plain dict; ScenarioError on a missing, oversized, empty or bad file.

    Limits (sim/scenario/base.py): MAX_FILE_BYTES checked before reading, UTF-8 without control
    characters, MAX_DEPTH nesting, MAX_ALIASES alias uses and MAX_NODES nodes after expansion,
    unique string keys, finite numbers within MAX_MAGNITUDE."""
    p = Path(path)
    if not p.is_file():
        raise ScenarioError("", f"scenario file not found: {p} (check the path)")
    size = p.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ScenarioError("", f"the file has {size} bytes; scenario files are limited to {MAX_FILE_BYTES} bytes (1 MiB) "
                            "(scenarios are a few kB: generate sweeps with a sweep: block instead)", file=str(p))
    with open(p, "rb") as fh:
        data = fh.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ScenarioError("", f"the file is larger than {MAX_FILE_BYTES / 2**20:g} MiB, the limit for scenario files", file=str(p))
    try:
        raw, lines = _parse(_decode(data))
    except _Refused as e:
        raise ScenarioError(e.path, e.message, line=e.line, file=str(p)) from None
    except yaml.YAMLError as e:
        problem, line = _yaml_problem(e)
        raise ScenarioError("", f"malformed YAML: {problem} (fix the indentation or quoting)", line=line, file=str(p)) from None
    if raw is None:
        raise ScenarioError("", "the file is empty; a scenario is a mapping of blocks (name:, tumor:, nk:, ...); "
                            "write {} to run every default", file=str(p))
    if not isinstance(raw, dict):
        raise ScenarioError("", "the top level must be a mapping of blocks (name:, tumor:, nk:, ...)", line=1, file=str(p))
    raw["__source__"] = {"file": str(p), "lines": lines}
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


def error_message(err: dict, loc: tuple, parent: type[BaseModel] | None) -> str:
    """The one wording of a pydantic error for users (scenarios, sweeps, cohorts): the fix, not the jargon.

    `parent` is the block that holds the offending key (for "did you mean" and the unit)."""
    typ, msg = err["type"], err["msg"]
    if typ == "extra_forbidden":
        options = list(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), options, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else (f"; allowed keys: {', '.join(options)}" if options else "")
        return f"unknown key '{loc[-1]}'{hint}"
    if typ == "missing":
        return f"required key '{loc[-1]}' is missing"
    if typ in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        f = parent.model_fields.get(str(loc[-1])) if parent else None
        unit = (f.json_schema_extra or {}).get("unit") if f is not None else None
        return f"{msg} (got {err.get('input')!r}{f' {unit}' if unit and unit != '-' else ''}); set a value in the allowed range"
    if typ.startswith("number_") or typ in ("int_fraction", "unsafe_name"):
        return msg  # sim/scenario/base.py wrote the whole message
    if typ == "value_error":
        return msg.removeprefix("Value error, ")
    if "type" in typ or typ.endswith("_parsing") or typ == "literal_error":
        return f"{msg} (got {err.get('input')!r})"
    return msg


def _format_error(err: dict, lines: dict, file: str | None) -> ScenarioError:
    """Turn one pydantic error into a ScenarioError naming the dotted path, line and fix."""
    loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x.startswith("function-")))
    dotted = ".".join(str(x) for x in loc)
    msg = error_message(err, loc, _model_for_path(Scenario, loc[:-1]))
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
