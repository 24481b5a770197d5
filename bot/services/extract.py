"""Pull intake fields out of a firm's free text (an e-mail body): SIRET, place, phone, name.

Each field is conservative: ``None`` unless the text says it plainly.

* **siret** — 14 digits, grouped or not (``732 829 320 00074``, ``732.829.320.00074``), with a
  valid check digit (python-stdnum); a number with a bad check digit is ignored.
* **siren** — 9 digits standing alone with a valid check digit, only when no SIRET is found
  (the first 9 digits of a SIRET with a bad check digit are not taken either).
* **phone** — the first French phone number (``03 85 81 10 92``, ``+33 6…``, ``0033…``),
  normalised to E.164 like the intake's phone step.
* **email** — the first valid address in the text (the caller tells it from the sender's).
* **postcode** — a 5-digit group (or ``71 600``) outside any SIRET, SIREN or phone number,
  of a real département, and in an address context: followed by a capitalised word or a
  commune name (``71600 Paray-le-Monial``, ``71160 digoin``), after a commune name
  (``Digoin 71160``) or an address word (``rue``, ``ZI``, ``code postal``…), in
  parentheses after a name, or alone on its line. Amounts (``25000 €``), references
  (``n° 71600``), dates and ``CS``/``BP`` box numbers are not postcodes.
* **commune_hint** — a commune name as written, checked against the communes table (exact
  name, accents, case and hyphens aside): from the postcode's line, after ``situé à``, ``sur
  la commune de``, ``nous sommes à/sur``… (there, the first words of a name also do:
  ``sur Montceau``), after a capitalised ``à``/``au`` (``au Creusot`` → ``Le Creusot``; not
  after ``parlé à``, nor a month), or before a département in parentheses
  (``Paray le Monial (71)``, kept with its ``(71)`` because :meth:`Geography.resolve` uses
  it to tell homonyms apart).
* **firm_name** — after ``notre société``, ``l'entreprise``, ``la SARL``…, next to a legal
  form (``SAS X``, ``X SARL``, legal form left out), or an upper-case signature line
  (``MECANIQUE DU CHAROLAIS``) that is neither a title, an address, a commune nor two bare
  words that could be a person's name.

The work is bounded whatever the text (an email is written by anyone): commune names are
looked up exactly (no typo repair), each distinct name once, at most ``Limits.max_lookups``
times, and at most ``Limits.max_places`` candidate places are considered; past that, no
further commune is recognised. Everything else is one pass of regular expressions.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

import phonenumbers
from stdnum.fr import siren as stdnum_siren
from stdnum.fr import siret as stdnum_siret

from bot.services.validation import Invalid, parse_email, parse_phone
from knowledge.geography import Commune, Geography, default_geography, normalize_name

__all__ = ["Extracted", "Limits", "extract_fields"]


@dataclass(frozen=True, slots=True)
class Extracted:
    """Fields found in a firm's text; ``None`` for each one not found for sure."""

    siret: str | None
    siren: str | None
    postcode: str | None
    commune_hint: str | None
    phone: str | None
    email: str | None
    firm_name: str | None


@dataclass(frozen=True, slots=True)
class Limits:
    """How much work one extraction may do, whatever the length of the text."""

    # Distinct lookups in the communes table (a name seen twice costs one).
    max_lookups: int = 200
    # Places considered: postcodes in context, names after "à", "situé à", before "(71)".
    max_places: int = 64
    # 14-digit candidates checked for a SIRET, and numbers the phone matcher tries.
    max_numbers: int = 500
    max_phone_tries: int = 200


