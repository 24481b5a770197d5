"""French text normalisation for the knowledge base: folding, elisions, SMS, stop words, stems.

Everything language-specific that is plain data (stop words, SMS abbreviations, synonym
groups) lives in ``knowledge/data/``; this module only holds the mechanics.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import snowballstemmer
import yaml

__all__ = [
    "CONCEPT_PREFIX",
    "DATA_DIR",
    "Lexicon",
    "Segment",
    "default_lexicon",
    "fold",
    "stem",
    "words",
]

DATA_DIR = Path(__file__).resolve().parent / "data"
SYNONYMS_FILE = DATA_DIR / "synonyms.yaml"
STOPWORDS_FILE = DATA_DIR / "stopwords_fr.txt"

# Concept terms (synonym groups) are indexed next to word stems; this prefix cannot come
# out of the tokenizer, so a concept never collides with a real word.
CONCEPT_PREFIX = "~"

_LIGATURES = str.maketrans({"œ": "oe", "æ": "ae", "ß": "ss", "’": "'", "ʼ": "'", "`": "'"})
# Elided articles and pronouns: l'usine, d'oeuvre, qu'est-ce, jusqu'à, aujourd'hui...
_ELISION = re.compile(
    r"\b(?:l|d|j|m|n|s|t|c|qu|jusqu|lorsqu|puisqu|quoiqu|presqu)'(?=[a-z0-9])"
)
_SPLIT = re.compile(r"[^a-z0-9]+")
_STEMMER = snowballstemmer.stemmer("french")
# Stop words that change the meaning of an expression ("pas formé", "sans licencier"): they
# are kept when matching synonym phrases, and dropped everywhere else.
PHRASE_KEPT = frozenset(
    {"pas", "non", "sans", "aucun", "aucune", "rien", "jamais", "plus", "moins", "trop", "avant",
     "apres", "meme", "seul", "tout", "autre", "autres", "entre", "recherche", "pro", "perso"}
)


# Combining diacritics (all of the block has a combining class, but the grapheme joiner).
_DIACRITICS = re.compile("[\u0300-\u034e\u0350-\u036f]+")


def fold(text: str) -> str:
    """Casefold, expand ligatures and strip accents (``Décarbon'Action`` → ``decarbon'action``)."""
    text = text.casefold().translate(_LIGATURES)
    decomposed = unicodedata.normalize("NFKD", text)
    # French accents leave ASCII once their diacritics are gone: one regex pass instead of a
    # Python test per character (the radar and the knowledge base fold every text they read)
    stripped = _DIACRITICS.sub("", decomposed)
    if stripped.isascii():
        return stripped
    return "".join(ch for ch in stripped if not unicodedata.combining(ch))


def words(text: str) -> list[str]:
    """Split a text into folded words, dropping elisions (``l'entreprise`` → ``entreprise``)."""
    folded = fold(text).replace("aujourd'hui", "aujourdhui").replace("r&d", "rnd")
    folded = _ELISION.sub(" ", folded)
    return [w for w in _SPLIT.split(folded) if w]


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Return the Snowball French stem of an already folded word (numbers are kept as is)."""
    if word.isdigit() or len(word) <= 3:
        return word
    # Without accents, feminine past participles ("qualifiée" -> "qualifiee") confuse the
    # stemmer; bring them back to the masculine form first.
    if len(word) > 5 and word.endswith(("ee", "ees")):
        word = word[: -1 if word.endswith("ee") else -2]
    return str(_STEMMER.stemWord(word))


@dataclass(frozen=True)
class Segment:
    """One piece of an analysed text: a content word or a multi-word synonym phrase."""

    surface: str  # the words as written (folded), for explanations
    stems: tuple[str, ...]  # content stems of the piece (stop words removed)
    concepts: tuple[str, ...]  # synonym-group terms (``~name``) the piece belongs to
    start: int  # position of the first word in the folded word sequence
    end: int  # position after the last word
    off_topic: bool = False  # the piece names a topic outside the knowledge base


@dataclass
class _PhraseNode:
    """A trie node over stems, used to find the longest synonym phrase at a position."""

    children: dict[str, _PhraseNode] = field(default_factory=dict)
    concepts: tuple[str, ...] = ()
    off_topic: bool = False


class Lexicon:
    """Stop words, SMS abbreviations and synonym groups, compiled for fast analysis."""

    def __init__(
        self,
        *,
        stopwords: Iterable[str] = (),
        abbreviations: Mapping[str, str] | None = None,
        groups: Mapping[str, Sequence[str]] | None = None,
        group_weights: Mapping[str, float] | None = None,
        off_topic: Iterable[str] = (),
    ) -> None:
        """Compile the vocabularies (all entries are folded and stemmed like any text)."""
        self.stopwords: frozenset[str] = frozenset(fold(w).strip() for w in stopwords if w)
        self.abbreviations: dict[str, tuple[str, ...]] = {}
        for short, full in (abbreviations or {}).items():
            key = fold(str(short)).strip()
            if key:
                self.abbreviations[key] = tuple(words(str(full)))
        self.groups: dict[str, tuple[str, ...]] = {
            str(name): tuple(str(t) for t in terms) for name, terms in (groups or {}).items()
        }
        # concept -> weight (groups that describe the context rather than the need weigh less)
        self.concept_weights: dict[str, float] = {
            CONCEPT_PREFIX + fold(str(name)).replace(" ", "_"): float(w)
            for name, w in (group_weights or {}).items()
        }
        self._root = _PhraseNode()
        # stop words that are synonyms on their own ("des sous" = money): they reach their
        # synonym group but never match as plain words
        self._group_words: frozenset[str] = frozenset(
            w
            for terms in self.groups.values()
            for term in terms
            if len(ws := words(term)) == 1 and (w := ws[0]) in self.stopwords
        )
        # word stem -> concepts reached by that single word (for typo repair explanations)
        self.surface_words: set[str] = set()
        for name, terms in self.groups.items():
            concept = CONCEPT_PREFIX + fold(name).replace(" ", "_")
            for term in terms:
                self._add_phrase(term, concept=concept)
        for phrase in off_topic:
            self._add_phrase(str(phrase), off_topic=True)

    @classmethod
    def from_files(
        cls, synonyms: Path = SYNONYMS_FILE, stopwords: Path = STOPWORDS_FILE
    ) -> Lexicon:
        """Load the lexicon from the YAML synonym table and the stop-word list."""
        data = yaml.safe_load(synonyms.read_text(encoding="utf-8")) or {}
        stop: list[str] = []
        if stopwords.exists():
            for line in stopwords.read_text(encoding="utf-8").splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    stop.extend(line.split())
        return cls(
            stopwords=stop,
            abbreviations=data.get("abbreviations") or {},
            groups=data.get("groups") or {},
            group_weights=data.get("group_weights") or {},
            off_topic=data.get("off_topic") or [],
        )

    # -- compilation -------------------------------------------------------------------

    def _keeps(self, word: str) -> bool:
        """Whether a word takes part in phrase matching (content words and negations)."""
        return word in PHRASE_KEPT or word in self._group_words or not self.is_stop(word)

    def _phrase_stems(self, phrase: str) -> list[str]:
        """Stems of a phrase's words as matched: stop words left out, negations kept."""
        kept = [w for w in self.expand(words(phrase)) if self._keeps(w)]
        if all(w in PHRASE_KEPT for w in kept):
            return []  # a phrase needs at least one content word
        return [stem(w) for w in kept]

    def _add_phrase(self, phrase: str, *, concept: str = "", off_topic: bool = False) -> None:
        """Insert a phrase into the trie, attaching a concept or an off-topic mark."""
        stems = self._phrase_stems(phrase)
        if not stems:
            return
        self.surface_words.update(w for w in words(phrase) if len(w) >= 4)
        node = self._root
        for s in stems:
            node = node.children.setdefault(s, _PhraseNode())
        if concept and concept not in node.concepts:
            node.concepts = (*node.concepts, concept)
        if off_topic:
            node.off_topic = True

    # -- analysis ----------------------------------------------------------------------

    def expand(self, tokens: Iterable[str]) -> list[str]:
        """Replace SMS abbreviations by their full words (``pr`` → ``pour``)."""
        out: list[str] = []
        for tok in tokens:
            full = self.abbreviations.get(tok)
            if full is None:
                out.append(tok)
            else:
                out.extend(full)
        return out

    def is_stop(self, word: str) -> bool:
        """Tell whether a folded word carries no meaning for retrieval."""
        return word in self.stopwords or (len(word) == 1 and not word.isdigit())

    def concept_weight(self, concept: str) -> float:
        """How much a synonym group counts (1 unless the table says otherwise)."""
        return self.concept_weights.get(concept, 1.0)

    def concepts_of_word(self, word: str) -> tuple[str, ...]:
        """Concepts reached by a single folded word (used after typo repair)."""
        node = self._root.children.get(stem(word))
        return node.concepts if node is not None else ()

    def segments(self, text: str) -> list[Segment]:
        """Analyse a text into content segments: longest synonym phrases first, then words."""
        seq = [w for w in self.expand(words(text)) if self._keeps(w)]
        stems = [stem(w) for w in seq]
        out: list[Segment] = []
        i = 0
        n = len(seq)
        while i < n:
            node = self._root
            best_end = -1
            best: _PhraseNode | None = None
            j = i
            while j < n:
                child = node.children.get(stems[j])
                if child is None:
                    break
                node = child
                j += 1
                if node.concepts or node.off_topic:
                    best_end, best = j, node
            if best is not None and best_end > i:
                content = tuple(
                    stems[k] for k in range(i, best_end) if not self.is_stop(seq[k])
                )
                # a phrase made only of stop words ("des sous" keeps "sous") still counts
                out.append(
                    Segment(
                        surface=" ".join(seq[i:best_end]),
                        stems=content,
                        concepts=best.concepts,
                        start=i,
                        end=best_end,
                        off_topic=best.off_topic,
                    )
                )
                i = best_end
                continue
            word = seq[i]
            if not self.is_stop(word):
                out.append(
                    Segment(surface=word, stems=(stems[i],), concepts=(), start=i, end=i + 1)
                )
            i += 1
        return out

    def terms(self, text: str) -> list[str]:
        """All index terms of a text, in order: content stems and concept terms."""
        out: list[str] = []
        for seg in self.segments(text):
            out.extend(seg.stems)
            out.extend(seg.concepts)
        return out


@lru_cache(maxsize=1)
def default_lexicon() -> Lexicon:
    """The lexicon shipped in ``knowledge/data`` (loaded once)."""
    return Lexicon.from_files()
