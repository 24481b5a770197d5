"""Mutualisation radar: open needs of one territory that several firms share.

The animator can act collectively on a need that two firms or more share: one training for
everybody (POEC, école de production, période de reconversion), one machine for several
workshops (Manufactures de proximité, tiers-lieux productifs), one brownfield for several
projects (recyclage des friches, EPF). :func:`find_groups` finds such groups among the open
needs of a territory; the caller builds the :class:`NeedItem` rows from ``Need`` rows.

Scoring of two needs, in plain terms:

0. *Objects first* (bot/services/radar_objects.py, knowledge/data/radar_objects.yaml). Each
   need is read for the objects one collective action would serve (a trade, a machine, land,
   a shuttle, a flow, a market, housing, childcare), what the firm wants of them (hire,
   train, share) and whether it is its own matter (own financing, permit, crisis, R&D,
   succession: never poolable, score 0). When both needs name objects, the score is the
   weighted overlap of their objects (shared weight over the smaller side's), whatever
   their words and themes: no shared object, score 0 (« électricien du bâtiment » /
   « électrotechnicien »). Needs naming the same objects are one node of the grouping
   (their pairs score 1), so a territory's cost grows with its distinct objects and real
   neighbours (see :func:`_graph`). The steps below score the pairs where one need names
   no known object: needs saying the same words under one theme are one node too, and a
   need without objects is scored against its MAX_CANDIDATES closest needs only; the
   knowledge base is asked only for needs scored on words against another such need.
   A need that names no object borrows one from its batch (:func:`_borrow_objects`): the
   object whose needs use most of its word weight, when intent agrees, so the batch's own
   words carry an object to a need written in them only.
   *Where* (bot/services/radar_places.py): a shuttle, land, heat or a zone's canteen is
   somewhere. Two needs share such an object only where their places meet: one commuting
   corridor (every end of one need, the communes it names and its firm's commune, near an
   end of the other or on the way between two: Pau → Lacq is not Tarbes → Bagnères), one
   site (land: the same zone or brownfield, else firms within LAND_HOME_KM), one basin
   (housing, childcare). Places are read with the communes table near the firm (« Clermont »
   from Thiers is Clermont-Ferrand) and by name for sites that are no commune
   (« Technoland »). A need about land or premises that names a site also has that site as
   an object (``site:<key>``): firms of different trades wanting premises on one named zone
   are one group. A need that names no place is never set apart on places. An export
   mission is one trade fair (bot/services/radar_fairs.py, knowledge/data/fairs.yaml): two
   needs naming different fairs or fair cities are not one group. Only the pairs whose places
   may meet are scored for such an object (a grid: radar_places.candidate_pairs).
   Measured with bench/bench_radar.py (2-core machine shared with 7 other sessions, load
   ≈ 10): 2,000 open needs 0.6 s cold, 0.25 s warm; 10,000: 3.1 s cold, 1.0 s warm; growth
   exponent ≈ 1 between 5,000 and 10,000 (1.6 cold, 2.1 warm before the candidate cap).

1. *Salient words.* A text is folded (lower case, no accents, no elisions), SMS
   abbreviations are expanded, and French stop words (``knowledge/data/stopwords_fr.txt``),
   numbers, the firm's own name and NEED_WORDS (words that say *that* there is a need, not
   *what* it is: recruter, besoin, urgent, formation, partager, candidat...) are dropped.
   Names written with a capital inside a sentence (places, people) are dropped too. The rest
   is stemmed (Snowball); a few multi-word names become one word (« commande numérique »,
   « lamellé-croisé »).
2. *Subjects.* FAMILIES gathers the words firms use for one subject (soudeur, soudure,
   chaudronnier; friche, terrain, foncier; bus, navette, minibus...) into one token, which
   weighs SUBJECT_BOOST ordinary words (MODALITIES such as apprentissage weigh one: an
   apprentice in machining and one in accounting are two needs). Typos are repaired with
   rapidfuzz: a stem of 8 letters or more within one edit (two from 11 letters) of a subject
   word or of a more frequent stem of the batch, same first letter, joins it (« chaudronier »
   → soudure). Shorter words are left alone: magasin / magasinier are not a typo.
3. *Text similarity.* A token weighs its smoothed inverse document frequency in the batch
   (as if it held IDF_FLOOR needs at least, so a small territory does not make every word
   rare) times its specificity in general French (knowledge/frequency.py: « semaine » next
   to nothing, « grenaillage » fully); a bare job title (HEAD_WORDS: technicien,
   conducteur...) weighs HEAD_WEIGHT of that, its qualifier says what the job is. With ``S``
   the weight of the shared tokens, counted on both sides, and ``U`` the weight of the
   others, ``text = S / (S + U)``, a weighted Dice coefficient; a need that only hires or
   trains and one that only shares never pair on words. When the two needs share a subject
   (not a modality), an unshared ordinary word counts only UNSHARED_WEIGHT: firms add
   details (« TIG », « sur 2 chantiers ») that do not change the subject, while an unshared
   subject says the needs differ. When they share only ordinary words, nothing says which
   one is the subject and every word counts fully (conducteur de ligne / conducteur poids
   lourd). Not rapidfuzz's token_set_ratio on whole texts: it scores 100 as soon as one
   text's words are a subset of the other's and knows nothing of which words matter.
4. *Programme agreement.* The knowledge base is asked once per need; ``programmes`` is the
   Jaccard index of the two top-3 card sets (hits above the out-of-scope threshold).
5. *Themes.* Same theme × 1, related themes (RELATED_THEMES: recrutement ~ competences,
   foncier ~ mutualisation, innovation ~ mutualisation, transition ~ financement..., and
   « autre » with any theme) × RELATED_FACTOR, others × OTHER_FACTOR: a robot that welds
   (innovation) is not a welder to hire (recrutement).
6. ``score = theme × (text + KB_WEIGHT × programmes × (1 − text))``: agreement on the
   programmes lifts a pair, disagreement does not sink it (the top cards of a two-line text
   are noisy); without a knowledge base, ``score = theme × text``. Only pairs sharing a
   token are scored (inverted index): programme agreement alone never links two needs.

Grouping is average-linkage agglomeration: the two clusters with the highest mean pairwise
score (unscored pairs count 0) are merged while that mean reaches ``threshold``. Unlike
connected components it does not chain unrelated needs: A~B and B~C do not pull C next to A
unless C is close to A too. A group is kept when it holds ``min_size`` distinct firms (two
needs of one firm are not a collective need).

Everything is computed on the needs sorted by id, so the result does not depend on the input
order; a group's key is a hash of its need ids, so a dismissed group stays dismissed. A group
is described by the words that two of its needs or more share, most shared first (never a
word of a member's firm name), and by the knowledge base's answer to its most central texts
plus a collective hint (COLLECTIVE_HINT), collective programmes (COLLECTIVE_PROGRAMMES) first.

Speed: analysis, typo repair (buckets by first letter) and one knowledge-base question per
need are linear; only pairs sharing a token are scored, and a token found in more than
MAX_DF_SHARE of the needs (it weighs almost nothing then) makes no candidate pair. Measured
on the development machine (Python 3.11, cold knowledge-base caches, a shared and
noisy machine): 500 open needs (the test corpus repeated with variations, 36 groups) take
0.25–0.45 s, 0.12–0.2 s without the knowledge base; 500 needs all about welding, with random
details (every pair scored), 0.45–0.7 s.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import re
import threading
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeVar

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from bot.services.radar_objects import PEOPLE_KINDS, TextObjects, object_lexicon
from bot.services.radar_places import (
    Places,
    candidate_pairs,
    compatible,
    home_of,
    place_rule,
    read_places,
    speaks_of_premises,
)
from knowledge.frequency import zipf
from knowledge.retrieval import OUT_OF_SCOPE_THRESHOLD, KnowledgeBase
from knowledge.taxonomy import THEME_KEYS
from knowledge.text import default_lexicon, fold, stem

__all__ = [
    "COLLECTIVE_PROGRAMMES",
    "DEFAULT_THRESHOLD",
    "Group",
    "NeedItem",
    "find_groups",
    "group_key",
    "pair_scores",
]

# -- tuning (see the module docstring) ------------------------------------------------------

DEFAULT_THRESHOLD = 0.45
KB_WEIGHT = 0.25  # share of the programme agreement in the score
KB_TOP = 3  # cards per need compared by the programme agreement
SUBJECT_BOOST = 2.0  # a subject (FAMILIES) weighs this many ordinary words
UNSHARED_WEIGHT = 0.5  # a detail only one need has counts half as much as a shared word
HEAD_WEIGHT = 0.5  # a bare job title (HEAD_WORDS) weighs half an ordinary word
IDF_FLOOR = 50  # idf is computed as if the batch held at least this many needs
MAX_DF_SHARE = 0.25  # a token in more needs than this share makes no candidate pair...
MIN_DF_CAP = 12  # ...unless it is in at most this many needs (small territories)
RELATED_FACTOR = 0.85
OTHER_FACTOR = 0.6
MAX_PROGRAMMES = 3
PROGRAMME_CANDIDATES = 10  # hits asked for a group, before the theme filter
PROGRAMME_TEXTS = 5  # texts of a group (the most central) put in its question
PROGRAMME_RELATIVE_FLOOR = 0.5  # a group's programme scores at least half the best card
REASON_WORDS = 3
CACHE_SIZE = 50_000  # needs whose analysis is kept between calls
TEXT_DF_CAP = 300  # a word in more needs than this makes no candidate pair, whatever the size
_PREMISES_OBJECT = "foncier"  # the land object of radar_objects.yaml (premises asked for)
MAX_CANDIDATES = 64  # needs a need without objects is scored against (most shared weight)

# Themes close enough for firms to file the same need under either.
_RELATED_PAIRS: tuple[tuple[str, str], ...] = (
    ("recrutement", "competences"),
    ("recrutement", "mobilite"),
    ("competences", "mutualisation"),
    ("foncier", "mutualisation"),
    ("foncier", "financement"),
    ("innovation", "mutualisation"),
    ("innovation", "financement"),
    ("transition", "financement"),
    ("transition", "mutualisation"),
    ("difficulte", "financement"),
    ("difficulte", "competences"),
)
RELATED_THEMES: frozenset[frozenset[str]] = frozenset(frozenset(p) for p in _RELATED_PAIRS)

# Words that say there is a need, not what it is about (folded; stemmed at import).
NEED_WORDS = """
    recruter recrute recrutons recrutement recrutements embaucher embauche embauches embauchons
    trouver trouve trouvons besoin urgent urgente urgence rapidement vite asap dispo disponible
    entreprise entreprises societe societes boite boites pme tpe eti secteur coin zone zones
    commune territoire region usine usines atelier ateliers site sites
    personne personnes gens gars salarie salaries employe employes monde profil profils
    candidat candidats candidature cv poste postes cdi cdd interim contrat
    mois an ans annee annees semaine semaines jour jours heure heures rentree environ
    janvier fevrier mars avril mai juin juillet aout septembre octobre novembre decembre
    nouveau nouvelle nouveaux nouvel gros grosse petit petite grand grande seul seule
    projet projets aide aides idee idees solution solutions question questions probleme
    formation formations former formons organisme organismes
    partager partage mutualiser mutualisation ensemble commun communs co voisin voisins
    partenaire partenaires autre autres
    pense pensons penser prendre prend prenons pris prise contacter contact lancer monter
    mettre place passer
    demarrer commencer acheter achat investir investissement chose choses aucun aucune
    industriel industrielle industriels industrielles machine machines
