"""Find the programme cards that answer a business owner's question, in their own words.

Scoring, in plain terms (everything is precomputed when the cards are loaded):

1. The question is cut into *positions*: content words, or multi-word expressions of the
   synonym table (``knowledge/data/synonyms.yaml``). Each position has *alternatives*: its
   stem, the synonym groups (concepts) it belongs to, or, for an unknown word of four
   letters or more, the closest word of the vocabulary (typo repair).
2. Each card field is indexed with a weight (title, aliases and keywords count more than the
   body). A term's weight in a card is a BM25F-style saturated frequency times its inverse
   document frequency, scaled so that a perfect match of a position is worth its idf.
3. A position adds to a card the best of its alternatives; the total is divided by what a
   card matching every position perfectly would get: the score is a 0–1 *coverage* of the
   question, weighted by how rare (informative) each word is. Words nobody uses in the
   cards and off-topic expressions (private life, taxes...) count in the denominator only.
4. Bonuses: a question that names a card (title, alias, acronym, id) gives it a large
   bonus; each card keyword found whole in the question (any order, synonyms allowed) a
   small one. A replaced card (ended, with a successor) is demoted unless it is named.
5. ``out_of_scope`` when the best score is below OUT_OF_SCOPE_THRESHOLD; ``confident`` when
   it reaches CONFIDENT_THRESHOLD, leads the second card by CONFIDENT_MARGIN, rests on two
   matched pieces of the question at least (or on the card's name), matches one of the
   card's *anchors* (the distinctive words of its name, keywords or summary: what the card
   is about, not generic words like aide or financement) and the question does not deal
   with an off-topic matter.

Speed: a first pass over the inverted index reads, for each term, only the IMPACT_LIMIT
cards where it weighs most; the best CANDIDATES are then scored exactly (binary searches),
so no question ever loops over every card.
"""

from __future__ import annotations

import heapq
import math
import threading
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from operator import itemgetter
from pathlib import Path
from typing import Any

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from knowledge.cards import CARDS_DIR, Card, CardProblem, load_cards
from knowledge.taxonomy import PARTNER_KINDS, THEMES
from knowledge.text import CONCEPT_PREFIX, Lexicon, default_lexicon, fold, stem, words

__all__ = [
    "ANCHOR_KEYWORD_CARDS",
    "ANCHOR_NAME_CARDS",
    "ANCHOR_SUMMARY_CARDS",
    "CONFIDENT_MARGIN",
    "CONFIDENT_THRESHOLD",
    "OUT_OF_SCOPE_THRESHOLD",
    "Answer",
    "Hit",
    "KnowledgeBase",
]

# -- tuning (see the module docstring) ------------------------------------------------------

# field name -> (weight, length normalisation b)
FIELDS: dict[str, tuple[float, float]] = {
    "title": (4.0, 0.3),
    "aliases": (4.0, 0.3),
    "keywords": (3.0, 0.4),
    "summary": (1.5, 0.5),
    "themes": (0.8, 0.2),
    "for_whom": (1.0, 0.6),
    "what_you_get": (1.0, 0.6),
    "conditions": (0.6, 0.6),
    "how_to_apply": (0.6, 0.6),
    "contact": (0.4, 0.3),
    "body": (0.6, 0.75),
}
K1 = 1.2  # term-frequency saturation
IDF_POWER = 0.5  # flattens idf: a word found in one card must not outweigh the whole question
CONCEPT_WEIGHT = 0.8  # a synonym is worth a bit less than the word itself
PHRASE_WORD_WEIGHT = 0.5  # one word of a known multi-word expression, shared by its words
FUZZY_WEIGHT = 0.85  # a repaired typo, times the similarity
UNKNOWN_WEIGHT = 0.45  # share of the maximum idf that an unknown word weighs in the question
OFF_TOPIC_WEIGHT = 1.5  # an off-topic expression weighs more than any word
ALIAS_BONUS = 0.35  # the question names the card
KEYWORD_BONUS = 0.06  # per card keyword found whole in the question (any order, synonyms)
KEYWORD_BONUS_MAX = 3
# a keyword reached through synonym groups alone, without one word of the question itself,
# counts for this share of a keyword (« le dirigeant part à la retraite » for « gérant…
# partir à la retraite » is a weak sign)
SYNONYM_KEYWORD_SHARE = 0.0
KEYWORD_CANDIDATES = 20  # cards whose keywords are checked
ENDED_FACTOR = 0.75  # a replaced card that the question does not name
CANDIDATES = 30  # cards re-ranked after the first pass
IMPACT_LIMIT = 200  # first pass: cards read per term, those where the term weighs most

