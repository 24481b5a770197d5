"""Cleaning what people typed before it reaches an email, a header or a calendar.

Control characters and bidirectional overrides are dropped, and line breaks are kept only
where a block of text allows them. Used by `emails` and `ics` alike, so neither has to
import the other for it.
"""

from __future__ import annotations

import re

__all__ = ["CONTROLS", "LINE_BREAKS", "LINE_LIMIT", "TEXT_LIMIT", "one_line", "text_block",
           "truncate"]

LINE_LIMIT = 300
TEXT_LIMIT = 5000

# Characters that reorder what is displayed ("Trojan Source"): a firm could make a line
# read differently from what it contains. Lone surrogates cannot even be encoded.
_DROPPED = {
    **dict.fromkeys(
        map(ord, "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    ),
    **dict.fromkeys(range(0xD800, 0xE000)),
}
# Everything str.splitlines() treats as a line break, not only CR and LF.
LINE_BREAKS = re.compile(r"\r\n|[\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
# Unicode category Cc is exactly these two ranges.
CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROLS_BUT_LF = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")
_BLANK_RUNS = re.compile(r"\n{3,}")


def one_line(value: object, limit: int = LINE_LIMIT) -> str:
    """Text safe for a header or a single line: no control characters, spaces collapsed."""
    text = CONTROLS.sub(" ", LINE_BREAKS.sub(" ", str(value).translate(_DROPPED)))
    return truncate(" ".join(text.split()), limit)


def text_block(value: object, limit: int = TEXT_LIMIT) -> str:
    """Multi-line text safe for a body: only LF line breaks, no other control characters."""
    text = LINE_BREAKS.sub("\n", str(value).translate(_DROPPED)).replace("\t", "    ")
    text = "\n".join(line.rstrip() for line in _CONTROLS_BUT_LF.sub("", text).split("\n"))
    return truncate(_BLANK_RUNS.sub("\n\n", text).strip("\n"), limit)


def truncate(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