"""

# Job titles that say little without their qualifier (technicien qualité / méthodes): they
# weigh HEAD_WEIGHT ordinary words.
HEAD_WORDS = """
    technicien technicienne conducteur conductrice operateur operatrice agent agents
    responsable chef ingenieur ouvrier ouvriere assistant assistante charge chargee employe
    employee adjoint adjointe
"""

# Words firms use for one subject (folded, stemmed at import, so plurals come for free); each
# family becomes one token, named by its key (the name the animator reads).
FAMILIES: dict[str, str] = {
    "soudure": "soudeur soudeuse soudure soudage souder chaudronnier chaudronnerie tuyauteur "
    "tig mig mag",
    "usinage": "usinage usiner usineur usineuse tourneur fraiseur fraisage tournage "
    "decolletage decolleteur cnc",
    "maintenance": "maintenance maintenancier electromecanicien electrotechnicien depannage",
    "logistique": "cariste magasinier manutention manutentionnaire",
    "apprentissage": "apprenti apprentie apprentissage alternant alternante alternance cfa",
    "foncier": "foncier fonciere terrain friche parcelle hectare ha",
    "transport": "transport bus navette minibus covoiturage autocar",
    "logement": "logement loger hebergement heberger",
    "comptabilité": "comptable compta comptabilite",
    "RH": "rh drh",
    "secrétariat": "secretaire secretariat administratif administrative",
    "CLT": "clt",
    "énergie": "energie electricite gaz energetique",
    "déchets": "dechet sciure copeaux benne",
    "découpe laser": "laser decoupe",
}
# Families that say how a need is met rather than what it is about: apprentis en usinage and
# apprentie en comptabilité are two needs. They weigh as an ordinary word.
MODALITIES: frozenset[str] = frozenset({"apprentissage"})
# Multi-word names of a subject (folded words, no stop word), matched on consecutive stems.
PHRASES: dict[str, str] = {
    "commande numerique": "usinage",
    "lamelle croise": "CLT",
    "bois lamelle croise": "CLT",
    "ressources humaines": "RH",
}

# Programmes that bring several firms together, preferred for a group (ids of knowledge/cards).
COLLECTIVE_PROGRAMMES: frozenset[str] = frozenset(
    {
        "poec",
        "ecoles_de_production",
        "periode_de_reconversion",
        "transitions_collectives",
        "manufactures_de_proximite",
        "ecologie_industrielle_territoriale",
        "fonds_friches_recyclage_foncier",
        "fonds_vert_ti_transition_ecologique",
        "campus_connectes",
    }
)
# Added to a group's question so that the knowledge base leans to collective answers.
COLLECTIVE_HINT: dict[str, str] = {
    "recrutement": "recruter ensemble plusieurs entreprises, monter une formation collective",
    "competences": "former ensemble les salariés de plusieurs entreprises, session collective",
    "foncier": "friche à reconvertir, recyclage foncier, établissement public foncier",
    "innovation": "mutualiser des machines entre entreprises, atelier partagé",
    "mutualisation": "mutualiser entre entreprises, atelier partagé, achats groupés",
    "financement": "projet commun de plusieurs entreprises",
    "transition": "démarche collective d'entreprises voisines, écologie industrielle",
    "mobilite": "plusieurs entreprises, solution commune pour les salariés",
}
@dataclass(frozen=True, slots=True)
class NeedItem:
    """What the radar needs of a need (the caller builds it from ``Need`` rows)."""

    need_id: int
    reference: str
    theme: str
    text: str
    firm: str
    commune: str | None
    # INSEE code of the firm's commune, when known: where a shuttle's staff go (radar_places)
    commune_insee: str | None = None


@dataclass(frozen=True, slots=True)
class Group:
    """Open needs of several firms that the animator could handle together."""

    key: str  # sha256 of the sorted need ids, 16 hex: a dismissed group stays dismissed
    need_ids: tuple[int, ...]
    references: tuple[str, ...]
    theme: str  # dominant theme
    firms: int  # distinct firms (a firm with two needs counts once)
    # What the needs share, most shared first: never a word of a member's firm name.
    # The animator reads them after the theme's verb (bot/services/mutualisation.py).
    words: tuple[str, ...]
    similarity: float  # 0..1 mean pairwise score
    programmes: tuple[tuple[str, str], ...]  # (card id, title) of collective programmes first
    # The objects (knowledge/data/radar_objects.yaml ids) two members or more name, most
    # shared first, and what the members want to do with the first: hire, train, hire_train,
    # share or "" (the animator reads « 4 entreprises : régleurs-décolleteurs à former »).
    objects: tuple[str, ...] = ()
    action: str = ""
    # the site two members or more name, as the animator reads it (« Aéroparc de
    # Fontaine », « Gandrange »), when the group is about land or premises there
    site: str = ""


# -- text analysis ----------------------------------------------------------------------------

_ELISION = re.compile(r"\b(?:l|d|j|m|n|s|t|c|qu|jusqu|lorsqu|puisqu|quoiqu|presqu)'", re.I)
_AUJOURDHUI = re.compile(r"aujourd'hui", re.I)
_SPLIT = re.compile(r"[\W_]+")
_DIGIT = re.compile(r"\d")
_SUBJECT = "#"  # prefix of family tokens: cannot come out of the tokenizer
_OBJECT = "@"  # prefix of object postings (same reason)
SITE = "site:"  # prefix of the objects that are a site named by a need about land
_T = TypeVar("_T")


@lru_cache(maxsize=65536)
def _stems_of(text: str) -> tuple[str, ...]:
    """Stems of the words of a short text (cached: groups show the same words again)."""
    return tuple(stem(w) for w in _SPLIT.split(fold(text)) if w)


def _stems(text: str) -> list[str]:
    """Stems of the words of a short folded list (used to compile the tables)."""
    return list(_stems_of(text))


_NEED_STEMS: frozenset[str] = frozenset(_stems(NEED_WORDS))
_HEAD_STEMS: frozenset[str] = frozenset(_stems(HEAD_WORDS))
_FAMILY_OF: dict[str, str] = {
    s: _SUBJECT + name for name, members in FAMILIES.items() for s in _stems(members)
}
_PHRASES: dict[tuple[str, ...], str] = {
    tuple(_stems(phrase)): _SUBJECT + name for phrase, name in PHRASES.items()
}
# first stem -> lengths of the phrases starting with it, longest first
_PHRASE_LENGTHS: dict[str, tuple[int, ...]] = {
    first: tuple(sorted({len(k) for k in _PHRASES if k[0] == first}, reverse=True))
    for first in {k[0] for k in _PHRASES}
}


@lru_cache(maxsize=65536)
def _fold_word(word: str) -> str:
    """Fold one word (cached: the same words come back in every need)."""
    return fold(word)


def _surface_words(text: str) -> list[tuple[str, str]]:
    """(surface, folded word) pairs, SMS abbreviations expanded; acronyms keep their case."""
    lexicon = default_lexicon()
    out: list[tuple[str, str]] = []
    text = _AUJOURDHUI.sub("aujourdhui", text.replace("’", "'"))  # a stop word, not « hui »
    for raw in _SPLIT.split(_ELISION.sub(" ", text)):
        if not raw:
            continue
        surface = raw if raw.isupper() and len(raw) <= 5 else raw.casefold()  # CLT, CFA
        folded = _fold_word(raw)
        expanded = lexicon.expand([folded])
        if expanded == [folded]:
            out.append((surface, folded))
        else:
            out.extend((w, w) for w in expanded)
    return out


@lru_cache(maxsize=16384)
def _firm_stems(firm: str) -> frozenset[str]:
    """Stems of a firm's name: never a token of its own text, never in the words a group shows."""
    lexicon = default_lexicon()
    return frozenset(
        stem(w) for _, w in _surface_words(firm) if not lexicon.is_stop(w) and len(w) >= 2
    )


