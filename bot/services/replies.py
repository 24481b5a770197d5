"""Classify a partner's e-mail reply to a routed need: taken, refused, unclear, or a question.

The text is the reply without its quoted history. It is read as a sequence of canonical
tokens: folded like the knowledge base (``knowledge.text.fold``: lower case, no accents,
’ → '), elisions spelled out (``m'en`` → ``me en``, ``n'est`` → ``ne est``), SMS forms
expanded (``jm en occupe`` → ``je me en occupe``, ``rdv`` → ``rendez vous``) and punctuation
turned into clause boundaries. The signature (from ``Cordialement``, ``Bien à vous``, ``--``,
a legal disclaimer or an Outlook header on) and the greeting are left out.

Cues found in that text, by family:

* **ack** — an explicit commitment: ``je prends``, ``je la prends``, ``pris(e) en charge``,
  ``je m'en occupe``, ``on s'en charge``, ``nous nous en chargeons``, ``je contacte`` /
  ``je vais appeler l'entreprise`` / ``je l'appelle``, ``j'ai eu le dirigeant``,
  ``rendez-vous pris``, ``je reviens vers vous``, ``je vous tiens au courant``,
  ``ok pour moi``, ``je transmets à mon collègue`` (the partner's organisation handles it),
  a few English forms (``I'll take it``, ``on it``).
* **refusal** — ``pas pour nous``, ``hors (de notre) champ``, ``ne relève pas de``,
  ``pas de notre ressort``, ``pas notre compétence``, ``nous ne pouvons pas``,
  ``je ne peux pas prendre``, ``pas concerné``, ``voir plutôt avec``, ``à réorienter``,
  ``mauvais interlocuteur``, ``pas éligible``, a contact who left (``ne suis plus en poste``).
* **negated ack** — an ack cue inside a ``ne … pas/plus/jamais`` clause (``je ne prends
  pas``, ``nous ne pouvons pas le prendre en charge``, ``ça ne nous concerne pas``) or
  followed by a bare ``pas`` (``je m'en occupe pas``) counts as a refusal. Courtesy
  negations are masked first and never negate anything: ``n'hésitez pas``, ``pas de
  souci``, ``ne vous inquiétez pas``, ``je ne manquerai pas de…``.
* **hedge** — ``peut-être``, ``à voir``, ``éventuellement``, ``sous réserve``, ``je ne sais
  pas``, ``pas sûr``, ``je vais voir si``, ``je peux … si …`` (a condition), ``je pourrais``,
  ``pas avant``, ``ça dépend``.
* **auto-reply** — ``réponse automatique``, ``actuellement absent``, ``en congés jusqu'au``,
  ``out of office``.
* **question** — a sentence ending with ``?`` or opening like one (``pouvez-vous``,
  ``quel est``, ``merci de me communiquer``…). An ack cue inside a sentence ending with
  ``?`` does not count (``vous êtes sûre que c'est pour nous ?`` asks, it does not take).
* **positive** — weak, polite words: ``merci``, ``ok``, ``bien reçu``, ``c'est noté``,
  ``entendu``, ``d'accord``, ``parfait``, ``pas de souci``.
* **reservation** — regret or unavailability: ``malheureusement``, ``désolé``, ``en
  déplacement``, ``absent``, ``pas disponible``.
* a reply opening with ``non`` counts as a refusal cue.

Decision, first rule that applies:

1. an auto-reply cue → UNSURE (nobody has read the need yet);
2. ack and refusal cues together → UNSURE (contradictory);
3. a refusal cue → REFUSED, unless a hedge is also there → UNSURE (``peut-être pas pour nous``);
4. an ack cue → ACK, unless hedged: then QUESTION when the reply also asks something, else
   UNSURE (``je peux m'en occuper si…``);
5. a question → QUESTION;
6. a hedge or a reservation → UNSURE;
7. nothing left once greeting and signature are gone → UNSURE;
8. a short reply (at most ``SHORT_REPLY_WORDS`` words, trailing signature-like lines — short,
   without a full stop — not counted) with a positive word and no "but" → ACK
   (``Merci, bien reçu.``, ``OK``, ``Entendu``): a reply with no refusal words is an ack;
9. anything else (longer text without any cue) → UNSURE: the animator decides.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

from knowledge.text import default_lexicon, fold

__all__ = ["SHORT_REPLY_WORDS", "ReplyKind", "ReplyVerdict", "classify_reply"]

# A reply this short with a positive word and no cue ("Merci, bien reçu.") is an ack; a longer
# one without any cue may say anything, so the animator reads it.
SHORT_REPLY_WORDS = 15
_REASON_MAX = 70
# A "but" turns a short polite reply into a reservation ("OK, mais il faut l'accord de…").
_BUT = frozenset({"mais", "cependant", "toutefois", "sauf", "neanmoins", "but", "however"})


class ReplyKind(StrEnum):
    """What a partner's reply means for the routed need."""

    ACK = "ack"
    REFUSED = "refused"
    UNSURE = "unsure"
    QUESTION = "question"


