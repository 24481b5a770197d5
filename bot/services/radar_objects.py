"""What a need is about, for the radar: the objects one collective action would serve.

The curated lexicon ``knowledge/data/radar_objects.yaml`` names objects (a trade to hire or
train, a machine to share, land, a shuttle, an energy or waste flow, a market, housing,
childcare) with the words and periphrases firms use for them (« cariste », « conducteur de
chariot », « Fenwick », « CACES 3 »). A text is folded, SMS abbreviations are expanded and
each word is stemmed (Snowball), so plurals and accents do not matter; terms are matched on
those stems, the longest first, so that « robot de peinture » is not « peinture » and
« électricien de maintenance » is not « électricien du bâtiment ».

Besides the objects, a text says what the firm wants to do (hire, train, share) and whether
the matter is its own (own financing, permit, crisis, R&D, succession, a breakdown, a
training already found that only needs paying): such a need is never poolable, unless the
text also asks for doing it with others.

What the lexicon does not know is still read in five ways that do not depend on any list of
trades:

- *Derived forms.* A one-word term names the words of its derivational family (the Snowball
  stem less -eur, -euse, -age, -ure, -ier, -iste: « polissage » for polisseur) when the
  word is rare in general French (knowledge/frequency.py, MAX_DERIVED_ZIPF: « projet » is
  not the projeteur's) and not an infinitive; a root two objects share names none.
- *Term words.* A text that names no term whole is read for the words that two terms or
  more of one object use, and no other object's (« thermolaquage » from « cabine de
  thermolaquage »), rare enough (MAX_CUE_ZIPF); a firm that only hires or trains keeps the
  trades among them.

- *Job titles.* A job head (``job_heads``: opérateur, conducteur, technicien, pilote,
  monteur, régleur, électricien...) not starting a known term is qualified by its first
  specific word: « opérateur de fabrication chimie » → chimi, « pilote d'extrudeuse » →
  extrudeux; generic qualifiers (``job_generic``: fabrication, production, qualifié,
  H/F...) are passed over. The qualifier is not an object (a verb after « nos opérateurs »
  would make a wrong one): the radar weighs it as a subject among the words.
- *Markets need a market.* A country or a trade fair is the object only when the text
  speaks of selling (``market_context``: clients, export, vendre, salon, prospecter...):
  « nos chauffeurs partent travailler en Allemagne » is not the German market.
- *Shared services are shared.* A service (RH, comptabilité, restaurant, informatique) is
  the object when the firm wants it with others, not when it hires its own DRH full time.

A noun's complement only qualifies it (``_read``): « couteaux de désossage » are knives,
« rénovation de chalets et d'appartements » is a building trade's work. After a noun that
says what is asked (``_OPEN_HEADS``: « formation de », « manque de », a quantity, premises,
a machine), after a verb or an adjective, and for wastes, flows and machines, the
complement keeps its weight; otherwise it is context when the text names something in its
own right. A mishap (``mishap:``: a breakdown, a fire) is the firm's own matter only when
the text asks for nothing to train or share.

An object's ``sector`` words (a material, a product: « EPDM », « maroilles ») say which
trade a firm is in, not what it asks for: firms of one sector asking different things (a
setter, a waste outlet, cheaper raw material) are not grouped on them, so they are context.

An object that is only context (a machine named beside the trade that is hired, a country
without a market, a sector) weighs SECONDARY_WEIGHT; a text with nothing but context has no
object and is scored on its words.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from knowledge.frequency import zipf
from knowledge.text import PHRASE_KEPT, default_lexicon, fold, stem, words

__all__ = ["OBJECTS_FILE", "ObjectLexicon", "RadarObject", "TextObjects",
           "object_lexicon"]

OBJECTS_FILE = Path(__file__).resolve().parents[2] / "knowledge" / "data" / "radar_objects.yaml"

# An object mentioned beside the one the firm is after weighs this much (a cariste « pour
# notre entrepôt » is about the cariste).
SECONDARY_WEIGHT = 0.25
# Objects that say little on their own (export in general, waste in general): half weight.
GENERIC_OBJECTS: frozenset[str] = frozenset(
    {"export_salon", "dechets", "energie", "horlogerie"})
GENERIC_WEIGHT = 0.5
# Kinds a firm hires or trains for; the others are things to share.
PEOPLE_KINDS: frozenset[str] = frozenset({"trade", "service", "skill", "workforce"})
# What people learn (a language, basic skills): in a training need it is the object, and the
# trades named are who learns it (« cours d'allemand pour nos chefs d'équipe »).
SKILL_KINDS: frozenset[str] = frozenset({"skill"})
# Shared staff (a groupement d'employeurs): people, named as they are, not « à recruter ».
PLAIN_PEOPLE_KINDS: frozenset[str] = frozenset({"skill", "workforce"})
# What the staff's life needs (a shuttle, housing, childcare, a job for a spouse): when a text
# names one, it is the object, and the trades named are who needs it.
CONDITION_KINDS: frozenset[str] = frozenset({"route", "housing", "childcare", "welfare"})
# Machines and facilities: named after another noun they are still what it is
# (« casemate de radiographie », « banc de contrôle »)
EQUIPMENT_KINDS: frozenset[str] = frozenset({"equipment", "utility"})
# Waste and by-products: named without a trade to hire, they are the object.
FLOW_KINDS: frozenset[str] = frozenset({"waste", "flow"})
# Kinds that are an object only when the text asks for them with others or says it sells.
SHARED_KINDS: frozenset[str] = frozenset({"service"})
MARKET_KINDS: frozenset[str] = frozenset({"export"})
# One-word terms carried to their derived forms when their stem is at least this long (a
# short stem's root collides with ordinary words).
MIN_ROOT_STEM = 6
# Derivational endings left by the Snowball stemmer (soudeur / soudure / souder: soud;
# décolleteur / décolletage / décolleteuse: decollet), longest first.
DERIVATIONS: tuple[str, ...] = ("atric", "ateur", "eur", "eux", "eus", "ag", "ur", "ier", "ist")
MIN_ROOT = 4  # a root shorter than this says too little
# ...and only to a word rare in general French (Zipf scale): « polissage » (2.7) is the
# polisher's work, « projet » (5.4) is not the projeteur's, « machine » (4.7) not the
# machinist's.
MAX_DERIVED_ZIPF = 3.0
# A verb names what many trades do (« raccorder » a harness is not the fibre raccordeur's
# trade): infinitives are not carried to the trade of their root.
_INFINITIVES = ("er", "ir")
MAX_CUE_ZIPF = 4.0  # a word of a term read alone must be this rare (Zipf) to name its object
MIN_CUE_TERMS = 2  # terms of its object a cue word must appear in
MAX_CUES = 2  # a text whose words cue more objects than this says nothing precise
JOB_LOOKAHEAD = 3  # salient words after a job head searched for its qualifier
# A text that says it is about several things; its sentences.
_MANY_TOPICS = re.compile(
    r"plusieurs (?:choses|sujets|points|questions)|un peu de tout|je profite|"
    r"deuxi[eè]me (?:sujet|point|chose)|autre (?:sujet|chose)|par ailleurs|"
    r"le vrai probl[eè]me|en vrac", re.IGNORECASE)
_SENTENCES = re.compile(r"[^.!?;\n]+[.!?;]*")
# What a disused building was (« l'ancienne laiterie », « l'ex-usine de meubles Parisot »,
# « l'ancien tissage ») names a place, not what the firm asks for: that word is not read as
# an object (radar_places reads it as the site's name).
FORMER_BUILDING = re.compile(
    r"\b(?:ancien(?:ne)?s?|ex|friches?)[\s-]+(?:(?:de|du|des|la|le)\s+|[dl]['’]\s*)*"
    r"(?:(?:usines?|sites?|b[aâ]timents?|halles?|ateliers?|locaux|hangars?)\s+"
    r"(?:(?:de|du|des|la|le)\s+|[dl]['’]\s*)*(?P<what>[^\W\d_]+)"
    r"|(?P<activity>[^\W\d_]+(?:erie|age|ure)s?))\b",
    re.IGNORECASE)
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
    # stems that qualify a job title the lexicon does not know (« pilote d'extrudeuse »:
    # extrudeux): the radar weighs them as subjects when it scores the words
    jobs: frozenset[str] = frozenset()


def _stems(text: str, *, keep_stops: bool) -> list[str]:
    """Stems of a text's words, SMS abbreviations expanded; stop words dropped unless asked."""
    every, salient, _ = _both_stems(text)
    return every if keep_stops else salient


