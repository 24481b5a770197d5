"""How common a French word is (wordfreq's Zipf scale), on folded words.

A word's frequency in general French says how much it tells about a need: « semaine »,
« projet » or « machine » are everywhere, « décolleteuse » or « grenaillage » name one
thing. The table comes from the ``wordfreq`` package (data in its wheel, no download); it is
folded once (no accents, lower case), keeping the most frequent spelling, because firms type
« decoupe » as often as « découpe ».
"""

from __future__ import annotations

import math
import threading

from knowledge.text import fold

__all__ = ["zipf"]

_LOCK = threading.Lock()
# The accents of French words, folded by a table: folding 300,000 words one by one through
# Unicode normalisation would take seconds.
_ACCENTS = str.maketrans("àâäáãåçéèêëíìîïñóòôöõúùûüýÿ", "aaaaaaceeeeiiiinooooouuuuyy")


def _table() -> dict[str, float]:
    """Folded word -> highest frequency among its spellings (read once per process)."""
    from wordfreq import get_frequency_dict

    table: dict[str, float] = {}
    for word, freq in get_frequency_dict("fr", wordlist="best").items():
        key = word if word.isascii() else word.translate(_ACCENTS)
        if not key.isascii():
            key = fold(key)
        if freq > table.get(key, 0.0):
            table[key] = freq
    return table


_TABLE: dict[str, float] | None = None


def zipf(word: str) -> float:
    """Zipf frequency of a word in French (0 for a word never seen, ~7 for « de »)."""
    global _TABLE
    table = _TABLE
    if table is None:
        with _LOCK:  # the radar runs in worker threads: build the table once
            table = _TABLE
            if table is None:
                table = _TABLE = _table()
    found = table.get(word if word.isascii() else fold(word))
    return math.log10(found) + 9.0 if found else 0.0