@dataclass(frozen=True, slots=True)
class ReplyVerdict:
    """The kind of a reply and the French cue that decided it, shown to the animator."""

    kind: ReplyKind
    reason: str


# -- tokens -----------------------------------------------------------------------------

_BOUNDARY = "|"
_APOSTROPHES = "'’‘ʼ`´"
_TOKEN_RE = re.compile(r"[^\W_]+|[.!?;:,()\n…]|[\U0001F44D\U0001F44C\u2705]")
_EMOJI_OK = {"\U0001F44D": "ok", "\U0001F44C": "ok", "\u2705": "ok"}
# Elided words, when an apostrophe follows them (j'ai, m'en, n'est, qu'il...).
_ELIDED: dict[str, tuple[str, ...]] = {
    "j": ("je",), "m": ("me",), "n": ("ne",), "l": ("le",), "c": ("ce",), "s": ("se",),
    "t": ("te",), "d": ("de",), "qu": ("que",), "jusqu": ("jusque",),
    "lorsqu": ("lorsque",), "puisqu": ("puisque",), "quelqu": ("quelque",),
}
# SMS and typing shortcuts of replies, read before the knowledge base's abbreviations (whose
# expansions drop elided pronouns: its "jai" becomes "ai", which loses the subject).
_SMS: dict[str, tuple[str, ...]] = {
    "j": ("je",), "c": ("ce", "est"), "g": ("je", "ai"), "jai": ("je", "ai"),
    "jm": ("je", "me"), "jme": ("je", "me"),
    "m": ("me",), "n": ("ne",), "l": ("le",), "s": ("se",), "d": ("de",),
    "jmen": ("je", "me", "en"), "men": ("me", "en"), "jen": ("je", "en"),
    "sen": ("se", "en"), "cest": ("ce", "est"),
    # The SMS "jé", "cé", "sé" fold to real words: keep those words as they are.
    "je": ("je",), "ce": ("ce",), "se": ("se",),
    "jvais": ("je", "vais"), "jvé": ("je", "vais"),
    "jvai": ("je", "vais"), "jpeux": ("je", "peux"), "jprends": ("je", "prends"),
    "jle": ("je", "le"), "jla": ("je", "la"), "jlui": ("je", "lui"),
    "dac": ("de", "accord"), "dacc": ("de", "accord"), "daccord": ("de", "accord"),
    "dak": ("de", "accord"), "ok": ("ok",), "okay": ("ok",), "oki": ("ok",), "okk": ("ok",),
    "okok": ("ok",), "ocupe": ("occupe",), "occupee": ("occupe",), "ocuppe": ("occupe",),
    "occuppe": ("occupe",), "peutetre": ("peut", "etre"), "rdv": ("rendez", "vous"),
    "stp": ("stp",), "svp": ("svp",),
}
# Knowledge-base abbreviations that are English words or titles in a reply ("not for us",
# "Ms Smith").
_SMS_SKIPPED = frozenset({"us", "uk", "usa", "ex", "ue", "ia", "ms"})


@dataclass(frozen=True, slots=True)
class _Token:
    """A canonical word (or ``|`` for a clause boundary) and its span in the original text."""

    word: str
    start: int
    end: int
    raw: str  # the character for a boundary ("?", "\n"...), the folded word otherwise


@cache
def _abbreviations() -> dict[str, tuple[str, ...]]:
    """The knowledge base's SMS table, with the replies' own forms taking precedence."""
    table = {k: v for k, v in default_lexicon().abbreviations.items() if k not in _SMS_SKIPPED}
    table.update({fold(k): v for k, v in _SMS.items()})
    return table


def _tokens(text: str) -> list[_Token]:
    """Canonical tokens of a text: folded, elisions and SMS forms spelled out."""
    table = _abbreviations()
    out: list[_Token] = []
    for match in _TOKEN_RE.finditer(text):
        piece = match.group()
        start, end = match.span()
        if piece in _EMOJI_OK:
            out.append(_Token(_EMOJI_OK[piece], start, end, piece))
            continue
        if not piece[0].isalnum():
            out.append(_Token(_BOUNDARY, start, end, piece))
            continue
        word = fold(piece)
        elided = end < len(text) and text[end] in _APOSTROPHES
        expansion = _ELIDED.get(word) if elided else None
        if expansion is None:
            expansion = table.get(word, (word,))
        out.extend(_Token(w, start, end, word) for w in expansion)
    return out


def _is_sentence_start(tokens: Sequence[_Token], i: int, marks: str = ".!?\n…") -> bool:
    """Whether token i opens the text, a line or a sentence (or follows one of ``marks``)."""
    return i == 0 or (tokens[i - 1].word == _BOUNDARY and tokens[i - 1].raw in marks)


# -- body: greeting and signature out ---------------------------------------------------