def _both_stems(text: str) -> tuple[list[str], list[str], list[str]]:
    """Stems of every word of a text, stems of its salient words (stop words dropped), and
    those salient words themselves (folded)."""
    every, salient, kept, _ = _read(text)
    return every, salient, kept


def _read(text: str) -> tuple[list[str], list[str], list[str], list[bool]]:
    """As _both_stems, and for each salient word whether it complements the noun before it
    (« couteaux de désossage », « rénovation de appartements »: _closed_head)."""
    lexicon = default_lexicon()
    every: list[str] = []
    salient: list[str] = []
    kept: list[str] = []
    complement: list[bool] = []
    last = -9  # position in `every` of the last salient word
    for word in lexicon.expand(words(text)):
        s = stem(word)
        every.append(s)
        if word in PHRASE_KEPT or not lexicon.is_stop(word) or word.isdigit():
            here = len(every) - 1
            between = every[last + 1 : here]
            complement.append(bool(kept) and (
                (between in _OF and _closed_head(kept[-1]))
                # « rénovation de chalets et d'appartements »: the second complement too
                or (between in _AND_OF and complement[-1])))
            salient.append(s)
            kept.append(word)
            last = here
    return every, salient, kept, complement


def _closed_head(word: str) -> bool:
    """Whether a word before « de » is a noun whose complement only qualifies it: not one of
    _OPEN_HEADS, not a number, and not a verb or participle by its ending (« demandent de la
    vapeur », « produisons de le lactosérum »)."""
    if word in _OPEN_HEADS or word in PHRASE_KEPT or not word.isalpha():
        return False  # (« pas de bus », « plus de soudeurs »: a quantity, no noun)
    return not (word.endswith(_VERB_ENDINGS) and not word.endswith("ment"))


