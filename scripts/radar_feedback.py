"""What the animator's corrections are worth: a simulated animator reviews the radar's groups.

The radar's pairs are 60–80 % right on text nobody here tuned on (README, radar), so the
animator corrects its groups. This script replays a territory's needs arriving in four
batches (a fixed shuffle: the sets list a group's needs together) and, after each batch, lets
a simulated animator review every group it has not reviewed yet, knowing the labelled
groups (a perfect reviewer, so the figures are a bound, not a forecast):

- *with separations* (this round: « Retirer » and « Écarter » write ``radar_apart``): in a
  group, the needs outside its largest labelled group are taken out one by one; a group
  with no two needs of one labelled group is set aside whole;
- *by key only* (before this round): a group holding any wrong need is set aside whole, by
  its key; it comes back as soon as its membership changes.

Printed per mode: the animator's actions, the wrong pairs shown to it over the four reviews,
and the groups it accepted at the end (precision and recall of their pairs: what it would
propose to the firms). Only development parts are read, never a sealed test part.
Usage: ``python scripts/radar_feedback.py [--no-kb] dev dev2 dev3 dev4 dev5``
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.radar_eval import SEALED, _item, _territories, part_path
from bot.services.radar import NeedItem, find_groups
from knowledge.retrieval import KnowledgeBase

BATCHES = 4
SEED = 7


@dataclass
class Tally:
    """What one mode of review cost and gave, summed over territories."""

    actions: int = 0
    wrong_shown: int = 0
    right_shown: int = 0
    accepted: set[tuple[str, int, int]] = field(default_factory=set)


def _pairs(territory: str, ids: tuple[int, ...]) -> set[tuple[str, int, int]]:
    """The pairs of a group, tagged with their territory."""
    return {(territory, a, b) for a, b in combinations(sorted(ids), 2)}


def _review(territory: str, rows: list[dict[str, Any]], kb: KnowledgeBase | None,
            sticky: bool, tally: Tally) -> None:
    """Replay one territory's needs in batches; the animator reviews the new groups each time."""
    label = {int(r["id"]): (str(r["group"]) if r.get("group") else f"#{r['id']}") for r in rows}
    order = list(rows)
    random.Random(SEED).shuffle(order)
    apart: set[tuple[int, int]] = set()
    dismissed: set[str] = set()
    reviewed: dict[str, tuple[int, ...]] = {}  # key -> members, accepted
    size = -(-len(order) // BATCHES)
    for step in range(1, BATCHES + 1):
        items: list[NeedItem] = [_item(territory, r) for r in order[: step * size]]
        shown = [g for g in find_groups(items, kb=kb, apart=sorted(apart))
                 if g.key not in dismissed and g.key not in reviewed]
        for group in shown:
            pairs = _pairs(territory, group.need_ids)
            right = {p for p in pairs if label[p[1]] == label[p[2]]}
            tally.right_shown += len(right)
            tally.wrong_shown += len(pairs) - len(right)
            counts = Counter(label[i] for i in group.need_ids)
            best, top = counts.most_common(1)[0]
            if sticky and top >= 2:
                keep = tuple(i for i in group.need_ids if label[i] == best)
                for out in (i for i in group.need_ids if label[i] != best):
                    tally.actions += 1
                    apart.update((min(out, o), max(out, o)) for o in group.need_ids if o != out)
                reviewed[group.key] = keep
            elif sticky:
                tally.actions += 1
                apart.update(combinations(sorted(group.need_ids), 2))
            elif len(right) == len(pairs):
                reviewed[group.key] = group.need_ids
            else:
                tally.actions += 1
                dismissed.add(group.key)
    # what stands accepted at the end: groups whose members are all still open together
    for members in reviewed.values():
        tally.accepted |= _pairs(territory, members)


def main() -> None:
    """Score each named development part under both modes of review."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="+")
    parser.add_argument("--no-kb", action="store_true")
    args = parser.parse_args()
    kb = None if args.no_kb else KnowledgeBase.load(None)
    for part in args.parts:
        if part in SEALED:
            raise SystemExit(f"{part} is sealed: it is scored once, by `relais radar eval`")
        data = yaml.safe_load(part_path(part).read_text(encoding="utf-8"))
        expected: set[tuple[str, int, int]] = set()
        tallies = {"separations": Tally(), "by key only": Tally()}
        for territory, rows in _territories(data):
            groups: dict[str, list[int]] = {}
            for r in rows:
                if r.get("group"):
                    groups.setdefault(str(r["group"]), []).append(int(r["id"]))
            for ids in groups.values():
                expected |= _pairs(territory, tuple(ids))
            for mode, tally in tallies.items():
                _review(territory, rows, kb, mode == "separations", tally)
        for mode, tally in tallies.items():
            right = len(tally.accepted & expected)
            precision = right / len(tally.accepted) if tally.accepted else 1.0
            print(f"[{part}] {mode:12} actions {tally.actions:3d} · pairs shown: "
                  f"wrong {tally.wrong_shown:3d}, right {tally.right_shown:3d} · accepted at "
                  f"the end: {len(tally.accepted):3d} pairs, precision {precision:.3f}, "
                  f"recall {right / len(expected):.3f}")


if __name__ == "__main__":
    main()