# Closing formulas and what follows them (signature, disclaimer, header of the quoted mail).
_CLOSINGS: tuple[tuple[str, ...], ...] = tuple(
    tuple(phrase.split())
    for phrase in (
        "cordialement", "bien cordialement", "tres cordialement", "cdlt", "cdt", "bav",
        "bien a vous", "salutations", "sincerement", "amicalement", "regards", "best regards",
        "kind regards", "envoye de mon", "envoye depuis", "sent from my", "ce message et",
        "ce message est", "ce message ainsi", "ce courriel et", "ce courriel est", "ce mail et",
        "ce e mail et", "avertissement", "pensez a le environnement", "this email and",
        "this message and", "de |", "from |", "original message", "message original",
    )
)
# By first word: each sentence start is compared with the few closings it may begin.
_CLOSINGS_BY_FIRST: dict[str, tuple[tuple[str, ...], ...]] = {
    first: tuple(c for c in _CLOSINGS if c[0] == first) for first in {c[0] for c in _CLOSINGS}
}
_GREETINGS = frozenset(
    {"bonjour", "bonsoir", "hello", "hi", "salut", "coucou", "madame", "monsieur", "cher",
     "chere", "dear", "bjr", "re"}
)
_GREETING_MAX = 5  # "Bonjour Madame Dupont," at most; a longer first clause is content


def _body(tokens: list[_Token], text: str) -> list[_Token]:
    """The tokens between the greeting and the signature."""
    end = len(tokens)
    for i in range(len(tokens)):
        # "Merci, cordialement" closes too, hence the comma.
        if not _is_sentence_start(tokens, i, ".!?\n…,"):
            continue
        closings = _CLOSINGS_BY_FIRST.get(tokens[i].word, ())
        if any(_starts_with(tokens, i, closing) for closing in closings):
            end = i
            break
        # A separator line ("--", "___") opens a signature too.
        if i > 0 and tokens[i - 1].raw == "\n" and _SEPARATOR.match(text, tokens[i - 1].end):
            end = i
            break
    body = tokens[:end]
    if body and body[0].word in _GREETINGS:
        cut = next((k for k, t in enumerate(body) if t.word == _BOUNDARY), len(body))
        if cut <= _GREETING_MAX:
            body = body[cut:]
    # A line quoted with ">" left over from the history is not the partner's words.
    quoted = _QuotedLines(text)
    return [t for t in body if not quoted.at(t.start)]


def _starts_with(tokens: Sequence[_Token], i: int, words: tuple[str, ...]) -> bool:
    """Whether the canonical words at i are exactly ``words`` (``|`` matches a boundary)."""
    if i + len(words) > len(tokens):
        return False
    return all(tokens[i + k].word == w for k, w in enumerate(words))


_SEPARATOR = re.compile(r"[ \t]*(?:--|__)")
_LINE_BREAK = re.compile(r"\n")
_FIRST_VISIBLE = re.compile(r"[^\S\n]*(?P<char>[^\s])?")