# A capitalised word inside a sentence (« vers Niort », « à La Crèche »): a place or a person;
# acronyms (CLT, CACES) are not.
_PROPER = re.compile(
    r"(?<![.!?:;»\n]\s)(?<![.!?:;»\n])(?<=\W)([A-ZÀ-Ý][a-zà-ÿ]+(?:-[A-ZÀ-Ýa-zà-ÿ]+)*)")


def _proper_names(text: str) -> frozenset[str]:
    """Stems of the words written with a capital inside a sentence, never in lower case."""
    found = {fold(m.group(1)) for m in _PROPER.finditer(text)}
    if not found:
        return frozenset()
    lower = {fold(w) for w in _SPLIT.split(text) if w and w[0].islower()}
    return frozenset(stem(part) for w in found - lower for part in w.split("-") if part)


def _raw_tokens(text: str, firm: frozenset[str]) -> list[tuple[str, str]]:
    """(token, surface) of the salient words of a text, before typo repair."""
    lexicon = default_lexicon()
    pairs = _surface_words(text)
    stems = [stem(w) for _, w in pairs]
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(pairs):
        for size in _PHRASE_LENGTHS.get(stems[i], ()):
            family = _PHRASES.get(tuple(stems[i : i + size]))
            if family is not None:
                out.append((family, " ".join(s for s, _ in pairs[i : i + size])))
                i += size
                break
        else:
            surface, word = pairs[i]
            s = stems[i]
            i += 1
            if (
                len(word) < 2
                or _DIGIT.search(word) is not None
                or lexicon.is_stop(word)
                or s in _NEED_STEMS
                or s in firm
            ):
                continue
            out.append((_FAMILY_OF.get(s, s), surface))
    return out


def _max_edits(a: str, b: str) -> int:
    """Edits allowed between two stems to call one a typo of the other (0: none)."""
    shortest = min(len(a), len(b))
    # shorter words are too often real words one letter apart (magasin / magasinier)
    return 2 if shortest >= 11 else 1 if shortest >= 8 else 0