class _Places:
    """The communes table as one extraction sees it: cached, and on a budget."""

    def __init__(self, geo: Geography, limits: Limits) -> None:
        self.geo = geo
        self.limits = limits
        self.lookups = 0
        self.places = 0
        self._named: dict[str, tuple[Commune, ...]] = {}
        self._starting: dict[tuple[str, ...], tuple[Commune, ...]] = {}

    def candidate(self) -> bool:
        """Count one more place to consider; False once the budget of places is spent."""
        if self.places >= self.limits.max_places:
            return False
        self.places += 1
        return True

    def _spend(self) -> bool:
        if self.lookups >= self.limits.max_lookups:
            return False
        self.lookups += 1
        return True

    def named(self, key: str) -> tuple[Commune, ...]:
        """Communes called exactly ``key`` (a compact normalised name)."""
        found = self._named.get(key)
        if found is None:
            # Out of budget: "not a commune", and not cached (nothing was looked up).
            if not self._spend():
                return ()
            found = self._named[key] = self.geo.named(key)
        return found

    def starting_with(self, tokens: tuple[str, ...]) -> tuple[Commune, ...]:
        """Communes whose name starts with these normalised words."""
        found = self._starting.get(tokens)
        if found is None:
            if not self._spend():
                return ()
            found = self._starting[tokens] = self.geo.starting_with(" ".join(tokens))
        return found


# -- numbers ----------------------------------------------------------------------------

_DIGITS = re.compile(r"\d+")
_GROUP_SEPARATORS = " .\u00a0\u202f"


@dataclass(frozen=True, slots=True)
class _Number:
    """Consecutive digit groups of one written number, and their span."""

    digits: str
    start: int
    end: int


def _runs(text: str) -> list[list[re.Match[str]]]:
    """Digit groups chained by a single space or dot ("732 829 320 00074", "03.85.81.10.92").

    Two groups of 4 digits or more are separate numbers ("CS 70012 71012 Mâcon").
    """
    runs: list[list[re.Match[str]]] = []
    for match in _DIGITS.finditer(text):
        if runs:
            previous = runs[-1][-1]
            gap = text[previous.end() : match.start()]
            sizes = (len(previous.group()), len(match.group()))
            # grouped digits, or a SIREN followed by its NIC ("732829320 00074")
            grouped = min(sizes) <= 3 or sizes == (9, 5)
            if len(gap) == 1 and gap in _GROUP_SEPARATORS and grouped:
                runs[-1].append(match)
                continue
        runs.append([match])
    return runs


def _windows(run: list[re.Match[str]], length: int) -> Iterator[_Number]:
    """Sub-sequences of whole groups of a run that add up to ``length`` digits."""
    for i in range(len(run)):
        total = ""
        for j in range(i, len(run)):
            total += run[j].group()
            if len(total) == length:
                yield _Number(total, run[i].start(), run[j].end())
            if len(total) >= length:
                break


def _labelled(text: str, start: int, *labels: str) -> bool:
    """Whether one of ``labels`` appears in the 25 characters before ``start``."""
    before = text[max(0, start - 25) : start].casefold()
    return any(label in before for label in labels)


def _find_siret(text: str, runs: list[list[re.Match[str]]], limit: int) -> _Number | None:
    """The first valid SIRET, one labelled "SIRET" first."""
    windows = itertools.islice((n for run in runs for n in _windows(run, 14)), limit)
    found = [n for n in windows if stdnum_siret.is_valid(n.digits)]
    found.sort(key=lambda n: (not _labelled(text, n.start, "siret"), n.start))
    return found[0] if found else None


def _find_siren(text: str, runs: list[list[re.Match[str]]]) -> _Number | None:
    """The first valid SIREN written as a number of its own (9 digits in all)."""
    for run in runs:
        digits = "".join(m.group() for m in run)
        if len(digits) == 9 and stdnum_siren.is_valid(digits):
            return _Number(digits, run[0].start(), run[-1].end())
    return None


def _find_phone(text: str, taken: list[_Number], tries: int) -> tuple[str, int, int] | None:
    """The first French phone number outside a SIRET or SIREN, in E.164."""
    for match in phonenumbers.PhoneNumberMatcher(text, "FR", max_tries=tries):
        if any(n.start < match.end and match.start < n.end for n in taken):
            continue
        # "385811092" parses as a French number; people write the leading 0 or a "+".
        if not match.raw_string.lstrip("(").startswith(("0", "+")):
            continue
        phone = parse_phone(match.raw_string)
        if not isinstance(phone, Invalid):
            return phone, match.start, match.end
    return None


# Starts only where a run of address characters starts: otherwise a long word without "@"
# is scanned again from each of its letters (quadratic).
_EMAIL = re.compile(r"(?<![\w.+'-])[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")


