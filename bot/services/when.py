"""Reading the date and time an animator types in French to propose a meeting.

Everything here is pure: the current instant is always passed in (`now`), the system clock is
never read, so the same text and the same `now` always give the same answer.

Reading rules (the choices a person could argue with, made once here):

* Dates are French: `12/01` is the 12th of January, never the 1st of December. Separators
  `/`, `.` and `-` are accepted (`12/01`, `12.01`, `12-01-27`), as is ISO `2027-01-12`.
  A one- or three-digit year (`1/2/3`) is refused as AMBIGUOUS. Two-digit years are 20xx.
* A date without a year is its next occurrence: this year if that day (and hour) is still
  today or ahead, otherwise next year; never further, so `29/02` typed in 2026 or 2027 is
  IMPOSSIBLE rather than silently moved to 2028.
* A day of the month alone (`le 14`, `lundi 14`) is its next occurrence, this month or a
  following one that has that day (`le 31` typed in November is the 31st of December).
* A bare weekday (`jeudi 14h`) is today when today is that weekday and the hour is still
  ahead, otherwise the next such day. Without an hour (`jeudi`), today counts.
* `jeudi prochain` is the common French reading "the coming Thursday": said on a Tuesday it
  is this week's Thursday, said on a Thursday it is next week's (never today).
  `jeudi de la semaine prochaine` is the Thursday of next calendar week (Monday-based).
* A weekday next to a date must agree with it (`lundi 14 janvier 2027` is a Thursday:
  AMBIGUOUS). Two dates, two weekdays or two hours in one text are AMBIGUOUS (this covers
  ranges such as `14h-15h`: the duration is asked separately).
* A part of the day (`matin`, `après-midi`, `soir`) turns 1–11 into the afternoon or evening
  hour (`2h de l'après-midi` is 14:00, `ce soir 8h` is 20:00) and, alone, is not an hour:
  `lundi matin` is NO_TIME, we do not guess.
* Any word we do not understand makes the whole text UNRECOGNISED (with the words as
  detail) rather than being ignored: `jeudi en huit 14h` must not become this Thursday.
* Wall times skipped or repeated by a daylight-saving change are refused (NONEXISTENT,
  REPEATED) so that nobody is invited to an hour that does not exist or happens twice.
"""

from __future__ import annotations

import re
import unicodedata
from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import cache
from typing import Literal
from zoneinfo import ZoneInfo

import holidays

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


class WhenError(StrEnum):
    """Why a text could not be turned into one instant."""

    UNRECOGNISED = "unrecognised"
    NO_TIME = "no_time"
    NO_DATE = "no_date"
    IMPOSSIBLE = "impossible"
    PAST = "past"
    AMBIGUOUS = "ambiguous"
    NONEXISTENT = "nonexistent"
    REPEATED = "repeated"
    TOO_FAR = "too_far"


@dataclass(frozen=True, slots=True)
class When:
    """One instant, aware, in the requested time zone."""

    start: datetime


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

# Words that carry no information once the date and hour are found ("le", "à", "vers"...).
# Elided forms ("l'", "d'") arrive here as "l" and "d".
_FILLERS = frozenset(
    {"le", "la", "l", "a", "au", "vers", "pour", "ce", "cet", "cette", "de", "du", "d",
     "des", "et", "environ", "prochain", "prochaine"}
)  # fmt: skip

DayPart = Literal["matin", "apres-midi", "soir"]

# --- patterns, applied in this order; each match is blanked so later ones cannot reuse it ----