def _repair(vocabulary: Counter[str]) -> dict[str, str]:
    """Map each stem of the batch to its canonical token (subjects and typos merged)."""
    # targets: subject words first, then the batch's own stems, most frequent first
    targets: dict[str, str] = dict(_FAMILY_OF)
    for s, _ in sorted(vocabulary.items(), key=lambda kv: (-kv[1], kv[0])):
        if not s.startswith(_SUBJECT):
            targets.setdefault(s, s)
    buckets: dict[tuple[str, int], list[str]] = defaultdict(list)
    for s in targets:
        if not s.startswith(_SUBJECT):
            buckets[(s[0], len(s))].append(s)
    mapping: dict[str, str] = {}
    # rarer stems first: a typo (seen once) joins the common spelling, not the reverse
    for s, _ in sorted(vocabulary.items(), key=lambda kv: (kv[1], kv[0])):
        if s.startswith(_SUBJECT) or len(s) < 8:
            continue
        choices = [
            t
            for size in range(len(s) - 2, len(s) + 3)
            for t in buckets.get((s[0], size), ())
            if t != s and _max_edits(s, t) > 0
        ]
        found = process.extractOne(
            s, choices, scorer=Levenshtein.distance, score_cutoff=_max_edits(s, s)
        )
        if found is None or found[1] > _max_edits(s, found[0]):
            continue
        target = targets[found[0]]
        # follow a chain (typo of a typo) to its end, without cycles
        seen = {s}
        while target in mapping and target not in seen:
            seen.add(target)
            target = mapping[target]
        if target != s and (target.startswith(_SUBJECT) or vocabulary[target] >= vocabulary[s]):
            mapping[s] = target
    return mapping


@dataclass(slots=True)
class _Need:
    """A need analysed for the radar."""

    item: NeedItem
    firm: str  # folded firm name, or a placeholder unique to the need when it is blank
    firm_stems: frozenset[str]
    tokens: dict[str, float]  # canonical token -> weight
    surfaces: dict[str, Counter[str]]  # canonical token -> how it was written
    spreads: dict[str, float]  # canonical token -> what it weighs when the other need lacks it
    spread: float  # sum of the spreads
    total: float  # sum of the weights
    # top knowledge-base cards: asked only for the needs without objects that are scored on
    # words against another such need (see _ask_cards), the only pairs they change
    cards: frozenset[str]
    objects: dict[str, float]  # object id (radar_objects.yaml) -> weight
    actions: frozenset[str]  # hire, train, share
    own: bool  # a firm's own matter: never poolable
    # where its shuttle, land or housing is (None when it names no such object)
    places: Places | None = None


def _boost(token: str) -> float:
    """How many ordinary words a token weighs (subjects more, bare job titles less)."""
    if token in _HEAD_STEMS:
        return HEAD_WEIGHT
    if token[0] != _SUBJECT or token[1:] in MODALITIES:
        return 1.0
    return SUBJECT_BOOST


SPEC_COMMON = 6.0  # Zipf of a word that says nothing of the need (« semaine » is 5.4)
SPEC_RARE = 2.5  # Zipf under which a word is fully specific (« polissage » 2.7)
SPEC_FLOOR = 0.15


def _specificity(token: str, surfaces: Counter[str]) -> float:
    """How much a word says of a need by its frequency in general French (0.15..1)."""
    if token[0] == _SUBJECT:
        return 1.0
    return min(_word_specificity(w) for w in surfaces)


@lru_cache(maxsize=65536)
def _word_specificity(surface: str) -> float:
    """Specificity of one written word (cached: the same words come back in every need)."""
    z = zipf(fold(surface))
    return min(1.0, max(SPEC_FLOOR, (SPEC_COMMON - z) / (SPEC_COMMON - SPEC_RARE)))


def _theme_factor(a: str, b: str) -> float:
    """How much two themes let their needs be grouped."""
    if a == b:
        return 1.0
    # « autre » is what a firm picks when no theme fits: it may be any of them
    if frozenset((a, b)) in RELATED_THEMES or "autre" in (a, b):
        return RELATED_FACTOR
    return OTHER_FACTOR


@dataclass(frozen=True, slots=True)
class _Base:
    """The part of a need's analysis that depends on the need alone (cached between calls)."""

    firm_stems: frozenset[str]
    tokens: tuple[tuple[str, str], ...]  # (token, surface) before typo repair
    folded_firm: str
    about: TextObjects


# need id + hash of what is read -> analysis; bounded, least recently used dropped first
_BASES: OrderedDict[tuple[int, str], _Base] = OrderedDict()
# (knowledge base, text hash) -> top cards
_CARDS: OrderedDict[tuple[int, str], frozenset[str]] = OrderedDict()
# The radar runs in worker threads (bot/services/mutualisation.py): the caches' read-then-move
# and write-then-evict steps must not interleave.
_CACHE_LOCK = threading.Lock()


def _digest(*parts: str) -> str:
    """A short hash of some texts (the cache key of an analysis)."""
    return hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=12).hexdigest()


def _remember(cache: OrderedDict[tuple[int, str], _T], key: tuple[int, str], value: _T) -> _T:
    """Store a value in a bounded LRU cache."""
    with _CACHE_LOCK:
        cache[key] = value
        if len(cache) > CACHE_SIZE:
            cache.popitem(last=False)
    return value


def _recall(cache: OrderedDict[tuple[int, str], _T], key: tuple[int, str]) -> _T | None:
    """A value of a bounded LRU cache, marked as just used (None when absent)."""
    with _CACHE_LOCK:
        found = cache.get(key)
        if found is not None:
            cache.move_to_end(key)
        return found


def _base(item: NeedItem) -> _Base:
    """What a need says on its own: cached by need id and a hash of its text, firm and theme."""
    key = (item.need_id, _digest(item.text, item.firm, item.theme))
    found = _recall(_BASES, key)
    if found is not None:
        return found
    firm = _firm_stems(item.firm)
    about = object_lexicon().analyse(item.text)
    proper = _proper_names(item.text)
    # a place or a person's name says where or who, not what: every firm of a territory may
    # name the same town
    tokens = [(t, w) for t, w in _raw_tokens(item.text, firm) if t not in proper]
    if about.jobs:
        # the qualifier of a job title the lexicon does not know says what the job is: it
        # weighs as a subject (« pilote d'extrudeuse », « opérateur chimie »)
        tokens = [(_SUBJECT + t if t in about.jobs else t, surface) for t, surface in tokens]
    return _remember(_BASES, key, _Base(
        firm_stems=firm,
        tokens=tuple(tokens),
        folded_firm=" ".join(_SPLIT.split(fold(item.firm))).strip(),
        about=about,
    ))


def clear_cache() -> None:
    """Forget every cached analysis (benchmarks measure the cold case with it)."""
    with _CACHE_LOCK:
        _BASES.clear()
        _CARDS.clear()
    _places.cache_clear()


def _top_cards(kb: KnowledgeBase | None, text: str) -> frozenset[str]:
    """Ids of the best cards the knowledge base proposes for a text (cached)."""
    if kb is None or not text.strip():
        return frozenset()
    key = (id(kb), _digest(text))
    found = _recall(_CARDS, key)
    if found is not None:
        return found
    answer = kb.ask(text, limit=KB_TOP)
    return _remember(_CARDS, key, frozenset(
        h.card.id for h in answer.hits if h.score >= OUT_OF_SCOPE_THRESHOLD))