# endings of conjugated verbs, infinitives and participles (a noun so ending is rarely the
# head of a trade or a thing: « atelier », « chantier » are open heads anyway)
_VERB_ENDINGS = ("ons", "ez", "ent", "ait", "aient", "er", "ir", "ee", "ees",
                 # ...and of adjectives (« formation qualifiante de fileteurs »)
                 "ant", "ants", "ante", "antes", "if", "ifs", "ive", "ives", "able", "ables",
                 "ible", "ibles")


# « ... et de », « ... et des », « ..., »: a second complement of the same noun
_AND_OF: tuple[list[str], ...] = (["et", "de"], ["et", "des"], ["et", "du"], ["et"], ["ou", "de"],
                                  ["ou"], ["et", "de", "la"])
# what links a noun to its complement (« lames de scie », « prix de la ferraille »)
_OF: tuple[list[str], ...] = (["de"], ["du"], ["des"], ["de", "la"], ["de", "l"])
# Nouns whose complement is what the firm asks about (« formation de soudeurs », « manque de
# caristes », « collecte de palettes », « achat de électricité »): their complement keeps its
# weight. After any other noun the complement only qualifies it (« couteaux de désossage »
# are knives, « rénovation de appartements » is a building trade's work).
_OPEN_HEADS: frozenset[str] = frozenset(words("""
    formation formations former recrutement recrutements recruter recherche recherchons
    cherchons cherche embauche embaucher poste postes manque manquent penurie besoin besoins
    profil profils offre offres metier metiers ecole ecoles apprentissage apprenti apprentis
    alternance alternant alternants cap bts bac titre certification certificat habilitation
    equipe equipes service services prestataire prestataires soustraitant soustraitants
    projet projets mutualisation mutualiser achat achats acheter location louer partage
    partager groupement filiere plateforme candidat candidats candidature candidatures
    personnel emploi emplois session sessions stage stages cours module modules cycle parcours
    prix cout couts facture factures hausse tarif tarifs gestion valorisation valoriser
    collecte collecter traitement traiter recyclage recycler reprise evacuation enlevement
    elimination tri stock stocks quantite quantites tonne tonnes volume volumes kilos lot lots
    type types genre sorte question questions sujet sujets probleme problemes difficulte
    difficultes demande demandes aide aides subvention subventions solution solutions
    zone zones parc site sites terrain terrains parcelle parcelles batiment batiments local
    locaux atelier ateliers hangar hangars entrepot entrepots surface surfaces
    navette navettes ligne transport transports trajet trajets horaires
    personne personnes gens salarie salaries ouvrier ouvriers agent agents operateur
    operateurs technicien techniciens conducteur conducteurs responsable responsables chef
    chefs pilote pilotes gars jeunes heures jours mois semaine semaines
    plein debut fin partie part moitie tiers quart reste nombre dizaine dizaines
    centaine centaines plupart faute cause usage utilisation
    chutes chute dechets dechet residus residu rebuts rebut effluents eaux boues
    sousproduits coproduits gisement gisements debouche debouches apport apports source
    sources recuperation consommateur consommateurs fournisseur fournisseurs
    benne bennes sac sacs fut futs bidon bidons cuve cuves camion camions palette palettes
    m3 m2 litres kg t ha km
    machine machines cabine cabines banc bancs table tables moyen moyens equipement
    equipements outil outils outillage installation installations unite unites centre
    centres station stations reseau reseaux chaine chaines cellule cellules four fours
    enceinte enceintes chambre chambres acces titulaire titulaires autorisation
    autorisations permis
    neuf neufs neuve neuves nouveau nouveaux nouvelle nouvelles ancien anciens ancienne
    anciennes grand grands grande grandes petit petits petite petites gros grosse grosses
    vieux vieille vieilles seul seuls seule seules automatique automatiques commun communs
    commune communes collectif collective collectifs collectives partage partagee partages
    partagees supplementaire supplementaires complet complete complets completes
    qualifie qualifies qualifiee qualifiees interne internes externe externes
"""))