class _QuotedLines:
    """Whether positions lie after a ``>`` that starts their line, each line read once."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0, *(m.end() for m in _LINE_BREAK.finditer(text))]
        self.marks: dict[int, int | None] = {}  # line start -> index of its ">", if any

    def at(self, position: int) -> bool:
        """Whether ``position`` lies on a line starting with ``>`` (after that mark)."""
        line_start = self.starts[bisect.bisect_right(self.starts, position) - 1]
        if line_start not in self.marks:
            first = _FIRST_VISIBLE.match(self.text, line_start)
            visible = first.group("char") if first else None
            self.marks[line_start] = first.start("char") if visible == ">" else None
        mark = self.marks[line_start]
        return mark is not None and mark < position


# -- cues -------------------------------------------------------------------------------
# Patterns are regular expressions over canonical words separated by single spaces.

_OBJ = r"(?:(?:le|la|les|lui|leur) )?"
_HELPER = r"(?:(?:vais|va|allons|peux|peut|pouvons|dois|devons) )?"
_CONTACT_VERBS = (
    r"(?:contacte|contacter|contacterai|contacterons|contactons|recontacte|recontacter"
    r"|appelle|appeler|appellerai|appellerons|appelons|rappelle|rappeler|rappellerai"
    r"|rappelons|joins|joindre|joindrai|relance|relancer|reessaie|reessayer|retente"
    r"|recois|recevoir|recevrai|rencontre|rencontrer|rencontrerai|ecris|ecrire|envoie"
    r"|envoyer|enverrai)"
)
# Someone else in the partner's organisation: "ma collègue Julie", "notre conseillère Mme X".
_THIRD = (
    r"(?:il|elle|ils|elles|qui|(?:collegue|collegues|conseiller|conseillere|conseillers|referent"
    r"|referente|charge|chargee|equipe|service|agence)(?: \S+){0,2})"
)
_COLLEAGUE = (
    r"(?:(?:a|au|aux|aupres de) (?:(?:mon|ma|mes|notre|nos|un|une|le|la|les) )?"
    r"(?:collegue|collegues|conseiller|conseillere|conseillers|service|equipe|responsable"
    r"|charge|chargee|referent|referente|homologue|agence|antenne|delegation|pole)"
    r"|en interne)"
)

_ACK_PATTERNS: tuple[str, ...] = (
    # taking the need
    # "je prends note / connaissance" only acknowledges receipt (a positive word, below)
    r"(?:je|on|nous) (?:le |la |les )?(?:prends|prend|prenons)"
    r"(?! (?:bonne )?(?:note|acte|connaissance))",
    r"(?:je|on|nous) " + _HELPER + r"(?:le |la |les )?prendre",
    r"(?:pris|prise|prises) en (?:charge|compte)",
    r"(?:prends|prend|prenons|prendre|prendrai|prendrons) (?:\S+ )?en charge",
    r"ce est (?:pris|bon pour (?:moi|nous)|pour (?:moi|nous)|parti)",
    r"ok pour (?:moi|nous)",
    r"(?:ca|cela) marche pour (?:moi|nous)",
    r"(?:ca|cela) (?:nous|me) concerne",
    r"(?:je|on|nous) (?:valide|validons)",
    r"(?:je|on|nous) (?:suis|est|sommes) (?:dessus|sur le coup)",
    r"(?:je|on|nous) (?:gere|gerons|vais gerer|allons gerer|va gerer)",
    r"(?:je|on|nous) (?:prends|prend|prenons) la main",
    r"volontiers",
    r"avec plaisir",
    # taking care of it
    r"(?:je )?" + _HELPER + r"me (?:en |y )?(?:occupe|occuper|occuperai|charge|charger"
    r"|chargerai|colle)",
    r"(?:on|nous) " + _HELPER + r"(?:se|nous) (?:en |y )?(?:occupe|occupons|occuper"
    r"|occupera|occuperons|charge|chargeons|charger|chargera|chargerons)",
    _THIRD + r" (?:va|vont|pourra|pourront) (?:se en occuper|(?:prendre|reprendre) contact|"
    + _OBJ + r"(?:vous )?" + _CONTACT_VERBS + r")",
    _THIRD + r" " + _OBJ + r"(?:prendra|prendront|reprendra) contact|" + _THIRD + r" " + _OBJ
    + r"(?:contactera|contacteront|appellera|appelleront|rappellera|recevra|rencontrera)",
    r"(?:prendra|prend|prendre|prends|prenons|va prendre) le relais",
    # contacting the firm
    r"(?:je|on|nous) " + _HELPER + _OBJ + _CONTACT_VERBS,
    r"(?:je|on|nous) " + _HELPER + r"(?:prendre|prends|prenons|prend|reprends|reprendre"
    r"|reprenons) contact",
    r"(?:je|on|nous) " + _HELPER + r"me rapprocher|(?:je )?me rapproche",
    r"(?:je|on|nous) (?:lui |leur )?(?:ai|avons|a) (?:deja )?(?:pris contact|contacte"
    r"|appele|rappele|joint|echange|rencontre|envoye|ecrit|propose|fixe|laisse un (?:message"
    r"|mail|courriel|sms))",
    r"vu avec (?:le|la|les|son|sa|ses|m|mme|monsieur|madame)",
    r"(?:je|on|nous) " + _HELPER + r"(?:lance|lancons|lancer)",
    # "j'ai eu le dirigeant", not "nous avons eu plusieurs demandes"
    r"(?:je|on|nous) (?:ai|avons|a) (?:deja )?eu (?:(?:le|la|les|un|une|son|sa) )?(?:dirigeant"
    r"|dirigeante|gerant|gerante|entreprise|societe|responsable|patron|directeur|directrice"
    r"|drh|rh|contact|echange|rendez vous|monsieur|madame|m|mme)",
    r"(?:je|nous) (?:lui |leur )?(?:passe|passons) un coup de (?:fil|telephone)",
    r"rendez vous (?:est )?(?:pris|fixe|cale|programme|prevu)",
    r"(?:deja|bien) (?:en contact|en relation|suivie?s?|accompagnee?s?|connue?s?)",
    r"(?:le|la|les) (?:accompagne|accompagnent|accompagnons|suit|suivent|suivons)",
    r"(?:deja|bien) (?:traitee?s?|en cours)",
    r"(?:je|nous|on) (?:accompagnons|accompagne|suivons|suit|suis|connaissons|connait|connais)"
    r" (?:deja|bien)",
    r"(?:je|nous|on) (?:fais|ferai|faisons|ferons) le lien",
    r"(?:je|nous|on) " + _HELPER + r"(?:etudier|examiner|analyser|traiter|instruire)",
    # following up
    r"(?:je|nous|on) (?:reviens|revient|reviendrai|revenons|reviendrons|reviendra|vais revenir"
    r"|allons revenir|va revenir) (?:vers|aupres)",
    r"(?:je|nous|on) (?:vous|te) (?:tiens|tiendrai|tenons|tiendrons|tient) (?:au courant"
    r"|informee?s?)",
    r"(?:je|nous|on) (?:vous|te) (?:fais|ferai|faisons|ferons|fait) (?:un )?(?:retour|point)",
    r"(?:je|nous|on) (?:manquerai|manquerons|manquera) pas de",
    # handing over inside the partner's organisation
    r"(?:je|nous|on) " + _HELPER + r"(?:le |la |les |lui )?(?:transmets|transmet"
    r"|transmettons|transmettre|transmettrai|transfere|transferer|transferons|fais suivre"
    r"|faire suivre|faisons suivre|ai transmis|avons transmis|ai transfere|avons transfere"
    r"|ai fait suivre|passe|passer|ai passe) (?:\S+ ){0,3}" + _COLLEAGUE,
    r"(?:transmise?s?|transferee?s?|attribuee?s?|affectee?s?|confiee?s?) " + _COLLEAGUE,
    # English
    r"i (?:ll|will) (?:take|handle|call|contact|get in touch|follow up)",
    r"we (?:ll|will) (?:take|handle|call|contact|get in touch|follow up)",
    r"on it", r"i take it", r"will do",
)

_REFUSAL_PATTERNS: tuple[str, ...] = (
    r"pas (?:(?:vraiment|forcement|tout a fait|du tout|trop) )?pour (?:nous|moi|notre"
    r" (?:structure|service|organisme|agence|chambre|equipe))",
    r"hors (?:de )?(?:(?:notre|nos|mon|mes|du|des|la|le) )?(?:champ|champs|perimetre"
    r"|competence|competences|domaine|secteur|zone|territoire|cible|cadre|missions?"
    r"|ressort|criteres)",
    r"ne (?:releve|relevent|rentre|entre|correspond|fait) (?:\S+ )?(?:pas|plus|ni)",
    r"pas (?:(?:vraiment|forcement|du tout|tout a fait) )?(?:de |du |dans )?"
    r"(?:(?:notre|nos|mon|ma|mes|le|la) )?(?:ressort|competence"
    r"|competences|domaine|metier|perimetre|secteur|cible|champ|missions?|role|zone|cordes"
    r"|attributions)",
    r"ne (?:pouvons|peux|peut|pourrons|pourrai|pourrais|pourrions|pourra|pourrait"
    r"|saurions|saurais) (?:\S+ )?pas",
    r"(?:pas|plus) en mesure",
    r"ne (?:sommes|suis|serons|serai|est) (?:\S+ )?pas (?:en charge|concernee?s?|competente?s?"
    r"|habilitee?s?|le bon|la bonne|les bons)",
    r"(?:impossible|pas possible) (?:pour (?:nous|moi)|de (?:la |le |les )?(?:prendre"
    r"|traiter|donner suite|accompagner|financer|suivre))",
    r"pas concernee?s?",
    r"ne (?:nous|me) concerne (?:pas|plus)",
    r"(?:voir|voyez|orientez|orienter|rediriger|redirigez|reorienter|reorientez|adresser"
    r"|adressez vous) plutot",
    r"plutot (?:voir )?(?:avec|vers|aupres|du cote)",
    r"a voir avec",
    r"(?:il faut|il faudrait|mieux vaut|vous invite a|vous conseille de|vous suggere de"
    r"|merci de) (?:vous )?(?:voir avec|rapprocher|adresser|orienter|reorienter|rediriger"
    r"|contacter (?:la|le|les) (?!entreprise|societe|dirigeant))",
    r"reorienter|reorientee?|reorientation|rediriger|redirigee?",
    r"(?:mieux|plus) (?:placee?s?|competente?s?|adaptee?s?|indiquee?s?|a meme)",
    r"(?:mauvais|mauvaise|pas le bon|pas la bonne) (?:interlocuteur|interlocutrice|contact"
    r"|service|personne|adresse|destinataire|structure|guichet)",
    r"erreur de (?:destinataire|aiguillage|routage)",
    r"ne (?:suis|est) plus (?:en poste|en charge|dans|au|a|chez)",
    r"ne (?:travaille|travaillons) plus",
    r"(?:ai|a) quitte (?:le|la|les|mon|ma|mes|son|sa|ses|notre)",
    r"ne (?:traitons|traite|finance|financons|financerons|intervenons|intervient|accompagnons"
    r"|accompagne|suivons|couvrons|couvre|proposons|propose|faisons|fait) (?:\S+ )?pas",
    r"ne (?:avons|ai|a|disposons|dispose) (?:\S+ )?(?:pas|aucune?) (?:de |d )?(?:solution"
    r"|dispositif|offre|aide|financement|moyen|budget|conseiller|ressource|competence)",
    r"aucune? (?:solution|dispositif|offre|aide|financement) (?:adaptee?|possible|pour)",
    r"(?:pas|non) eligibles?|ineligibles?",
    r"(?:je|nous|on) (?:decline|declinons|refuse|refusons)",
    r"sans suite|ne (?:donnerons|donnerai|donnons|donne|donnera) pas suite",
    r"ne (?:vois|voyons) pas (?:en quoi|comment)(?: (?:\S+ ){0,2}?(?:pourrions|pourrait|pourrais"
    r"|pouvons|peut|pourra|pourrons))?",
    r"releve (?:plutot|davantage)",
    r"vous laisse (?:voir|contacter|vous rapprocher|vous adresser|orienter|reorienter)",
    r"voyez avec|(?:contactez|adressez vous a) (?:plutot )?(?:la|le|les|ma|mon|mme|m|monsieur"
    r"|madame)",
    r"ne (?:remplit|remplissent|repond|repondent|satisfait) pas (?:aux|les|a) (?:conditions"
    r"|criteres)",
    r"non merci",
    r"pas a (?:nous|moi) de",
    # English
    r"not for (?:us|me)",
    r"not (?:our|my) (?:area|scope|remit|field|business|job)",
    r"out of (?:our |my )?(?:scope|remit|area)",
    r"(?:cannot|can t|can not|unable to|won t be able to) (?:take|handle|help|deal)",
    r"(?:not the right|wrong) (?:person|contact|team|address)",
)

_HEDGE_PATTERNS: tuple[str, ...] = (
    r"peut etre",
    r"eventuellement",
    r"a voir(?! (?:avec|plutot|aupres))",
    r"sous reserve",
    r"a condition|sous condition|sauf si",
    r"il (?:me|nous) (?:faut|faudrait|faudra)",
    r"(?:besoin|attendre|attends|attendons) (?:de |de le |de la |du )?(?:accord|feu vert"
    r"|validation)",
    r"a priori",
    r"probablement",
    r"(?:je )?(?:ne )?sais pas",
    # folded "sûr" is the preposition "sur" too: "pas sûr que", not "pas sur ce projet"
    r"pas (?:sure?|certaine?s?)(?= (?:que|qu|de|\|)|$)|pas evident",
    r"(?:voir|verifier|regarder|verifie|regarde|verifierai|regarderai|vois) si",
    r"(?:je|nous) (?:dois|devons|devrais) (?:verifier|voir|en parler|regarder|valider"
    r"|consulter|demander)",
    r"il faut que je (?:voie|verifie|regarde|demande)",
    r"(?:ca|cela|tout) depend",
    r"en fonction de",
    r"on verra|je verrai|nous verrons",
    r"je vous (?:dirai|confirmerai)",
    r"(?:je|nous|on) (?:pourrais|pourrions|pourrait)",
    r"(?:peux|pouvons|peut|pourrai|pourrons|pourra) (?:\S+ ){0,6}?si",
    r"pas (?:\S+ ){0,3}?(?:avant|tout de suite|dans le immediat|immediatement)",
    r"ne (?:peux|pouvons|peut) (?:\S+ )?pas (?:vous |te )?(?:dire|repondre|confirmer|garantir)",
    r"complique",
    r"maybe|perhaps|not sure|it depends",
)

_AUTO_REPLY_PATTERNS: tuple[str, ...] = (
    r"(?:message|reponse) automatique",
    r"actuellement absente?",
    r"(?:suis|serai) absente? (?:du|des|jusque|a partir|pour une|pour la|en ce moment)",
    r"absente? jusque",
    r"en conges? (?:jusque|du|a partir)",
    r"(?:je serai|serai) de retour",
    r"out of (?:the )?office",
    r"automatic reply|auto reply",
)

_POSITIVE_PATTERNS: tuple[str, ...] = (
    r"bien (?:recu|note|compris)",
    r"(?:prends|prenons) (?:bonne )?(?:note|acte|connaissance)",
    r"ce est note",
    r"merci",
    r"ok",
    r"de accord",
    r"recu|note|entendu|compris|parfait|super|top|nickel|oui",
    r"tres bien",
    r"(?:ca|cela) marche",
    r"ce est bon",
    r"(?:pas de|aucun|sans) (?:souci|soucis|probleme|problemes|pb)",
    r"(?:bonne )?reception|accuse (?:de )?reception",
    r"thanks|thank you|received|noted|great|sure|yes",
)

# Regret or unavailability: no decision, but no ack either.
_RESERVATION_PATTERNS: tuple[str, ...] = (
    r"malheureusement|desolee?|navree?|helas|regrette|regrettons",
    r"en (?:deplacement|conges?|arret|formation|vacances)|absente?|indisponibles?",
    r"pas (?:disponibles?|dispo|dispos|joignables?|le temps)",
    r"sorry|unfortunately",
)

_QUESTION_OPENERS: tuple[str, ...] = (
    r"(?:pouvez|pourriez|pourrais|pourrait|peux|peut|auriez|avez|as|aurais) (?:vous|tu|on)",
    r"(?:quel|quelle|quels|quelles|combien|comment|pourquoi|ou se|ou en) ",
    r"est ce que",
    r"qui (?:est|sont|se)",
    r"merci de (?:me|nous) (?:communiquer|transmettre|donner|preciser|envoyer|indiquer"
    r"|faire suivre|faire parvenir|confirmer)",
    r"(?:je|nous) (?:aurais|aurions) besoin",
    r"(?:can|could|would) you|what is|who is",
)

# Courtesy negations: their "ne" and "pas" never negate a cue.
_MASK_PATTERNS: tuple[str, ...] = (
    r"(?:ne )?(?:hesitez|hesite) pas",
    r"ne pas hesiter",
    r"pas de (?:souci|soucis|probleme|problemes|pb)",
    r"ne (?:vous|te) (?:inquietez|inquiete|en faites|en fais) pas",
    r"ne (?:manquerai|manquerons|manquera) pas",
    r"pas plus tard",
    r"pas mal",
    r"non seulement",
)

_NEGATORS = frozenset({"pas", "plus", "jamais", "point", "guere"})
_SCOPE_BREAKERS = frozenset(
    {_BOUNDARY, "mais", "et", "donc", "si", "que", "qui", "car", "puis", "sinon", "cependant",
     "toutefois", "pourtant"}
)
_NEGATION_REACH = 5  # words between "ne" and the cue it negates ("ne peux pas vous le prendre")


@cache
def _compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    """Patterns anchored on whole canonical words."""
    return tuple(re.compile(r"(?<!\S)(?:" + p + r")(?!\S)") for p in patterns)


@dataclass(frozen=True, slots=True)
class _Hit:
    """A cue found in the text: token range [first, last] of the body."""

    first: int
    last: int


class _View:
    """Canonical words joined by spaces, with the token index behind each character."""

    def __init__(self, tokens: Sequence[_Token], keep: Iterable[int]) -> None:
        self.indices: list[int] = list(keep)
        words = [tokens[i].word for i in self.indices]
        self.text = " ".join(words)
        self._owner: list[int] = []
        for position, word in enumerate(words):
            self._owner.extend([position] * (len(word) + 1))

    def find(self, patterns: tuple[str, ...]) -> list[_Hit]:
        """Every non-overlapping match of the patterns, as token ranges, in text order."""
        hits: list[_Hit] = []
        for pattern in _compiled(patterns):
            for match in pattern.finditer(self.text):
                if match.end() == match.start():
                    continue
                first = self.indices[self._owner[match.start()]]
                last = self.indices[self._owner[match.end() - 1]]
                hits.append(_Hit(first, last))
        hits.sort(key=lambda h: (h.first, -h.last))
        kept: list[_Hit] = []
        for hit in hits:
            if not kept or hit.first > kept[-1].last:
                kept.append(hit)
        return kept


def _negation(tokens: Sequence[_Token], hit: _Hit, masked: set[int]) -> _Hit | None:
    """The ``ne … pas`` expression around an ack cue, if the cue is negated."""

    def live(i: int, words: frozenset[str] | set[str]) -> bool:
        return 0 <= i < len(tokens) and i not in masked and tokens[i].word in words

    left = hit.first
    while left > 0 and hit.first - left < _NEGATION_REACH:
        if tokens[left - 1].word in _SCOPE_BREAKERS:
            break
        left -= 1
    right = hit.last + 1
    while right < len(tokens) and right - hit.last <= 3:
        if tokens[right].word in _SCOPE_BREAKERS:
            break
        right += 1
    ne = next((i for i in range(left, hit.last + 1) if live(i, {"ne"})), None)
    if ne is not None:
        negator = next((i for i in range(ne + 1, right) if live(i, _NEGATORS)), None)
        if negator is not None:
            return _Hit(min(ne, hit.first), max(negator, hit.last))
    # Spoken French drops the "ne": "je m'en occupe pas".
    if live(hit.last + 1, {"pas", "jamais"}):
        return _Hit(hit.first, hit.last + 1)
    # A passive that follows: "pris en charge ne sera pas possible".
    after = [i for i in range(hit.last + 1, right) if live(i, {"ne"})]
    if after and any(live(i, _NEGATORS) for i in range(after[0] + 1, right)):
        return _Hit(hit.first, right - 1)
    return None


# -- questions --------------------------------------------------------------------------


def _sentences(tokens: Sequence[_Token]) -> list[tuple[int, int]]:
    """Token ranges [first, last] of the sentences (and lines) of the body."""
    out: list[tuple[int, int]] = []
    start = 0
    for i, tok in enumerate(tokens):
        if tok.word == _BOUNDARY and tok.raw in ".!?\n…":
            if i > start or tok.raw == "?":
                out.append((start, i))
            start = i + 1
    if start < len(tokens):
        out.append((start, len(tokens) - 1))
    return out


def _questions(tokens: Sequence[_Token]) -> list[_Hit]:
    """Sentences that ask something: ending with ``?`` or opening like a question."""
    openers = _compiled(_QUESTION_OPENERS)
    hits: list[_Hit] = []
    for first, last in _sentences(tokens):
        words = [t.word for t in tokens[first : last + 1] if t.word != _BOUNDARY]
        if not words:
            continue
        opening = " ".join(words) + " "
        if tokens[last].raw == "?" or any(p.match(opening) for p in openers):
            hits.append(_Hit(first, last))
    return hits


# -- decision ---------------------------------------------------------------------------


def _quote(text: str, tokens: Sequence[_Token], hit: _Hit) -> str:
    """The words of a cue as the partner wrote them, between French quotes."""
    first, last = hit.first, hit.last
    while first < last and tokens[first].word == _BOUNDARY and tokens[first].raw != "?":
        first += 1
    while last > first and tokens[last].word == _BOUNDARY and tokens[last].raw != "?":
        last -= 1
    words = " ".join(text[tokens[first].start : tokens[last].end].split())
    if len(words) > _REASON_MAX:
        words = words[: _REASON_MAX - 1].rstrip() + "…"
    return f"« {words} »"


_SIGNATURE_LINE_WORDS = 6  # "Guillaume MOREAU", "Chargé de développement", "CMA BFC"


def _content_words(body: Sequence[_Token]) -> list[_Token]:
    """The body's words, less trailing signature-like lines (short, no final full stop).

    A signature often comes without any closing formula; it must not make a two-word
    "Bien reçu" look like a long reply.
    """
    lines: list[list[_Token]] = [[]]
    for tok in body:
        if tok.word == _BOUNDARY and tok.raw == "\n":
            if lines[-1]:
                lines.append([])
        else:
            lines[-1].append(tok)
    lines = [line for line in lines if any(t.word != _BOUNDARY for t in line)]
    while len(lines) > 1:
        last = lines[-1]
        words = [t for t in last if t.word != _BOUNDARY]
        if len(words) > _SIGNATURE_LINE_WORDS or last[-1].raw in ".!?…":
            break
        lines.pop()
    return [t for line in lines for t in line if t.word != _BOUNDARY]


def classify_reply(text: str) -> ReplyVerdict:
    """Classify a partner's reply (without quoted history) as ack, refused, unsure or question."""
    body = _body(_tokens(text), text)
    full = _View(body, range(len(body)))

    masked: set[int] = set()
    for hit in full.find(_MASK_PATTERNS):
        masked.update(range(hit.first, hit.last + 1))

    # Ack cues are looked for with "ne" left out, so that "je ne la prends pas" still shows
    # "je la prends" (then found negated).
    without_ne = _View(body, (i for i, t in enumerate(body) if t.word != "ne" or i in masked))
    acks: list[_Hit] = []
    refusals: list[_Hit] = []
    questions = _questions(body)
    # An ack cue inside a question asks rather than commits: "vous êtes sûre que c'est pour
    # nous ?".
    asked = [h for h in questions if body[h.last].raw == "?"]
    for hit in without_ne.find(_ACK_PATTERNS):
        negated = _negation(body, hit, masked)
        if negated:
            refusals.append(negated)
        elif not any(h.first <= hit.first <= h.last for h in asked):
            acks.append(hit)
    refusals.extend(full.find(_REFUSAL_PATTERNS))
    first_word = next((i for i, t in enumerate(body) if t.word != _BOUNDARY), None)
    if first_word is not None and body[first_word].word == "non":
        refusals.append(_Hit(first_word, first_word))  # "Non." / "Non, désolé."
    refusals.sort(key=lambda h: h.first)
    # A hedge inside a refusal belongs to it: "je ne vois pas en quoi nous pourrions aider".
    hedges = [
        h for h in full.find(_HEDGE_PATTERNS)
        if not any(r.first <= h.first and h.last <= r.last for r in refusals)
    ]
    reservations = full.find(_RESERVATION_PATTERNS)
    auto = full.find(_AUTO_REPLY_PATTERNS)

    def q(hit: _Hit) -> str:
        return _quote(text, body, hit)

    if auto:
        return ReplyVerdict(ReplyKind.UNSURE, f"réponse automatique : {q(auto[0])}")
    if acks and refusals:
        return ReplyVerdict(
            ReplyKind.UNSURE, f"signaux contraires : {q(acks[0])} et {q(refusals[0])}"
        )
    if refusals:
        if hedges:
            return ReplyVerdict(
                ReplyKind.UNSURE, f"refus incertain : {q(refusals[0])} et {q(hedges[0])}"
            )
        return ReplyVerdict(ReplyKind.REFUSED, q(refusals[0]))
    if acks:
        if hedges and questions:
            return ReplyVerdict(ReplyKind.QUESTION, f"question : {q(questions[0])}")
        if hedges:
            return ReplyVerdict(
                ReplyKind.UNSURE, f"engagement sous réserve : {q(acks[0])} et {q(hedges[0])}"
            )
        return ReplyVerdict(ReplyKind.ACK, q(acks[0]))
    if questions:
        return ReplyVerdict(ReplyKind.QUESTION, f"question : {q(questions[0])}")
    if hedges:
        return ReplyVerdict(ReplyKind.UNSURE, f"réponse hésitante : {q(hedges[0])}")
    if reservations:
        return ReplyVerdict(ReplyKind.UNSURE, f"réponse réservée : {q(reservations[0])}")
    words = _content_words(body)
    if not words:
        return ReplyVerdict(ReplyKind.UNSURE, "réponse vide")
    positives = full.find(_POSITIVE_PATTERNS)
    if positives and len(words) <= SHORT_REPLY_WORDS and _BUT.isdisjoint(t.word for t in words):
        return ReplyVerdict(ReplyKind.ACK, f"réponse courte positive : {q(positives[0])}")
    return ReplyVerdict(ReplyKind.UNSURE, "aucun engagement ni refus explicite")