def _analyse(items: Sequence[NeedItem], kb: KnowledgeBase | None) -> list[_Need]:
    """Tokenise, repair and weigh every need (items sorted by id; cards are asked later)."""
    bases = [_base(item) for item in items]
    vocabulary: Counter[str] = Counter()
    for base in bases:
        vocabulary.update({t for t, _ in base.tokens})
    mapping = _repair(vocabulary)
    canonical: list[dict[str, Counter[str]]] = []
    df: Counter[str] = Counter()
    for base in bases:
        surfaces: dict[str, Counter[str]] = defaultdict(Counter)
        for token, surface in base.tokens:
            surfaces[mapping.get(token, token)][surface] += 1
        canonical.append(dict(surfaces))
        df.update(surfaces.keys())
    n = max(len(items), IDF_FLOOR)
    out: list[_Need] = []
    for item, base, surfaces in zip(items, bases, canonical, strict=True):
        weights = {t: math.log((n + 1) / (df[t] + 0.5)) * _boost(t) * _specificity(t, surf)
                   for t, surf in surfaces.items()}
        spreads = {
            t: w if t[0] == _SUBJECT else UNSHARED_WEIGHT * w for t, w in weights.items()
        }
        about = base.about
        out.append(
            _Need(
                item=item,
                firm=base.folded_firm or f"#{item.need_id}",
                firm_stems=base.firm_stems,
                tokens=weights,
                surfaces=surfaces,
                spreads=spreads,
                spread=sum(spreads.values()),
                total=sum(weights.values()),
                cards=frozenset(),
                objects=dict(about.objects),
                actions=about.actions,
                own=about.own,
            )
        )
    _borrow_objects(out)
    kinds = object_lexicon()
    for need in out:
        land = not need.own and (any(kinds.kind_of(o) == "land" for o in need.objects)
                                 or speaks_of_premises(need.item.text))
        if land and not need.objects:
            # « un atelier de 800 m² à louer autour d'Ahun »: premises are what it asks for
            need.objects[_PREMISES_OBJECT] = 1.0
        ruled = any(place_rule(o, kinds.kind_of(o)) for o in need.objects)
        if not (land or ruled):
            continue
        places = _places(need.item.text, need.item.commune, need.item.commune_insee)
        if land:
            # a need about land or premises that names a site is about that site, whatever
            # else it names (its trade, its product): the site is one of its objects
            for key in places.sites | places.former:
                need.objects[SITE + key] = 1.0
        if ruled or (land and (places.sites or places.former)):
            # (kept only where places are compared: on a need whose objects are not
            # somewhere they would only split its node of the graph from its like needs)
            need.places = places
    return out


@lru_cache(maxsize=8192)
def _places(text: str, commune: str | None, insee: str | None) -> Places:
    """The places of a need about a shuttle, land or housing (cached: texts repeat)."""
    return read_places(text, home_of(commune, insee))


# A need without objects borrows one when this share of its word weight is in the words of
# that object's needs, and twice as much as in the next object's.
PROFILE_SHARE = 0.35
PROFILE_MARGIN = 2.0


def _borrow_objects(needs: Sequence[_Need]) -> None:
    """Give a need that names no object the object whose needs use its words.

    The lexicon knows « préparateurs de commandes » but not « les gars qui font les colis »;
    the needs of the batch that name the object also say « colis », « quai », « scan »: a
    need whose salient words are mostly the words of one object's needs (and clearly not of
    another's) is about that object. The words are the batch's own, so this carries to
    vocabulary nobody listed.
    """
    profiles: dict[str, set[int]] = defaultdict(set)  # object -> positions of its needs
    for k, need in enumerate(needs):
        if need.own:
            continue
        for obj, w in need.objects.items():
            if w >= 1.0:
                profiles[obj].add(k)
    if not profiles:
        return
    words: dict[str, set[str]] = defaultdict(set)  # token -> objects whose needs use it
    for obj, members in profiles.items():
        for k in members:
            for t in needs[k].tokens:
                words[t].add(obj)
    kinds = object_lexicon()
    for need in needs:
        if need.objects or need.own or need.total <= 0.0:
            continue
        acc: Counter[str] = Counter()
        for t, w in need.tokens.items():
            for obj in words.get(t, ()):
                acc[obj] += w
        if not acc:
            continue
        ranked = acc.most_common(2)
        best, top = ranked[0]
        second = ranked[1][1] if len(ranked) > 1 else 0.0
        if top / need.total < PROFILE_SHARE or top < PROFILE_MARGIN * second:
            continue
        people = kinds.kind_of(best) in PEOPLE_KINDS
        intent = _intent(need)
        if (intent > 0 and not people) or (intent < 0 and people):
            continue
        need.objects = {best: 1.0}


# -- pair scores --------------------------------------------------------------------------------


def _object_score(a: dict[str, float], b: dict[str, float],
                  places_a: Places | None = None, places_b: Places | None = None) -> float:
    """Weighted overlap of two needs' objects (0 when they share none).

    The shared weight over the smaller side's: a long text names its firm's trade, its
    machines and its site besides what it asks, and that does not make its need another one.
    A shuttle, land or housing is shared only where the two needs' places meet
    (radar_places: one corridor, one site).
    """
    kinds = object_lexicon()
    shared = sites = 0.0
    for o, w in a.items():
        if o not in b:
            continue
        if o.startswith(SITE):
            sites += min(w, b[o])
            continue
        rule = place_rule(o, kinds.kind_of(o)) if places_a and places_b else None
        if rule is None or compatible(rule, places_a, places_b):  # type: ignore[arg-type]
            shared += min(w, b[o])
    # a site shared counts as one object however many names it has (« l'Aéroparc de
    # Fontaine »: a name and a commune); a site not shared takes nothing away (the same site
    # may be named by a zone on one side, by its commune on the other)
    shared += min(sites, 1.0)
    if shared == 0.0:
        return 0.0
    # ...but at least one full object: two needs that share only a generic object (waste in
    # general, export in general) are not one need
    return round(min(shared / max(min(_weight(a), _weight(b)), 1.0), 1.0), 6)


def _weight(objects: dict[str, float]) -> float:
    """The weight of a need's objects but its sites."""
    return sum(w for o, w in objects.items() if not o.startswith(SITE))


def _intent(need: _Need) -> int:
    """1 when a need only hires or trains, -1 when it only shares, 0 otherwise."""
    people = bool(need.actions & _PEOPLE_ACTIONS)
    share = "share" in need.actions
    return 0 if people == share else 1 if people else -1


_PEOPLE_ACTIONS = frozenset({"hire", "train"})


def _pair_score(a: _Need, b: _Need, *, use_kb: bool) -> float:
    """The 0–1 score of two analysed needs (see the module docstring)."""
    if a.own or b.own:
        return 0.0  # a firm's own financing, permit, crisis, R&D or succession
    if a.objects and b.objects:
        # both name what they are about: the objects decide, whatever the words or themes
        return _object_score(a.objects, b.objects, a.places, b.places)
    if _intent(a) * _intent(b) < 0:
        # one hires or trains people, the other shares a thing: the same rare word
        # (microbiologie, alambic) names the person's trade and the shared equipment
        return 0.0
    common = a.tokens.keys() & b.tokens.keys()
    if not common:
        return 0.0
    # shared tokens count from both sides, as in a Dice coefficient
    shared_one = sum(a.tokens[t] for t in common)
    if any(t[0] == _SUBJECT and t[1:] not in MODALITIES for t in common):
        # a known subject is shared: the other words are details (spread: a subject fully,
        # an ordinary word by UNSHARED_WEIGHT)
        unshared = a.spread + b.spread - 2.0 * sum(a.spreads[t] for t in common)
    else:
        # only ordinary words are shared: nothing says which word is the subject, so
        # conducteur de ligne and conducteur poids lourd stay two needs
        unshared = a.total + b.total - 2.0 * shared_one
    text = 2.0 * shared_one / (2.0 * shared_one + max(unshared, 0.0))
    if use_kb:
        union = a.cards | b.cards
        programmes = len(a.cards & b.cards) / len(union) if union else 0.0
        # agreement lifts a pair, disagreement does not sink it: the top cards of a short
        # text are noisy, and the words already carry the subject
        text += KB_WEIGHT * programmes * (1.0 - text)
    return round(_theme_factor(a.item.theme, b.item.theme) * text, 6)