def _find_email(text: str) -> str | None:
    """The first syntactically valid e-mail address."""
    for match in _EMAIL.finditer(text):
        email = parse_email(match.group().strip(".'"))
        if not isinstance(email, Invalid):
            return email
    return None


# -- postcode ---------------------------------------------------------------------------

_ADDRESS_WORDS = re.compile(
    r"\b(?:rue|avenue|av|bd|boulevard|chemin|route|rte|all[ée]e|place|impasse|quai|cours"
    r"|zone|zi|za|zac|zae|parc|lieu[- ]dit|hameau|lotissement|code postal|cp|adresse"
    r"|si[èe]ge|usine|site)\b",
    re.IGNORECASE,
)
_NOT_POSTCODE_BEFORE = re.compile(
    r"(?:\bn\s?°|\bno\.?|\bnum(?:[ée]ro)?\.?|\br[ée]f(?:[ée]rence)?\.?|\bcommande|\bfacture"
    r"|\bdossier|\bdevis|\bcs|\bbp|\btsa|\bcedex|€|\$|\bde|\bsiret|\bsiren)\s*:?\s*$",
    re.IGNORECASE,
)
_UNIT_AFTER = re.compile(
    r"^\s*(?:€|\$|%|k€|m€|eur\b|euros?\b|ht\b|ttc\b|m²|m2\b|m3\b|m\b|km\b|kg\b|t\b|tonnes?\b"
    r"|l\b|litres?\b|h\b|heures?\b|salari[ée]s?\b|personnes?\b|pi[èe]ces?\b|unit[ée]s?\b"
    r"|ex\b|exemplaires?\b|clients?\b|r[ée]f[ée]rences?\b|articles?\b)",
    re.IGNORECASE,
)
_PLACE_AFTER = re.compile(r"^[ \t]+(?:[A-ZÀ-Ý]|cedex\b)")
_LINE_CONTEXT = 120


def _valid_departement(code: str) -> bool:
    """Whether a 5-digit code starts like a French postcode (01-95, 97x, 98x)."""
    dept = int(code[:2])
    return 1 <= dept <= 95 or dept in {97, 98}


def _find_postcode(
    geo: _Places, text: str, runs: list[list[re.Match[str]]], taken: list[tuple[int, int]]
) -> tuple[str, int, int] | None:
    """The first 5-digit postcode in an address context, outside longer numbers."""
    for run in runs:
        digits = "".join(m.group() for m in run)
        # "71600" or "71 600", nothing longer (a phone, a SIRET) and nothing shorter.
        if len(digits) != 5 or len(run) > 2 or (len(run) == 2 and len(run[0].group()) != 2):
            continue
        start, end = run[0].start(), run[-1].end()
        if any(s < end and start < e for s, e in taken) or not _valid_departement(digits):
            continue
        # The line around the number, at most _LINE_CONTEXT characters each side: one long
        # line full of numbers must not be read again for each of them.
        low, high = max(0, start - _LINE_CONTEXT), min(len(text), end + _LINE_CONTEXT)
        newline = text.rfind("\n", low, start)
        before = text[(newline + 1 if newline >= 0 else low) : start]
        whole_line = newline >= 0 or low == 0
        newline = text.find("\n", end, high)
        after = text[end : newline if newline >= 0 else high]
        whole_line = whole_line and (newline >= 0 or high == len(text))
        if _NOT_POSTCODE_BEFORE.search(before) or _UNIT_AFTER.match(after):
            continue
        # part of a date or a range: "01/71600", "3-71600"
        if before.endswith("/") or (before.endswith(("-", ".")) and before[:-1][-1:].isdigit()):
            continue
        if not geo.candidate():
            return None
        if _postcode_context(geo, before, after, whole_line=whole_line):
            return digits, start, end
    return None


