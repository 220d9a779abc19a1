"""Every parameter source resolves to a shipped reference, and docs/references.md is current."""
from __future__ import annotations

from pathlib import Path

from sim.scenario.references import all_sources, citations, references, references_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_every_cited_source_has_a_reference_entry():
    """A source note that cites "Author YEAR" (or a PMC id) must name an entry of sim/data/references.yaml."""
    refs = references()
    missing = sorted({c for s in all_sources() for c in citations(s) if c not in refs})
    assert not missing, f"add these to sim/data/references.yaml: {missing}"


def test_entries_are_complete():
    """Each entry has a citation and a DOI or a stated absence of one (a PubMed id, or software)."""
    for key, r in references().items():
        assert r.get("cite"), key
        assert "doi" in r, key
        if r["doi"]:
            assert r["doi"].startswith("10.") and "doi_checked" in r, key


def test_citation_pattern():
    """The pattern finds author-year names, with particles, and PMC ids, and not drug codes."""
    assert citations("Zhang 2007 (t½ < 10 days); de Pillis 2005 uses n = 2") == ["Zhang 2007", "de Pillis 2005"]
    assert citations("iCasp9 + AP1903 (Di Stasi 2011), PMC4543232") == ["Di Stasi 2011", "PMC4543232"]


def test_references_page_is_generated():
    assert (ROOT / "docs" / "references.md").read_text(encoding="utf-8") == references_markdown(), \
        "run: nksim params --references --out docs/references.md"