def _ask_cards(needs: Sequence[_Need], pairs: Iterable[tuple[int, int]],
               kb: KnowledgeBase | None) -> None:
    """Ask the knowledge base for the needs of the pairs that both lack objects.

    The programme agreement only changes a pair scored on words on both sides (a need with
    objects has no cards), and the question is the costly part of the analysis: a need
    whose neighbours all name objects is never asked.
    """
    if kb is None:
        return
    asked: set[int] = set()
    for i, j in pairs:
        if needs[i].objects or needs[j].objects:
            continue
        for k in (i, j):
            if k not in asked:
                asked.add(k)
                needs[k].cards = _top_cards(kb, needs[k].item.text)


def _scores(needs: Sequence[_Need], kb: KnowledgeBase | None) -> dict[tuple[int, int], float]:
    """Scores of the pairs (i < j, positions in needs) that share a linking token."""
    postings: dict[str, list[int]] = defaultdict(list)
    for i, need in enumerate(needs):
        for token in need.tokens:
            postings[token].append(i)
        for obj in need.objects:
            postings[_OBJECT + obj].append(i)
    cap = min(TEXT_DF_CAP, max(MIN_DF_CAP, int(MAX_DF_SHARE * len(needs))))
    pairs: set[tuple[int, int]] = set()
    for key, members in postings.items():
        # a token in most needs weighs almost nothing (idf) and would make the pairs
        # quadratic: it still counts in the scores, but does not make candidates (an object
        # always does: needs about one object are what the radar is for)
        if 2 <= len(members) and (len(members) <= cap or key[0] == _OBJECT):
            pairs.update(
                (members[x], members[y])
                for x in range(len(members))
                for y in range(x + 1, len(members))
            )
    scores: dict[tuple[int, int], float] = {}
    _ask_cards(needs, pairs, kb)
    use_kb = kb is not None
    for i, j in pairs:
        score = _pair_score(needs[i], needs[j], use_kb=use_kb)
        if score > 0.0:
            scores[(i, j)] = score
    return scores


def pair_scores(
    items: Sequence[NeedItem], *, kb: KnowledgeBase | None
) -> dict[tuple[int, int], float]:
    """Scores of the need pairs (by need id, smaller first) that share a salient word."""
    ordered = sorted(items, key=lambda it: it.need_id)
    needs = _analyse(ordered, kb)
    return {
        (ordered[i].need_id, ordered[j].need_id): s
        for (i, j), s in _scores(needs, kb).items()
    }


# -- grouping ----------------------------------------------------------------------------------


def _average_linkage(
    n: int,
    scores: dict[tuple[int, int], float],
    threshold: float,
    sizes: Sequence[int] | None = None,
    apart: Iterable[Iterable[int]] = (),
) -> list[list[int]]:
    """Clusters of nodes 0..n-1 merged while their mean pairwise score >= threshold.

    A node may stand for ``sizes[i]`` needs already together (then ``scores`` holds the sum
    of the scores of their pairs); a cluster is returned when it holds two needs or more.
    No cluster holds two nodes of one ``apart`` set (the animator said so).
    """
    weight = list(sizes) if sizes is not None else [1] * n
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    count: dict[int, int] = dict(enumerate(weight))
    links: dict[int, dict[int, float]] = defaultdict(dict)  # cluster -> cluster -> score sum
    # cluster -> the apart sets it holds a node of: two clusters sharing one never merge
    # (a set's cost is its size, not its number of pairs)
    tags: dict[int, set[int]] = defaultdict(set)
    for tag, nodes in enumerate(apart):
        for i in set(nodes):
            tags[i].add(tag)
    for (i, j), s in scores.items():
        links[i][j] = s
        links[j][i] = s
    heap: list[tuple[float, int, int]] = []

    def push(c: int, d: int) -> None:
        mean = links[c][d] / (count[c] * count[d])
        if mean >= threshold:
            # ties are broken by the smallest positions: independent of any input order
            heap.append((-round(mean, 9), min(c, d), max(c, d)))

    for c in list(links):
        for d in links[c]:
            if c < d:
                push(c, d)
    heapq.heapify(heap)
    while heap:
        neg, c, d = heapq.heappop(heap)
        if c not in members or d not in members or d not in links[c]:
            continue  # one side was merged since: stale entry
        if round(links[c][d] / (count[c] * count[d]), 9) != -neg:
            continue
        if c in tags and d in tags and not tags[c].isdisjoint(tags[d]):
            continue  # they hold two needs the animator set apart
        # merge d into c (c is the smaller position, so the cluster id is its first member)
        members[c].extend(members.pop(d))
        count[c] += count.pop(d)
        if d in tags:
            moved = tags.pop(d)
            if len(moved) > len(tags[c]):  # the smaller set joins the bigger one
                moved, tags[c] = tags[c], moved
            tags[c] |= moved
        d_links = links.pop(d)
        for e, s in d_links.items():
            if e == c:
                continue
            links[c][e] = links[c].get(e, 0.0) + s
            del links[e][d]
            links[e][c] = links[c][e]
        del links[c][d]
        for e in links[c]:
            mean = links[c][e] / (count[c] * count[e])
            if mean >= threshold:
                heapq.heappush(heap, (-round(mean, 9), min(c, e), max(c, e)))
    return [sorted(m) for c, m in members.items() if count[c] >= 2]


@dataclass(slots=True)
class _Graph:
    """Needs as nodes: the needs naming the same objects are one node (their pairs score 1)."""

    nodes: list[list[int]]  # node -> positions of its needs, ascending
    links: dict[tuple[int, int], float]  # (node, node), smaller first -> sum of pair scores
    # node -> the apart sets its needs are in (nodes sharing one never join)
    tags: dict[int, frozenset[int]] = field(default_factory=dict)