def _postcode_context(geo: _Places, before: str, after: str, *, whole_line: bool) -> bool:
    """Whether the line around a 5-digit number reads like an address."""
    if whole_line and before.strip() in {"", "F-", "F"} and not after.strip(" \t.,;"):
        return True  # alone on its line
    if _PLACE_AFTER.match(after) or _ADDRESS_WORDS.search(before):
        return True
    if before.rstrip().endswith("(") and after.lstrip().startswith(")"):
        return True  # "Digoin (71160)"
    # a commune name right after or right before, in any case: "71160 digoin", "Digoin 71160"
    if _longest_commune(geo, [w for w, _ in _words_after(after, 0)]):
        return True
    head = before.rstrip(" \t,-")
    words_before = re.findall(_NAME_WORD, head)
    return (
        bool(words_before)
        and head.endswith(words_before[-1])
        and bool(_longest_commune(geo, words_before[-_MAX_NAME_WORDS:], suffix=True))
    )


# -- commune ----------------------------------------------------------------------------

_ARTICLES = frozenset({"le", "la", "les", "l"})
_NAME_WORD = r"[A-Za-zÀ-ÖØ-öø-ÿ][A-Za-zÀ-ÖØ-öø-ÿ'’\-]*"
_NAME_WORDS = re.compile(rf"{_NAME_WORD}(?:[ \t]+{_NAME_WORD}){{0,5}}")
_MAX_NAME_WORDS = 6
_PREFIX_MIN = 5  # "Montceau" may stand for Montceau-les-Mines
# First words of many commune names, which alone stand for none of them.
_GENERIC_FIRST_WORDS = frozenset(
    {"saint", "sainte", "saints", "champ", "champs", "mont", "bois", "pont", "port", "ville",
     "villers", "villiers", "fontaine", "fontaines", "grand", "petit", "vieux", "neuf", "notre"}
)
# Explicit location phrases: the name after them may be written in lower case.
_STRONG_TRIGGER = re.compile(
    r"(?:situ[ée]e?s?|bas[ée]e?s?|implant[ée]e?s?|install[ée]e?s?|localis[ée]e?s?"
    r"|domicili[ée]e?s?|[ée]tablie?s?|sommes|suis|est|sis|sise|trouve|trouvons)[ \t]+"
    r"(?:[àa]|(?P<au>au|aux)|sur|dans la ville de|sur la commune de)[ \t]+"
    r"|(?:sur la |dans la |de la )?(?:commune|ville) d[e'’][ \t]*",
    re.IGNORECASE,
)
# A bare "à": the name must start with a capital ("livrés à Digoin"), and a few words that
# are also commune names are left out ("parlé à Marie", "jusqu'à Mars").
_WEAK_TRIGGER = re.compile(r"(?:(?<=\s)|^)(?:[àÀ]|(?P<au>au|aux|Au|Aux))[ \t]+(?=[A-ZÀ-Ý])")
_NOT_BEFORE_A = re.compile(
    r"(?:parl[ée]e?s?|[ée]crit|dit|demand[ée]|transmis|envoy[ée]e?s?|r[ée]pondu|t[ée]l[ée]phon[ée]"
    r"|adress[ée]e?s?|signal[ée]|expliqu[ée]|propos[ée]|merci|bonjour|jusqu['’]?|gr[aâ]ce)"
    r"\s*$",
    re.IGNORECASE,
)
_MONTHS = frozenset(
    {"janvier", "fevrier", "mars", "avril", "mai", "juin", "juillet", "aout", "septembre",
     "octobre", "novembre", "decembre"}
)
_DEPARTEMENT_AFTER = re.compile(r"[ \t]*\([ \t]*(?P<dep>\d{2}|2[ABab]|97\d)[ \t]*\)")

# The words before a "(71)": found from the mark backwards. Scanning for "words then (71)"
# forwards starts a match attempt at every letter of the text (seconds on 100 KB).
_NAME_BEFORE = re.compile(
    rf"(?:{_NAME_WORD}[ \t]+){{0,{_MAX_NAME_WORDS - 1}}}{_NAME_WORD}[ \t]*\Z"
)
_DEPARTEMENT_MARK = re.compile(r"\([ \t]*(?P<dep>\d{2}|2[ABab]|97\d)[ \t]*\)")


def _commune_keys(name: str) -> set[str]:
    """Compact forms a commune name is known by (with and without its leading article)."""
    tokens = normalize_name(name).split()
    keys = {"".join(tokens)}
    if len(tokens) > 1 and tokens[0] in _ARTICLES:
        keys.add("".join(tokens[1:]))
    return keys