# « un car », « le car du matin », « aucun car », « en car »: the coach, not « because »
_COACH = re.compile(
    r"\b(un|le|les|des|aucun|aucuns|du|en|ce|premier|dernier|pas de|d['’]un|au|nos|notre|"
    r"leur|un petit|un vrai)\s+cars?\b", re.IGNORECASE)


# « la commune », « une commune voisine », « communauté de communes »: the town (after a
# determiner; the adjective « une formation commune » follows its noun)
_TOWN = re.compile(
    r"\b(la|sa|notre|votre|leur|cette|chaque|les|des|nos|ma|une|de|quelle|autre|autres)"
    r"\s+communes?\b", re.IGNORECASE)


# « d'appartements »: the elided « de » is kept as a word (the tokenizer drops elisions), so
# that a noun's complement can be told from the noun (_read)
_ELIDED_DE = re.compile(r"\b([dD])['’]\s*")


# « nos saisonniers logés à Péronne », « hébergés chez l'habitant »: where the staff live, a
# fact about them, not a housing need (« mal logés », « se loger » are read as before);
# « une voiture pour le foyer »: the household
_LIVING_AT = re.compile(
    r"\b(?:log|h[ée]berg)(?:é|e)(?:e|es|s)?\s+(à|a|au|aux|chez|en|dans|sur|près|pres)\b",
    re.IGNORECASE)
_HOUSEHOLD = re.compile(r"\b(pour le|par|du)\s+foyer\b(?!\s+(?:de|d['’]|des|pour|jeunes))",
                        re.IGNORECASE)


# « le permis cariste », « permis nacelle »: a licence to operate a machine, not a driving
# licence; « des navettes de camions entre nos deux entrepôts », « navettes entre la réception
# et le stockage »: goods moved inside a firm, not staff; « logement possible à la ferme »:
# housing offered in a job advert, not a housing need
_LICENCE = re.compile(
    r"\bpermis\s+(?=(?:de\s+)?(?:cariste|caces|chariots?|nacelles?|engins?|feu|pontier)\b)",
    re.IGNORECASE)
_GOODS_SHUTTLE = re.compile(
    r"\bnavettes?\s+(?=de\s+(?:camions?|marchandises|palettes|pi[eè]ces|bacs)\b|internes?\b|"
    r"(?:entre|vers)\s+(?:la|le|les|l['’]|nos|notre|nos\s+deux|deux)\s*"
    r"(?:r[ée]ception|stockage|entrep[oô]ts?|ateliers?|sites?|quais?|b[aâ]timents?|usines?|"
    r"magasins?|lignes?)\b)", re.IGNORECASE)
# « trois palettes par jour vers Lyon », « nos palettes partent à moitié vides »: goods
# shipped (freight), not pallets to reuse
_SHIPPED_PALLETS = re.compile(
    r"\bpalettes?\b(?=(?:\s+[\w'’]+){0,3}?\s+(?:par\s+(?:jour|semaine|mois)|vers|partent|"
    r"part|exp[ée]di\w*|livr\w*|[àa]\s+moiti[ée]|camions?|transporteurs?|affr[ée]t\w*|"
    r"qui\s+font\s+\d+))", re.IGNORECASE)
