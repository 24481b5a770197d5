"""Shape of the labelled radar development sets (dev, dev2): the rules written at their top.

These tests read the data only; how well the radar scores on it is `relais radar eval`.
"""

from __future__ import annotations

import csv
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.radar_eval import part_path
from knowledge.geography import default_geography
from knowledge.taxonomy import THEME_KEYS

REFERENCE_NAME = "territoires-industrie-2023.csv"
# part -> base of its ids: territory k (1-based) holds base + k*1000 + n (dev2 was written
# as (10 + k - 1)*1000 + n, base 9000); the sealed test parts' shape is checked here, their
# score never
ID_BASE: dict[str, int] = {
    "dev": 0, "dev2": 9000, "dev4": 10000, "dev5": 40000, "dev6": 60000, "dev7": 90000,
    "test2": 20000, "test3": 30000, "test4": 50000, "test5": 70000, "test6": 80000,
    **{f"test{i}": 100000 + (i - 7) * 10000 for i in range(7, 32)},
}
DEV_PARTS = tuple(ID_BASE)
NEED_KEYS = {"id", "theme", "firm", "commune", "text", "group", "object"}


def _load(part: str) -> dict[str, Any]:
    """The parsed YAML of a development part."""
    return yaml.safe_load(part_path(part).read_text(encoding="utf-8"))


def _reference() -> Path | None:
    """The Territoires d'industrie table, when this machine has it."""
    candidates = [
        os.environ.get("RELAIS_TI_REFERENCE", ""),
        f"/work/shared/data/{REFERENCE_NAME}",
        str(Path(__file__).resolve().parents[2] / "shared" / "data" / REFERENCE_NAME),
    ]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


@pytest.mark.parametrize("part", DEV_PARTS)
def test_needs_are_well_formed(part: str) -> None:
    """Ids unique and in the territory's range, known theme keys, text, firm and commune."""
    data = _load(part)
    assert data["part"] == part
    seen: set[int] = set()
    for k, territory in enumerate(data["territories"], 1):
        low = ID_BASE[part] + k * 1000
        for need in territory["needs"]:
            assert set(need) <= NEED_KEYS, need["id"]
            assert need["id"] not in seen, need["id"]
            seen.add(need["id"])
            assert low < need["id"] < low + 1000, need["id"]
            assert need["theme"] in THEME_KEYS, need["id"]
            assert need["text"].strip() and need["firm"].strip() and need["commune"].strip()
            # object names a group; a need without a group stays alone and has none
            assert ("object" in need) == ("group" in need), need["id"]


@pytest.mark.parametrize("part", DEV_PARTS)
def test_groups_follow_the_rules(part: str) -> None:
    """A group: 2 to 6 needs of at least 2 firms, one object; 5 to 8 groups per territory."""
    for territory in _load(part)["territories"]:
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for need in territory["needs"]:
            if "group" in need:
                groups[need["group"]].append(need)
        assert 5 <= len(groups) <= 8, territory["territory"]
        for name, needs in groups.items():
            assert 2 <= len(needs) <= 6, name
            assert len({n["firm"] for n in needs}) >= 2, name
            assert len({n["object"] for n in needs}) == 1, name
        singles = sum(1 for n in territory["needs"] if "group" not in n)
        assert singles >= 0.3 * len(territory["needs"]), territory["territory"]


def test_dev2_size_and_territories() -> None:
    """dev2: at least 160 needs in 5 territories, none of them dev's."""
    dev2 = _load("dev2")["territories"]
    assert len(dev2) == 5
    assert sum(len(t["needs"]) for t in dev2) >= 160
    dev = {t["territory"] for t in _load("dev")["territories"]}
    assert not dev & {t["territory"] for t in dev2}


def test_dev2_objects_differ_from_dev() -> None:
    """dev2 shares no object with dev: the radar must learn objects, not this list."""
    objects = [{n["object"] for t in _load(p)["territories"] for n in t["needs"] if "object" in n}
               for p in ("dev", "dev2")]
    assert not objects[0] & objects[1]


# not dev: five of its needs sit in communes outside their territory (Le Mené in ti-5301,
# Saint-Blimont in ti-2809); the lead decides whether to move them
@pytest.mark.parametrize("part", [p for p in DEV_PARTS if p != "dev"])
def test_real_territories_and_communes(part: str) -> None:
    """Each territory is a real one, each commune a member of one of its EPCI."""
    path = _reference()
    if path is None:
        pytest.skip(f"{REFERENCE_NAME} not available")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    names = {row["id_ti"]: row["lib_ti"] for row in rows}
    sirens: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        sirens[row["id_ti"]].add(row["siren_groupement"])
    geo = default_geography()
    for territory in _load(part)["territories"]:
        ti = territory["territory"]
        assert names[ti] == territory["name"], ti
        for need in territory["needs"]:
            epcis = {c.epci_siren for c in geo.named(need["commune"])}
            assert epcis & sirens[ti], (need["id"], need["commune"])