# "ce soir", "cet après-midi", "ce midi": today, plus a part of the day (or noon).
_THIS_PART = re.compile(
    r"\b(?:ce|cet|cette)\s+(?P<p>soir(?:ee)?|matin(?:ee)?|apres[\s-]?midi|aprem|midi)\b"
)
_DAY_PART = re.compile(r"\b(?P<p>apres[\s-]?midi|aprem|matin(?:ee)?|soir(?:ee)?)\b")
_NOON = re.compile(r"\b(?P<w>midi|minuit)\b(?:\s+et\s+(?P<frac>demie?|quart)\b)?")
# "14h", "14 h 30", "8 heures 30", "9h et quart". Minutes are not taken when they are in fact
# the start of a date ("14h 15 mars", "9h 12/01") or of another hour ("14h 15h").
_TIME_H = re.compile(
    r"(?<![\d:])(?P<h>\d{1,2})\s*(?:heures?|h)(?![a-z])"
    r"(?:\s*(?P<m>\d{1,2})(?!\d|[/.-]\d|\s*(?:er\b|" + _MONTH_RE + r")|\s*(?:heures?|h)(?![a-z]))"
    r"(?:\s*(?:minutes?|min|mn)\b)?"
    r"|\s+et\s+(?P<frac>demie?|quart)\b)?"
)
_TIME_COLON = re.compile(r"(?<![\d:])(?P<h>\d{1,2}):(?P<m>\d{2})(?![\d:])")
_RELATIVE = re.compile(r"\b(?P<r>apres[\s-]?demain|demain|aujourd\s*'?\s*hui)\b")
_ISO_DATE = re.compile(r"\b(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b")
_NUMERIC_DATE = re.compile(
    r"(?<![\d/.:-])(?P<d>\d{1,2})(?P<sep>[/.-])(?P<m>\d{1,2})(?:(?P=sep)(?P<y>\d+))?(?![/.-]?\d)"
)
_TEXT_DATE = re.compile(
    r"\b(?P<d>" + _DAY_RE + r")\s*(?P<m>" + _MONTH_RE + r")\b\.?(?:\s*(?P<y>\d{4}|\d{2})\b)?"
)
# A day number alone is a date only right after "le" or a weekday ("le 14", "lundi 14");
# elsewhere a bare number means nothing we can trust ("jeudi à 14").
_DAY_ONLY = re.compile(
    r"\b(?:le|" + _WEEKDAY_RE + r")(?:\s+prochaine?)?\s+(?P<d>" + _DAY_RE + r")\b"
)
_WEEKDAY = re.compile(
    r"\b(?:(?P<pre>prochain)\s+)?(?P<wd>" + _WEEKDAY_RE + r")"
    r"(?:\s+(?P<nw>de\s+la\s+semaine\s+prochaine)|\s+(?P<post>prochain))?\b"
)
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'", "ʼ": "'"})


# --- what the text says, before it is checked against the calendar ---------------------------


@dataclass(frozen=True, slots=True)
class _Clock:
    hour: int
    minute: int


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
class _Weekday:
    weekday: int
    mode: Literal["bare", "prochain", "next_week"]


_Anchor = _Explicit | _DayOfMonth | _Relative


@dataclass(slots=True)
class _Found:
    clocks: list[_Clock]
    parts: list[DayPart]
    anchors: list[_Anchor]
    weekdays: list[_Weekday]
    leftover: list[str]


class _Scanner:
    """The normalised text, from which each recognised piece is blanked out once read."""

    def __init__(self, text: str) -> None:
        self.text = text

    def take(self, pattern: re.Pattern[str], group: int | str = 0) -> list[re.Match[str]]:
        matches = list(pattern.finditer(self.text))
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


def _day_number(raw: str) -> int:
    return 1 if raw in ("1er", "premier") else int(raw)


def _part_of(raw: str) -> DayPart:
    if raw.startswith("matin"):
        return "matin"
    if raw.startswith("soir"):
        return "soir"
    return "apres-midi"


def _fraction(raw: str | None) -> int:
    return {"demi": 30, "demie": 30, "quart": 15}.get(raw or "", 0)


def _scan(text: str) -> _Found:
    """Split the text into hours, parts of the day, dates, weekdays and unknown words."""
    scanner = _Scanner(text)
    found = _Found(clocks=[], parts=[], anchors=[], weekdays=[], leftover=[])
    for match in scanner.take(_THIS_PART):
        found.anchors.append(_Relative(0))
        if match["p"] == "midi":
            found.clocks.append(_Clock(12, 0))
        else:
            found.parts.append(_part_of(match["p"]))
    found.parts += [_part_of(m["p"]) for m in scanner.take(_DAY_PART)]
    for match in scanner.take(_NOON):
        found.clocks.append(_Clock(12 if match["w"] == "midi" else 0, _fraction(match["frac"])))
    for match in scanner.take(_TIME_H):
        minute = int(match["m"]) if match["m"] else _fraction(match["frac"])
        found.clocks.append(_Clock(int(match["h"]), minute))
    found.clocks += [_Clock(int(m["h"]), int(m["m"])) for m in scanner.take(_TIME_COLON)]
    for match in scanner.take(_RELATIVE):
        word = match["r"]
        days = 2 if word.startswith("apres") else 1 if word == "demain" else 0
        found.anchors.append(_Relative(days))
    for match in scanner.take(_ISO_DATE):
        found.anchors.append(_Explicit(int(match["d"]), int(match["m"]), match["y"], match[0]))
    for pattern in (_NUMERIC_DATE, _TEXT_DATE):
        for match in scanner.take(pattern):
            month = _MONTHS.get(match["m"]) or int(match["m"])
            found.anchors.append(_Explicit(_day_number(match["d"]), month, match["y"], match[0]))
    found.anchors += [_DayOfMonth(_day_number(m["d"])) for m in scanner.take(_DAY_ONLY, "d")]
    for match in scanner.take(_WEEKDAY):
        mode: Literal["bare", "prochain", "next_week"] = "bare"
        if match["nw"]:
            mode = "next_week"
        elif match["pre"] or match["post"]:
            mode = "prochain"
        found.weekdays.append(_Weekday(_WEEKDAYS.index(match["wd"]), mode))
    found.leftover = [w for w in re.findall(r"[a-z0-9]+", scanner.text) if w not in _FILLERS]
    return found


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
    else:
        return WhenProblem(WhenError.AMBIGUOUS, anchor.source)
    if not _valid_day(year, anchor.month, anchor.day):
        return WhenProblem(WhenError.IMPOSSIBLE, f"{anchor.day:02d}/{anchor.month:02d}/{year}")
    return date(year, anchor.month, anchor.day)


