"""The parameter table (docs/parameters.md, `nksim params`), generated from the schema."""
from __future__ import annotations


from pydantic import BaseModel

from .base import dotted_get
from .presets import preset_tables_markdown
from .scenario import Scenario


def parameter_rows(model: type[BaseModel] = Scenario, prefix: str = "") -> list[dict]:
    """Every leaf parameter: dotted path, default, unit, bounds, source and description."""
    rows = []
    inst = model()
    for name, f in model.model_fields.items():
        path = f"{prefix}{name}"
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            default = getattr(inst, name)
            for r in parameter_rows(type(default), path + "."):
                if "[]" not in r["path"]:  # list items keep their own block defaults
                    r["default"] = dotted_get(default, r["path"][len(path) + 1 :])
                rows.append(r)
            continue
        extra = f.json_schema_extra or {}
        ops = {"Ge": "≥", "Gt": ">", "Le": "≤", "Lt": "<"}
        bounds = [f"{ops[type(m).__name__]} {getattr(m, type(m).__name__.lower())}" for m in f.metadata if type(m).__name__ in ops]
        item = (getattr(ann, "__args__", None) or (None,))[0] if getattr(ann, "__origin__", None) is list else None
        if isinstance(item, type) and issubclass(item, BaseModel):  # list of blocks: document one item's keys
            rows.append({"path": path, "default": getattr(inst, name), "unit": "-", "bounds": "", "declared": True,
                         "source": "scenario input (list; item keys below)", "description": f.description or ""})
            rows.extend(parameter_rows(item, path + "[]."))
            continue
        rows.append(
            {
                "path": path,
                "default": getattr(inst, name),
                "unit": extra.get("unit", "-"),
                "bounds": ", ".join(bounds),
                "source": extra.get("source", "-"),
                "description": f.description or "",
                "declared": "unit" in extra and "source" in extra,
            }
        )
    return rows


def parameter_table_markdown() -> str:
    """The documented parameter table, generated from the schema."""
    out = [
        "# Parameter table",
        "",
        "Generated from the schema in `sim/scenario/` by `nksim params` — do not edit by hand.",
        "Every default is in physical units; the source is a paper (by short name: see docs/references.md) or \"assumed\".",
        "",
        "| parameter | default | unit | bounds | source | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for r in parameter_rows():
        out.append(f"| `{r['path']}` | {r['default']} | {r['unit']} | {r['bounds']} | {r['source']} | {r['description']} |")
    return "\n".join(out) + "\n" + preset_tables_markdown()
