"""Meeting dates as animators type them: the evaluation tables, development and test parts.

knowledge/eval/when_dev.yaml is the part the reading rules were tuned on; when_test.yaml was
written first and left alone until the end. Both must be ≥ 90 % understood with 0 wrong:
a refusal where a date was meant costs a question, a wrong date costs a meeting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from bot.services.when import When, parse_when

EVAL = Path(__file__).resolve().parent.parent / "knowledge" / "eval"


@dataclass
class Score:
    """Outcomes over one table: right date, right refusal, refused, wrong."""

    right: int = 0
    asked: int = 0
    refused: int = 0
    wrong: list[str] = field(default_factory=list)

    @property
    def understood(self) -> float:
        total = self.right + self.asked + self.refused + len(self.wrong)
        return (self.right + self.asked) / total


def score(doc: dict[str, Any]) -> Score:
    """Read every item of a table and compare with what was meant."""
    tz = ZoneInfo(doc["timezone"])
    result = Score()
    for item in doc["items"]:
        now = datetime.strptime(item.get("now", doc["now"]), "%Y-%m-%d %H:%M").replace(tzinfo=tz)
        read = parse_when(item["text"], now=now, tz=tz)
        if item.get("ask"):
            if isinstance(read, When):
                result.wrong.append(f"{item['text']!r}: read {read.start} instead of asking")
            else:
                result.asked += 1
        elif not isinstance(read, When):
            result.refused += 1
        else:
            got = (read.start.strftime("%Y-%m-%d %H:%M"), read.minutes, read.approximate)
            meant = (item["start"], item.get("minutes"), bool(item.get("approx")))
            if got == meant:
                result.right += 1
            else:
                result.wrong.append(f"{item['text']!r}: read {got}, meant {meant}")
    return result


@pytest.mark.parametrize("part", ["dev", "test"])
def test_dates_as_animators_type_them(part: str) -> None:
    doc = yaml.safe_load((EVAL / f"when_{part}.yaml").read_text(encoding="utf-8"))
    assert len(doc["items"]) >= 150
    result = score(doc)
    assert result.wrong == []
    assert result.understood >= 0.9, result


def test_the_parts_share_no_expression() -> None:
    dev, test = (
        yaml.safe_load((EVAL / f"when_{part}.yaml").read_text(encoding="utf-8"))
        for part in ("dev", "test")
    )
    shared = {(i["text"], i.get("now")) for i in dev["items"]} & {
        (i["text"], i.get("now")) for i in test["items"]
    }
    assert not shared
