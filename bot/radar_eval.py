"""`relais radar eval`: pair precision and recall of the radar on a labelled set."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import yaml

from bot.services.radar import NeedItem, find_groups
from knowledge.retrieval import KnowledgeBase

__all__ = ["RADAR_SET", "RadarScore", "evaluate"]

RADAR_SET = Path(__file__).resolve().parent.parent / "knowledge" / "eval" / "radar_needs.yaml"


@dataclass(frozen=True, slots=True)
class RadarScore:
    """Pairs of needs the radar put together, against the labelled pairs."""

    needs: int
    expected_pairs: int
    found_pairs: int
    true_pairs: int

    @property
    def precision(self) -> float:
        """Share of the pairs found that were expected (1.0 when nothing was found)."""
        return self.true_pairs / self.found_pairs if self.found_pairs else 1.0

    @property
    def recall(self) -> float:
        """Share of the expected pairs that were found."""
        return self.true_pairs / self.expected_pairs if self.expected_pairs else 1.0


def _pairs(groups: list[list[int]]) -> set[tuple[int, int]]:
    return {(a, b) for group in groups for a, b in combinations(sorted(group), 2)}


def evaluate(path: Path = RADAR_SET, *, kb: KnowledgeBase | None = None) -> RadarScore:
    """Run the radar on a labelled file (`needs:` with an optional `group:` each)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    items, labelled = [], {}
    for row in data["needs"]:
        items.append(NeedItem(need_id=int(row["id"]), reference=str(row["reference"]),
                              theme=str(row["theme"]), text=str(row["text"]),
                              firm=str(row.get("firm") or ""), commune=row.get("commune")))
        if row.get("group"):
            labelled.setdefault(str(row["group"]), []).append(int(row["id"]))
    expected = _pairs(list(labelled.values()))
    found = _pairs([list(g.need_ids) for g in find_groups(items, kb=kb)])
    return RadarScore(needs=len(items), expected_pairs=len(expected), found_pairs=len(found),
                      true_pairs=len(expected & found))
