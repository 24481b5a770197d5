"""Reading the date and time an animator types in French to propose a meeting.

Everything here is pure: the current instant is always passed in (`now`), the system clock is
never read, so the same text and the same `now` always give the same answer.

Reading rules (the choices a person could argue with, made once here):

* Dates are French: `12/01` is the 12th of January, never the 1st of December. Separators
  `/`, `.`, `-` and spaces are accepted (`12/01`, `12.01`, `12-01-27`, `20 02 2027`; two
  spaced numbers only after "le" or a weekday: `le 25 03`), as is ISO `2027-01-12`.
  A one- or three-digit year (`1/2/3`) is refused as AMBIGUOUS. Two-digit years are 20xx,
  and AMBIGUOUS when that is beyond next year (`12/01/76` is neither 2076 nor sure to be 1976).
* A date without a year is its next occurrence: this year if that day (and hour) is still
  today or ahead, otherwise next year; never further, so `29/02` typed in 2026 or 2027 is
  IMPOSSIBLE rather than silently moved to 2028. Holidays (`le lundi de Pâques`, `Noël`,
  `la veille de la Toussaint`) are read the same way.
* A day of the month alone (`le 14`, `lundi 14`) is its next occurrence, this month or a
  following one that has that day (`le 31` typed in November is the 31st of December).
* A bare weekday (`jeudi 14h`) is today when today is that weekday and the hour is still
  ahead, otherwise the next such day. Without an hour (`jeudi`), today counts.
* `jeudi prochain` is the coming Thursday when that one is in next week; when the coming
  Thursday is still in this week (said on a Tuesday), people mean either that one or next
  week's: AMBIGUOUS. `prochain jeudi` is the coming Thursday. `jeudi de la semaine
  prochaine` / `jeudi la semaine prochaine` is the Thursday of next calendar week
  (Monday-based), `jeudi de cette semaine` the Thursday of this one (PAST if gone).
* `lundi en huit` is the coming Monday plus seven days (`en quinze`: plus fourteen);
  AMBIGUOUS when said on a Monday. `aujourd'hui en huit`, `demain en huit`: plus seven days.
* `dans une heure`, `dans 30 minutes` are counted from `now` (to the minute); `dans 3 jours`
  is a day (the hour is still needed). `dans 8 jours` and `dans 15 jours` are AMBIGUOUS:
  in French they often mean one and two weeks.
* A weekday next to a date must agree with it (`lundi 14 janvier 2027` is a Thursday:
  AMBIGUOUS). Two dates, two weekdays or two unlinked hours in one text are AMBIGUOUS.
* A range (`de 14h à 16h`, `14h-16h`, `entre 14h et 16h`, `de 14 à 16h`) gives the start
  and the length, as does `pendant 2h`; a range that ends before it starts, or lasts less
  than 5 minutes or more than 12 hours, is AMBIGUOUS.
* `vers 14h`, `aux alentours de 14h`, `14h environ`: the hour is taken and marked
  approximate, so that the caller says which hour it kept.
* A part of the day (`matin`, `après-midi`, `soir`) turns 1–11 into the afternoon or evening
  hour (`2h de l'après-midi` is 14:00, `ce soir 8h` is 20:00) and, alone, is not an hour:
  `lundi matin` is NO_TIME, we do not guess. Hours are read in words too (`quinze heures`,
  `midi moins le quart`); a spoken hour from one to seven (`trois heures`, `3 heures`) without
  a part of the day is AMBIGUOUS_HOUR: said aloud, it is most often the afternoon. `3h`
  written so stays 03:00 (the 24-hour clock), and is then flagged as unusual by the caller.
* Any word we do not understand makes the whole text UNRECOGNISED (with the words as
  detail) rather than being ignored: `jeudi 14h salle B` must not become Thursday at 14h.
  Only the words of a conversation around a date are dropped (`RDV`, `je propose`, `svp`).
* Wall times skipped or repeated by a daylight-saving change are refused (NONEXISTENT,
  REPEATED) so that nobody is invited to an hour that does not exist or happens twice.
"""

from __future__ import annotations

import re
import unicodedata
from calendar import monthrange
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import cache
from typing import Literal
from zoneinfo import ZoneInfo

import holidays
from dateutil.easter import easter

__all__ = [
    "MAX_AHEAD_MONTHS",
    "When",
    "WhenError",
    "WhenProblem",
    "format_day",
    "format_slot",
    "parse_duration",
    "parse_when",
    "unusual_reasons",
]

MAX_AHEAD_MONTHS = 18
_MIN_DURATION = timedelta(minutes=5)
_MAX_DURATION = timedelta(hours=12)
_DAY_START = time(7, 0)
_DAY_END = time(20, 0)
# Spoken hours from 1 to 7 ("trois heures") are the afternoon as often as the night or dawn.
_SPOKEN_AMBIGUOUS_HOURS = range(1, 8)
# "dans 8 jours", "dans 15 jours": one week and two weeks as often as the literal count.
_IDIOMATIC_DAYS = frozenset({8, 15})
_MAX_TEXT = 300  # longer answers are not a date: refused before any pattern runs


class WhenError(StrEnum):
    """Why a text could not be turned into one instant."""

    UNRECOGNISED = "unrecognised"
    NO_TIME = "no_time"
    NO_DATE = "no_date"
    IMPOSSIBLE = "impossible"
    PAST = "past"
    AMBIGUOUS = "ambiguous"
    AMBIGUOUS_HOUR = "ambiguous_hour"
    NONEXISTENT = "nonexistent"
    REPEATED = "repeated"
    TOO_FAR = "too_far"


@dataclass(frozen=True, slots=True)
class When:
    """One instant, aware, in the requested time zone.

    ``minutes``: the length the text gave ("de 14h à 16h", "pendant 2h"), else None.
    ``approximate``: the text said "vers", "aux alentours de"...: the hour was taken as is.
    """

    start: datetime
    minutes: int | None = None
    approximate: bool = False


@dataclass(frozen=True, slots=True)
class WhenProblem:
    """A refusal, with what was understood (a date, an hour, unknown words) for the message."""

    error: WhenError
    detail: str = ""