OUT_OF_SCOPE_THRESHOLD = 0.20  # below: nothing relevant
CONFIDENT_THRESHOLD = 0.40  # at or above (and clear margin): answer directly
CONFIDENT_MARGIN = 0.08  # the best card must lead the second by this much (set on the dev parts)

# What a card is about (its *anchors*): the terms of its name (title, aliases, id) found in
# the names of at most ANCHOR_NAME_CARDS cards, the terms of its one-word keywords and of its
# summary found in the name, keywords or summary of at most ANCHOR_KEYWORD_CARDS
# (ANCHOR_SUMMARY_CARDS) cards; context synonym groups (weight below 1: entreprise,
# salariés, coût...) never are. A card is presented as sure only when the question names it,
# matches one of its anchors or one of its keywords of several words whole: « aide »,
# « contrat », « client », « vendre » alone say nothing of what a card is about (set on the
# dev parts: a CDD's end-of-contract pay was answered by the POEI card, a supplier's late
# penalties by the cash-flow card).
ANCHOR_NAME_CARDS = 4
ANCHOR_KEYWORD_CARDS = 1
ANCHOR_SUMMARY_CARDS = 1

MIN_FUZZY_LENGTH = 4
# typos are repaired towards the words that matter: names, keywords, summaries, synonyms
REPAIR_FIELDS = frozenset({"title", "aliases", "keywords", "summary"})


@dataclass(frozen=True)
class Hit:
    """A card proposed for a question, its 0–1 score and why it matched."""

    card: Card
    score: float
    why: tuple[str, ...]


@dataclass(frozen=True)
class Answer:
    """What the knowledge base found for a question."""

    query: str
    hits: tuple[Hit, ...]
    confident: bool
    out_of_scope: bool
    ended: Card | None = None
    successor: Card | None = None

    @property
    def best(self) -> Hit | None:
        """The best hit, if any."""
        return self.hits[0] if self.hits else None


# -- query analysis --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Alt:
    """One way a question position can match a card: a term and its weight."""

    term: str
    weight: float
    label: str  # explanation, e.g. "embaucher", "embaucher≈recruter", "formaton→formation"


@dataclass(frozen=True)
class _Position:
    """A content piece of the question with its alternatives and its importance."""

    surface: str
    alts: tuple[_Alt, ...]
    importance: float


@dataclass(frozen=True)
class _Query:
    """An analysed question, ready to be scored."""

    positions: tuple[_Position, ...]
    total: float  # sum of the importances (denominator of the score)
    stems: tuple[str, ...]  # content stems in order, for name matching
    all_stems: tuple[str, ...]  # every word's stem, for names made of short words
    off_topic: tuple[tuple[str, tuple[str, ...]], ...]  # off-topic pieces: surface, stems
    terms: frozenset[str]  # every stem and concept of the question, for keyword matching
    words: frozenset[str]  # the stems alone: a keyword needs one word of its own in the question


def _content_stems(lexicon: Lexicon, text: str) -> tuple[str, ...]:
    """Stems of the content words of a text (names and questions alike)."""
    return tuple(stem(w) for w in lexicon.expand(words(text)) if not lexicon.is_stop(w))


def _all_stems(text: str) -> tuple[str, ...]:
    """Stems of every word of a text, stop words included (for names like « Pro-A »)."""
    return tuple(stem(w) for w in words(text))


def _name_keys(lexicon: Lexicon, text: str) -> list[tuple[str, ...]]:
    """How a card name is recognised: by its content words, else by all its words.

    A name of several words with a single content word (« faire pour apprendre »,
    « contrat de pro ») is recognised by all its words: its content word alone is an
    ordinary word of many questions, not the name.
    """
    content = _content_stems(lexicon, text)
    every = _all_stems(text)
    if len(content) >= 2 or (content and len(every) == 1):
        return [content]
    return [every] if len(every) >= 2 else []


def _card_fields(card: Card) -> dict[str, str]:
    """The searchable text of each field of a card."""
    return {
        "title": card.title,
        "aliases": "\n".join(card.aliases),
        "keywords": "\n".join(card.keywords),
        "summary": card.summary,
        "themes": "\n".join(THEMES.get(t, t) for t in card.themes),
        "for_whom": card.for_whom,
        "what_you_get": card.what_you_get,
        "conditions": "\n".join(card.conditions),
        "how_to_apply": card.how_to_apply,
        "contact": "\n".join(PARTNER_KINDS.get(c, c) for c in card.contact),
        "body": card.body,
    }


