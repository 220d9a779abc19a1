"""The literature behind the parameter sources, shipped as package data (sim/data/references.yaml).

Every "Author YEAR" (and PMC id) in a parameter source names an entry here; `references_markdown()`
renders docs/references.md (`nksim params --references`), and tests/test_references.py checks both.
"""
from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

import yaml

#: a citation in a source note: "Zhang 2007", "de Pillis 2005", "Di Stasi 2011", or a PubMed Central id
CITATION = re.compile(r"\b((?:de |Di )?[A-Z][A-Za-z\-]+ (?:19|20)\d{2})\b|\b(PMC\d+)\b")


@lru_cache(maxsize=1)
def references() -> dict[str, dict]:
    """Short name → {cite, doi, doi_checked, pmid}."""
    text = resources.files("sim.data").joinpath("references.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def citations(source: str) -> list[str]:
    """The short names a source note cites (in order of appearance)."""
    return [m.group(1) or m.group(2) for m in CITATION.finditer(source)]


def all_sources() -> list[str]:
    """Every source note of the parameter table: schema defaults and preset values."""
    from .presets import COSTIM, PRODUCTS
    from .table import parameter_rows

    out = [r["source"] for r in parameter_rows()]
    for table in (PRODUCTS, COSTIM):
        for preset in table.values():
            out += [v.source for _, v in preset if hasattr(v, "source")]
    return out


def references_markdown() -> str:
    """docs/references.md: every entry with its DOI (or PubMed id) and whether the DOI was checked."""
    out = ["# References", "",
           "Generated from `sim/data/references.yaml` by `nksim params --references` — do not edit by hand.",
           "The parameter table (docs/parameters.md) cites these by short name. A DOI marked *unchecked* was",
           "written from the citation and not yet confirmed against the publisher's record.", "",
           "| short name | reference | DOI / id |", "|---|---|---|"]
    for key, r in sorted(references().items(), key=lambda kv: kv[0].lower()):
        if r.get("doi"):
            ident = f"[{r['doi']}](https://doi.org/{r['doi']})" + ("" if r.get("doi_checked") else " *unchecked*")
        elif r.get("pmid"):
            ident = f"PMID {r['pmid']}"
        else:
            ident = "-"
        out.append(f"| {key} | {r['cite']} | {ident} |")
    return "\n".join(out) + "\n"