# --- French words ----------------------------------------------------------------------------

_WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
_MONTH_NAMES = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)  # fmt: skip
# Accent-free spellings and the abbreviations people actually type; the trailing dot of
# "janv." is taken by the pattern, not listed here.
_MONTHS = {
    "janvier": 1, "janv": 1, "jan": 1,
    "fevrier": 2, "fevr": 2, "fev": 2,
    "mars": 3,
    "avril": 4, "avr": 4,
    "mai": 5,
    "juin": 6,
    "juillet": 7, "juil": 7,
    "aout": 8,
    "septembre": 9, "sept": 9, "sep": 9,
    "octobre": 10, "oct": 10,
    "novembre": 11, "nov": 11,
    "decembre": 12, "dec": 12,
}  # fmt: skip
# Longest first, so that "janvier" is not read as "jan" followed by garbage.
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
_WEEKDAY_RE = "|".join(_WEEKDAYS)
_DAY_RE = r"\d{1,2}|1er|premier"
_WEEKDAY_ABBREVIATIONS = {
    "lun": "lundi", "mar": "mardi", "mer": "mercredi", "jeu": "jeudi", "ven": "vendredi",
    "sam": "samedi", "dim": "dimanche",
}  # fmt: skip
_WEEKDAY_ABBREVIATION = re.compile(
    r"\b(?P<w>" + "|".join(_WEEKDAY_ABBREVIATIONS) + r")\b\.?(?=\s|$)"
)

# Words that carry no information once the date and hour are found ("le", "à"...).
# Elided forms ("l'", "d'") arrive here as "l" and "d".
_FILLERS = frozenset(
    {"le", "la", "l", "a", "au", "pour", "ce", "cet", "cette", "de", "du", "d", "des", "et",
     "prochain", "prochaine", "pile", "precise", "precises", "precisement"}
)  # fmt: skip
# The conversation around a date ("RDV", "je propose", "svp"): dropped, nothing else is.
_CHATTER = re.compile(
    r"\b(?:rdv|rendez[\s-]?vous|reunion|visio(?:conference)?|je\s+(?:vous\s+)?propose"
    r"|on\s+dit|disons|ok\s+pour|d\s*'?\s*accord\s+pour|svp|stp|s\s*'?\s*il\s+vous\s+pla[iî]t"
    r"|merci)\b"
)
# "vers 14h", "aux alentours de 10h", "14h environ": the hour is kept and marked approximate.
_APPROXIMATE = re.compile(
    r"\b(?:vers(?:\s+les)?|aux\s+alentours\s+de|autour\s+de|aux\s+environs\s+de|environ"
    r"|a\s+peu\s+pres(?:\s+vers)?|approximativement)\b"
)

_HOUR_AFTER = re.compile(r"\s*(?:\d|midi\b|minuit\b)")
_HOUR_BEFORE = re.compile(r"(?:\d\s*(?:h|heures?)?|\d{2}|\bmidi|\bminuit)\s*$")

# Numbers said in words, 1 to 59, as digits; hyphens between their parts are spaces by now.
_UNITS = {
    "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "six": 6, "sept": 7,
    "huit": 8, "neuf": 9,
}  # fmt: skip
_TEENS = {
    "dix": 10, "onze": 11, "douze": 12, "treize": 13, "quatorze": 14, "quinze": 15,
    "seize": 16, "dix sept": 17, "dix huit": 18, "dix neuf": 19,
}  # fmt: skip
_TENS = {"vingt": 20, "trente": 30, "quarante": 40, "cinquante": 50}


def _number_words() -> dict[str, int]:
    words = {**_UNITS, **_TEENS, **_TENS}
    for tens, value in _TENS.items():
        words[f"{tens} et un"] = words[f"{tens} et une"] = value + 1
        for unit, extra in _UNITS.items():
            if extra > 1:
                words[f"{tens} {unit}"] = value + extra
    return words


_NUMBER_WORDS_TABLE = _number_words()
_NUMBER_WORD = re.compile(
    r"\b(?P<n>" + "|".join(sorted(_NUMBER_WORDS_TABLE, key=len, reverse=True)) + r")\b"
)
# A number word is a quantity only next to what it counts or after what introduces one:
# "sept" stays the month in "le 3 sept à 9h", "huit" stays a word elsewhere.
_NUMBER_BEFORE = re.compile(r"(?:\b(?:dans|moins|pendant|de|entre|heures?|a|midi|minuit)\s+)$")
_NUMBER_AFTER = re.compile(
    r"^\s*(?:heures?\b|h\b|minutes?\b|min\b|mn\b|jours?\b|semaines?\b|mois\b"
    r"|et\s+(?:demie?|quart)\s+(?:heures?\b|h\b)|a\s+\d{1,2}\s*(?:heures?\b|h\b)"
    r"|(?:" + _MONTH_RE + r")\b)"
)
_FRACTIONS = (
    (re.compile(r"\b(?:une?\s+)?demi\s+heure\b"), "30 min"),
    (re.compile(r"\btrois\s+quarts?\s+d\s*'?\s*heure\b"), "45 min"),
    (re.compile(r"\b(?:un\s+)?quart\s+d\s*'?\s*heure\b"), "15 min"),
)

DayPart = Literal["matin", "apres-midi", "soir"]

# --- holidays and named days ---------------------------------------------------------------


def _fixed(month: int, day: int) -> Callable[[int], date]:
    return lambda year: date(year, month, day)


def _from_easter(days: int) -> Callable[[int], date]:
    return lambda year: easter(year) + timedelta(days=days)


