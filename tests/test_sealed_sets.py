"""The sealed evaluation sets are well formed: they load, ids are unique, labels are valid.

Only the shape is checked here, never a score: the radar test part and the sealed
near-domain questions are measured once, at the end (see their headers).
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from knowledge.geography import default_geography

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "knowledge" / "eval"
RADAR_TEST = EVAL / "radar" / "test.yaml"
NEAR_SEALED = EVAL / "questions_neardomain_sealed.yaml"
# The Territoires d'industrie list, where tests/test_geography.py looks for it too.
TERRITORIES_CSV = Path(
    os.environ.get("RELAIS_TI_REFERENCE") or "/work/shared/data/territoires-industrie-2023.csv"
)
THEMES = {
    "recrutement", "competences", "foncier", "innovation", "transition",
    "financement", "mutualisation", "export", "autre",
}
VOICES = {"sms", "formal", "long", "rambling", "regional", "plain"}


def _radar() -> dict[str, Any]:
    """The radar test part as loaded by YAML."""
    return yaml.safe_load(RADAR_TEST.read_text(encoding="utf-8"))


def test_radar_test_part_is_well_formed() -> None:
    """Ids unique and in their territory's range; each group joins 2 to 6 different firms."""
    data = _radar()
    assert data["part"] == "test"
    territories = data["territories"]
    assert len(territories) >= 5
    seen: set[int] = set()
    total = 0
    for k, territory in enumerate(territories, start=1):
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for need in territory["needs"]:
            assert need["id"] not in seen, need["id"]
            seen.add(need["id"])
            assert (4 + k) * 1000 < need["id"] < (5 + k) * 1000, need["id"]
            assert need["theme"] in THEMES, need
            assert need["firm"] and need["commune"] and need["text"], need
            if "group" in need:
                assert need.get("object"), need
                groups[need["group"]].append(need)
        for name, members in groups.items():
            firms = {m["firm"] for m in members}
            assert 2 <= len(members) <= 6 and len(firms) == len(members), name
            assert len({m["object"] for m in members}) == 1, name
        total += len(territory["needs"])
    assert total >= 150


@pytest.mark.skipif(not TERRITORIES_CSV.exists(), reason="territory list not on this machine")
def test_radar_test_communes_belong_to_their_territory() -> None:
    """Every commune is a real commune of one of the territory's member groupings."""
    members: dict[str, set[str]] = defaultdict(set)
    with TERRITORIES_CSV.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            members[row["id_ti"]].add(row["siren_groupement"])
    geo = default_geography()
    for territory in _radar()["territories"]:
        for need in territory["needs"]:
            sirens = {c.epci_siren for c in geo.named(need["commune"])}
            assert sirens & members[territory["territory"]], (territory["territory"], need["commune"])


def test_sealed_neardomain_set_is_well_formed() -> None:
    """Labels name existing cards, « none » or « small_talk », in the documented format."""
    data = yaml.safe_load(NEAR_SEALED.read_text(encoding="utf-8"))
    assert data["set"] == "neardomain" and data["part"] == "sealed"
    cards = {path.stem for path in (ROOT / "knowledge" / "cards").glob("*.md")}
    items = data["items"]
    assert len(items) >= 70
    assert len({item["q"] for item in items}) == len(items)
    for item in items:
        assert set(item) == {"q", "expected", "set", "voice"}, item
        assert item["voice"] in VOICES, item
        expected = item["expected"]
        if item["set"] == "neardomain":
            assert expected == "none", item
        elif item["set"] == "small_talk":
            assert expected == "small_talk", item
        else:
            assert item["set"] == "inscope", item
            assert expected and set(expected) <= cards, item