class _Index:
    """Immutable inverted index over a set of cards; shared by concurrent readers."""

    def __init__(self, cards: Sequence[Card], lexicon: Lexicon) -> None:
        """Analyse every card and build postings, names and the typo vocabulary."""
        self.cards: tuple[Card, ...] = tuple(cards)
        self.lexicon = lexicon
        self.by_id: dict[str, int] = {c.id: i for i, c in enumerate(self.cards)}
        n = len(self.cards)

        # pass 1: analyse every field once, keep compact (term id, count) arrays
        term_ids: dict[str, int] = {}
        terms_by_id: list[str] = []
        fields: list[list[tuple[array[int], array[int], int]]] = []  # per card, per field
        total_len = dict.fromkeys(FIELDS, 0)
        surface: dict[str, str] = {}  # folded word -> stem, for typo repair
        for card in self.cards:
            per_field: list[tuple[array[int], array[int], int]] = []
            for name, text in _card_fields(card).items():
                counts = Counter(lexicon.terms(text))
                ids = array("I")
                tfs = array("I")
                for term, tf in counts.items():
                    tid = term_ids.get(term)
                    if tid is None:
                        tid = term_ids[term] = len(terms_by_id)
                        terms_by_id.append(term)
                    ids.append(tid)
                    tfs.append(tf)
                length = sum(tfs)
                total_len[name] += length
                per_field.append((ids, tfs, length))
                if name in REPAIR_FIELDS:
                    for w in words(text):
                        if len(w) >= MIN_FUZZY_LENGTH and not w.isdigit():
                            surface.setdefault(w, stem(w))
            fields.append(per_field)
        avg_len = {f: (total_len[f] / n if n else 0.0) or 1.0 for f in FIELDS}
        field_params = [(w, b, avg_len[f]) for f, (w, b) in FIELDS.items()]

        # pass 2 (BM25F): weighted, length-normalised frequency summed over fields; cards are
        # visited in order, so every posting list comes out sorted by card number
        raw_docs: list[array[int]] = [array("I") for _ in terms_by_id]
        raw_weights: list[array[float]] = [array("f") for _ in terms_by_id]
        for doc, per_field in enumerate(fields):
            combined: dict[int, float] = {}
            for (ids, tfs, length), (weight, b, avg) in zip(per_field, field_params, strict=True):
                norm = weight / (1.0 - b + b * length / avg)
                for tid, tf in zip(ids, tfs, strict=True):
                    combined[tid] = combined.get(tid, 0.0) + tf * norm
            for tid, value in combined.items():
                raw_docs[tid].append(doc)
                raw_weights[tid].append(value)
        del fields

        self.idf: dict[str, float] = {}
        # per term: every card (sorted by card number, for exact look-ups) and, for the first
        # pass, only the IMPACT_LIMIT cards where the term weighs most
        self.postings: dict[str, tuple[array[int], array[float]]] = {}
        self.heads: dict[str, tuple[array[int], array[float]]] = {}
        for tid, term in enumerate(terms_by_id):
            docs = raw_docs[tid]
            raw = raw_weights[tid]
            df = len(docs)
            idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5)) ** IDF_POWER
            self.idf[term] = idf
            weights = array("f", (idf * v / (v + K1) for v in raw))
            self.postings[term] = (docs, weights)
            if df <= IMPACT_LIMIT:
                self.heads[term] = self.postings[term]
            else:
                best = heapq.nlargest(IMPACT_LIMIT, range(df), key=weights.__getitem__)
                self.heads[term] = (
                    array("I", (docs[i] for i in best)),
                    array("f", (weights[i] for i in best)),
                )
        del raw_docs, raw_weights
        self.max_idf = math.log(1.0 + (n - 0.5) / 1.5) ** IDF_POWER if n else 1.0

        # names: title, aliases, id (as stem sequences), by first stem, then by whole name
        # names by stem sequence; for each first stem, the lengths of the names it starts
        self.names: dict[tuple[str, ...], list[tuple[int, str]]] = {}
        lengths: dict[str, set[int]] = {}
        for i, card in enumerate(self.cards):
            seen: set[tuple[str, ...]] = set()
            for text in (card.title, *card.aliases, card.id.replace("_", " ")):
                for stems in _name_keys(lexicon, text):
                    if stems in seen:
                        continue
                    seen.add(stems)
                    self.names.setdefault(stems, []).append((i, text))
                    lengths.setdefault(stems[0], set()).add(len(stems))
        self.name_lengths = {s: tuple(sorted(n)) for s, n in lengths.items()}

        # what each card is about (title, aliases, keywords, summary): a question on an
        # off-topic matter is answered with assurance only by a card about that matter; and
        # its anchors, the distinctive terms of it (see ANCHOR_NAME_CARDS)
        self.about, self.anchors = self._about_and_anchors(lexicon)

        # card keywords as sets of items (a stem, or any member of a synonym group): a keyword
        # all of whose items are in the question is strong, order-free phrase evidence
        self.keywords: list[tuple[tuple[str, tuple[frozenset[str], ...]], ...]] = []
        interned: dict[Any, Any] = {}  # identical items and signatures are shared
        for card in self.cards:
            signatures: list[tuple[str, tuple[frozenset[str], ...]]] = []
            for keyword in card.keywords:
                items = tuple(
                    interned.setdefault(item, item)
                    for item in (
                        frozenset((*seg.concepts, *seg.stems))
                        for seg in lexicon.segments(keyword)
                        if seg.stems or seg.concepts
                    )
                )
                if len(items) >= 2:
                    signatures.append((keyword, interned.setdefault(items, items)))
            self.keywords.append(tuple(signatures))

        # typo repair vocabulary, bucketed by first letter
        for w in lexicon.surface_words:
            surface.setdefault(w, stem(w))
        self.surface = surface
        buckets: dict[tuple[str, int], list[str]] = {}
        for w in surface:
            buckets.setdefault((w[0], len(w)), []).append(w)
        self.buckets = {k: sorted(v) for k, v in buckets.items()}
        self._fuzzy_cache: dict[str, tuple[str, float] | None] = {}
        self._query_cache: dict[str, _Query] = {}
        self._lock = threading.Lock()

    def _about_and_anchors(
        self, lexicon: Lexicon
    ) -> tuple[list[frozenset[str]], list[frozenset[str]]]:
        """Per card, every term of what it is about, and those few other cards share."""

        def terms_of(texts: Iterable[str]) -> frozenset[str]:
            return frozenset(t for text in texts for t in lexicon.terms(text))

        names = [terms_of((c.title, *c.aliases)) for c in self.cards]
        ids = [terms_of((c.id.replace("_", " "),)) for c in self.cards]
        keywords = [terms_of(c.keywords) for c in self.cards]
        summaries = [terms_of((c.summary,)) for c in self.cards]
        # keywords of one piece (« alternant », « RQTH »); longer ones count when matched whole
        single = [
            frozenset(
                t
                for k in c.keywords
                if len(segments := lexicon.segments(k)) == 1
                for t in (*segments[0].stems, *segments[0].concepts)
            )
            for c in self.cards
        ]
        about = [n | k | s for n, k, s in zip(names, keywords, summaries, strict=True)]
        named = [n | i for n, i in zip(names, ids, strict=True)]
        in_names = Counter(t for terms in named for t in terms)
        anywhere = Counter(t for n, a in zip(named, about, strict=True) for t in n | a)
        # context words (« usine », « entreprise », « salarié », « soudeur »: members of the
        # synonym groups that weigh less than 1) say where the question comes from, not what
        # it is about: neither their groups nor their own stems are anchors
        context: set[str] = set()
        for name, members in lexicon.groups.items():
            concept = CONCEPT_PREFIX + fold(name).replace(" ", "_")
            if lexicon.concept_weight(concept) < 1.0:
                context.add(concept)
                context.update(stem(w[0]) for m in members if len(w := words(m)) == 1)
        anchors = [
            frozenset(
                {t for t in n if in_names[t] <= ANCHOR_NAME_CARDS}
                | {t for t in k if anywhere[t] <= ANCHOR_KEYWORD_CARDS}
                | {t for t in s if anywhere[t] <= ANCHOR_SUMMARY_CARDS}
            )
            - context
            for n, k, s in zip(named, single, summaries, strict=True)
        ]
        return about, anchors

    # -- questions ---------------------------------------------------------------------

    def _repair(self, word: str) -> tuple[str, float] | None:
        """Closest vocabulary word to an unknown word, with its similarity (0–1)."""
        if word in self._fuzzy_cache:
            return self._fuzzy_cache[word]
        # one edit for short words, two from eight letters on ("embocher" -> "embaucher");
        # candidates share the first letter and have a length within reach
        max_edits = 1 if len(word) < 8 else 2
        choices = [
            w
            for size in range(len(word) - max_edits, len(word) + max_edits + 1)
            for w in self.buckets.get((word[0], size), ())
        ]
        found = process.extractOne(
            word, choices, scorer=Levenshtein.distance, score_cutoff=max_edits
        )
        result = None
        if found is not None:
            result = (found[0], 1.0 - found[1] / max(len(word), len(found[0])))
        with self._lock:
            if len(self._fuzzy_cache) > 50_000:
                self._fuzzy_cache.clear()
            self._fuzzy_cache[word] = result
        return result

    def analyse(self, query: str) -> _Query:
        """Cut a question into weighted positions with their alternatives."""
        cached = self._query_cache.get(query)
        if cached is not None:
            return cached
        lexicon = self.lexicon
        unknown_importance = UNKNOWN_WEIGHT * self.max_idf
        positions: list[_Position] = []
        off_topic: list[tuple[str, tuple[str, ...]]] = []
        segments = lexicon.segments(query)
        for seg in segments:
            if seg.off_topic and not seg.concepts:
                off_topic.append((seg.surface, seg.stems))
                positions.append(
                    _Position(seg.surface, (), OFF_TOPIC_WEIGHT * unknown_importance)
                )
                continue
            alts: list[_Alt] = []
            for concept in seg.concepts:
                weight = CONCEPT_WEIGHT * lexicon.concept_weight(concept)
                label = f"{seg.surface}≈{concept[len(CONCEPT_PREFIX):]}"
                alts.append(_Alt(concept, weight, label))
            stems = [s for s in seg.stems if not s.isdigit()]  # numbers only count in names
            if seg.end - seg.start == 1 and stems:
                alts.append(_Alt(stems[0], 1.0, seg.surface))
            else:  # a known phrase: each of its words is a weaker way to match it
                for s in stems:
                    alts.append(_Alt(s, PHRASE_WORD_WEIGHT / len(stems), seg.surface))
            known = [a for a in alts if a.term in self.postings]
            if not known and not seg.concepts and len(seg.surface) >= MIN_FUZZY_LENGTH and stems:
                repaired = self._repair(seg.surface)
                if repaired is not None:
                    word, similarity = repaired
                    label = f"{seg.surface}→{word}"
                    term = self.surface[word]
                    known.append(_Alt(term, FUZZY_WEIGHT * similarity, label))
                    for concept in lexicon.concepts_of_word(word):
                        weight = CONCEPT_WEIGHT * lexicon.concept_weight(concept) * similarity
                        known.append(_Alt(concept, weight, label))
                    known = [a for a in known if a.term in self.postings]
            if known:
                importance = max(a.weight * self.idf[a.term] for a in known)
                positions.append(_Position(seg.surface, tuple(known), importance))
            elif stems and not seg.concepts:
                positions.append(_Position(seg.surface, (), unknown_importance))
        result = _Query(
            positions=tuple(positions),
            total=sum(p.importance for p in positions),
            stems=_content_stems(lexicon, query),
            all_stems=_all_stems(query),
            off_topic=tuple(off_topic),
            terms=frozenset(
                [a.term for p in positions for a in p.alts]
                + [s for seg in segments for s in (*seg.stems, *seg.concepts)]
            ),
            words=frozenset(
                [a.term for p in positions for a in p.alts if not a.term.startswith(CONCEPT_PREFIX)]
                + [s for seg in segments for s in seg.stems]
            ),
        )
        with self._lock:
            if len(self._query_cache) > 10_000:
                self._query_cache.clear()
            self._query_cache[query] = result
        return result

    def named(self, stems: Sequence[str]) -> dict[int, tuple[float, str]]:
        """Cards whose title, alias or id appears in the question: card -> (share, name)."""
        spans: list[tuple[int, int, list[tuple[int, str]]]] = []
        for start, first in enumerate(stems):
            for size in self.name_lengths.get(first, ()):
                owners = self.names.get(tuple(stems[start : start + size]))
                if owners:
                    spans.append((start, start + size, owners))
        out: dict[int, tuple[float, str]] = {}
        for start, end, owners in spans:
            # a name inside a longer name of other cards does not count ("TI" in "Fonds vert TI")
            longer = [
                o2
                for s2, e2, o2 in spans
                if s2 <= start and end <= e2 and (e2 - s2) > (end - start)
            ]
            covered = {c for o2 in longer for c, _ in o2}
            share = (end - start) / max(len(stems), 1)
            for card, text in owners:
                if longer and card not in covered:
                    continue
                if card not in out or out[card][0] < share:
                    out[card] = (share, text)
        return out

    def keyword_matches(self, query: _Query, doc: int) -> list[tuple[str, bool]]:
        """Card keywords (of two items or more) whose every item is in the question.

        Each comes with whether one of its items at least is a word of the question itself
        (else it was reached through synonym groups alone, a weaker sign).
        """
        terms = query.terms
        own = query.words
        out: list[tuple[str, bool]] = []
        for keyword, items in self.keywords[doc]:
            literal = False
            for item in items:
                if item.isdisjoint(terms):
                    break
                literal = literal or not item.isdisjoint(own)
            else:
                out.append((keyword, literal))
        return out

    def anchored(self, query: _Query, doc: int) -> bool:
        """Whether the question is about what the card is about: it matches one of its
        anchors, or one of its keywords of several words whole with a word of its own."""
        anchors = self.anchors[doc]
        if any(a.term in anchors for pos in query.positions for a in pos.alts):
            return True
        return any(literal for _, literal in self.keyword_matches(query, doc))

    def matched_positions(self, query: _Query, doc: int) -> int:
        """How many positions of the question a card matches, by any alternative."""
        return sum(
            1 for pos in query.positions if any(self.contains(a.term, doc) for a in pos.alts)
        )

    def contains(self, term: str, doc: int) -> bool:
        """Whether a card has a term (binary search in the postings)."""
        posting = self.postings.get(term)
        if posting is None:
            return False
        docs = posting[0]
        i = bisect_left(docs, doc)
        return i < len(docs) and docs[i] == doc

    def weight(self, term: str, doc: int) -> float:
        """A term's weight in a card (0 when absent)."""
        posting = self.postings.get(term)
        if posting is None:
            return 0.0
        docs, weights = posting
        i = bisect_left(docs, doc)
        return float(weights[i]) if i < len(docs) and docs[i] == doc else 0.0

    def first_pass(self, query: _Query) -> tuple[dict[int, float], bool]:
        """Sum, over positions, the best alternative's weight in each card (inverted index).

        Only the head of each posting list (the cards where a term weighs most) is read, so
        the sums are exact only when no list was cut; the flag tells whether they are.
        """
        acc: dict[int, float] = {}
        get = acc.get
        exact = True
        heads = self.heads
        for pos in query.positions:
            alts = pos.alts
            if not alts:
                continue
            if len(alts) == 1:
                alt = alts[0]
                docs, weights = heads[alt.term]
                exact = exact and len(docs) == len(self.postings[alt.term][0])
                qw = alt.weight
                for d, w in zip(docs, weights, strict=True):
                    acc[d] = get(d, 0.0) + qw * w
                continue
            best: dict[int, float] = {}
            bget = best.get
            for alt in alts:
                docs, weights = heads[alt.term]
                exact = exact and len(docs) == len(self.postings[alt.term][0])
                qw = alt.weight
                for d, w in zip(docs, weights, strict=True):
                    v = qw * w
                    if v > bget(d, 0.0):
                        best[d] = v
            for d, v in best.items():
                acc[d] = get(d, 0.0) + v
        return acc, exact

    def exact_score(self, query: _Query, doc: int) -> float:
        """A card's exact sum over positions (binary searches in the full postings)."""
        total = 0.0
        postings = self.postings
        for pos in query.positions:
            best = 0.0
            for alt in pos.alts:
                docs, weights = postings[alt.term]
                i = bisect_left(docs, doc)
                if i < len(docs) and docs[i] == doc:
                    v = alt.weight * weights[i]
                    if v > best:
                        best = v
            total += best
        return total

    def explain(
        self, query: _Query, doc: int, name: str | None, keywords: Sequence[str]
    ) -> tuple[str, ...]:
        """What made a card match: its name and the best alternative of each position."""
        why: list[str] = []
        if name:
            why.append(f"nom « {name} »")
        why.extend(f"mot-clé « {k} »" for k in keywords)
        for pos in query.positions:
            best: _Alt | None = None
            best_value = 0.0
            for alt in pos.alts:
                value = alt.weight * self.weight(alt.term, doc)
                if value > best_value:
                    best, best_value = alt, value
            if best is not None and best.label not in why:
                why.append(best.label)
        return tuple(why)