# Each name with the optional words before it that belong to it ("le jeudi de l'Ascension").
_L = r"l\s*'?\s*"
_NAMED_DAYS: tuple[tuple[str, Callable[[int], date]], ...] = (
    (r"lundi\s+de\s+paques|lendemain\s+de\s+paques", _from_easter(1)),
    (r"mardi\s+gras", _from_easter(-47)),
    (r"vendredi\s+saint", _from_easter(-2)),
    (r"(?:(?:jour|dimanche)\s+de\s+)?paques", _from_easter(0)),
    (r"(?:(?:jour|jeudi)\s+de\s+" + _L + r")?ascension", _from_easter(39)),
    (r"lundi\s+de\s+(?:la\s+)?pentecote", _from_easter(50)),
    (r"(?:(?:jour|dimanche)\s+de\s+(?:la\s+)?)?pentecote", _from_easter(49)),
    (r"(?:veille|reveillon)\s+de\s+noel", _fixed(12, 24)),
    (r"lendemain\s+de\s+noel", _fixed(12, 26)),
    (r"(?:jour\s+de\s+)?noel", _fixed(12, 25)),
    (
        r"(?:reveillon\s+(?:de\s+la\s+)?)?saint[\s-]+sylvestre|reveillon\s+du\s+nouvel\s+an",
        _fixed(12, 31),
    ),
    (r"jour\s+de\s+" + _L + r"an|nouvel\s+an|premier\s+de\s+" + _L + r"an", _fixed(1, 1)),
    (r"veille\s+de\s+la\s+toussaint", _fixed(10, 31)),
    (r"(?:jour\s+de\s+la\s+)?toussaint", _fixed(11, 1)),
    (r"(?:jour\s+de\s+" + _L + r")?armistice", _fixed(11, 11)),
    (r"fete\s+nationale", _fixed(7, 14)),
    (r"(?:jour\s+de\s+" + _L + r")?assomption", _fixed(8, 15)),
    (r"fete\s+du\s+travail", _fixed(5, 1)),
    (r"fete\s+de\s+la\s+victoire", _fixed(5, 8)),
)
_NAMED_DAY = re.compile(
    r"\b(?:(?P<shift>veille|lendemain)\s+(?:de\s+la\s+|de\s+"
    + _L
    + r"|du\s+|de\s+))?(?P<name>"
    + "|".join(f"(?:{pattern})" for pattern, _ in _NAMED_DAYS)
    + r")\b(?:\s+(?P<y>20\d{2})\b)?"
)
_NAMED_DAY_PARTS = tuple(re.compile(rf"(?:{pattern})$") for pattern, _ in _NAMED_DAYS)

# --- patterns, applied in this order; each match is blanked so later ones cannot reuse it ----

# "dans une heure", "dans 2 heures 30", "dans 45 min": an instant counted from now.
_IN_MINUTES = re.compile(
    r"\bdans\s+(?P<n>\d{1,3})\s*(?P<u>heures?|h|minutes?|min|mn)(?![a-z])"
    r"(?:\s*(?P<m>\d{1,2})(?!\s*(?:heures?|h|jours?)\b)(?:\s*(?:minutes?|min|mn)\b)?"
    r"|\s+et\s+(?P<frac>demie?|quart)\b)?"
)
# "dans 3 jours", "dans 2 semaines", "dans un mois": a day counted from today.
_IN_DAYS = re.compile(r"\bdans\s+(?P<n>\d{1,3})\s*(?P<u>jours?|semaines?|mois)\b")
# "pendant 2h", "pendant une heure et demie": the length of the meeting.
_FOR = re.compile(
    r"\b(?:pendant|duree\s*:?)\s+(?P<d>\d{1,2}(?:[.,]\d)?\s*(?:heures?|h)"
    r"(?:\s*\d{1,2}(?:\s*(?:minutes?|min|mn))?|\s+et\s+(?:demie?|quart))?"
    r"|\d{1,3}\s*(?:minutes?|min|mn))(?![a-z\d])"
)
# "ce soir", "cet après-midi", "ce midi": today, plus a part of the day (or noon).
_THIS_PART = re.compile(
    r"\b(?:ce|cet|cette)\s+(?P<p>soir(?:ee)?|matin(?:ee)?|apres[\s-]?midi|aprem|midi)\b"
)
_DAY_PART = re.compile(
    r"\b(?P<p>apres[\s-]?midi|aprem|apm|matin(?:ee)?|soir(?:ee)?|(?<=\bdu\s)mat)\b"
)

# One clock time: "14h", "14 h 30", "8 heures 30", "9h et quart", "9h moins le quart",
# "14:30", "midi", "midi moins dix". Minutes are not taken when they are in fact the start of
# a date ("14h 15 mars", "9h 12/01") or of another hour ("14h 15h").
_CLOCK_H = (
    r"(?<![\d:])(?P<h>\d{1,2})\s*(?P<unit>heures?|h)(?![a-z])"
    r"(?:\s*(?P<m>\d{1,2})"
    r"(?!\d|[/.]\d|-\d{1,2}[/.-]\d|\s+\d{1,2}\s+\d{2}|\s*(?:er\b|" + _MONTH_RE + r")"
    r"|\s*(?:heures?|h)(?![a-z]))(?:\s*(?:minutes?|min|mn)\b)?"
    r"|\s+et\s+(?P<frac>demie?|quart)\b"
    r"|\s+moins\s+(?:(?:le\s+)?(?P<lessq>quart)|(?P<less>\d{1,2})(?:\s*(?:minutes?|min|mn))?)\b)?"
)
_CLOCK_COLON = r"(?<![\d:])(?P<ch>\d{1,2}):(?P<cm>\d{2})(?![\d:])"
_CLOCK_NOON = (
    r"\b(?P<w>midi|minuit)\b(?:\s+et\s+(?P<wfrac>demie?|quart)\b"
    r"|\s+(?P<wm>[1-5]\d)(?![\d/.:-]|\s*(?:h|heures?|er|" + _MONTH_RE + r")\b)"
    r"|\s+moins\s+(?:(?:le\s+)?(?P<wlessq>quart)|(?P<wless>\d{1,2}))\b)?"
)
_CLOCK = re.compile(f"{_CLOCK_H}|{_CLOCK_COLON}|{_CLOCK_NOON}")


def _clock_pattern(tag: str) -> str:
    """The clock grammar with its groups renamed, to use it twice in one pattern."""
    return re.sub(r"\(\?P<(\w+)>", lambda m: f"(?P<{tag}_{m[1]}>", _CLOCK.pattern)