# « le marc on sait plus quoi en faire »: the pomace after a determiner (lower case: « Marc »
# is a first name)
_POMACE = re.compile(r"\b(le|du|les|des|nos|notre|ce|ces|leur|leurs|son|ses|de|en)\s+marcs?\b")
# « ça s'entasse dans la cour »: the yard, not « des cours » (training), which stems alike
_YARD = re.compile(r"\b(la|une|notre|leur|sa|votre|ma)\s+cour\b(?!\s+d['’]\s*appel)",
                   re.IGNORECASE)
# « sous forme de granulés »: a shape, not « former » (training); « au départ de la gare »:
# where a shuttle starts, not a leaver to replace (« départ » is a hiring word)
_SHAPE = re.compile(r"\bsous\s+(?:la\s+)?forme\b", re.IGNORECASE)
_STARTING_FROM = re.compile(r"\b(?:au|aux)\s+d[ée]parts?\s+(?=de\b|du\b|des\b|d['’])",
                            re.IGNORECASE)
_HOUSING_OFFERED = re.compile(
    r"\b(?:logement|h[ée]bergement)\s+(?=(?:possible|fourni|offert|assur[ée]|compris|"
    r"sur\s+place|de\s+fonction)\b)", re.IGNORECASE)


def _as_read(text: str) -> str:
    """A text (or a lexicon phrase) with its words of two senses told apart: « car » after
    a determiner is the coach, not « because » (a stop word); « la commune » is the town, not
    « en commun » (it says nothing of acting together); and the other readings above (where
    staff live, a household, a machine licence, goods moved, housing offered in an advert,
    pallets shipped, pomace, a yard, a shape, a shuttle's start), with the elided « de »
    kept as a word for the noun complements (_read)."""
    text = _HOUSEHOLD.sub(r"\1 menage", _LIVING_AT.sub(r"residant \1", text))
    text = _LICENCE.sub("habilitation ", text)
    text = _GOODS_SHUTTLE.sub("rotations ", text)
    text = _HOUSING_OFFERED.sub("avantage ", text)
    text = _SHIPPED_PALLETS.sub("envois", text)
    text = _POMACE.sub(r"\1 marc_residu", text)
    text = _YARD.sub(r"\1 courette", text)
    text = _STARTING_FROM.sub("depuis ", _SHAPE.sub("sous aspect", text))
    text = _ELIDED_DE.sub(r"\1e ", text)
    return _TOWN.sub(r"\1 municipalite", _COACH.sub(r"\1 autocar", text))


def _unsaid(match: re.Match[str]) -> str:
    """A former building's phrase with its past activity blanked out."""
    group = "what" if match.group("what") else "activity"
    start, end = match.span(group)
    whole = match.group(0)
    offset = match.start()
    return whole[:start - offset] + " " * (end - start) + whole[end - offset:]