def _graph(needs: Sequence[_Need], kb: KnowledgeBase | None,
           apart: dict[int, frozenset[int]] | None = None, *,
           exhaustive: bool = False) -> _Graph:
    """The scored graph of a batch, built without scoring every pair.

    Needs that name the same objects (same weights) score 1.0 together: they form one node,
    and two such nodes are scored once, when they share an object (inverted index on
    objects). Needs that name no object and say the same words under the same theme (a
    copied need, a firm writing twice) also score 1.0 together and form one node. A node
    without objects is scored on its words against the MAX_CANDIDATES needs that share the
    most salient weight with it (inverted index on words; a word in more than TEXT_DF_CAP
    needs, or MAX_DF_SHARE of them, makes no candidate). So the cost grows with the real
    neighbours, not with the square of the batch. ``apart`` maps a need's position to the
    apart sets it is in (the animator set it apart from others): a node holds at most one
    need of a set (the others of that set that would have joined it are nodes of their own),
    carries the sets of its needs, and two nodes sharing a set get no link.

    Two nodes sharing an object that is somewhere (a shuttle, land, housing: radar_places)
    are scored only when their places may meet (radar_places.candidate_pairs: a grid), as
    the others would share it with no weight; ``exhaustive`` scores every pair instead
    (the same links, slower: for the tests).
    """
    apart = apart or {}
    nodes: list[list[int]] = []
    node_of: dict[int, int] = {}
    # (objects, places) -> node of like needs
    by_signature: dict[tuple[tuple[tuple[str, float], ...], Places | None], int] = {}
    by_words: dict[tuple[object, ...], int] = {}  # (theme, words) -> node of like needs
    objects_of: dict[int, tuple[tuple[str, float], ...]] = {}  # object node -> its objects
    places_of: dict[int, Places | None] = {}  # object node -> the places of its needs
    word_nodes: set[int] = set()  # nodes of needs without objects, said in the same words
    tags: dict[int, set[int]] = defaultdict(set)
    df: Counter[str] = Counter()
    for need in needs:
        if not need.own:
            df.update(need.tokens.keys())
    cap = min(TEXT_DF_CAP, max(MIN_DF_CAP, int(MAX_DF_SHARE * len(needs))))

    def new_node() -> int:
        nodes.append([])
        return len(nodes) - 1

    for i, need in enumerate(needs):
        if need.own:
            continue  # never poolable
        if need.objects:
            objects = tuple(sorted(need.objects.items()))
            # needs about one shuttle from different places are not alike
            signature = (objects, need.places)
            k = by_signature.get(signature)
            if k is None:
                k = by_signature[signature] = new_node()
                objects_of[k] = objects
                places_of[k] = need.places
        elif any(2 <= df[t] <= cap for t in need.tokens):
            # (only needs with a word rare enough to make candidates: the others were never
            # scored against anything one by one either)
            # same theme, same words: _pair_score gives 1.0 (the programmes agree too)
            words = (need.item.theme, tuple(sorted(need.tokens)))
            k = by_words.get(words)
            if k is None:
                k = by_words[words] = new_node()
                word_nodes.add(k)
        else:
            k = new_node()
        nodes[k].append(i)
        node_of[i] = k
    # a node keeps at most one need of each apart set: the needs in the fewest sets stay
    # (a need taken out of a group is in a set with each other member: it leaves, they stay),
    # the others become nodes of their own
    for k in sorted({node_of[i] for i in apart if i in node_of}):
        held: set[int] = set()
        leaving = []
        for i in sorted((i for i in nodes[k] if i in apart), key=lambda i: (len(apart[i]), i)):
            if held.isdisjoint(apart[i]):
                held |= apart[i]
            else:
                leaving.append(i)
        tags[k] = held
        if not leaving:
            continue
        gone = set(leaving)
        nodes[k] = [i for i in nodes[k] if i not in gone]
        for i in leaving:
            single = node_of[i] = new_node()
            nodes[single].append(i)
            tags[single] = set(apart[i])
            if k in objects_of:
                objects_of[single] = objects_of[k]
                places_of[single] = places_of[k]
            elif k in word_nodes:
                word_nodes.add(single)
    links: dict[tuple[int, int], float] = defaultdict(float)
    # object nodes sharing an object
    object_postings: dict[str, list[int]] = defaultdict(list)
    for k, objects in objects_of.items():
        for obj, _ in objects:
            object_postings[obj].append(k)
    signature_of = {k: dict(objects) for k, objects in objects_of.items()}
    kinds = object_lexicon()
    seen: set[tuple[int, int]] = set()
    for obj, members in object_postings.items():
        rule = None if obj.startswith(SITE) else place_rule(obj, kinds.kind_of(obj))
        if rule is None or exhaustive:
            positions: Iterable[tuple[int, int]] = (
                (x, y) for x in range(len(members)) for y in range(x + 1, len(members)))
        else:
            # a pair whose places cannot meet shares this object with no weight
            # (_object_score): it is scored only if another object it shares makes it a
            # candidate, with all its objects then
            positions = sorted(candidate_pairs(rule, [places_of[k] for k in members]))
        for x, y in positions:
            c, d = sorted((members[x], members[y]))
            if (c, d) in seen:
                continue
            seen.add((c, d))
            if c in tags and d in tags and not tags[c].isdisjoint(tags[d]):
                continue  # they hold two needs set apart: never one group
            score = _object_score(signature_of[c], signature_of[d],
                                  places_of[c], places_of[d])
            if score > 0.0:
                links[(c, d)] += score * len(nodes[c]) * len(nodes[d])
    # nodes without objects, on their words: each word node by its first need (the others
    # say the same words), each need of an object node on its own (their words differ)
    units = [i for i in node_of if node_of[i] not in word_nodes or nodes[node_of[i]][0] == i]
    weight_of = {i: len(nodes[node_of[i]]) if node_of[i] in word_nodes else 1 for i in units}
    postings: dict[str, list[int]] = defaultdict(list)
    for i in units:
        for token in needs[i].tokens:
            if 2 <= df[token] <= cap:
                postings[token].append(i)
    pairs: set[tuple[int, int]] = set()
    for i in units:
        if needs[i].objects:
            continue
        # the needs sharing the most weight with this one: the only ones that can score
        shared: dict[int, float] = defaultdict(float)
        for token, w in needs[i].tokens.items():
            for j in postings.get(token, ()):
                if j != i:
                    shared[j] += w
        best = (heapq.nlargest(MAX_CANDIDATES, shared, key=lambda j: (shared[j], -j))
                if len(shared) > MAX_CANDIDATES else shared)
        pairs.update((min(i, j), max(i, j)) for j in best)
    _ask_cards(needs, pairs, kb)
    use_kb = kb is not None
    for i, j in pairs:
        c, d = sorted((node_of[i], node_of[j]))
        if c in tags and d in tags and not tags[c].isdisjoint(tags[d]):
            continue  # they hold two needs set apart: never one group
        score = _pair_score(needs[i], needs[j], use_kb=use_kb)
        if score > 0.0:
            links[(c, d)] += score * weight_of[i] * weight_of[j]
    return _Graph(nodes=nodes, links=dict(links),
                  tags={k: frozenset(t) for k, t in tags.items()})


def group_key(need_ids: Iterable[int]) -> str:
    """Stable id of a group: sha256 of its sorted need ids, 16 hex digits."""
    text = ",".join(str(i) for i in sorted(need_ids))
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:16]


def _dominant_theme(needs: Sequence[_Need]) -> str:
    """Most frequent theme of a group; on a tie, mutualisation, then the taxonomy's order."""
    counts = Counter(n.item.theme for n in needs)
    order = {k: i for i, k in enumerate(THEME_KEYS)}
    # the radar is about sharing: a tie with « mutualisation » says what the group is for
    return min(
        counts,
        key=lambda t: (-counts[t], t != "mutualisation", order.get(t, len(order)), t),
    )


def _display(token: str, needs: Sequence[_Need]) -> str:
    """How to write a shared token: the word most members used, else the subject's name."""
    spellings: dict[str, Counter[str]] = defaultdict(Counter)  # stem -> surfaces
    users: Counter[str] = Counter()  # stem -> members that used it
    for need in needs:
        used: set[str] = set()
        for surface, k in need.surfaces.get(token, Counter()).items():
            key = " ".join(_stems(surface))
            spellings[key][surface] += k
            used.add(key)
        users.update(used)
    best = min(users, key=lambda k: (-users[k], -sum(spellings[k].values()), k))
    if users[best] < 2 and token[0] == _SUBJECT:
        return token[1:]  # « bus » and « navette »: say « transport »
    found = spellings[best]
    return min(found, key=lambda w: (-found[w], len(w), w))


