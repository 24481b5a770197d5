"""Which trade fair or fair city a need names, for the radar: one export mission is one fair.

Two firms that want a shared stand are one collective action only at the same fair: MEDICA
in Düsseldorf is not Ambiente in Frankfurt, though both are German fairs (issue 17). Firms
name a fair by its name (« ProWein »), by its city (« le grand salon du vin à
Düsseldorf ») or by neither (« le gros salon de la plasturgie »). ``knowledge/data/
fairs.yaml`` lists professional fairs with their city (general knowledge, « à vérifier »);
this module finds them in a text:

- a fair's name or alias, on folded words (« prowein »); a short name or one that is an
  ordinary word (K, SIAL, Host, Space) only as written, with its capitals;
- a fair city outside France, as written with a capital (« Düsseldorf », « Dusseldorf »):
  French cities are where firms and staff are as often as fairs, they say nothing here.

A need that names no known fair nor fair city says nothing against any other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from knowledge.frequency import zipf
from knowledge.geography import normalize_name

__all__ = ["FAIRS_FILE", "FairIndex", "fair_index"]

FAIRS_FILE = Path(__file__).resolve().parents[2] / "knowledge" / "data" / "fairs.yaml"
# A name this common in general French (Zipf) or this short counts only as written.
MAX_FOLDED_ZIPF = 3.0
MIN_FOLDED_LENGTH = 4
MIN_LENGTH = 2  # a one-letter name (K) counts only within a longer alias (« salon K »)
MAX_WORDS = 5  # words of the longest name tried
_WORD = re.compile(r"[^\W_]+(?:['’&-][^\W_]+)*")
_SENTENCE_END = re.compile(r"[.!?:;\n]\s*$")
# An alias that names a place or a trade, not one fair: « salon de Hanovre », « foire de
# Paris », « salon de l'agriculture » (Paris, Meknès, Vérone all have one).
_GENERIC = re.compile(r"(?:salon|foire|salone|messe)s?(?: international| internationale)?"
                      r" (?:de|du|des|d|della|di)\b")


@dataclass(frozen=True, slots=True)
class FairIndex:
    """Fair names and fair cities by how they are written."""

    folded: dict[str, str]  # folded name or alias -> fair
    exact: dict[str, str]  # name or alias as written -> fair
    city_of: dict[str, str]  # fair -> folded city
    cities: dict[str, str]  # city or alias as written (and folded) -> folded city, abroad
    # names that are an ordinary word (Tube, Host, Space): never read at a sentence's start,
    # where every word has a capital
    ordinary: frozenset[str] = frozenset()

    @classmethod
    def load(cls, path: Path = FAIRS_FILE) -> FairIndex:
        """Read the fairs file."""
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        folded: dict[str, str] = {}
        exact: dict[str, str] = {}
        city_of: dict[str, str] = {}
        cities: dict[str, str] = {}
        ordinary: set[str] = set()
        for fair in data["fairs"]:
            name = str(fair["name"])
            city = normalize_name(str(fair["city"]))
            city_of[name] = city
            for written_alias in (name, *map(str, fair.get("aliases") or ())):
                # (« =Salon du Bourget »: a name of the generic form that names one fair)
                alias = written_alias.removeprefix("=")
                key = normalize_name(alias)
                if len(key.replace(" ", "")) < MIN_LENGTH or (
                        _GENERIC.match(key) and not written_alias.startswith("=")):
                    # « K » alone is a thousand euros as often as the fair; « le salon de
                    # Hanovre » is any of its fairs (Agritechnica, Hannover Messe, EuroTier)
                    continue
                common = " " not in key and zipf(key) > MAX_FOLDED_ZIPF
                if len(key.replace(" ", "")) < MIN_FOLDED_LENGTH or common:
                    written = " ".join(_WORD.findall(alias))
                    exact.setdefault(written, name)
                    if common:
                        ordinary.add(written)
                else:
                    folded.setdefault(key, name)
            if normalize_name(str(fair.get("country", ""))) != "france":
                for spelling in (fair["city"], *(fair.get("city_aliases") or ())):
                    cities.setdefault(" ".join(_WORD.findall(str(spelling))), city)
        return cls(folded, exact, city_of, cities, frozenset(ordinary))

    def read(self, text: str) -> tuple[frozenset[str], frozenset[str]]:
        """The fairs a text names, and the fair cities (of those fairs or named) it names."""
        found = list(_WORD.finditer(text))
        words = [m.group() for m in found]
        norm = [normalize_name(w) for w in words]
        fairs: set[str] = set()
        cities: set[str] = set()
        for i in range(len(words)):
            start = found[i].start()
            # (three characters back: a bounded look, whatever the text's length)
            initial = i == 0 or bool(_SENTENCE_END.search(text[max(0, start - 3):start]))
            for size in range(min(MAX_WORDS, len(words) - i), 0, -1):
                fair = self.folded.get(" ".join(norm[i:i + size]))
                written = " ".join(words[i:i + size])
                if fair is None and not (initial and written in self.ordinary):
                    fair = self.exact.get(written)
                if fair is not None:
                    fairs.add(fair)
                    break
                if written[:1].isupper() and written in self.cities:
                    cities.add(self.cities[written])
                    break
        cities.update(self.city_of[f] for f in fairs)
        return frozenset(fairs), frozenset(cities)


@lru_cache(maxsize=1)
def fair_index() -> FairIndex:
    """The fairs of knowledge/data/fairs.yaml (read once)."""
    return FairIndex.load()
