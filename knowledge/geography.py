"""France geography: commune name or postcode -> INSEE commune -> EPCI SIREN and name.

The table ``knowledge/geo/communes.csv.gz`` is built by ``scripts/build_geography.py``.
Paris, Lyon and Marseille arrondissements municipaux are known to :meth:`Geography.by_insee`
(with their parent commune's EPCI), but postcodes and names resolve to the parent commune.
"""

from __future__ import annotations

import csv
import functools
import gc
import gzip
import re
import sys
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

__all__ = [
    "Commune",
    "GeoResult",
    "Geography",
    "default_geography",
    "normalize_name",
]

DEFAULT_PATH = Path(__file__).resolve().parent / "geo" / "communes.csv.gz"
LABEL_MAX = 40

# Fuzzy matching: minimum fuzz.ratio score by length of the compact query, and the lead the
# best candidate needs over the runner-up to be taken alone.
_FUZZY_MIN_LENGTH = 5
_FUZZY_CUTOFFS: tuple[tuple[int, float], ...] = ((6, 90.0), (9, 87.0))  # (max length, cutoff)
_FUZZY_CUTOFF_LONG = 85.0  # compact query of 10 characters or more
_FUZZY_MARGIN = 4.0
_FUZZY_POOL = 24
# An exact name match also offers communes whose name merely starts with the query when they
# are this many times more populous ('Chalon' -> Chalon-sur-Saône before Chalon in Isère).
_DOMINANT_FACTOR = 10
_DOMINANT_MIN_POPULATION = 2000
_DOMINANT_MAX = 2
_PREFIX_MIN_LENGTH = 4
# Suggestions ("Vouliez-vous dire Digoin (71) ?") when nothing else matched: names at one edit
# (a letter wrong, missing, added, or two letters swapped; two edits from 8 characters on),
# compared with whole names and with first words ("Chamonis" -> Chamonix-Mont-Blanc). The query
# is capped so that a long text costs no more than a short one.
_SUGGEST_MIN_LENGTH = 4
_SUGGEST_MAX_LENGTH = 50
_SUGGEST_TWO_EDITS_FROM = 8
_SUGGEST_POOL = 64

_ABBREVIATIONS: dict[str, str] = {
    "st": "saint",
    "ste": "sainte",
    "sts": "saints",
    "stes": "saintes",
}
_ARTICLES = frozenset({"le", "la", "les", "l", "aux", "las", "los"})
_FILLER_WORDS = _ARTICLES | frozenset(
    {"de", "du", "des", "d", "en", "et", "sur", "sous", "a", "au", "lez"}
)
_ABBREVIATION_SET = frozenset(_ABBREVIATIONS)
_LIGATURES: dict[str, str] = {"œ": "oe", "Œ": "oe", "æ": "ae", "Æ": "ae", "ß": "ss"}
_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_SUR_ABBREVIATION = re.compile(r"\bs/", re.IGNORECASE)

_CODE_RE = re.compile(r"^(?:\d{5}|2[AB]\d{3})$")
_POSTCODE_QUERY = re.compile(r"^\d{2}\s?\d{3}$|^\d{4}$")
_TRAILING_POSTCODE = re.compile(r"^(?P<name>.*?\D)[\s,;(\-–]*\(?\s*(?P<code>\d{2}\s?\d{3})\s*\)?$")
_LEADING_POSTCODE = re.compile(r"^\(?\s*(?P<code>\d{2}\s?\d{3})\s*\)?[\s,;\-–]+(?P<name>\D.*)$")
# 'Paris 15e', 'Lyon 3eme arrondissement', 'Marseille 1er': the commune itself.
_PLM_QUERY = re.compile(
    r"^(?P<city>paris|lyon|marseille) \d{1,2} ?(?:e|eme|er|ier|ieme)?(?: arr\w*)?$"
)
_TRAILING_DEPARTEMENT = re.compile(
    r"^(?P<name>.*?\S)[\s,;(\-–]+\(?\s*(?P<code>97[1-6]|2[ABab]|\d{2})\s*\)?$"
)


