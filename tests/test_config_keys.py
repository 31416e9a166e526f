"""docs/config_keys.md is generated from the code's key tables, and cannot fall behind them."""

import ppnas  # noqa: F401  # isort: skip
import pytest
from conftest import ROOT

from ppnas.keyref import SECTIONS, Section, render, section_rows


def test_the_page_is_what_the_code_generates():
    assert (ROOT / "docs" / "config_keys.md").read_text(encoding="utf-8") == render(), (
        "docs/config_keys.md is stale: run python tools/config_keys.py"
    )


def test_every_key_of_every_table_is_described_and_no_description_outlives_its_key():
    described = {section.title: {key for key, *_ in section_rows(section)} for section in SECTIONS}
    assert {"search_steps", "server_port"} <= described["Detection search"] and "SLIM.NAS_KEY" in described[
        "Segmentation search"
    ]
    assert "LUT.table_file" in described["FBNet Search, Retrain and LUT blocks"]
    assert described["Controller server"] == {
        "--beat_timeout",
        "--lease_seconds",
        "--linger_seconds",
        "--request_timeout",
    }
    fbnet = next(s for s in SECTIONS if s.title.startswith("FBNet Search"))
    grown = Section(fbnet.title, fbnet.where, {**fbnet.table, "Search.new_key": 1}, fbnet.docs)
    with pytest.raises(KeyError, match=r"undocumented keys \['Search.new_key'\]"):
        section_rows(grown)
    shrunk = Section(fbnet.title, fbnet.where, {k: v for k, v in fbnet.table.items() if k != "Search.lr"}, fbnet.docs)
    with pytest.raises(KeyError, match=r"documented keys the code lacks \['Search.lr'\]"):
        section_rows(shrunk)