def _is_commune(
    geo: _Places, name: str, departement: str | None = None, *, prefix: bool = False
) -> bool:
    """Whether ``name`` is exactly the name of a commune (of ``departement`` when given).

    With ``prefix``, the first whole words of a name count too ("Montceau" for
    Montceau-les-Mines, as people say it): only after an explicit location phrase.
    """
    tokens = tuple(normalize_name(name).split())
    key = "".join(tokens)
    if len(key) < 2 or key.isdigit():
        return False
    for commune in geo.named(key):
        if departement in (None, commune.departement) and key in _commune_keys(commune.name):
            return True
    if prefix and len(key) >= _PREFIX_MIN and tokens[-1] not in _GENERIC_FIRST_WORDS:
        for commune in geo.starting_with(tokens):
            if (departement in (None, commune.departement)
                    and tuple(normalize_name(commune.name).split()[: len(tokens)]) == tokens):
                return True
    return False


def _longest_commune(
    geo: _Places,
    words: list[str],
    departement: str | None = None,
    *,
    suffix: bool = False,
    prefix: bool = False,
) -> int:
    """How many leading (or trailing) words form a commune name, longest first; 0 if none."""
    for size in range(min(len(words), _MAX_NAME_WORDS), 0, -1):
        part = words[-size:] if suffix else words[:size]
        if normalize_name(part[0]) in {"cedex", "france"}:
            continue
        if _is_commune(geo, " ".join(part), departement, prefix=prefix):
            return size
    return 0


def _words_after(text: str, position: int) -> list[tuple[str, int]]:
    """Up to six name-like words from ``position`` (with their ends), stopping at punctuation."""
    while position < len(text) and text[position] in " \t":
        position += 1
    match = _NAME_WORDS.match(text, position)
    if not match:
        return []
    words: list[tuple[str, int]] = []
    for word in re.finditer(r"\S+", match.group()):
        # "Mâcon Cedex": what follows a cedex mark is not part of the name
        if normalize_name(word.group()) == "cedex":
            break
        words.append((word.group(), match.start() + word.end()))
    return words


def _commune_after(geo: _Places, text: str, position: int, *, lower_ok: bool) -> str | None:
    """The commune name written at ``position``, with a département that follows it."""
    words = _words_after(text, position)
    capital = bool(words) and words[0][0][0].isupper()
    if not words or (not lower_ok and not capital):
        return None
    size = _longest_commune(geo, [w for w, _ in words], prefix=lower_ok and capital)
    if not size:
        return None
    name = " ".join(w for w, _ in words[:size])
    departement = _DEPARTEMENT_AFTER.match(text, words[size - 1][1])
    if departement and _is_commune(geo, name, departement.group("dep").upper()):
        return f"{name} ({departement.group('dep').upper()})"
    return name


def _find_commune(geo: _Places, text: str, postcode: tuple[str, int, int] | None) -> str | None:
    """The commune the text names, from the most to the least explicit phrasing."""
    if postcode is not None:
        name = _commune_after(geo, text, postcode[2], lower_ok=True)
        if name:
            return name
    for match in _STRONG_TRIGGER.finditer(text):
        if not geo.candidate():
            return None
        name = _commune_after(geo, text, match.end(), lower_ok=True)
        if name:
            return _with_article(name, match.group("au"))
    previous = 0
    for mark in _DEPARTEMENT_MARK.finditer(text):
        if not geo.candidate():
            return None
        low, previous = max(previous, mark.start() - _LINE_CONTEXT), mark.end()
        name = _NAME_BEFORE.search(text, low, mark.start())
        if name is None:
            continue
        words = name.group().split()
        dep = mark.group("dep").upper()
        size = _longest_commune(geo, words, dep, suffix=True)
        if size:
            return f"{' '.join(words[-size:])} ({dep})"
    for match in _WEAK_TRIGGER.finditer(text):
        if _NOT_BEFORE_A.search(text[max(0, match.start() - 30) : match.start()]):
            continue
        words = _words_after(text, match.end())
        if words and normalize_name(words[0][0]) in _MONTHS:
            continue
        if not geo.candidate():
            return None
        name = _commune_after(geo, text, match.end(), lower_ok=False)
        if name:
            return _with_article(name, match.group("au"))
    return None