def _fold_table() -> dict[int, str]:
    """Translation table from accented Latin letters and ligatures to lower-case ASCII."""
    table: dict[int, str] = {}
    for code in range(0xC0, 0x250):
        char = chr(code)
        decomposed = unicodedata.normalize("NFKD", char)
        base = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
        if base.isascii() and base.isalpha():
            table[code] = base.lower()
    table.update({ord(k): v for k, v in _LIGATURES.items()})
    for quote in "’‘`´ʼ":
        table[ord(quote)] = " "
    return table


_FOLD = _fold_table()


def normalize_name(text: str) -> str:
    """Lower-case, accent-free, punctuation-free form of a name, with 'st' spelled 'saint'."""
    if "/" in text:
        text = _SUR_ABBREVIATION.sub(" sur ", text)
    text = text.translate(_FOLD)
    if not text.isascii():
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    tokens = _NON_ALNUM.sub(" ", text.lower()).split()
    if not _ABBREVIATION_SET.isdisjoint(tokens):
        tokens = [_ABBREVIATIONS.get(token, token) for token in tokens]
    return " ".join(tokens)


def _is_plm_arrondissement(insee: str) -> bool:
    """Whether an INSEE code is a Paris, Lyon or Marseille arrondissement municipal."""
    if not insee.isdigit():
        return False
    value = int(insee)
    return 75101 <= value <= 75120 or 69381 <= value <= 69389 or 13201 <= value <= 13216


@dataclass(frozen=True, slots=True)
class Commune:
    """A French commune (or PLM arrondissement) with its intercommunality."""

    insee: str
    name: str
    postcodes: tuple[str, ...]
    departement: str
    region: str
    epci_siren: str | None
    epci_name: str | None
    # WGS84 degrees of the town hall (None in tables built before they were added)
    lat: float | None = None
    lon: float | None = None

    def label(self) -> str:
        """Short label for buttons: 'Paray-le-Monial (71)', at most 40 characters."""
        suffix = f" ({self.departement})"
        name = self.name
        if len(name) + len(suffix) > LABEL_MAX:
            name = name[: LABEL_MAX - len(suffix) - 1].rstrip(" -'") + "…"
        return name + suffix


@dataclass(frozen=True, slots=True)
class GeoResult:
    """Outcome of :meth:`Geography.resolve`: found (1), ambiguous (2..N) or not_found (0).

    ``suggested`` (only with ``resolve(..., suggest=True)``): no commune has that name, these
    are the nearest spellings, to be confirmed. ``unknown_postcode``: five digits that are no
    postcode (nor INSEE code).
    """

    status: Literal["found", "ambiguous", "not_found", "suggested"]
    communes: tuple[Commune, ...]
    query: str
    unknown_postcode: bool = False


@dataclass(frozen=True, slots=True)
class _Index:
    """Searchable names of a set of communes (indices into Geography._communes)."""

    keys: list[str]  # compact normalized names (no spaces), unique
    owners: list[list[int]]  # communes behind each key
    exact: dict[str, list[int]]  # compact full name -> communes
    alias: dict[str, list[int]]  # compact name without leading article -> communes
    # first word -> communes (i), or ~i when the word follows a leading article
    first_token: dict[str, list[int]]
    words: list[str]  # the keys of first_token, for typo suggestions


