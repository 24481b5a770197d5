"""Tell small talk (greetings, thanks, « ok », goodbyes) from questions for the cards.

A message is small talk when every word of it belongs to a politeness expression of
``knowledge/data/small_talk.yaml`` or to its short list of accompanying words, with at least
one expression: « Merci pour votre réponse, bonne journée ! » is, « Bonjour, une aide pour
recruter ? » is not (it is a question, for the cards). Pure data and string work: the
answer a person reads is chosen by the caller, from the kind returned here.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from knowledge.text import DATA_DIR, fold

__all__ = ["SMALL_TALK_FILE", "SMALL_TALK_KINDS", "SmallTalk", "small_talk"]

SMALL_TALK_FILE = DATA_DIR / "small_talk.yaml"
# The kinds, in the order of priority of the answer when a message mixes several.
SMALL_TALK_KINDS: tuple[str, ...] = (
    "goodbye", "thanks", "how_are_you", "who_are_you", "greeting", "ack",
)
MAX_WORDS = 15  # a longer message is never only politeness
# Letters and digits make words; any other visible character is a symbol (emoji...) or
# punctuation, told apart by its Unicode category.
_TOKEN = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")
# Emoji variation selectors, skin tones and joiners do not change what an emoji says.
_EMOJI_MODIFIERS = re.compile("[\ufe0e\ufe0f\u200d\U0001f3fb-\U0001f3ff]")
# Letters typed several times (« merciiii », « okkk ») are read once, on both sides.
_REPEATS = re.compile(r"([a-z])\1+")


def _tokens(text: str) -> list[str]:
    """Folded words and symbols; punctuation dropped, apostrophes and hyphens split words."""
    folded = _EMOJI_MODIFIERS.sub("", fold(text))
    out: list[str] = []
    for tok in _TOKEN.findall(folded):
        if tok[0].isalnum():
            out.append(_REPEATS.sub(r"\1", tok))
        elif unicodedata.category(tok)[0] == "S":
            out.append(tok)
    return out


def _is_symbol(token: str) -> bool:
    """Whether a token is a symbol (emoji, pictograph) rather than a word."""
    return len(token) == 1 and not token.isalnum() and unicodedata.category(token)[0] == "S"


@dataclass(frozen=True)
class SmallTalk:
    """Compiled politeness expressions (by kind) and their accompanying words."""

    phrases: dict[tuple[str, ...], str]  # expression as tokens -> kind
    filler: frozenset[str]
    longest: int

    @classmethod
    def from_file(cls, path: Path = SMALL_TALK_FILE) -> SmallTalk:
        """Read the expressions from the YAML data file."""
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        phrases: dict[tuple[str, ...], str] = {}
        kinds = data.get("kinds") or {}
        for kind in SMALL_TALK_KINDS:
            for phrase in kinds.get(kind) or ():
                key = tuple(_tokens(str(phrase)))
                if key:
                    phrases.setdefault(key, kind)  # the first kind (by priority) wins
        filler = frozenset(t for w in data.get("filler") or () for t in _tokens(str(w)))
        return cls(phrases, filler, max((len(k) for k in phrases), default=1))

    def kind(self, text: str) -> str | None:
        """The kind of small talk a message is, or None when it says anything else."""
        tokens = _tokens(text)
        if not tokens or len(tokens) > MAX_WORDS:
            return None
        found: set[str] = set()
        i = 0
        while i < len(tokens):
            for size in range(min(self.longest, len(tokens) - i), 0, -1):
                kind = self.phrases.get(tuple(tokens[i : i + size]))
                if kind is not None:
                    found.add(kind)
                    i += size
                    break
            else:
                token = tokens[i]
                if token not in self.filler and not _is_symbol(token):
                    return None  # a word that asks for something: not small talk
                i += 1
        if not found:
            # only emoji (« 🚀 ») is a nod; only accompanying words (« pour votre ») is not
            return "ack" if all(_is_symbol(t) for t in tokens) else None
        return next(k for k in SMALL_TALK_KINDS if k in found)


@cache
def _default() -> SmallTalk:
    """The shipped expressions, loaded once."""
    return SmallTalk.from_file()


def small_talk(text: str) -> str | None:
    """The kind of small talk of a message (``greeting``, ``thanks``…), or None."""
    return _default().kind(text)