def _with_article(name: str, contraction: str | None) -> str:
    """Put back the article of "au Creusot" (Le Creusot) and "aux Riceys" (Les Riceys)."""
    if not contraction:
        return name
    article = "Les" if contraction.casefold() == "aux" else "Le"
    return f"{article} {name}"


# -- firm name --------------------------------------------------------------------------

_LEGAL_FORMS = r"(?:SARL|SAS|SASU|EURL|SA|SCOP|SNC|SCI|SEM|SELARL|GIE|EARL|GAEC)"
# "&" is a connector only: were it a name token too, "X & & & …" could be split in
# polynomially many ways, and a failed match tries them all (seconds for 80 "&").
_NAME_TOKEN = r"[A-ZÀ-Ý0-9][\w&'’.\-]*"
_CONNECTOR = r"(?:et|de|du|des|la|le|les|d['’]|l['’]|en|sur|sous|aux?|&|-)"
# A name starts where a word starts, or after an elided article ("l'Atelier", "d'Usinage"):
# not again from each of its letters (quadratic on a long run of them).
_WORD_START = (r"(?:(?<![\w&'’.\-])|(?<=[^\w&'’.\-][A-Za-z]['’])|(?<=^[A-Za-z]['’]))")
_FIRM = rf"{_WORD_START}{_NAME_TOKEN}(?:(?:[ \t]+{_CONNECTOR})*[ \t]+{_NAME_TOKEN}){{0,5}}"
_QUOTED = r"[«\"“][ \t]*(?P<quoted>[^»\"”\n]{2,60}?)[ \t]*[»\"”]"
_FIRM_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(
        r"\b(?i:notre|ma|mon)[ \t]+(?i:soci[ée]t[ée]|entreprise|PME|TPE|usine|atelier|structure)"
        rf"(?:[ \t]*,)?[ \t]+(?:{_LEGAL_FORMS}[ \t]+)?(?:{_QUOTED}|(?P<name>{_FIRM}))",
    ),
    re.compile(rf"\b{_LEGAL_FORMS}[ \t]+(?:{_QUOTED}|(?P<name>{_FIRM}))"),
    re.compile(rf"(?P<name>{_FIRM})[ \t]+{_LEGAL_FORMS}\b"),
    re.compile(
        r"\b(?i:soci[ée]t[ée]|entreprise|st[ée]|ets|[ée]tablissements)[ \t]+"
        rf"(?:{_QUOTED}|(?P<name>{_FIRM}))",
    ),
)
_NOT_A_NAME = frozenset(
    {"je", "nous", "notre", "nos", "vous", "votre", "il", "elle", "on", "le", "la", "les",
     "l", "un", "une", "qui", "que", "en", "au", "aux", "de", "des", "du", "bonjour", "merci",
     "madame", "monsieur", "cordialement", "siret", "siren", "tel", "tél", "mail", "email",
     "e", "ce", "cette", "depuis", "dans", "pour", "par", "avec", "et", "a", "à", "sa", "son"}
)
_NAME_STOP = frozenset({"siret", "siren", "tel", "tél", "tél.", "tel.", "mail", "email", "fax"})
_SIGNATURE_OPENERS = re.compile(
    r"^[^\S\n]*(?:cordialement|bien cordialement|bien [àa] vous|salutations|sinc[èe]rement|--)",
    re.IGNORECASE | re.MULTILINE,
)
_SIGNATURE_LINES = 8
_SIGNATURE_LINE_MAX = 120
_NOT_FIRM_LINE = re.compile(
    r"\b\d{5}\b|\b(?:RUE|AVENUE|AV|BD|BOULEVARD|CHEMIN|ROUTE|PLACE|IMPASSE|ALL[ÉE]E|ZI|ZA|ZAC|BP|CS"
    r"|CEDEX|FRANCE|G[ÉE]RANT|G[ÉE]RANTE|DIRECTEUR|DIRECTRICE|PR[ÉE]SIDENT|PR[ÉE]SIDENTE|PDG|DG"
    r"|CEO|DRH|RESPONSABLE|ASSISTANTE?|COMPTABLE|SERVICE|T[ÉE]L|FAX|MAIL|SIRET|SIREN|TVA|RCS)\b"
)
_FIRM_LINE_MARKS = re.compile(
    rf"\b{_LEGAL_FORMS}\b|&|\d|\b(?:GROUPE|ETS|INDUSTRIES?|ATELIERS?|MECANIQUE|M[ÉE]CANIQUE"
    r"|USINAGE|FONDERIE|PLASTURGIE|TRANSPORTS?|CONSTRUCTIONS?)\b"
)