def _resolve_weekday(weekday: _Weekday, clock: _Clock | None, now_local: datetime) -> date:
    today = now_local.date()
    if weekday.mode == "next_week":
        return today + timedelta(days=7 - today.weekday() + weekday.weekday)
    delta = (weekday.weekday - today.weekday()) % 7
    if delta == 0 and (weekday.mode == "prochain" or not _is_ahead(today, clock, now_local)):
        delta = 7
    return today + timedelta(days=delta)


def _apply_part(clock: _Clock, part: DayPart | None) -> _Clock | None:
    """The hour once "du matin" / "de l'après-midi" / "du soir" is applied; None if they clash."""
    if part is None:
        return clock
    if part == "matin":
        return clock if clock.hour < 12 else None
    if 1 <= clock.hour <= 11:
        return _Clock(clock.hour + 12, clock.minute)
    return clock if clock.hour >= 12 else None


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


def parse_when(text: str, *, now: datetime, tz: ZoneInfo) -> When | WhenProblem:
    """Read one meeting start from French text, relative to `now`, as an instant in `tz`."""
    _require_aware(now, "now")
    now_local = now.astimezone(tz)
    found = _scan(_normalise(text))
    if found.leftover:
        return WhenProblem(WhenError.UNRECOGNISED, " ".join(found.leftover))
    if not (found.clocks or found.anchors or found.weekdays):
        return WhenProblem(WhenError.UNRECOGNISED)
    if len(found.anchors) > 1 or len(found.weekdays) > 1 or len(found.clocks) > 1:
        return WhenProblem(WhenError.AMBIGUOUS)
    if len(set(found.parts)) > 1:
        return WhenProblem(WhenError.AMBIGUOUS, " / ".join(sorted(set(found.parts))))

    clock: _Clock | None = None
    if found.clocks:
        typed = found.clocks[0]
        if not (0 <= typed.hour <= 23 and 0 <= typed.minute <= 59):
            return WhenProblem(WhenError.IMPOSSIBLE, _hm(typed.hour, typed.minute))
        clock = _apply_part(typed, found.parts[0] if found.parts else None)
        if clock is None:
            detail = f"{_hm(typed.hour, typed.minute)} {found.parts[0]}"
            return WhenProblem(WhenError.AMBIGUOUS, detail)

    if not (found.anchors or found.weekdays):
        assert clock is not None  # something was found, and it is neither a date nor a weekday
        return WhenProblem(WhenError.NO_DATE, _hm(clock.hour, clock.minute))

    if found.anchors:
        resolved = _resolve_anchor(found.anchors[0], clock, now_local)
        if isinstance(resolved, WhenProblem):
            return resolved
        day = resolved
        # A weekday next to a date is only a check: if it disagrees, one of them is a typo.
        if found.weekdays and found.weekdays[0].weekday != day.weekday():
            return WhenProblem(WhenError.AMBIGUOUS, _format_date(day))
    else:
        day = _resolve_weekday(found.weekdays[0], clock, now_local)

    if clock is None:
        return WhenProblem(WhenError.NO_TIME, _format_date(day))

    wall = datetime.combine(day, time(clock.hour, clock.minute))
    start = _localise(wall, tz)
    if isinstance(start, WhenError):
        return WhenProblem(start, _format_wall(wall))
    if start < now:
        return WhenProblem(WhenError.PAST, _format_wall(wall))
    if start > _add_months(now_local, MAX_AHEAD_MONTHS):
        return WhenProblem(WhenError.TOO_FAR, _format_wall(wall))
    return When(start)


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