# -- public API ------------------------------------------------------------------------------


@dataclass
class _State:
    """Everything a question needs, swapped as a whole on reload."""

    index: _Index
    problems: list[CardProblem] = field(default_factory=list)
    signature: tuple[tuple[str, int, int], ...] = ()


def _folder_signature(directory: Path | None) -> tuple[tuple[str, int, int], ...]:
    """Names, modification times and sizes of a folder's cards (to notice edits)."""
    if directory is None or not directory.is_dir():
        return ()
    out: list[tuple[str, int, int]] = []
    for path in sorted(directory.glob("*.md")):
        try:
            info = path.stat()
        except OSError:
            continue
        out.append((path.name, info.st_mtime_ns, info.st_size))
    return tuple(out)


class KnowledgeBase:
    """The programme cards, searchable with owners' questions; reloadable from disk."""

    def __init__(
        self,
        cards: Iterable[Card],
        *,
        problems: Iterable[CardProblem] = (),
        directory: Path | None = None,
        today: date | None = None,
        lexicon: Lexicon | None = None,
    ) -> None:
        """Index the given cards (use :meth:`load` to read them from a folder)."""
        self._lexicon = lexicon or default_lexicon()
        self._directory = directory
        self._today = today
        self._reload_lock = threading.Lock()
        self._state = _State(
            _Index(list(cards), self._lexicon), list(problems), _folder_signature(directory)
        )

    @classmethod
    def load(cls, directory: Path | None = None, *, today: date | None = None) -> KnowledgeBase:
        """Load and index every card of a folder (default: the shipped cards)."""
        folder = Path(directory) if directory is not None else CARDS_DIR
        card_set = load_cards(folder)
        return cls(card_set.cards, problems=card_set.problems, directory=folder, today=today)

    @classmethod
    def from_cards(
        cls, cards: Iterable[Card], *, today: date | None = None
    ) -> KnowledgeBase:
        """Index cards built in memory (benchmarks, tests)."""
        return cls(cards, today=today)

    # -- state ------------------------------------------------------------------------

    @property
    def problems(self) -> list[CardProblem]:
        """Problems of the broken cards skipped at the last (re)load."""
        return list(self._state.problems)

    @property
    def cards(self) -> list[Card]:
        """The cards in use."""
        return list(self._state.index.cards)

    @property
    def today(self) -> date:
        """The date used to tell ended cards (fixed in tests, else the current day)."""
        return self._today or date.today()

    def get(self, card_id: str) -> Card | None:
        """The card with this id, if loaded."""
        index = self._state.index
        i = index.by_id.get(card_id)
        return index.cards[i] if i is not None else None

    def clear_caches(self) -> None:
        """Forget analysed questions and repaired typos (for cold-latency measurements)."""
        index = self._state.index
        with index._lock:
            index._query_cache.clear()
            index._fuzzy_cache.clear()

    def reload(self) -> list[CardProblem]:
        """Re-read the folder: good cards replace the old set at once, broken ones are reported."""
        if self._directory is None:
            return self.problems
        with self._reload_lock:
            signature = _folder_signature(self._directory)
            card_set = load_cards(self._directory)
            state = _State(_Index(card_set.cards, self._lexicon), card_set.problems, signature)
            self._state = state  # atomic swap: readers see the old or the new set
        return list(state.problems)

    def reload_if_changed(self) -> list[CardProblem] | None:
        """Reload when a card file was added, removed or edited; None when nothing changed."""
        if self._directory is None:
            return None
        if _folder_signature(self._directory) == self._state.signature:
            return None
        return self.reload()

    # -- questions ------------------------------------------------------------------------

    def ask(self, query: str, *, limit: int = 5) -> Answer:
        """Find the cards that answer a question, best first, with confidence flags."""
        index = self._state.index
        analysed = index.analyse(query)
        named = index.named(analysed.stems)
        for card, found in index.named(analysed.all_stems).items():
            if card not in named or named[card][0] < found[0]:
                named[card] = found
        if len(named) > CANDIDATES:  # names are unique in a checked folder; stay bounded anyway
            keep = heapq.nlargest(CANDIDATES, named, key=lambda d: named[d][0])
            named = {d: named[d] for d in keep}
        if (analysed.total <= 0.0 and not named) or not index.cards:
            return Answer(query=query, hits=(), confident=False, out_of_scope=True)
        if analysed.total <= 0.0:
            # only short words, and they name a card (« Pro-A »): the name is the whole question
            analysed = replace(analysed, total=1.0)
            acc, exact = dict.fromkeys(named, 1.0), True
        else:
            acc, exact = index.first_pass(analysed)
        candidates = {d for d, _ in heapq.nlargest(CANDIDATES, acc.items(), key=itemgetter(1))}
        candidates.update(named)
        if not exact:  # long posting lists were cut: rescore the candidates exactly
            acc = {d: index.exact_score(analysed, d) for d in candidates}
        else:
            acc = {d: acc.get(d, 0.0) for d in candidates}
        # card keywords are checked for the best candidates only
        keyword_checked = set(heapq.nlargest(KEYWORD_CANDIDATES, acc, key=acc.__getitem__))
        keyword_checked.update(named)
        today = self.today
        scored: list[tuple[float, int]] = []
        keywords: dict[int, list[str]] = {}
        for d in candidates:
            score = acc.get(d, 0.0) / analysed.total
            if d in keyword_checked:
                found = index.keyword_matches(analysed, d)
                # only the keywords that counted explain the score
                keywords[d] = [k for k, lit in found if lit or SYNONYM_KEYWORD_SHARE > 0]
                weight = sum(1.0 if literal else SYNONYM_KEYWORD_SHARE for _, literal in found)
                score += KEYWORD_BONUS * min(weight, KEYWORD_BONUS_MAX)
            name = named.get(d)
            if name is not None:
                score += ALIAS_BONUS * (0.5 + 0.5 * name[0])
            elif index.cards[d].successor and not index.cards[d].is_current(today):
                score *= ENDED_FACTOR  # a replaced card makes way for its successor
            scored.append((score, d))
        scored.sort(key=lambda x: (-x[0], index.cards[x[1]].id))
        top = scored[: max(limit, 1)]
        hits = [
            Hit(
                card=index.cards[d],
                score=round(min(1.0, s), 4),
                why=index.explain(
                    analysed, d, named[d][1] if d in named else None, keywords.get(d, ())
                ),
            )
            for s, d in top
            if s > 0.0
        ]
        best = scored[0][0] if scored else 0.0
        second = scored[1][0] if len(scored) > 1 else 0.0
        out_of_scope = best < OUT_OF_SCOPE_THRESHOLD
        # a question about an off-topic matter (labour law, taxes, obligations, private
        # life...) is never answered with assurance, unless the card is about that matter
        # (« obligés » and the card of an obligation, in its summary); naming the card is not
        # enough (« les jours de repos d'un travailleur handicapé » is labour law)
        off_topic = bool(analysed.off_topic) and (
            not scored
            or not all(
                stems and index.about[scored[0][1]].issuperset(stems)
                for _, stems in analysed.off_topic
            )
        )
        # one matching word is not enough to be sure (unless it names the card)
        evidence = bool(scored) and (
            scored[0][1] in named or index.matched_positions(analysed, scored[0][1]) >= 2
        )
        # the question is about what the card is about: it names it, matches a distinctive
        # word or a whole keyword of it (not only « aide », « contrat », « salariés »)
        about = bool(scored) and (
            scored[0][1] in named or index.anchored(analysed, scored[0][1])
        )
        confident = (
            not out_of_scope
            and not off_topic
            and evidence
            and about
            and best >= CONFIDENT_THRESHOLD
            and best - second >= CONFIDENT_MARGIN
        )
        if out_of_scope:
            hits = []
        ended: Card | None = None
        successor: Card | None = None
        if hits and not hits[0].card.is_current(today):
            ended = hits[0].card
            j = index.by_id.get(ended.successor) if ended.successor else None
            successor = index.cards[j] if j is not None else None
            if successor is not None and j is not None and all(
                h.card is not successor for h in hits[:2]
            ):
                # the successor always comes right after the ended card
                hits = [h for h in hits if h.card is not successor]
                s = index.exact_score(analysed, j) / analysed.total
                why = (f"successeur de « {ended.title} »",)
                hits.insert(1, Hit(successor, round(min(1.0, s), 4), why))
        return Answer(
            query=query,
            hits=tuple(hits[: max(limit, 2) if ended is not None else limit]),
            confident=confident,
            out_of_scope=out_of_scope,
            ended=ended,
            successor=successor,
        )