def _clean_name(raw: str) -> str | None:
    """A firm name from a pattern match, trimmed; None when it is a common word."""
    tokens = raw.replace("\u00a0", " ").split()
    kept: list[str] = []
    for token in tokens:
        if token.casefold().strip(".:") in _NAME_STOP:
            break
        kept.append(token)
    while kept and re.fullmatch(_CONNECTOR, kept[-1], re.IGNORECASE):
        kept.pop()  # "Martin et" when "et" led to nothing
    name = " ".join(kept).strip(" .,;:-'’")
    if not name or name.casefold() in _NOT_A_NAME or not any(ch.isalpha() for ch in name):
        return None
    if re.fullmatch(_LEGAL_FORMS, name):
        return None
    return name


def _signature_name(geo: _Places, text: str) -> str | None:
    """An upper-case firm name among the lines after the closing formula."""
    opener = _SIGNATURE_OPENERS.search(text)
    if opener is None:
        return None  # an upper-case line elsewhere is as likely "URGENT" as a firm
    for line in text[opener.end() :].splitlines()[:_SIGNATURE_LINES]:
        line = line.strip()
        if len(line) > _SIGNATURE_LINE_MAX:
            continue  # a firm's name is no paragraph (and a long line costs regex time)
        letters = [ch for ch in line if ch.isalpha()]
        if len(letters) < 3 or any(ch.islower() for ch in letters) or "@" in line:
            continue
        if _NOT_FIRM_LINE.search(line) and not re.search(rf"\b{_LEGAL_FORMS}\b", line):
            continue
        words = line.split()
        if len(words) > _MAX_NAME_WORDS or _is_commune(geo, line):
            continue
        # "JEAN MARTIN" could be the signer: two bare words need a firm-like mark.
        if len(words) == 2 and not _FIRM_LINE_MARKS.search(line):
            continue
        name = re.sub(rf"[ \t,]*\b{_LEGAL_FORMS}\b[ \t]*", " ", line).strip(" -,")
        cleaned = _clean_name(name) if name else None
        if cleaned:
            return cleaned
    return None


def _find_firm_name(geo: _Places, text: str) -> str | None:
    """The firm's name, from the most to the least explicit phrasing."""
    for pattern in _FIRM_PATTERNS:
        for match in pattern.finditer(text):
            groups = match.groupdict()
            raw = groups.get("quoted") or groups.get("name") or ""
            name = _clean_name(raw)
            if name:
                return name
    return _signature_name(geo, text)


# -- entry point ------------------------------------------------------------------------


def extract_fields(
    text: str, *, geography: Geography | None = None, limits: Limits = Limits()
) -> Extracted:
    """Extract SIRET/SIREN, postcode, commune, phone, e-mail and firm name from free text."""
    geo = _Places(geography if geography is not None else default_geography(), limits)
    runs = _runs(text)
    siret = _find_siret(text, runs, limits.max_numbers)
    siren = None if siret else _find_siren(text, runs)
    taken = [n for n in (siret, siren) if n is not None]
    phone = _find_phone(text, taken, limits.max_phone_tries)
    spans = [(n.start, n.end) for n in taken]
    if phone is not None:
        spans.append((phone[1], phone[2]))
    postcode = _find_postcode(geo, text, runs, spans)
    return Extracted(
        siret=siret.digits if siret else None,
        siren=siren.digits if siren else None,
        postcode=postcode[0] if postcode else None,
        commune_hint=_find_commune(geo, text, postcode),
        phone=phone[0] if phone else None,
        email=_find_email(text),
        firm_name=_find_firm_name(geo, text),
    )
