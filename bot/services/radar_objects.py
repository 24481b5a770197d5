"""What a need is about, for the radar: the objects one collective action would serve.

The curated lexicon ``knowledge/data/radar_objects.yaml`` names objects (a trade to hire or
train, a machine to share, land, a shuttle, an energy or waste flow, a market, housing,
childcare) with the words and periphrases firms use for them (« cariste », « conducteur de
chariot », « Fenwick », « CACES 3 »). A text is folded, SMS abbreviations are expanded and
each word is stemmed (Snowball), so plurals and accents do not matter; terms are matched on
those stems, the longest first, so that « robot de peinture » is not « peinture » and
« électricien de maintenance » is not « électricien du bâtiment ».

Besides the objects, a text says what the firm wants to do (hire, train, share) and whether
the matter is its own (own financing, permit, crisis, R&D, succession): such a need is never
poolable, unless the text also asks for doing it with others.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from knowledge.text import PHRASE_KEPT, default_lexicon, stem, words

__all__ = ["OBJECTS_FILE", "ObjectLexicon", "RadarObject", "TextObjects", "object_lexicon"]

OBJECTS_FILE = Path(__file__).resolve().parents[2] / "knowledge" / "data" / "radar_objects.yaml"

# An object mentioned beside the one the firm is after weighs this much (a cariste « pour
# notre entrepôt » is about the cariste).
SECONDARY_WEIGHT = 0.25
# Objects that say little on their own (export in general, waste in general): half weight.
GENERIC_OBJECTS: frozenset[str] = frozenset(
    {"export_salon", "dechets", "energie", "horlogerie"})
GENERIC_WEIGHT = 0.5
# Kinds a firm hires or trains for; the others are things to share.
PEOPLE_KINDS: frozenset[str] = frozenset({"trade", "service"})
_IGNORE = ""  # phrase target that consumes words without naming an object


@dataclass(frozen=True, slots=True)
class RadarObject:
    """One object of the lexicon."""

    id: str
    kind: str
    label: str


@dataclass(frozen=True, slots=True)
class TextObjects:
    """What one text is about: objects with their weights, actions, own matter."""

    objects: tuple[tuple[str, float], ...]  # (object id, weight), sorted by id
    actions: frozenset[str]  # hire, train, share
    own: bool  # a firm's own matter, never poolable


def _stems(text: str, *, keep_stops: bool) -> list[str]:
    """Stems of a text's words, SMS abbreviations expanded; stop words dropped unless asked."""
    every, salient = _both_stems(text)
    return every if keep_stops else salient


def _both_stems(text: str) -> tuple[list[str], list[str]]:
    """Stems of every word of a text, and of its salient words (stop words dropped)."""
    lexicon = default_lexicon()
    every: list[str] = []
    salient: list[str] = []
    for word in lexicon.expand(words(text)):
        s = stem(word)
        every.append(s)
        if word in PHRASE_KEPT or not lexicon.is_stop(word) or word.isdigit():
            salient.append(s)
    return every, salient


def _lengths_by_first(phrases: dict[tuple[str, ...], object]) -> dict[str, tuple[int, ...]]:
    """First stem of the phrases -> their lengths, longest first."""
    lengths: dict[str, set[int]] = {}
    for key in phrases:
        lengths.setdefault(key[0], set()).add(len(key))
    return {first: tuple(sorted(sizes, reverse=True)) for first, sizes in lengths.items()}


class ObjectLexicon:
    """The objects of the radar and the phrases that name them."""

    def __init__(self, data: dict[str, object]) -> None:
        self.objects: dict[str, RadarObject] = {}
        self._terms: dict[tuple[str, ...], str] = {}
        self._markers: dict[tuple[str, ...], set[str]] = {}
        for row in data["objects"]:  # type: ignore[attr-defined]
            obj = RadarObject(id=str(row["id"]), kind=str(row["kind"]), label=str(row["label"]))
            if obj.id in self.objects:
                raise ValueError(f"radar object {obj.id!r} defined twice")
            self.objects[obj.id] = obj
            for term in row["terms"]:
                key = tuple(_stems(str(term), keep_stops=False))
                if key:
                    # the first object to claim a phrase keeps it (files are read top-down)
                    self._terms.setdefault(key, obj.id)
        for term in data.get("ignore", ()):  # type: ignore[attr-defined]
            key = tuple(_stems(str(term), keep_stops=False))
            if key:
                self._terms[key] = _IGNORE
        marker_lists: dict[str, list[str]] = {
            "own": list(data.get("own", ())),  # type: ignore[call-overload]
            "collective": list(data.get("collective", ())),  # type: ignore[call-overload]
        }
        for action, terms in dict(data.get("actions", {})).items():  # type: ignore[call-overload]
            marker_lists[str(action)] = list(terms)
        for marker, terms in marker_lists.items():
            for term in terms:
                key = tuple(_stems(str(term), keep_stops=True))
                if key:
                    self._markers.setdefault(key, set()).add(marker)
        # first stem -> lengths of the phrases starting with it, longest first: most words
        # start no phrase, and are passed over with one lookup
        self._term_lengths = _lengths_by_first(self._terms)
        self._marker_lengths = _lengths_by_first(self._markers)

    @classmethod
    def load(cls, path: Path = OBJECTS_FILE) -> ObjectLexicon:
        """Read the lexicon from its YAML file."""
        return cls(yaml.safe_load(path.read_text(encoding="utf-8")))

    def _objects(self, stems: list[str]) -> list[str]:
        """Object ids named in a text's salient stems, longest phrase first, in order."""
        found: list[str] = []
        i = 0
        while i < len(stems):
            for size in self._term_lengths.get(stems[i], ()):
                target = self._terms.get(tuple(stems[i : i + size]))
                if target is not None:
                    if target != _IGNORE and target not in found:
                        found.append(target)
                    i += size
                    break
            else:
                i += 1
        return found

    def _markers_of(self, stems: list[str]) -> set[str]:
        """Markers (own, collective, hire, train, share) in the stems of every word of a text."""
        found: set[str] = set()
        for i in range(len(stems)):
            for size in self._marker_lengths.get(stems[i], ()):
                markers = self._markers.get(tuple(stems[i : i + size]))
                if markers is not None:
                    found |= markers
        return found

    def analyse(self, text: str) -> TextObjects:
        """The objects of a text with their weights, its actions and whether it is its own."""
        every, salient = _both_stems(text)
        ids = self._objects(salient)
        markers = self._markers_of(every)
        actions = frozenset(markers & {"hire", "train", "share"})
        people = [i for i in ids if self.objects[i].kind in PEOPLE_KINDS]
        things = [i for i in ids if self.objects[i].kind not in PEOPLE_KINDS]
        # hiring or training: the trade is the object, a machine or a site named beside it is
        # context; sharing (or nothing said): everything named counts
        if actions & {"hire", "train"} and not actions & {"share"} and people:
            primary = set(people)
        elif things and "share" in actions:
            primary = set(things)
        else:
            primary = set(ids)
        weighted = []
        for i in sorted(ids):
            weight = 1.0 if i in primary else SECONDARY_WEIGHT
            if i in GENERIC_OBJECTS:
                weight *= GENERIC_WEIGHT
            weighted.append((i, weight))
        own = "own" in markers and "collective" not in markers
        return TextObjects(objects=tuple(weighted), actions=actions, own=own)


@lru_cache(maxsize=1)
def object_lexicon() -> ObjectLexicon:
    """The shipped lexicon, read once."""
    return ObjectLexicon.load()