# "de 14h à 16h", "14h-16h", "entre 14h et 16h", "de 14 à 16h" (the first hour bare).
_RANGE = re.compile(
    r"(?:\b(?P<pre>de|entre)\s+)?"
    r"(?:(?:(?<=\bde\s)|(?<=\bentre\s))(?P<bare>\d{1,2})|" + _clock_pattern("a") + r")"
    r"\s*(?P<sep>-|–|—|/|\ba\b|\bet\b|\bjusqu\s*'?\s*a\b)\s*"
    r"(?:" + _clock_pattern("b") + r")"
)
_RELATIVE = re.compile(
    r"\b(?P<r>apres[\s-]?demain|demain|aujourd\s*'?\s*hui)\b(?:\s+en\s+(?P<en>huit|quinze|8|15)\b)?"
)
_ISO_DATE = re.compile(r"\b(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b")
_NUMERIC_DATE = re.compile(
    r"(?<![\d/.:-])(?P<d>\d{1,2})(?P<sep>[/.-])(?P<m>\d{1,2})(?:(?P=sep)(?P<y>\d+))?(?![/.-]?\d)"
)
# "20 02 2027", "25 03 27": three numbers; two ("le 25 03") only after "le" or a weekday.
_SPACED_DATE = re.compile(
    r"(?<![\d:])(?P<d>\d{1,2})\s+(?P<m>\d{1,2})\s+(?P<y>\d{4}|\d{2})(?![\d:]|\s*(?:h|heures?)\b)"
)
_SPACED_DAY_MONTH = re.compile(
    r"\b(?:le|" + _WEEKDAY_RE + r")\s+(?P<dm>(?P<d>\d{1,2})\s+(?P<m>\d{1,2}))"
    r"(?![\d:]|\s*(?:h|heures?|min|mn|minutes?)\b)"
)
_TEXT_DATE = re.compile(
    r"\b(?P<d>" + _DAY_RE + r")\s*(?P<m>" + _MONTH_RE + r")\b\.?(?:\s*(?P<y>\d{4}|\d{2})\b)?"
)
# A day number alone is a date only right after "le" or a weekday ("le 14", "lundi 14");
# elsewhere a bare number means nothing we can trust ("jeudi à 14").
_DAY_ONLY = re.compile(
    r"\b(?:le|" + _WEEKDAY_RE + r")(?:\s+prochaine?)?\s+(?P<d>" + _DAY_RE + r")\b"
)
_NEXT_WEEK = r"(?:de\s+)?la\s+semaine\s+prochaine|semaine\s+pro(?:chaine)?"
_THIS_WEEK = r"(?:de\s+)?cette\s+semaine"
_WEEKDAY = re.compile(
    r"\b(?:(?P<pre>prochain)\s+|(?P<nwpre>(?:la\s+)?semaine\s+pro(?:chaine)?)\s+(?:le\s+)?"
    r"|(?P<twpre>cette\s+semaine)\s+)?(?P<wd>" + _WEEKDAY_RE + r")"
    r"(?:\s+(?P<nw>" + _NEXT_WEEK + r")|\s+(?P<tw>" + _THIS_WEEK + r")"
    r"|\s+en\s+(?P<en>huit|quinze|8|15)|\s+(?P<post>prochaine?))?\b"
)
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'", "ʼ": "'"})


# --- what the text says, before it is checked against the calendar ---------------------------


@dataclass(frozen=True, slots=True)
class _Clock:
    hour: int
    minute: int
    spoken: bool = False  # "3 heures", "trois heures": said, not written on a 24-hour clock


@dataclass(frozen=True, slots=True)
class _Explicit:
    """A day and month, with the year when given (raw, checked later)."""

    day: int
    month: int
    year: str | None
    source: str


@dataclass(frozen=True, slots=True)
class _DayOfMonth:
    day: int


@dataclass(frozen=True, slots=True)
class _Relative:
    days: int


@dataclass(frozen=True, slots=True)
class _InMonths:
    months: int


@dataclass(frozen=True, slots=True)
class _Named:
    """A holiday or named day ("lundi de Pâques"), shifted by "veille"/"lendemain"."""

    when: Callable[[int], date]
    shift: int
    year: int | None  # "Noël 2027"; else the next one
    source: str


@dataclass(frozen=True, slots=True)
class _Weekday:
    weekday: int
    mode: Literal["bare", "prochain", "next_prochain", "next_week", "this_week", "later"]
    weeks: int = 0  # for "later": "en huit" is one week after the coming one


_Anchor = _Explicit | _DayOfMonth | _Relative | _InMonths | _Named


@dataclass(slots=True)
class _Found:
    clocks: list[_Clock]
    parts: list[DayPart]
    anchors: list[_Anchor]
    weekdays: list[_Weekday]
    leftover: list[str]
    offsets: list[int]  # minutes from now ("dans une heure")
    lengths: list[int]  # minutes ("pendant 2h")
    ranges: list[tuple[_Clock, _Clock]]
    approximate: bool = False
    ambiguous: str | None = None


class _Scanner:
    """The normalised text, from which each recognised piece is blanked out once read."""

    def __init__(self, text: str) -> None:
        self.text = text

    def take(
        self,
        pattern: re.Pattern[str],
        group: int | str = 0,
        accept: Callable[[re.Match[str]], bool] | None = None,
    ) -> list[re.Match[str]]:
        matches = [m for m in pattern.finditer(self.text) if accept is None or accept(m)]
        chars = list(self.text)
        for match in matches:
            begin, end = match.span(group)
            # Spaces keep the offsets and stop neighbours from gluing into a new token.
            chars[begin:end] = " " * (end - begin)
        self.text = "".join(chars)
        return matches


