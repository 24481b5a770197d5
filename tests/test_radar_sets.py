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
# part -> first id of territory k (1-based): dev uses k*1000+n, dev2 (10+k-1)*1000+n, dev4
# 10000+k*1000+n
ID_BASE = {"dev": lambda k: k * 1000, "dev2": lambda k: (10 + k - 1) * 1000,
           "dev4": lambda k: 10000 + k * 1000, "dev5": lambda k: 40000 + k * 1000,
           "dev6": lambda k: 60000 + k * 1000, "dev7": lambda k: 90000 + k * 1000,
           # the sealed test parts: their shape is checked, their score never here
           "test2": lambda k: 20000 + k * 1000, "test3": lambda k: 30000 + k * 1000,
           "test4": lambda k: 50000 + k * 1000, "test5": lambda k: 70000 + k * 1000,
           "test6": lambda k: 80000 + k * 1000, "test7": lambda k: 100000 + k * 1000,
           "test8": lambda k: 110000 + k * 1000, "test9": lambda k: 120000 + k * 1000,
           "test10": lambda k: 130000 + k * 1000, "test11": lambda k: 140000 + k * 1000,
           "test12": lambda k: 150000 + k * 1000, "test13": lambda k: 160000 + k * 1000,
           "test14": lambda k: 170000 + k * 1000, "test15": lambda k: 180000 + k * 1000,
           "test16": lambda k: 190000 + k * 1000, "test17": lambda k: 200000 + k * 1000,
           "test18": lambda k: 210000 + k * 1000, "test19": lambda k: 220000 + k * 1000,
           "test20": lambda k: 230000 + k * 1000, "test21": lambda k: 240000 + k * 1000,
           "test22": lambda k: 250000 + k * 1000, "test23": lambda k: 260000 + k * 1000,
           "test24": lambda k: 270000 + k * 1000}
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
        low = ID_BASE[part](k)
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
@pytest.mark.parametrize("part", ["dev2", "dev4", "dev5", "dev6", "dev7", "test2", "test3",
                                  "test4", "test5", "test6", "test7", "test8", "test9",
                                  "test10", "test11", "test12", "test13", "test14",
                                  "test15", "test16", "test17", "test18", "test19",
                                  "test20", "test21", "test22", "test23", "test24"])
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