class Geography:
    """In-memory table of communes with lookups by code, postcode, name and EPCI."""

    def __init__(self, communes: Iterable[Commune], populations: Iterable[int] = ()) -> None:
        """Index communes; ``populations`` (parallel, optional) ranks ambiguous names."""
        self._communes: list[Commune] = list(communes)
        pops = list(populations)
        self._population: list[int] = pops + [0] * (len(self._communes) - len(pops))
        self._by_insee: dict[str, Commune] = {}
        self._by_postcode: dict[str, list[int]] = defaultdict(list)
        self._by_departement: dict[str, list[int]] = defaultdict(list)
        self._by_epci: dict[str, list[int]] = defaultdict(list)
        self._epci_names: dict[str, str] = {}
        self._tokens: list[tuple[str, ...]] = []
        self._sort_names: list[str] = []
        searchable: list[int] = []
        for i, commune in enumerate(self._communes):
            self._by_insee[commune.insee] = commune
            normalized = normalize_name(commune.name)
            self._tokens.append(tuple(map(sys.intern, normalized.split())))
            self._sort_names.append(normalized)
            if commune.epci_siren and commune.epci_name:
                self._epci_names.setdefault(commune.epci_siren, commune.epci_name)
            if _is_plm_arrondissement(commune.insee):
                continue
            searchable.append(i)
            for code in commune.postcodes:
                self._by_postcode[code].append(i)
            self._by_departement[commune.departement].append(i)
            if commune.epci_siren:
                self._by_epci[commune.epci_siren].append(i)
        for ids in self._by_postcode.values():
            ids.sort(key=self._name_order)
        for ids in self._by_epci.values():
            ids.sort(key=self._name_order)
        self._index = self._build_index(searchable)

    # ----------------------------------------------------------------- loading

    @classmethod
    def load(cls, path: Path | None = None) -> Geography:
        """Load the gzip CSV table (default: the shipped knowledge/geo/communes.csv.gz)."""
        # Building ~35,000 small objects: cyclic garbage collection passes only slow it down.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return cls._load(path or DEFAULT_PATH)
        finally:
            if gc_was_enabled:
                gc.enable()

    @classmethod
    def _load(cls, path: Path) -> Geography:
        """Read the table and build the instance."""
        intern = sys.intern
        shared_postcodes: dict[str, tuple[str, ...]] = {}
        communes: list[Commune] = []
        populations: list[int] = []
        with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            col = {name: header.index(name) for name in header}
            c_insee, c_name, c_postcodes = col["insee"], col["name"], col["postcodes"]
            c_dep, c_region = col["departement"], col["region"]
            c_siren, c_epci = col["epci_siren"], col["epci_name"]
            c_pop = col.get("population")
            c_lat, c_lon = col.get("lat"), col.get("lon")
            for row in reader:
                codes = row[c_postcodes]
                postcodes = shared_postcodes.get(codes)
                if postcodes is None:
                    postcodes = tuple(intern(code) for code in codes.split())
                    shared_postcodes[codes] = postcodes
                communes.append(
                    Commune(
                        insee=row[c_insee],
                        name=row[c_name],
                        postcodes=postcodes,
                        departement=intern(row[c_dep]),
                        region=intern(row[c_region]),
                        epci_siren=intern(row[c_siren]) or None,
                        epci_name=intern(row[c_epci]) or None,
                        lat=float(row[c_lat]) if c_lat is not None and row[c_lat] else None,
                        lon=float(row[c_lon]) if c_lon is not None and row[c_lon] else None,
                    )
                )
                population = row[c_pop] if c_pop is not None else ""
                populations.append(int(population) if population.isdigit() else 0)
        return cls(communes, populations)

    def _build_index(self, ids: Iterable[int]) -> _Index:
        """Build the name index of the given communes."""
        exact: dict[str, list[int]] = defaultdict(list)
        alias: dict[str, list[int]] = defaultdict(list)
        first_token: dict[str, list[int]] = defaultdict(list)
        for i in ids:
            tokens = self._tokens[i]
            if not tokens:
                continue
            exact["".join(tokens)].append(i)
            first_token[tokens[0]].append(i)
            if len(tokens) > 1 and tokens[0] in _ARTICLES:
                alias["".join(tokens[1:])].append(i)
                first_token[tokens[1]].append(~i)
        # Lists are shared with `exact` where no article-less alias adds to them.
        owners: dict[str, list[int]] = dict(exact)
        for key, members in alias.items():
            current = owners.get(key)
            owners[key] = members if current is None else current + members
        return _Index(
            keys=list(owners),
            owners=list(owners.values()),
            exact=dict(exact),
            alias=dict(alias),
            first_token=dict(first_token),
            words=list(first_token),
        )

    # ----------------------------------------------------------------- lookups

    def by_insee(self, code: str) -> Commune | None:
        """The commune (or PLM arrondissement) with this INSEE code, e.g. '71342' or '2A004'."""
        return self._by_insee.get(code.strip().upper())

    def by_postcode(self, code: str) -> list[Commune]:
        """Communes served by this postcode, sorted by name (Paris for 75001..75020)."""
        compact = "".join(code.split())
        return [self._communes[i] for i in self._by_postcode.get(compact, ())]

    def epci_name(self, siren: str) -> str | None:
        """Name of the EPCI with this SIREN, e.g. 'CC Le Grand Charolais'."""
        return self._epci_names.get(siren.strip())

    def communes_of_epci(self, siren: str) -> list[Commune]:
        """Member communes of the EPCI with this SIREN, sorted by name."""
        return [self._communes[i] for i in self._by_epci.get(siren.strip(), ())]

    def departement_of(self, insee: str) -> str | None:
        """Département code of the commune with this INSEE code, e.g. '71', '2A', '971'."""
        commune = self.by_insee(insee)
        return commune.departement if commune else None

    def communes(self) -> tuple[Commune, ...]:
        """Every row of the table (communes and PLM arrondissements)."""
        return tuple(self._communes)

    def __len__(self) -> int:
        """Number of rows (communes and PLM arrondissements)."""
        return len(self._communes)

    def named(self, name: str) -> tuple[Commune, ...]:
        """Communes called exactly ``name`` (case, accents, hyphens, a leading article aside).

        Two dictionary lookups and no typo repair: cheap enough to try on every capitalised
        word of a long text, which :meth:`resolve` (fuzzy matching) is not.
        """
        return self.named_words(normalize_name(name).split())

    def named_words(self, words: Sequence[str]) -> tuple[Commune, ...]:
        """Communes called exactly these words, already normalised (:func:`normalize_name`):
        :meth:`named` for a caller that reads every window of a text's words."""
        compact = "".join(words).replace(" ", "")
        ids = [*self._index.exact.get(compact, ()), *self._index.alias.get(compact, ())]
        return tuple(self._communes[i] for i in dict.fromkeys(ids))

    def starts_a_name(self, word: str) -> bool:
        """Whether a normalised word begins some commune's name (a leading article aside):
        a word that begins none is passed over without trying the windows after it."""
        return word in self._index.first_token

    def starting_with(self, name: str) -> tuple[Commune, ...]:
        """Communes whose name starts with the whole words of ``name`` ('Montceau')."""
        tokens = tuple(normalize_name(name).split())
        if not tokens:
            return ()
        found = self._prefix_matches(tokens, "".join(tokens), self._index)
        return tuple(self._communes[i] for i in self._by_population(found))

    # ----------------------------------------------------------------- resolve

    def resolve(self, text: str, *, limit: int = 8, fuzzy: bool = True,
                suggest: bool = False) -> GeoResult:
        """Resolve what a user typed (postcode, INSEE code or commune name) to communes.

        Without ``fuzzy``, no typo repair: names match exactly or by their first words.
        With ``suggest``, a name that is no commune's (nor the first words of one) gets the
        nearest spellings as ``suggested``, to be confirmed, instead of a typo silently taken
        as ``found`` or nothing found: one letter wrong, missing, added or swapped first.
        """
        query = " ".join(text.split())
        if not query:
            return GeoResult("not_found", (), query)
        if _POSTCODE_QUERY.match(query):
            return self._resolve_code(query)
        if _CODE_RE.match(query.upper()):
            return self._single_or_none(self.by_insee(query), query)

        plm = _PLM_QUERY.match(normalize_name(query))
        if plm:
            city_ids = self._index.exact.get(plm.group("city"), [])
            return self._result(city_ids[:1], query)

        name, subset = self._split_qualifier(query)
        scopes = [self._build_index(subset)] if subset else []
        scopes.append(self._index)
        near: list[list[int]] = []
        for scope in scopes:
            # Qualifier matched no commune of that name: ignore it ("Paris 15").
            ids, typo = self._match_name_kind(name, scope, limit, fuzzy or suggest)
            if typo and not fuzzy:
                ids = []  # no typo repair asked for: a near spelling is not this name
            if ids and not (suggest and typo):
                return self._result(ids, query)
            near.append(ids)
        if not suggest:
            return GeoResult("not_found", (), query)
        # A département or postcode typed with the name narrows the suggestions first.
        for scope, guesses in zip(scopes, near, strict=True):
            if close := self._suggestions(name, scope, limit, guesses):
                return GeoResult("suggested", tuple(self._communes[i] for i in close), query)
        return GeoResult("not_found", (), query)

    def _resolve_code(self, query: str) -> GeoResult:
        """A 5-digit (or 4-digit, leading zero dropped) postcode, else an INSEE code."""
        # All communes of a postcode are returned, sorted by name: `limit` does not apply.
        digits = "".join(query.split())
        ids = self._by_postcode.get(digits.zfill(5))
        if ids:
            return self._result(ids, query)
        if len(digits) != 5:
            return GeoResult("not_found", (), query)
        commune = self.by_insee(digits)
        if commune is None:
            return GeoResult("not_found", (), query, unknown_postcode=True)
        return GeoResult("found", (commune,), query)

    def _split_qualifier(self, query: str) -> tuple[str, list[int] | None]:
        """Split a trailing/leading postcode or trailing département off a name query."""
        for pattern in (_TRAILING_POSTCODE, _LEADING_POSTCODE):
            match = pattern.match(query)
            if match:
                code = "".join(match.group("code").split())
                return match.group("name"), list(self._by_postcode.get(code, ()))
        match = _TRAILING_DEPARTEMENT.match(query)
        if match:
            code = match.group("code").upper()
            if code in self._by_departement:
                return match.group("name"), list(self._by_departement[code])
        return query, None

    def _match_name_kind(self, name: str, index: _Index, limit: int,
                         fuzzy: bool = True) -> tuple[list[int], bool]:
        """Commune indices matching a name, best first, and whether they are only typo guesses."""
        tokens = tuple(normalize_name(name).split())
        if not tokens:
            return [], False
        compact = "".join(tokens)
        prefixed = self._prefix_matches(tokens, compact, index)
        for table in (index.exact, index.alias):
            ids = table.get(compact)
            if ids:
                return self._with_dominant(self._by_population(ids), prefixed)[:limit], False

        # Fuzzy matching scans every name of the table (milliseconds): only on request.
        typos = self._fuzzy_matches(compact, index) if fuzzy else []
        if prefixed:
            ranked = self._by_population(prefixed)
            extra = [i for i in typos if i not in set(ranked)]
            return (ranked + extra)[:limit], False
        return typos[:limit], True

    def _with_dominant(self, exact: list[int], prefixed: list[int]) -> list[int]:
        """Exact matches, preceded by much more populous communes that start with the query."""
        floor = max(
            _DOMINANT_MIN_POPULATION, _DOMINANT_FACTOR * max(self._population[i] for i in exact)
        )
        dominant = [i for i in prefixed if self._population[i] >= floor and i not in exact]
        return self._by_population(dominant)[:_DOMINANT_MAX] + exact

    def _prefix_matches(self, tokens: tuple[str, ...], compact: str, index: _Index) -> list[int]:
        """Communes whose name starts with the query's whole words ('Montceau')."""
        if len(compact) < _PREFIX_MIN_LENGTH or all(t in _FILLER_WORDS for t in tokens):
            return []
        size = len(tokens)
        found: set[int] = set()
        for entry in index.first_token.get(tokens[0], ()):
            i, start = (entry, 0) if entry >= 0 else (~entry, 1)
            if self._tokens[i][start : start + size] == tokens:
                found.add(i)
        return list(found)

    def _fuzzy_matches(self, compact: str, index: _Index) -> list[int]:
        """Typo-tolerant matches: one id when clear, several when close, none below cutoff."""
        if len(compact) < _FUZZY_MIN_LENGTH or compact.isdigit():
            return []
        cutoff = next(
            (value for length, value in _FUZZY_CUTOFFS if len(compact) <= length),
            _FUZZY_CUTOFF_LONG,
        )
        hits = process.extract(
            compact,
            index.keys,
            scorer=fuzz.ratio,
            processor=None,
            limit=_FUZZY_POOL,
            score_cutoff=cutoff,
        )
        if not hits:
            return []
        best = hits[0][1]
        close = [(score, position) for _, score, position in hits if best - score < _FUZZY_MARGIN]
        scored: dict[int, float] = {}
        for score, position in close:
            for i in index.owners[position]:
                scored[i] = max(scored.get(i, 0.0), score)
        return sorted(scored, key=lambda i: (-scored[i], -self._population[i], self._name_order(i)))

    def _suggestions(self, name: str, index: _Index, limit: int, fuzzy: list[int]) -> list[int]:
        """Communes whose name (or first word) is nearest the query in edits, then largest.

        ``fuzzy``: the looser similarity matches already found, ranked here with the others.
        """
        tokens = normalize_name(name).split()
        compact = "".join(tokens)
        if not _SUGGEST_MIN_LENGTH <= len(compact) <= _SUGGEST_MAX_LENGTH or compact.isdigit():
            return fuzzy
        edits = 2 if len(compact) >= _SUGGEST_TWO_EDITS_FROM else 1
        distance: dict[int, int] = {
            i: min(OSA.distance(compact, key) for key in self._keys_of(i)) for i in fuzzy
        }
        for _, score, position in process.extract(
            compact, index.keys, scorer=OSA.distance, processor=None,
            limit=_SUGGEST_POOL, score_cutoff=edits,
        ):
            for i in index.owners[position]:
                distance[i] = min(distance.get(i, edits + 1), int(score))
        if len(tokens) == 1:
            # "Chamonis" for Chamonix-Mont-Blanc: the first word of a longer name, one edit off.
            words = index.words
            for _, score, position in process.extract(
                compact, words, scorer=OSA.distance, processor=None,
                limit=_SUGGEST_POOL, score_cutoff=1,
            ):
                for entry in index.first_token[words[position]]:
                    i = entry if entry >= 0 else ~entry
                    distance[i] = min(distance.get(i, edits + 1), int(score))
        if not distance:
            return []
        nearest = min(distance.values())
        close = [i for i, d in distance.items() if d == nearest]
        return self._by_population(close)[:limit]

    # ----------------------------------------------------------------- helpers

    def _keys_of(self, i: int) -> tuple[str, ...]:
        """The compact searchable names of a commune: with and without a leading article."""
        tokens = self._tokens[i]
        if len(tokens) > 1 and tokens[0] in _ARTICLES:
            return "".join(tokens), "".join(tokens[1:])
        return ("".join(tokens),)

    def _name_order(self, i: int) -> tuple[str, str]:
        """Sort key by normalized name, then INSEE code."""
        return self._sort_names[i], self._communes[i].insee

    def _by_population(self, ids: Iterable[int]) -> list[int]:
        """Indices sorted by decreasing population, then by name."""
        return sorted(ids, key=lambda i: (-self._population[i], self._name_order(i)))

    def _result(self, ids: list[int], query: str) -> GeoResult:
        """GeoResult from ranked indices."""
        communes = tuple(self._communes[i] for i in ids)
        if not communes:
            return GeoResult("not_found", (), query)
        return GeoResult("found" if len(communes) == 1 else "ambiguous", communes, query)

    @staticmethod
    def _single_or_none(commune: Commune | None, query: str) -> GeoResult:
        """Found for a commune, not_found for None."""
        if commune is None:
            return GeoResult("not_found", (), query)
        return GeoResult("found", (commune,), query)


@functools.cache
def default_geography() -> Geography:
    """Process-wide Geography loaded from the shipped table."""
    return Geography.load()