def _normalise(text: str) -> str:
    """Lower case, no accents, one space between words, straight apostrophes."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.lower().split())


def _spell_out(text: str) -> str:
    """Number words as digits where they count something ("quinze heures" → "15 heures")."""
    text = _WEEKDAY_ABBREVIATION.sub(lambda m: _WEEKDAY_ABBREVIATIONS[m["w"]], text)
    # Hyphens inside words ("dix-sept", "demi-heure", "quarante-cinq") are spaces for numbers.
    text = re.sub(r"(?<=[a-z])-(?=[a-z])", " ", text)
    for pattern, replacement in _FRACTIONS:
        text = pattern.sub(replacement, text)

    def digits(match: re.Match[str]) -> str:
        before, after = text[: match.start()], text[match.end() :]
        if _NUMBER_AFTER.match(after) or _NUMBER_BEFORE.search(before):
            # "le 3 sept à 9h": after a day number, "sept" is September.
            if match["n"] == "sept" and re.search(r"(?:\d|1er|premier)\s+$", before):
                return match[0]
            return str(_NUMBER_WORDS_TABLE[match["n"]])
        return match[0]

    return _NUMBER_WORD.sub(digits, text)


def _next_to_an_hour(match: re.Match[str]) -> bool:
    """Whether "vers", "environ"... touches an hour: "vers le 15" is not an hour to round."""
    after, before = match.string[match.end() :], match.string[: match.start()]
    return bool(_HOUR_AFTER.match(after) or _HOUR_BEFORE.search(before))


def _day_number(raw: str) -> int:
    return 1 if raw in ("1er", "premier") else int(raw)


def _part_of(raw: str) -> DayPart:
    if raw.startswith("mat"):
        return "matin"
    if raw.startswith("soir"):
        return "soir"
    return "apres-midi"


def _fraction(raw: str | None) -> int:
    return {"demi": 30, "demie": 30, "quart": 15}.get(raw or "", 0)


def _clock_of(match: re.Match[str], prefix: str = "") -> _Clock:
    """The clock time read by the `_CLOCK` grammar (groups named with `prefix`)."""

    def group(name: str) -> str | None:
        return match[prefix + name]

    if group("h") is not None:
        hour, minute = int(group("h") or 0), 0
        if group("m"):
            minute = int(group("m") or 0)
        elif group("frac"):
            minute = _fraction(group("frac"))
        spoken = (group("unit") or "").startswith("heure")
        less = 15 if group("lessq") else int(group("less") or 0)
    elif group("ch") is not None:
        return _Clock(int(group("ch") or 0), int(group("cm") or 0))
    else:
        hour, spoken = (12 if group("w") == "midi" else 0), False
        minute = int(group("wm") or 0) or _fraction(group("wfrac"))
        less = 15 if group("wlessq") else int(group("wless") or 0)
    if less:
        # "9h moins le quart" is 8:45; "moins 75" is no hour at all (checked later).
        return _Clock(hour - 1 if less <= 60 else 99, 60 - less if less <= 60 else 0, spoken)
    return _Clock(hour, minute, spoken)


def _scan(text: str) -> _Found:
    """Split the text into hours, parts of the day, dates, weekdays and unknown words."""
    scanner = _Scanner(_spell_out(text))
    found = _Found(
        clocks=[], parts=[], anchors=[], weekdays=[], leftover=[], offsets=[], lengths=[], ranges=[]
    )
    scanner.take(_CHATTER)
    found.approximate = bool(scanner.take(_APPROXIMATE, accept=_next_to_an_hour))
    for match in scanner.take(_NAMED_DAY):
        shift = {"veille": -1, "lendemain": 1}.get(match["shift"] or "", 0)
        index = next(i for i, p in enumerate(_NAMED_DAY_PARTS) if p.match(match["name"]))
        year = int(match["y"]) if match["y"] else None
        found.anchors.append(_Named(_NAMED_DAYS[index][1], shift, year, match[0]))
    for match in scanner.take(_IN_MINUTES):
        unit = 60 if match["u"].startswith("h") else 1
        extra = int(match["m"]) if match["m"] else _fraction(match["frac"])
        if unit == 1 and extra:
            found.ambiguous = match[0]  # "dans 30 min 15" means nothing sure
        found.offsets.append(int(match["n"]) * unit + extra)
    for match in scanner.take(_IN_DAYS):
        count, unit = int(match["n"]), match["u"]
        if unit.startswith("jour") and count in _IDIOMATIC_DAYS:
            found.ambiguous = match[0]
        elif unit == "mois":
            found.anchors.append(_InMonths(count))
        else:
            found.anchors.append(_Relative(count * (7 if unit.startswith("semaine") else 1)))
    for match in scanner.take(_FOR):
        length = parse_duration(match["d"])
        if length is None:
            found.ambiguous = match[0]
        else:
            found.lengths.append(int(length.total_seconds() // 60))
    for match in scanner.take(_THIS_PART):
        found.anchors.append(_Relative(0))
        if match["p"] == "midi":
            found.clocks.append(_Clock(12, 0))
        else:
            found.parts.append(_part_of(match["p"]))
    found.parts += [_part_of(m["p"]) for m in scanner.take(_DAY_PART)]
    for match in scanner.take(_RANGE):
        second = _clock_of(match, "b_")
        if match["bare"] is not None:
            # "de 14 à 16h": the bare first number (only after "de" or "entre") is an hour.
            first = _Clock(int(match["bare"]), 0, second.spoken)
        else:
            first = _clock_of(match, "a_")
        if (match["sep"] == "et") != (match["pre"] == "entre"):
            found.ambiguous = match[0]  # "14h et 16h" is two hours, "entre 14h - 16h" odd
            continue
        found.ranges.append((first, second))
    found.clocks += [_clock_of(m) for m in scanner.take(_CLOCK)]
    for match in scanner.take(_RELATIVE):
        word = match["r"]
        days = 2 if word.startswith("apres") else 1 if word == "demain" else 0
        later = {"huit": 7, "8": 7, "quinze": 14, "15": 14}.get(match["en"] or "", 0)
        found.anchors.append(_Relative(days + later))
    for match in scanner.take(_ISO_DATE):
        found.anchors.append(_Explicit(int(match["d"]), int(match["m"]), match["y"], match[0]))
    for pattern in (_NUMERIC_DATE, _SPACED_DATE, _TEXT_DATE):
        for match in scanner.take(pattern):
            month = _MONTHS.get(match["m"]) or int(match["m"])
            found.anchors.append(_Explicit(_day_number(match["d"]), month, match["y"], match[0]))
    for match in scanner.take(_SPACED_DAY_MONTH, "dm"):
        found.anchors.append(_Explicit(int(match["d"]), int(match["m"]), None, match["dm"]))
    found.anchors += [_DayOfMonth(_day_number(m["d"])) for m in scanner.take(_DAY_ONLY, "d")]
    for match in scanner.take(_WEEKDAY):
        found.weekdays.append(_weekday_of(match))
    found.leftover = [w for w in re.findall(r"[a-z0-9]+", scanner.text) if w not in _FILLERS]
    return found


def _weekday_of(match: re.Match[str]) -> _Weekday:
    weekday = _WEEKDAYS.index(match["wd"])
    if match["nw"] or match["nwpre"]:
        return _Weekday(weekday, "next_week")
    if match["tw"] or match["twpre"]:
        return _Weekday(weekday, "this_week")
    if match["en"]:
        return _Weekday(weekday, "later", 1 if match["en"] in ("huit", "8") else 2)
    if match["post"]:
        return _Weekday(weekday, "next_prochain")
    if match["pre"]:
        return _Weekday(weekday, "prochain")
    return _Weekday(weekday, "bare")


# --- from what was said to a calendar day ----------------------------------------------------


def _is_ahead(day: date, clock: _Clock | None, now_local: datetime) -> bool:
    """Whether that day (at that hour, when known) is now or later, on the local wall clock."""
    if clock is None:
        return day >= now_local.date()
    return datetime.combine(day, time(clock.hour, clock.minute)) >= now_local.replace(tzinfo=None)


def _valid_day(year: int, month: int, day: int) -> bool:
    return 1 <= month <= 12 and 1 <= day <= monthrange(year, month)[1]


def _resolve_anchor(
    anchor: _Anchor, clock: _Clock | None, now_local: datetime
) -> date | WhenProblem:
    today = now_local.date()
    if isinstance(anchor, _Relative):
        return today + timedelta(days=anchor.days)
    if isinstance(anchor, _InMonths):
        index = today.month - 1 + anchor.months
        year, month = today.year + index // 12, index % 12 + 1
        if not _valid_day(year, month, today.day):
            # "dans un mois" on the 31st: the 30th or the 1st? Asked.
            return WhenProblem(WhenError.AMBIGUOUS, f"dans {anchor.months} mois")
        return date(year, month, today.day)
    if isinstance(anchor, _Named):
        if anchor.year is not None:
            return anchor.when(anchor.year) + timedelta(days=anchor.shift)
        for year in (today.year, today.year + 1):
            candidate = anchor.when(year) + timedelta(days=anchor.shift)
            if _is_ahead(candidate, clock, now_local):
                return candidate
        return anchor.when(today.year + 2) + timedelta(days=anchor.shift)
    if isinstance(anchor, _DayOfMonth):
        if not 1 <= anchor.day <= 31:
            return WhenProblem(WhenError.IMPOSSIBLE, f"le {anchor.day}")
        year, month = today.year, today.month
        # Some month within the next three has any day from 1 to 31; a year is ample.
        for _ in range(13):
            if _valid_day(year, month, anchor.day):
                candidate = date(year, month, anchor.day)
                if _is_ahead(candidate, clock, now_local):
                    return candidate
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return WhenProblem(WhenError.IMPOSSIBLE, f"le {anchor.day}")
    # Check day and month before guessing a year, so "31/02" is IMPOSSIBLE whatever the year.
    if not (1 <= anchor.month <= 12 and 1 <= anchor.day <= 31):
        return WhenProblem(WhenError.IMPOSSIBLE, anchor.source)
    if anchor.year is None:
        # The next occurrence: this year unless that day (and hour) already passed.
        passed = (anchor.month, anchor.day) < (today.month, today.day)
        if (anchor.month, anchor.day) == (today.month, today.day):
            passed = not _is_ahead(today, clock, now_local)
        year = today.year + 1 if passed else today.year
    elif len(anchor.year) == 4:
        year = int(anchor.year)
    elif len(anchor.year) == 2:
        year = 2000 + int(anchor.year)
        # "12/01/76": not 2076, and perhaps not 1976 either; past years stay 20xx (PAST).
        if year > today.year + 1:
            return WhenProblem(WhenError.AMBIGUOUS, anchor.source)
    else:
        return WhenProblem(WhenError.AMBIGUOUS, anchor.source)
    if not _valid_day(year, anchor.month, anchor.day):
        return WhenProblem(WhenError.IMPOSSIBLE, f"{anchor.day:02d}/{anchor.month:02d}/{year}")
    return date(year, anchor.month, anchor.day)


def _resolve_weekday(
    weekday: _Weekday, clock: _Clock | None, now_local: datetime
) -> date | WhenProblem:
    today = now_local.date()
    monday = today - timedelta(days=today.weekday())
    if weekday.mode == "next_week":
        return monday + timedelta(days=7 + weekday.weekday)
    if weekday.mode == "this_week":
        return monday + timedelta(days=weekday.weekday)
    delta = (weekday.weekday - today.weekday()) % 7
    if weekday.mode == "later":
        if delta == 0:
            # "lundi en huit" said on a Monday: in one week or in two?
            return WhenProblem(WhenError.AMBIGUOUS, _WEEKDAYS[weekday.weekday] + " en huit")
        return today + timedelta(days=delta + 7 * weekday.weeks)
    if delta == 0 and (weekday.mode != "bare" or not _is_ahead(today, clock, now_local)):
        delta = 7
    day = today + timedelta(days=delta)
    if weekday.mode == "next_prochain" and day < monday + timedelta(days=7):
        # "jeudi prochain" said on a Tuesday: this week's Thursday, or next week's?
        other = day + timedelta(days=7)
        return WhenProblem(WhenError.AMBIGUOUS, f"{_format_date(day)} ou {_format_date(other)}")
    return day


def _agrees(weekday: _Weekday, day: date, clock: _Clock | None, now_local: datetime) -> bool:
    """Whether a weekday said next to a date names that date ("mardi 16 mars")."""
    if weekday.mode in ("bare", "prochain", "next_prochain"):
        return weekday.weekday == day.weekday()
    # "jeudi de la semaine prochaine 18 mars": the week must agree too.
    return _resolve_weekday(weekday, clock, now_local) == day


def _apply_part(clock: _Clock, part: DayPart | None) -> _Clock | None:
    """The hour once "du matin" / "de l'après-midi" / "du soir" is applied; None if they clash."""
    if part is None:
        return clock
    if part == "matin":
        return clock if clock.hour < 12 else None
    if 1 <= clock.hour <= 11:
        return _Clock(clock.hour + 12, clock.minute)
    return clock if clock.hour >= 12 else None


def _check_clock(typed: _Clock, part: DayPart | None) -> _Clock | WhenProblem:
    """A typed hour checked and placed in the day, or why it cannot be."""
    if not (0 <= typed.hour <= 23 and 0 <= typed.minute <= 59):
        return WhenProblem(WhenError.IMPOSSIBLE, _hm(typed.hour, typed.minute))
    if part is None and typed.spoken and typed.hour in _SPOKEN_AMBIGUOUS_HOURS:
        return WhenProblem(WhenError.AMBIGUOUS_HOUR, _hm(typed.hour, typed.minute))
    clock = _apply_part(typed, part)
    if clock is None:
        return WhenProblem(WhenError.AMBIGUOUS, f"{_hm(typed.hour, typed.minute)} {part}")
    return clock


def _localise(wall: datetime, tz: ZoneInfo) -> datetime | WhenError:
    """The aware instant for a local wall time, or why there is not exactly one."""
    first = wall.replace(tzinfo=tz, fold=0)
    # A skipped wall time does not survive the round trip through UTC: it comes back shifted.
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != wall:
        return WhenError.NONEXISTENT
    # A repeated wall time has two different offsets depending on `fold`.
    if wall.replace(tzinfo=tz, fold=1).utcoffset() != first.utcoffset():
        return WhenError.REPEATED
    return first


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, monthrange(year, month)[1]))


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime")


def _clock_and_length(found: _Found) -> tuple[_Clock | None, int | None] | WhenProblem:
    """The start hour and the length in minutes the text gives, checked; or the refusal."""
    part = found.parts[0] if found.parts else None
    if found.ranges:
        first, second = found.ranges[0]
        begin, end = _check_clock(first, part), _check_clock(second, part)
        if isinstance(begin, WhenProblem):
            return begin
        if isinstance(end, WhenProblem):
            return end
        length = (end.hour - begin.hour) * 60 + end.minute - begin.minute
        if not _MIN_DURATION <= timedelta(minutes=length) <= _MAX_DURATION:
            detail = f"{_hm(begin.hour, begin.minute)}–{_hm(end.hour, end.minute)}"
            return WhenProblem(WhenError.AMBIGUOUS, detail)
        return begin, length
    length = found.lengths[0] if found.lengths else None
    if not found.clocks:
        return None, length
    clock = _check_clock(found.clocks[0], part)
    return clock if isinstance(clock, WhenProblem) else (clock, length)


def parse_when(text: str, *, now: datetime, tz: ZoneInfo) -> When | WhenProblem:
    """Read one meeting start from French text, relative to `now`, as an instant in `tz`."""
    _require_aware(now, "now")
    now_local = now.astimezone(tz)
    if len(text) > _MAX_TEXT:
        return WhenProblem(WhenError.UNRECOGNISED)
    # Punctuation between the pieces ("mardi, 10h !") says nothing; ":", "/", "." and "-" do.
    found = _scan(_normalise(re.sub(r"[,;!?()\[\]]", " ", text)))
    if found.leftover:
        return WhenProblem(WhenError.UNRECOGNISED, " ".join(found.leftover))
    if not (found.clocks or found.anchors or found.weekdays or found.offsets or found.ranges):
        return WhenProblem(WhenError.UNRECOGNISED)
    if found.ambiguous is not None:
        return WhenProblem(WhenError.AMBIGUOUS, found.ambiguous)
    hours = len(found.clocks) + len(found.ranges) + len(found.offsets)
    lengths = len(found.lengths) + len(found.ranges)
    if len(found.anchors) + len(found.offsets) > 1 or len(found.weekdays) > 1 or hours > 1:
        return WhenProblem(WhenError.AMBIGUOUS)
    if lengths > 1:
        return WhenProblem(WhenError.AMBIGUOUS)
    if len(set(found.parts)) > 1:
        return WhenProblem(WhenError.AMBIGUOUS, " / ".join(sorted(set(found.parts))))

    if found.offsets:
        # "dans une heure": an instant, to the minute; nothing else may set the day or hour.
        if found.weekdays or found.parts:
            return WhenProblem(WhenError.AMBIGUOUS)
        wall = now_local.replace(tzinfo=None, second=0, microsecond=0)
        return _finish(wall + timedelta(minutes=found.offsets[0]), None, found, now, tz)

    read = _clock_and_length(found)
    if isinstance(read, WhenProblem):
        return read
    clock, length = read

    if not (found.anchors or found.weekdays):
        if clock is None:
            return WhenProblem(WhenError.UNRECOGNISED)
        return WhenProblem(WhenError.NO_DATE, _hm(clock.hour, clock.minute))

    if found.anchors:
        resolved = _resolve_anchor(found.anchors[0], clock, now_local)
        if isinstance(resolved, WhenProblem):
            return resolved
        day = resolved
        # A weekday next to a date is only a check: if it disagrees, one of them is a typo.
        if found.weekdays and not _agrees(found.weekdays[0], day, clock, now_local):
            return WhenProblem(WhenError.AMBIGUOUS, _format_date(day))
    else:
        weekday_day = _resolve_weekday(found.weekdays[0], clock, now_local)
        if isinstance(weekday_day, WhenProblem):
            return weekday_day
        day = weekday_day

    if clock is None:
        return WhenProblem(WhenError.NO_TIME, _format_date(day))
    return _finish(datetime.combine(day, time(clock.hour, clock.minute)), length, found, now, tz)


def _finish(
    wall: datetime, length: int | None, found: _Found, now: datetime, tz: ZoneInfo
) -> When | WhenProblem:
    """The instant of a local wall time, checked against daylight saving, now and the horizon."""
    start = _localise(wall, tz)
    if isinstance(start, WhenError):
        return WhenProblem(start, _format_wall(wall))
    if start < now:
        return WhenProblem(WhenError.PAST, _format_wall(wall))
    if start > _add_months(now.astimezone(tz), MAX_AHEAD_MONTHS):
        return WhenProblem(WhenError.TOO_FAR, _format_wall(wall))
    return When(start, length, found.approximate)


# --- durations --------------------------------------------------------------------------------

_NUMBER_WORDS = {
    "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "six": 6, "sept": 7,
    "huit": 8, "neuf": 9, "dix": 10, "onze": 11, "douze": 12, "quinze": 15, "vingt": 20,
    "trente": 30, "quarante": 40, "quarante-cinq": 45, "cinquante": 50, "soixante": 60,
    "quatre-vingt-dix": 90,
}  # fmt: skip
_NUMBER_WORD_RE = re.compile(
    r"\b(?:" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")\b"
)
# Phrases rewritten to digits before the grammar below ("une demi-heure" is "30 min").
_DURATION_PHRASES = (
    (re.compile(r"\b(?:une?\s+)?demi[\s-]?heure\b"), "30 min"),
    (re.compile(r"\btrois\s+quarts?\s+d\s*'?\s*heure\b"), "45 min"),
    (re.compile(r"\b(?:un\s+)?quart\s+d\s*'?\s*heure\b"), "15 min"),
    (re.compile(r"\s*\bet\s+demie?\b"), " 30"),
    (re.compile(r"\s*\bet\s+quart\b"), " 15"),
)
_DURATION_HOURS = re.compile(
    r"(?P<h>\d+(?:[.,]\d+)?)\s*(?:heures?|hrs?|h)(?:\s*(?P<m>\d{1,2})\s*(?:minutes?|min|mn|m)?)?"
)
_DURATION_MINUTES = re.compile(r"(?P<m>\d+)\s*(?:minutes?|min|mn|m)?")
_DURATION_COLON = re.compile(r"(?P<h>\d{1,2}):(?P<m>\d{2})")


def parse_duration(text: str) -> timedelta | None:
    """Read a meeting length ("1h30", "90 min", "une demi-heure"); None if unreadable or odd."""
    spoken = _normalise(text).replace("-", " ").replace("quarante cinq", "quarante-cinq")
    spoken = spoken.replace("quatre vingt dix", "quatre-vingt-dix")
    for pattern, replacement in _DURATION_PHRASES:
        spoken = pattern.sub(replacement, spoken)
    spoken = _NUMBER_WORD_RE.sub(lambda m: str(_NUMBER_WORDS[m[0]]), spoken).strip()

    minutes: Decimal
    if match := _DURATION_HOURS.fullmatch(spoken):
        hours = Decimal(match["h"].replace(",", "."))
        extra = int(match["m"]) if match["m"] else 0
        # "1,5h30" mixes two ways of writing the minutes; 75 minutes go in the minutes unit.
        if extra >= 60 or (extra and hours != hours.to_integral_value()):
            return None
        minutes = hours * 60 + extra
    elif match := _DURATION_COLON.fullmatch(spoken):
        if int(match["m"]) >= 60:
            return None
        minutes = Decimal(int(match["h"]) * 60 + int(match["m"]))
    elif match := _DURATION_MINUTES.fullmatch(spoken):
        # A bare number is minutes ("90"); "2" is then refused as too short, not read as hours.
        minutes = Decimal(match["m"])
    else:
        return None
    if minutes != minutes.to_integral_value():
        return None
    duration = timedelta(minutes=int(minutes))
    return duration if _MIN_DURATION <= duration <= _MAX_DURATION else None


# --- checks and display -----------------------------------------------------------------------


@cache
def _french_holidays(year: int) -> holidays.HolidayBase:
    # No subdivision: metropolitan France without Alsace-Moselle's two extra days.
    return holidays.France(years=year, language="fr")


def unusual_reasons(start: datetime, end: datetime, *, tz: ZoneInfo) -> list[str]:
    """Why a slot deserves a second look: early_or_late, weekend, holiday:<name>; [] if none."""
    _require_aware(start, "start")
    _require_aware(end, "end")
    first, last = start.astimezone(tz), end.astimezone(tz)
    if last < first:
        raise ValueError("end is before start")
    reasons: list[str] = []
    if first.date() != last.date() or first.time() < _DAY_START or last.time() > _DAY_END:
        reasons.append("early_or_late")
    # A slot ending exactly at midnight does not touch the next day.
    last_day = (last - timedelta(microseconds=1)).date() if last > first else first.date()
    days = [first.date() + timedelta(days=i) for i in range((last_day - first.date()).days + 1)]
    if any(day.weekday() >= 5 for day in days):
        reasons.append("weekend")
    for day in days:
        name = _french_holidays(day.year).get(day)
        if name:
            reasons.append(f"holiday:{name}")
    return reasons


def _hm(hour: int, minute: int) -> str:
    return f"{hour}h{minute:02d}" if minute else f"{hour}h"


def _format_date(day: date) -> str:
    number = "1er" if day.day == 1 else str(day.day)
    return f"{_WEEKDAYS[day.weekday()]} {number} {_MONTH_NAMES[day.month - 1]} {day.year}"


def _format_wall(wall: datetime) -> str:
    return f"{_format_date(wall.date())} à {_hm(wall.hour, wall.minute)}"


def format_day(start: datetime, *, tz: ZoneInfo) -> str:
    """The local day in French: "jeudi 14 janvier 2027", "lundi 1er mars 2027"."""
    _require_aware(start, "start")
    return _format_date(start.astimezone(tz).date())


def format_slot(start: datetime, end: datetime, *, tz: ZoneInfo) -> str:
    """A slot in French: "jeudi 14 janvier 2027, 14h30–15h30" (both days when they differ)."""
    _require_aware(start, "start")
    _require_aware(end, "end")
    first, last = start.astimezone(tz), end.astimezone(tz)
    day = _format_date(first.date())
    begins, ends = _hm(first.hour, first.minute), _hm(last.hour, last.minute)
    if first.date() == last.date():
        return f"{day}, {begins}–{ends}"
    return f"{day}, {begins} – {_format_date(last.date())}, {ends}"