def _shared_words(needs: Sequence[_Need]) -> tuple[str, ...]:
    """The words the group's needs share, most shared first (no firm name)."""
    banned = frozenset(s for n in needs for s in n.firm_stems)
    counts: Counter[str] = Counter()
    weight: dict[str, float] = {}
    for need in needs:
        counts.update(need.tokens.keys())
        weight.update(need.tokens)
    shared = sorted(
        (t for t, c in counts.items() if c >= 2), key=lambda t: (-counts[t], -weight[t], t)
    )
    shown: list[str] = []
    for token in shared:
        word = _display(token, needs)
        if word in shown or any(s in banned for s in _stems(word)):
            continue
        shown.append(word)
        if len(shown) == REASON_WORDS:
            break
    return tuple(shown)


def _shared_objects(needs: Sequence[_Need]) -> tuple[tuple[str, ...], str]:
    """Objects two members or more name (most shared first) and what they want of the first."""
    counts: Counter[str] = Counter()
    weights: Counter[str] = Counter()
    for need in needs:
        counts.update(need.objects.keys())
        for obj, w in need.objects.items():
            weights[obj] += w
    shared = sorted((o for o, c in counts.items() if c >= 2 and not o.startswith(SITE)),
                    key=lambda o: (-counts[o], -weights[o], o))
    if not shared:
        return (), ""
    holders = [n for n in needs if shared[0] in n.objects]
    hire = sum("hire" in n.actions for n in holders)
    train = sum("train" in n.actions for n in holders)
    share = sum("share" in n.actions for n in holders)
    if object_lexicon().kind_of(shared[0]) in PEOPLE_KINDS:
        # a trade: recruit, train, or both when the members say both
        action = ("hire_train" if hire and train else "train" if train else "hire")
    else:
        action = "share" if share else ""
    return tuple(shared), action


def _shared_site(needs: Sequence[_Need]) -> str:
    """The site most members name (two at least), as written: a zone's name before a
    commune's (« Aéroparc » rather than Fontaine), or ""."""
    counts: Counter[str] = Counter()
    for need in needs:
        counts.update(o[len(SITE):] for o in need.objects if o.startswith(SITE))
    shared = [key for key, c in counts.items() if c >= 2]
    if not shared:
        return ""
    best = max(shared, key=lambda key: (counts[key], not key.isdigit(), len(key), key))
    holder = next(n for n in needs if SITE + best in n.objects)
    assert holder.places is not None
    return holder.places.label(best)


def _programmes(
    kb: KnowledgeBase | None, needs: Sequence[_Need], theme: str
) -> tuple[tuple[str, str], ...]:
    """Programmes for a group: collective ones first, cards sharing one of its themes."""
    if kb is None:
        return ()
    themes = {n.item.theme for n in needs}
    # the most central texts say it all; a long question is slow and no more precise
    texts = [n.item.text for n in needs[:PROGRAMME_TEXTS]]
    query = " ".join([*texts, COLLECTIVE_HINT.get(theme, "")])
    found = kb.ask(query, limit=PROGRAMME_CANDIDATES).hits
    if not found:
        return ()
    # a card far behind the best one is a side topic of the texts, collective or not
    floor = max(OUT_OF_SCOPE_THRESHOLD, PROGRAMME_RELATIVE_FLOOR * found[0].score)
    hits = [h for h in found if h.score >= floor and themes.intersection(h.card.themes)]
    # the knowledge base's order is kept inside each class (stable sort)
    hits.sort(key=lambda h: h.card.id not in COLLECTIVE_PROGRAMMES)
    return tuple((h.card.id, h.card.title) for h in hits[:MAX_PROGRAMMES])


def find_groups(
    items: Sequence[NeedItem],
    *,
    kb: KnowledgeBase | None,
    min_size: int = 2,
    threshold: float = DEFAULT_THRESHOLD,
    apart: Iterable[Iterable[int]] = (),
) -> list[Group]:
    """Groups of open needs that at least ``min_size`` firms share, biggest first.

    ``apart`` holds sets of need ids the animator separated (a need taken out of a group and
    one other member; a group set aside, whole): no group ever holds two needs of one set.
    The separation carries to the needs written like them (same objects, or same words under
    one theme: one node of the graph): a need taken out of a group of caristes keeps the
    needs that say what it says out of that group too.
    """
    if min_size < 2:
        raise ValueError("a group holds two firms at least: min_size must be >= 2")
    if not 0.0 < threshold <= 1.0:
        raise ValueError("threshold must be in (0, 1]")
    if not items:
        return []
    ordered = sorted(items, key=lambda it: it.need_id)
    needs = _analyse(ordered, kb)
    position = {it.need_id: k for k, it in enumerate(ordered)}
    # each set, as positions of the needs still open; a set with one of them says nothing
    sets = [found for found in ({position[i] for i in ids if i in position} for ids in apart)
            if len(found) >= 2]
    sets_of: dict[int, set[int]] = defaultdict(set)
    for tag, members in enumerate(sets):
        for i in members:
            sets_of[i].add(tag)
    graph = _graph(needs, kb, {i: frozenset(t) for i, t in sets_of.items()})
    sizes = [len(m) for m in graph.nodes]
    groups: list[Group] = []
    # the sets carry over as sets of nodes (a node holds at most one need of a set)
    by_tag: dict[int, list[int]] = defaultdict(list)
    for k, node_tags in graph.tags.items():
        for tag in node_tags:
            by_tag[tag].append(k)
    for cluster in _average_linkage(len(graph.nodes), graph.links, threshold, sizes,
                                    by_tag.values()):
        positions = sorted(i for k in cluster for i in graph.nodes[k])
        members = [needs[i] for i in positions]
        firms = len({n.firm for n in members})
        if firms < min_size:
            continue
        # pairs inside a node score 1.0; between nodes, the sums of the graph
        centrality: Counter[int] = Counter()
        total = 0.0
        for k in cluster:
            inside = len(graph.nodes[k]) - 1
            total += inside * len(graph.nodes[k]) / 2
            for i in graph.nodes[k]:
                centrality[i] += inside
        for x, c in enumerate(cluster):
            for d in cluster[x + 1 :]:
                link = graph.links.get((min(c, d), max(c, d)), 0.0)
                total += link
                for i in graph.nodes[c]:
                    centrality[i] += link / len(graph.nodes[c])
                for i in graph.nodes[d]:
                    centrality[i] += link / len(graph.nodes[d])
        similarity = total / (len(positions) * (len(positions) - 1) / 2)
        theme = _dominant_theme(members)
        central = [needs[i] for i in sorted(positions, key=lambda i: (-centrality[i], i))]
        ids = tuple(n.item.need_id for n in members)
        objects, action = _shared_objects(members)
        site = _shared_site(members)
        groups.append(
            Group(
                key=group_key(ids),
                need_ids=ids,
                references=tuple(n.item.reference for n in members),
                theme=theme,
                firms=firms,
                words=_shared_words(members),
                similarity=round(similarity, 3),
                programmes=_programmes(kb, central, theme),
                objects=objects,
                action=action,
                site=site,
            )
        )
    groups.sort(key=lambda g: (-len(g.need_ids), -g.similarity, g.key))
    return groups