def derivational_root(stem_: str) -> str:
    """The derivational root of a Snowball stem (« polisseur », « polissag » → « poliss »)."""
    for ending in DERIVATIONS:
        if stem_.endswith(ending) and len(stem_) - len(ending) >= MIN_ROOT:
            return stem_[: -len(ending)]
    return stem_


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
        # one-word terms that name their object only as written, not as the stem of another
        # word: an acronym (written in capitals in the file: TIG, CN, RH; « tige » stems to
        # tig) or a word written « =foyer » (« foie » stems as « foyer » does). Stem -> the
        # word itself -> object; another object's term with that stem still names its own
        # (« =distillateur » does not take « distillation » from the shared still)
        self._exact: dict[str, dict[str, str]] = {}
        self._markers: dict[tuple[str, ...], set[str]] = {}
        # phrases that name the sector an object belongs to (a material, a product: « EPDM »,
        # « maroilles »), not the object itself: many firms of one territory share a sector
        # and ask different things, so these are only ever context
        self._sector: set[tuple[str, ...]] = set()
        # object -> the wider objects it is a kind of (``narrows:``): named together, the
        # narrower one is what the text is about
        self._narrows: dict[str, set[str]] = {}
        for row in data["objects"]:  # type: ignore[attr-defined]
            obj = RadarObject(id=str(row["id"]), kind=str(row["kind"]), label=str(row["label"]))
            if obj.id in self.objects:
                raise ValueError(f"radar object {obj.id!r} defined twice")
            self.objects[obj.id] = obj
            for written in row["terms"]:
                term = _as_read(str(written).removeprefix("="))
                key = tuple(_stems(term, keep_stops=False))
                if len(key) == 1 and (str(written).startswith("=")
                                      or (term.isupper() and term.isalpha())):
                    self._exact.setdefault(key[0], {}).setdefault(fold(term), obj.id)
                elif key:
                    # the first object to claim a phrase keeps it (files are read top-down)
                    self._terms.setdefault(key, obj.id)
            for wider in row.get("narrows", ()):
                # a fibre splicer is a câbleur too, but not the one a harness maker trains
                self._narrows.setdefault(obj.id, set()).add(str(wider))
            for term in row.get("sector", ()):
                key = tuple(_stems(_as_read(str(term)), keep_stops=False))
                if key and key not in self._terms:
                    self._terms[key] = obj.id
                    self._sector.add(key)
        unknown = {w for ws in self._narrows.values() for w in ws} - set(self.objects)
        if unknown:
            raise ValueError(f"radar objects narrow unknown objects: {sorted(unknown)}")
        for term in data.get("ignore", ()):  # type: ignore[attr-defined]
            key = tuple(_stems(_as_read(str(term)), keep_stops=False))
            if key:
                self._terms[key] = _IGNORE
        marker_lists: dict[str, list[str]] = {
            "own": list(data.get("own", ())),  # type: ignore[call-overload]
            "mishap": list(data.get("mishap", ())),  # type: ignore[call-overload]
            "collective": list(data.get("collective", ())),  # type: ignore[call-overload]
            "market": list(data.get("market_context", ())),  # type: ignore[call-overload]
        }
        # heads are matched on the word, not the stem: « contrôleur » and « contrôle »,
        # « opérateur » and « opération » share a stem
        self._job_heads: frozenset[str] = frozenset(
            w for term in data.get("job_heads", ())  # type: ignore[attr-defined]
            for w in words(str(term)))
        self._job_generic: frozenset[str] = frozenset(
            s for term in data.get("job_generic", ())  # type: ignore[attr-defined]
            for s in _stems(str(term), keep_stops=False))
        for action, terms in dict(data.get("actions", {})).items():  # type: ignore[call-overload]
            marker_lists[str(action)] = list(terms)
        for marker, terms in marker_lists.items():
            for term in terms:
                key = tuple(_stems(_as_read(str(term)), keep_stops=True))
                if key:
                    self._markers.setdefault(key, set()).add(marker)
        # first stem -> lengths of the phrases starting with it, longest first: most words
        # start no phrase, and are passed over with one lookup
        self._term_lengths = _lengths_by_first(
            {**self._terms, **{(stem_,): "" for stem_ in self._exact}})
        # derivational root of the one-word terms -> object: a derived form the lexicon
        # does not list (polissage for polisseur, décolleteuse for décolletage) names it too;
        # a root two objects share (or an ignored word's) names none
        roots: dict[str, set[str]] = {}
        for key, target in self._terms.items():
            if key in self._sector:
                continue  # a sector's word is no object, nor are its derived forms
            if len(key) == 1 and (len(key[0]) >= MIN_ROOT_STEM or not target):
                roots.setdefault(derivational_root(key[0]), set()).add(target)
        # a word that counts only as written (« =résidence », TIG) has no derived forms
        self._roots: dict[str, str] = {
            r: next(iter(ts)) for r, ts in roots.items()
            if len(ts) == 1 and "" not in ts and r not in self._exact}
        # the words of the terms, each with the objects whose terms use it: a text that
        # names no term whole but uses a word only one object's terms use (« peinture
        # poudre » for « thermolaquage poudre ») is read as that object when nothing else
        # is named
        cues: dict[str, Counter[str]] = {}
        for key, target in self._terms.items():
            if key in self._sector:
                continue
            for part in set(key) - self._exact.keys():
                if len(part) >= MIN_ROOT_STEM - 1 and part.isalpha():
                    cues.setdefault(derivational_root(part), Counter())[target] += 1
        # a cue is a word of one object's terms only, and of two of them at least: a word
        # that comes once is as often the context of the term as its head
        self._cues: dict[str, str] = {
            r: next(iter(ts)) for r, ts in cues.items()
            if len(ts) == 1 and "" not in ts and sum(ts.values()) >= MIN_CUE_TERMS}
        self._marker_lengths = _lengths_by_first(self._markers)

    @classmethod
    def load(cls, path: Path = OBJECTS_FILE) -> ObjectLexicon:
        """Read the lexicon from its YAML file."""
        return cls(yaml.safe_load(path.read_text(encoding="utf-8")))

    def kind_of(self, object_id: str) -> str:
        """The kind of an object (a trade for the ones read from a job title)."""
        found = self.objects.get(object_id)
        return found.kind if found is not None else "trade"

    def _objects(self, stems: list[str], kept: list[str], complement: list[bool] | None = None
                 ) -> tuple[list[str], set[str], set[str], set[str]]:
        """Object ids named in a text's salient stems (longest phrase first, in order), the
        qualifiers of the job titles the lexicon does not know, the objects named only by
        their sector's words, and those named only as the complement of another noun."""
        found: list[str] = []
        jobs: set[str] = set()
        named: set[str] = set()  # by a term of the object itself
        headed: set[str] = set()  # ...and not only as a noun's complement
        i = 0
        while i < len(stems):
            for size in self._term_lengths.get(stems[i], ()):
                key = tuple(stems[i : i + size])
                target = self._term_at(stems, kept, i, size)
                if target is not None:
                    if target != _IGNORE and target not in found:
                        found.append(target)
                    if key not in self._sector:
                        named.add(target)
                    if not (complement and complement[i]
                            and kept[i - 1] not in self._job_heads):
                        headed.add(target)
                    i += size
                    break
            else:
                job, end = self._job(stems, kept, i)
                if job:
                    jobs.add(job)
                elif (len(stems[i]) >= MIN_ROOT_STEM and stems[i].isalpha()
                      and not kept[i].endswith(_INFINITIVES)
                      and (target := self._roots.get(derivational_root(stems[i])))
                      and zipf(kept[i]) < MAX_DERIVED_ZIPF):
                    if target not in found:
                        found.append(target)
                    named.add(target)
                    if not (complement and complement[i]
                            and kept[i - 1] not in self._job_heads):
                        headed.add(target)
                i = end
        return found, jobs, set(found) - named, set(found) - headed

    def _term_at(self, stems: list[str], kept: list[str], i: int, size: int) -> str | None:
        """The object (or ignore mark) of the term of `size` words at `i`, if any."""
        if i + size > len(stems):
            return None  # a shorter slice at the end is another term's key
        if size == 1 and (exact := self._exact.get(stems[i])) and kept[i] in exact:
            return exact[kept[i]]
        return self._terms.get(tuple(stems[i : i + size]))

    def _cued(self, stems: list[str], kept: list[str]) -> list[str]:
        """Objects named by a word of their terms (one object's only), rare enough to say it."""
        found: list[str] = []
        for s, word in zip(stems, kept, strict=True):
            if (len(s) >= MIN_ROOT_STEM - 1 and s.isalpha() and word not in self._job_heads
                    and (target := self._cues.get(derivational_root(s)))
                    and target not in found and zipf(word) < MAX_CUE_ZIPF):
                found.append(target)
        return found if len(found) <= MAX_CUES else []

    def _job(self, stems: list[str], kept: list[str], i: int) -> tuple[str, int]:
        """The qualifier of a job head at ``i`` (« technicien [de] X ») or "", and where the
        reading goes on.

        A head before a thing the lexicon knows (« responsable d'entrepôt », « technicien de
        laboratoire ») names a person, not that thing: the thing is consumed with the head.
        """
        if kept[i] not in self._job_heads:
            return "", i + 1
        for j in range(i + 1, min(len(stems), i + 1 + JOB_LOOKAHEAD)):
            word = stems[j]
            if kept[j] in self._job_heads or word in self._job_generic or word.isdigit():
                continue
            if len(word) < 3 or not word.isalpha():
                return "", i + 1
            end = self._things_from(stems, kept, j)
            if end > j:
                return word, end
            if self._term_lengths.get(word) and any(
                    self._term_at(stems, kept, j, n) is not None
                    for n in self._term_lengths[word]):
                return "", i + 1  # a trade follows: the lexicon reads it
            return word, i + 1
        return "", i + 1

    def _things_from(self, stems: list[str], kept: list[str], j: int) -> int:
        """Past the known things (not trades) that follow one another from ``j``."""
        while j < len(stems):
            for size in self._term_lengths.get(stems[j], ()):
                target = self._term_at(stems, kept, j, size)
                if target is not None:
                    if not target or self.kind_of(target) in PEOPLE_KINDS:
                        return j
                    j += size
                    break
            else:
                return j
        return j

    def _markers_of(self, stems: list[str]) -> set[str]:
        """Markers (own, collective, hire, train, share) in the stems of every word of a text."""
        found: set[str] = set()
        for i in range(len(stems)):
            for size in self._marker_lengths.get(stems[i], ()):
                markers = self._markers.get(tuple(stems[i : i + size]))
                if markers is not None:
                    found |= markers
        return found

    def analyse(self, text: str, *, whole: bool = True) -> TextObjects:
        """The objects of a text with their weights, its actions and whether it is its own
        (``whole``: a text, whose sentences may each be read on their own)."""
        text = _as_read(FORMER_BUILDING.sub(_unsaid, text))
        every, salient, kept, complement = _read(text)
        ids, jobs, sector, qualifying = self._objects(salient, kept, complement)
        wider = {w for i in ids for w in self._narrows.get(i, ())}
        ids = [i for i in ids if i not in wider]
        # (a waste or a heat is named by its source: « chutes de tissus », « eaux de lavage »)
        qualifying = {i for i in qualifying if self.kind_of(i) not in FLOW_KINDS | EQUIPMENT_KINDS}
        if set(ids) - sector - qualifying:
            # what only qualifies another noun (« couteaux de désossage », « rénovation de
            # appartements ») is context when the text names something in its own right
            sector |= qualifying
        markers = self._markers_of(every)
        actions = frozenset(markers & {"hire", "train", "share"})
        if not ids:
            ids = self._cued(salient, kept)
            if actions & {"hire", "train"} and "share" not in actions:
                # a firm that hires or trains names a trade: a cued machine or lab is where
                # the person works (« technicien de laboratoire en microbiologie »)
                ids = [i for i in ids if self.kind_of(i) in PEOPLE_KINDS]
        together = bool(markers & {"collective", "share"})
        # context only: a country without a market, a service the firm wants for itself
        context = {i for i in ids
                   if (self.kind_of(i) in MARKET_KINDS and "market" not in markers)
                   or (self.kind_of(i) in SHARED_KINDS and not together)} | sector
        people = [i for i in ids if self.kind_of(i) in PEOPLE_KINDS and i not in context]
        things = [i for i in ids if self.kind_of(i) not in PEOPLE_KINDS and i not in context]
        # hiring or training: the trade is the object, a machine or a site named beside it is
        # context; sharing (or nothing said): everything named counts
        skills = [i for i in people if self.kind_of(i) in SKILL_KINDS]
        conditions = [i for i in things if self.kind_of(i) in CONDITION_KINDS]
        flows = [i for i in things if self.kind_of(i) in FLOW_KINDS and i not in GENERIC_OBJECTS]
        if conditions:
            # a shuttle, housing, childcare: the trades named are who needs them
            primary = set(conditions)
        elif "train" in actions and skills:
            primary = set(skills)
        elif "train" in actions and people:
            # training together is still about the trade, not about the room it happens in
            primary = set(people)
        elif actions & {"hire", "train"} and not actions & {"share"} and people:
            primary = set(people)
        elif flows:
            # a waste or a by-product is what to pool; the trade or the machine that makes
            # it is where it comes from (« chutes de cuir chez les maroquiniers »)
            primary = set(flows)
        elif things and "share" in actions:
            primary = set(things)
        else:
            primary = set(ids) - context
        if not primary:
            ids = []  # nothing but context: the words say more than the objects
        weighted = []
        for i in sorted(ids):
            weight = 1.0 if i in primary else SECONDARY_WEIGHT
            if i in GENERIC_OBJECTS:
                weight *= GENERIC_WEIGHT
            weighted.append((i, weight))
        # (hiring alone after a breakdown is its own emergency: « chaudiériste en urgence »)
        own = ("own" in markers or ("mishap" in markers and not actions & {"train", "share"})) \
            and "collective" not in markers
        if own and weighted and whole and _MANY_TOPICS.search(text):
            # a letter about several things (« je vous écris pour plusieurs choses ») is not
            # its own matter because one of them is (« refaire notre site internet »): it is
            # when every sentence that names an object is
            sentences = [self.analyse(sentence, whole=False)
                         for sentence in _SENTENCES.findall(text)]
            own = all(found.own or not found.objects for found in sentences)
        return TextObjects(objects=tuple(weighted), actions=actions, own=own,
                           jobs=frozenset(jobs))


@lru_cache(maxsize=1)
def object_lexicon() -> ObjectLexicon:
    """The shipped lexicon, read once."""
    return ObjectLexicon.load()
