"""Reading French dates and hours for meetings: exact instants or exact refusals, fixed clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.services.when import (
    When,
    WhenError,
    WhenProblem,
    format_day,
    format_slot,
    parse_duration,
    parse_when,
    unusual_reasons,
)

PARIS = ZoneInfo("Europe/Paris")
# A Saturday, 10:00 in Paris: the reference "now" of the main table.
SATURDAY = datetime(2026, 11, 28, 10, 0, tzinfo=PARIS)
TUESDAY = datetime(2026, 12, 1, 9, 0, tzinfo=PARIS)
THURSDAY = datetime(2026, 12, 3, 10, 0, tzinfo=PARIS)
DEC_28 = datetime(2026, 12, 28, 10, 0, tzinfo=PARIS)
DEC_28_BEFORE_LEAP = datetime(2027, 12, 28, 10, 0, tzinfo=PARIS)
MID_JANUARY_2027 = datetime(2027, 1, 15, 10, 0, tzinfo=PARIS)
SPRING_FORWARD_NIGHT = datetime(2027, 3, 28, 0, 30, tzinfo=PARIS)
EVE_OF_FALL_BACK = datetime(2027, 10, 30, 12, 0, tzinfo=PARIS)

E = WhenError


def at(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS)


def check(result: When | WhenProblem, expected: datetime | WhenError) -> None:
    if isinstance(expected, WhenError):
        assert isinstance(result, WhenProblem), result
        assert result.error is expected, result
        return
    assert isinstance(result, When), result
    assert result.start.tzinfo == PARIS
    # Same wall time and same offset: equality of aware datetimes alone would hide a wrong fold.
    assert result.start.replace(tzinfo=None) == expected.replace(tzinfo=None)
    assert result.start.utcoffset() == expected.utcoffset()


SATURDAY_CASES: list[tuple[str, datetime | WhenError]] = [
    # Weekdays: the next one, or today while the hour is still ahead.
    ("jeudi 14h30", at(2026, 12, 3, 14, 30)),
    ("Jeudi 14H30", at(2026, 12, 3, 14, 30)),
    ("   jeudi     14h30  ", at(2026, 12, 3, 14, 30)),
    ("JEUDI À 14H30", at(2026, 12, 3, 14, 30)),
    ("jeudi prochain 14h", at(2026, 12, 3, 14)),
    ("le jeudi 3 décembre à 14h", at(2026, 12, 3, 14)),
    ("samedi 14h", at(2026, 11, 28, 14)),
    ("samedi 9h", at(2026, 12, 5, 9)),
    ("samedi prochain 14h", at(2026, 12, 5, 14)),
    ("dimanche 10h", at(2026, 11, 29, 10)),
    ("pour jeudi 14h", at(2026, 12, 3, 14)),
    ("dimanche demain 14h", at(2026, 11, 29, 14)),
    # Numeric dates, French order.
    ("12/01 à 9h", at(2027, 1, 12, 9)),
    ("12/01/2027 9h", at(2027, 1, 12, 9)),
    ("12-01-27 9h00", at(2027, 1, 12, 9)),
    ("12.01 9:00", at(2027, 1, 12, 9)),
    ("2027-01-12 9h", at(2027, 1, 12, 9)),
    ("1/2/27 9h", at(2027, 2, 1, 9)),
    # Relative days.
    ("demain 10h", at(2026, 11, 29, 10)),
    ("après-demain 8h", at(2026, 11, 30, 8)),
    ("APRES DEMAIN 8H", at(2026, 11, 30, 8)),
    ("aujourd'hui 16h", at(2026, 11, 28, 16)),
    ("aujourd’hui 16h", at(2026, 11, 28, 16)),
    ("aujourdhui 16h", at(2026, 11, 28, 16)),
    ("ce soir 18h", at(2026, 11, 28, 18)),
    ("ce soir 8h", at(2026, 11, 28, 20)),
    ("cet après-midi 3h", at(2026, 11, 28, 15)),
    ("vers 10h demain", at(2026, 11, 29, 10)),
    # Month names, full, abbreviated, without accents.
    ("le 3 mars 2027 à 8h15", at(2027, 3, 3, 8, 15)),
    ("3 mars à 8h15", at(2027, 3, 3, 8, 15)),
    ("le 3 mars prochain 8h15", at(2027, 3, 3, 8, 15)),
    ("1er avril 10h", at(2027, 4, 1, 10)),
    ("premier avril 10h", at(2027, 4, 1, 10)),
    ("mardi 2 février 9h30", at(2027, 2, 2, 9, 30)),
    ("3 janv. 9h", at(2027, 1, 3, 9)),
    ("3 janv 9h", at(2027, 1, 3, 9)),
    ("3 févr 9h", at(2027, 2, 3, 9)),
    ("3 fevrier 9h", at(2027, 2, 3, 9)),
    ("3 sept 9h", at(2027, 9, 3, 9)),
    ("15 aout 10h", at(2027, 8, 15, 10)),
    ("3 decembre 9h", at(2026, 12, 3, 9)),
    ("3 DÉCEMBRE 9H", at(2026, 12, 3, 9)),
    # Ways of writing the hour.
    ("demain à midi", at(2026, 11, 29, 12)),
    ("midi demain", at(2026, 11, 29, 12)),
    ("demain midi et demi", at(2026, 11, 29, 12, 30)),
    ("demain minuit", at(2026, 11, 29, 0)),
    ("demain 14 h", at(2026, 11, 29, 14)),
    ("demain 14H", at(2026, 11, 29, 14)),
    ("demain 14:30", at(2026, 11, 29, 14, 30)),
    ("demain 14 h 30", at(2026, 11, 29, 14, 30)),
    ("demain 9h du matin", at(2026, 11, 29, 9)),
    ("demain 2h de l'après-midi", at(2026, 11, 29, 14)),
    ("demain soir 8h", at(2026, 11, 29, 20)),
    ("lundi après-midi 3h", at(2026, 11, 30, 15)),
    ("demain 8 heures", at(2026, 11, 29, 8)),
    ("demain 8 heures 30", at(2026, 11, 29, 8, 30)),
    ("demain 9h et quart", at(2026, 11, 29, 9, 15)),
    # A day of the month alone, after "le" or a weekday.
    ("lundi 14 9h", at(2026, 12, 14, 9)),
    ("le 14 à 9h", at(2026, 12, 14, 9)),
    ("le 31 à 9h", at(2026, 12, 31, 9)),  # November has no 31st
    ("le 28 à 9h", at(2026, 12, 28, 9)),  # today, but 9h has passed
    ("le 28 à 11h", at(2026, 11, 28, 11)),
    # Dates without a year: today if still ahead, else next year.
    ("28/11 11h", at(2026, 11, 28, 11)),
    ("28/11 9h", at(2027, 11, 28, 9)),
    ("29/02/2028 10h", at(2028, 2, 29, 10)),
    ("28/05/2028 9h", at(2028, 5, 28, 9)),  # just inside 18 months
    # A date but no hour, an hour but no date.
    ("lundi matin", E.NO_TIME),
    ("jeudi", E.NO_TIME),
    ("12/01", E.NO_TIME),
    ("demain", E.NO_TIME),
    ("ce soir", E.NO_TIME),
    ("lundi 14", E.NO_TIME),
    ("midi", E.NO_DATE),
    ("à midi", E.NO_DATE),
    ("14h30", E.NO_DATE),
    ("2h de l'après-midi", E.NO_DATE),
    # Nothing usable, or words we do not understand.
    ("", E.UNRECOGNISED),
    ("bonjour", E.UNRECOGNISED),
    ("jeudi 14h salle B", E.UNRECOGNISED),
    ("jeudi d'après 14h", E.UNRECOGNISED),
    ("jeudi à 14", E.UNRECOGNISED),
    # Impossible calendar values.
    ("31/02 9h", E.IMPOSSIBLE),
    ("30 février 10h", E.IMPOSSIBLE),
    ("29/02/2027 10h", E.IMPOSSIBLE),
    ("29/02 10h", E.IMPOSSIBLE),  # next February is 2027's
    ("32/01 9h", E.IMPOSSIBLE),
    ("12/13 9h", E.IMPOSSIBLE),
    ("le 32 à 9h", E.IMPOSSIBLE),
    ("demain 25h", E.IMPOSSIBLE),
    ("demain 24h", E.IMPOSSIBLE),
    ("demain 14h75", E.IMPOSSIBLE),
    # Already past.
    ("12/01/2025 9h", E.PAST),
    ("aujourd'hui 9h", E.PAST),
    ("ce matin 9h", E.PAST),
    # Ambiguous.
    ("1/2/3 9h", E.AMBIGUOUS),
    ("12/01/202 9h", E.AMBIGUOUS),
    ("mardi 14 9h", E.AMBIGUOUS),  # the 14th is a Monday
    ("lundi 14 janvier 2027 9h", E.AMBIGUOUS),  # a Thursday
    ("demain jeudi 14h", E.AMBIGUOUS),  # tomorrow is a Sunday
    ("demain 12/01 9h", E.AMBIGUOUS),
    ("jeudi vendredi 14h", E.AMBIGUOUS),
    ("demain 14h 16h", E.AMBIGUOUS),
    ("demain 14h et 15h", E.AMBIGUOUS),
    ("demain 14h du matin", E.AMBIGUOUS),
    ("demain matin soir 9h", E.AMBIGUOUS),
    # Daylight saving in Paris, 2027.
    ("28/03/2027 2h30", E.NONEXISTENT),
    ("dimanche 28 mars 2027 2h", E.NONEXISTENT),
    ("31/10/2027 2h30", E.REPEATED),
    ("31/10/2027 2h", E.REPEATED),
    # More than 18 months ahead.
    ("29/05/2028 9h", E.TOO_FAR),
    ("12/01/2029 9h", E.TOO_FAR),
]


def test_main_table_is_large() -> None:
    assert len(SATURDAY_CASES) >= 60


@pytest.mark.parametrize(("text", "expected"), SATURDAY_CASES, ids=[c[0] for c in SATURDAY_CASES])
def test_parse_when_on_a_saturday(text: str, expected: datetime | WhenError) -> None:
    check(parse_when(text, now=SATURDAY, tz=PARIS), expected)


OTHER_NOW_CASES: list[tuple[datetime, str, datetime | WhenError]] = [
    # "prochain jeudi" is the coming one; "jeudi prochain" said on a Tuesday may be this
    # week's Thursday or next week's: asked...
    (TUESDAY, "jeudi prochain 14h", E.AMBIGUOUS),
    (TUESDAY, "prochain jeudi 14h", at(2026, 12, 3, 14)),
    (TUESDAY, "jeudi 14h", at(2026, 12, 3, 14)),
    (TUESDAY, "jeudi de la semaine prochaine 14h", at(2026, 12, 10, 14)),
    (TUESDAY, "mardi 10h", at(2026, 12, 1, 10)),
    (TUESDAY, "mardi 8h", at(2026, 12, 8, 8)),
    (TUESDAY, "mardi prochain 10h", at(2026, 12, 8, 10)),
    (TUESDAY, "lundi 9h", at(2026, 12, 7, 9)),
    # ...and next week's when said on a Thursday; a bare "jeudi" is today if still ahead.
    (THURSDAY, "jeudi 14h", at(2026, 12, 3, 14)),
    (THURSDAY, "jeudi 9h", at(2026, 12, 10, 9)),
    (THURSDAY, "jeudi prochain 14h", at(2026, 12, 10, 14)),
    (THURSDAY, "jeudi", E.NO_TIME),
    # Year wrap.
    (DEC_28, "3 janvier 9h", at(2027, 1, 3, 9)),
    (DEC_28, "1er janvier 10h", at(2027, 1, 1, 10)),
    (DEC_28, "28/12 9h", at(2027, 12, 28, 9)),
    (DEC_28, "28/12 11h", at(2026, 12, 28, 11)),
    (DEC_28, "27/12 9h", at(2027, 12, 27, 9)),
    (DEC_28, "le 2 à 9h", at(2027, 1, 2, 9)),
    (DEC_28, "31 décembre 2026 9h", at(2026, 12, 31, 9)),
    (DEC_28, "vendredi 9h", at(2027, 1, 1, 9)),
    # 29 February: only in a leap year, and only the coming one.
    (DEC_28_BEFORE_LEAP, "29/02 10h", at(2028, 2, 29, 10)),
    (DEC_28_BEFORE_LEAP, "29 février 10h", at(2028, 2, 29, 10)),
    (DEC_28_BEFORE_LEAP, "30/02 10h", E.IMPOSSIBLE),
    (MID_JANUARY_2027, "29/02 10h", E.IMPOSSIBLE),
    (MID_JANUARY_2027, "29/02/2028 10h", at(2028, 2, 29, 10)),
    # The night of the spring-forward: 02:00 to 02:59 do not exist.
    (SPRING_FORWARD_NIGHT, "aujourd'hui 2h30", E.NONEXISTENT),
    (SPRING_FORWARD_NIGHT, "aujourd'hui 2h", E.NONEXISTENT),
    (SPRING_FORWARD_NIGHT, "aujourd'hui 1h", at(2027, 3, 28, 1)),
    (SPRING_FORWARD_NIGHT, "aujourd'hui 4h", at(2027, 3, 28, 4)),
    (SPRING_FORWARD_NIGHT, "dimanche 9h", at(2027, 3, 28, 9)),
    # The eve of the fall-back: 02:00 to 02:59 happen twice.
    (EVE_OF_FALL_BACK, "demain 2h30", E.REPEATED),
    (EVE_OF_FALL_BACK, "demain 2h", E.REPEATED),
    (EVE_OF_FALL_BACK, "demain 1h59", at(2027, 10, 31, 1, 59)),
    (EVE_OF_FALL_BACK, "demain 3h", at(2027, 10, 31, 3)),
]


@pytest.mark.parametrize(
    ("now", "text", "expected"),
    OTHER_NOW_CASES,
    ids=[f"{c[0]:%a %d %b %Y %H:%M}-{c[1]}" for c in OTHER_NOW_CASES],
)
def test_parse_when_with_other_nows(
    now: datetime, text: str, expected: datetime | WhenError
) -> None:
    check(parse_when(text, now=now, tz=PARIS), expected)


DST_OFFSETS: list[tuple[str, datetime, int]] = [
    ("27/03/2027 14h", at(2027, 3, 27, 14), 1),
    ("28/03/2027 1h30", at(2027, 3, 28, 1, 30), 1),
    ("28/03/2027 1h59", at(2027, 3, 28, 1, 59), 1),
    ("28/03/2027 3h", at(2027, 3, 28, 3), 2),
    ("28/03/2027 14h", at(2027, 3, 28, 14), 2),
    ("30/10/2027 14h", at(2027, 10, 30, 14), 2),
    ("31/10/2027 1h30", at(2027, 10, 31, 1, 30), 2),
    ("31/10/2027 1h59", at(2027, 10, 31, 1, 59), 2),
    ("31/10/2027 3h", at(2027, 10, 31, 3), 1),
    ("31/10/2027 14h", at(2027, 10, 31, 14), 1),
]


@pytest.mark.parametrize(("text", "wall", "hours"), DST_OFFSETS, ids=[c[0] for c in DST_OFFSETS])
def test_ordinary_times_on_dst_days_get_the_right_offset(
    text: str, wall: datetime, hours: int
) -> None:
    result = parse_when(text, now=SATURDAY, tz=PARIS)
    assert isinstance(result, When), result
    assert result.start.replace(tzinfo=None) == wall.replace(tzinfo=None)
    assert result.start.utcoffset() == timedelta(hours=hours)
    # The instant itself, checked in UTC, not only its local rendering.
    assert result.start.astimezone(UTC) == (
        wall.replace(tzinfo=None) - timedelta(hours=hours)
    ).replace(tzinfo=UTC)


DETAILS: list[tuple[str, WhenProblem]] = [
    ("jeudi", WhenProblem(E.NO_TIME, "jeudi 3 décembre 2026")),
    ("samedi", WhenProblem(E.NO_TIME, "samedi 28 novembre 2026")),
    ("1er mars 2027", WhenProblem(E.NO_TIME, "lundi 1er mars 2027")),
    ("14h30", WhenProblem(E.NO_DATE, "14h30")),
    ("2h de l'après-midi", WhenProblem(E.NO_DATE, "14h")),
    ("demain 25h", WhenProblem(E.IMPOSSIBLE, "25h")),
    ("31/02/2027 9h", WhenProblem(E.IMPOSSIBLE, "31/02/2027")),
    ("lundi 14 janvier 2027 9h", WhenProblem(E.AMBIGUOUS, "jeudi 14 janvier 2027")),
    ("1/2/3 9h", WhenProblem(E.AMBIGUOUS, "1/2/3")),
    ("12/01/2025 9h", WhenProblem(E.PAST, "dimanche 12 janvier 2025 à 9h")),
    ("28/03/2027 2h30", WhenProblem(E.NONEXISTENT, "dimanche 28 mars 2027 à 2h30")),
    ("31/10/2027 2h30", WhenProblem(E.REPEATED, "dimanche 31 octobre 2027 à 2h30")),
    ("12/01/2029 9h", WhenProblem(E.TOO_FAR, "vendredi 12 janvier 2029 à 9h")),
    ("jeudi 14h salle B", WhenProblem(E.UNRECOGNISED, "salle b")),
]


@pytest.mark.parametrize(("text", "expected"), DETAILS, ids=[c[0] for c in DETAILS])
def test_problems_say_what_was_understood(text: str, expected: WhenProblem) -> None:
    assert parse_when(text, now=SATURDAY, tz=PARIS) == expected


def test_now_is_injected_not_read_from_the_clock() -> None:
    # With the real clock, 2 January 2020 would be in the past.
    long_ago = datetime(2020, 1, 1, 10, 0, tzinfo=PARIS)
    assert parse_when("demain 10h", now=long_ago, tz=PARIS) == When(at(2020, 1, 2, 10))


def test_now_in_another_zone_is_the_same_instant() -> None:
    utc_now = SATURDAY.astimezone(UTC)  # 09:00 UTC
    assert parse_when("aujourd'hui 9h30", now=utc_now, tz=PARIS) == WhenProblem(
        E.PAST, "samedi 28 novembre 2026 à 9h30"
    )
    assert parse_when("aujourd'hui 10h30", now=utc_now, tz=PARIS) == When(at(2026, 11, 28, 10, 30))


def test_the_wall_clock_is_read_in_the_requested_zone() -> None:
    montreal = ZoneInfo("America/Montreal")
    # 10:00 in Paris is 04:00 in Montréal: 9h is still ahead there, and means 15:00 in Paris.
    result = parse_when("aujourd'hui 9h", now=SATURDAY, tz=montreal)
    assert isinstance(result, When)
    assert result.start.tzinfo == montreal
    assert result.start.utcoffset() == timedelta(hours=-5)
    assert result.start == at(2026, 11, 28, 15)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_when("demain 10h", now=datetime(2026, 11, 28, 10), tz=PARIS)


DURATIONS: list[tuple[str, timedelta | None]] = [
    ("1h", timedelta(hours=1)),
    ("1 h 30", timedelta(minutes=90)),
    ("1h30", timedelta(minutes=90)),
    ("1H30", timedelta(minutes=90)),
    ("1h30min", timedelta(minutes=90)),
    ("90 min", timedelta(minutes=90)),
    ("90", timedelta(minutes=90)),
    ("45mn", timedelta(minutes=45)),
    ("45 mn", timedelta(minutes=45)),
    ("2 heures", timedelta(hours=2)),
    ("1 heure 15", timedelta(minutes=75)),
    ("une heure", timedelta(hours=1)),
    ("deux heures", timedelta(hours=2)),
    ("une demi-heure", timedelta(minutes=30)),
    ("demi heure", timedelta(minutes=30)),
    ("une heure et demie", timedelta(minutes=90)),
    ("une heure trente", timedelta(minutes=90)),
    ("un quart d'heure", timedelta(minutes=15)),
    ("trois quarts d'heure", timedelta(minutes=45)),
    ("30 minutes", timedelta(minutes=30)),
    ("1:30", timedelta(minutes=90)),
    ("1,5 h", timedelta(minutes=90)),
    ("5 min", timedelta(minutes=5)),
    ("12h", timedelta(hours=12)),
    # Refused: unreadable, too short, too long, impossible minutes.
    ("", None),
    ("bientôt", None),
    ("2", None),
    ("4 min", None),
    ("0", None),
    ("12h01", None),
    ("13h", None),
    ("720 min", timedelta(hours=12)),
    ("721 min", None),
    ("1h75", None),
    ("1,33 h", None),
]


@pytest.mark.parametrize(("text", "expected"), DURATIONS, ids=[c[0] or "empty" for c in DURATIONS])
def test_parse_duration(text: str, expected: timedelta | None) -> None:
    assert parse_duration(text) == expected


UNUSUAL: list[tuple[str, datetime, datetime, list[str]]] = [
    ("ordinary tuesday", at(2026, 12, 1, 14), at(2026, 12, 1, 15), []),
    ("exactly 7h to 8h", at(2026, 12, 1, 7), at(2026, 12, 1, 8), []),
    ("exactly 19h to 20h", at(2026, 12, 1, 19), at(2026, 12, 1, 20), []),
    ("starts 6h30", at(2026, 12, 1, 6, 30), at(2026, 12, 1, 7, 30), ["early_or_late"]),
    ("ends 20h30", at(2026, 12, 1, 19, 30), at(2026, 12, 1, 20, 30), ["early_or_late"]),
    ("saturday", at(2026, 11, 28, 10), at(2026, 11, 28, 11), ["weekend"]),
    ("sunday", at(2026, 11, 29, 10), at(2026, 11, 29, 11), ["weekend"]),
    ("christmas 2026", at(2026, 12, 25, 10), at(2026, 12, 25, 11), ["holiday:Noël"]),
    ("26 december: Alsace only", at(2028, 12, 26, 10), at(2028, 12, 26, 11), []),
    ("14 july 2027", at(2027, 7, 14, 10), at(2027, 7, 14, 11), ["holiday:Fête nationale"]),
    ("easter monday 2027", at(2027, 3, 29, 10), at(2027, 3, 29, 11), ["holiday:Lundi de Pâques"]),
    ("ascension 2027", at(2027, 5, 6, 10), at(2027, 5, 6, 11), ["holiday:Ascension"]),
    (
        "christmas 2027, a saturday, at dawn",
        at(2027, 12, 25, 6),
        at(2027, 12, 25, 7),
        ["early_or_late", "weekend", "holiday:Noël"],
    ),
    (
        "friday night to saturday",
        at(2026, 12, 4, 23),
        at(2026, 12, 5, 1),
        ["early_or_late", "weekend"],
    ),
    ("friday ending at midnight", at(2026, 12, 4, 19), at(2026, 12, 5, 0), ["early_or_late"]),
]


@pytest.mark.parametrize(
    ("start", "end", "expected"), [c[1:] for c in UNUSUAL], ids=[c[0] for c in UNUSUAL]
)
def test_unusual_reasons(start: datetime, end: datetime, expected: list[str]) -> None:
    assert unusual_reasons(start, end, tz=PARIS) == expected


def test_unusual_reasons_reads_the_local_hour() -> None:
    # 05:30 UTC is 06:30 in Paris in December.
    start = datetime(2026, 12, 1, 5, 30, tzinfo=UTC)
    assert unusual_reasons(start, start + timedelta(hours=1), tz=PARIS) == ["early_or_late"]
    assert unusual_reasons(start + timedelta(hours=2), start + timedelta(hours=3), tz=PARIS) == []


def test_unusual_reasons_refuses_an_end_before_the_start() -> None:
    with pytest.raises(ValueError):
        unusual_reasons(at(2026, 12, 1, 15), at(2026, 12, 1, 14), tz=PARIS)


SLOTS: list[tuple[datetime, datetime, str]] = [
    (at(2027, 1, 14, 14, 30), at(2027, 1, 14, 15, 30), "jeudi 14 janvier 2027, 14h30–15h30"),
    (at(2027, 3, 1, 8, 15), at(2027, 3, 1, 9, 15), "lundi 1er mars 2027, 8h15–9h15"),
    (at(2026, 12, 1, 9), at(2026, 12, 1, 10), "mardi 1er décembre 2026, 9h–10h"),
    (at(2026, 12, 1, 9, 5), at(2026, 12, 1, 9, 50), "mardi 1er décembre 2026, 9h05–9h50"),
    (at(2027, 8, 15, 10), at(2027, 8, 15, 11, 30), "dimanche 15 août 2027, 10h–11h30"),
    (
        at(2026, 12, 31, 23),
        at(2027, 1, 1, 1),
        "jeudi 31 décembre 2026, 23h – vendredi 1er janvier 2027, 1h",
    ),
    (
        datetime(2027, 1, 14, 13, 30, tzinfo=UTC),
        datetime(2027, 1, 14, 14, 30, tzinfo=UTC),
        "jeudi 14 janvier 2027, 14h30–15h30",
    ),
]


@pytest.mark.parametrize(("start", "end", "expected"), SLOTS, ids=[c[2] for c in SLOTS])
def test_format_slot(start: datetime, end: datetime, expected: str) -> None:
    assert format_slot(start, end, tz=PARIS) == expected


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (at(2027, 1, 14, 9), "jeudi 14 janvier 2027"),
        (at(2027, 3, 1, 9), "lundi 1er mars 2027"),
        (at(2027, 2, 6, 9), "samedi 6 février 2027"),
        # 23:30 UTC on the 31st is already the 1st in Paris.
        (datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "vendredi 1er janvier 2027"),
    ],
)
def test_format_day(start: datetime, expected: str) -> None:
    assert format_day(start, tz=PARIS) == expected


def test_a_parsed_slot_formats_back() -> None:
    result = parse_when("jeudi 14 janvier 2027 à 14h30", now=SATURDAY, tz=PARIS)
    duration = parse_duration("1h")
    assert isinstance(result, When) and duration is not None
    assert format_slot(result.start, result.start + duration, tz=PARIS) == (
        "jeudi 14 janvier 2027, 14h30–15h30"
    )


# --- issue 17: dates as animators type them -------------------------------------------------

# A Wednesday, 10:15 in Paris.
WEDNESDAY = datetime(2027, 3, 10, 10, 15, tzinfo=PARIS)


def test_a_range_gives_the_start_and_the_length() -> None:
    assert parse_when("jeudi de 14h à 16h", now=WEDNESDAY, tz=PARIS) == When(
        at(2027, 3, 11, 14), minutes=120
    )
    assert parse_when("demain 14h-15h30", now=WEDNESDAY, tz=PARIS) == When(
        at(2027, 3, 11, 14), minutes=90
    )
    assert parse_when("lundi de 14 à 16h", now=WEDNESDAY, tz=PARIS) == When(
        at(2027, 3, 15, 14), minutes=120
    )
    assert parse_when("demain 14h pendant 1h30", now=WEDNESDAY, tz=PARIS) == When(
        at(2027, 3, 11, 14), minutes=90
    )


@pytest.mark.parametrize(
    "text",
    ["demain de 16h à 14h", "demain de 9h à 9h", "demain de 7h à 20h", "demain 14h et 16h",
     "demain de 14h à 16h pendant 2h"],
)
def test_odd_ranges_are_asked(text: str) -> None:
    result = parse_when(text, now=WEDNESDAY, tz=PARIS)
    assert isinstance(result, WhenProblem) and result.error is E.AMBIGUOUS, result


def test_le_14_a_16h_is_a_day_and_an_hour_not_a_range() -> None:
    assert parse_when("le 14 à 16h", now=WEDNESDAY, tz=PARIS) == When(at(2027, 3, 14, 16))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("demain vers 14h", at(2027, 3, 11, 14)),
        ("jeudi aux alentours de 10h", at(2027, 3, 11, 10)),
        ("lundi 10h environ", at(2027, 3, 15, 10)),
    ],
)
def test_approximate_hours_are_taken_and_marked(text: str, expected: datetime) -> None:
    assert parse_when(text, now=WEDNESDAY, tz=PARIS) == When(expected, approximate=True)


def test_exact_hours_are_not_marked_approximate() -> None:
    result = parse_when("demain 14h", now=WEDNESDAY, tz=PARIS)
    assert isinstance(result, When) and not result.approximate and result.minutes is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("demain quinze heures", at(2027, 3, 11, 15)),
        ("vendredi midi moins le quart", at(2027, 3, 12, 11, 45)),
        ("trois heures et quart cet après-midi", at(2027, 3, 10, 15, 15)),
        ("lundi neuf heures moins vingt", at(2027, 3, 15, 8, 40)),
        ("demain vingt et une heures", at(2027, 3, 11, 21)),
        ("demain seize heures quarante-cinq", at(2027, 3, 11, 16, 45)),
        ("le 3 sept à 9h", at(2027, 9, 3, 9)),  # "sept" after a day number is September
    ],
)
def test_hours_in_words(text: str, expected: datetime) -> None:
    check(parse_when(text, now=WEDNESDAY, tz=PARIS), expected)


@pytest.mark.parametrize("text", ["demain à trois heures", "jeudi une heure", "demain 3 heures"])
def test_spoken_hours_one_to_seven_are_asked(text: str) -> None:
    result = parse_when(text, now=WEDNESDAY, tz=PARIS)
    assert isinstance(result, WhenProblem) and result.error is E.AMBIGUOUS_HOUR, result


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dans une heure", at(2027, 3, 10, 11, 15)),
        ("dans 30 minutes", at(2027, 3, 10, 10, 45)),
        ("dans une demi-heure", at(2027, 3, 10, 10, 45)),
        ("dans 1h30", at(2027, 3, 10, 11, 45)),
        ("dans 7 jours à 10h", at(2027, 3, 17, 10)),
        ("dans 2 semaines à 14h", at(2027, 3, 24, 14)),
        ("mardi prochain à 9h", at(2027, 3, 16, 9)),
        ("mardi la semaine prochaine à 9h", at(2027, 3, 16, 9)),
        ("lundi en huit à 10h", at(2027, 3, 22, 10)),
        ("vendredi de cette semaine à 14h", at(2027, 3, 12, 14)),
        ("aujourd'hui en huit à 10h", at(2027, 3, 17, 10)),
        ("20 03 2027 à 10h", at(2027, 3, 20, 10)),
        ("le 25 03 à 10h", at(2027, 3, 25, 10)),
        ("le lundi de Pâques à 10h", at(2027, 3, 29, 10)),
        ("l'Ascension à 9h", at(2027, 5, 6, 9)),
        ("la veille de Noël à 10h", at(2027, 12, 24, 10)),
        ("le lundi de Pâques 2028 à 10h", at(2028, 4, 17, 10)),
        ("RDV jeudi 14h svp", at(2027, 3, 11, 14)),
        ("jeu. 11/03 à 10h", at(2027, 3, 11, 10)),
        ("12/01/28 9h", at(2028, 1, 12, 9)),
    ],
)
def test_relative_weeks_spaced_and_holidays(text: str, expected: datetime) -> None:
    check(parse_when(text, now=WEDNESDAY, tz=PARIS), expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("jeudi prochain 14h", E.AMBIGUOUS),  # tomorrow, or the 18th?
        ("mercredi en huit 10h", E.AMBIGUOUS),  # said on a Wednesday
        ("dans 8 jours à 10h", E.AMBIGUOUS),
        ("dans 15 jours à 10h", E.AMBIGUOUS),
        ("dans 7 jours", E.NO_TIME),
        ("lundi de cette semaine à 10h", E.PAST),
        ("12/01/29 à 10h", E.AMBIGUOUS),  # two-digit year beyond next year
        ("25/12/99 10h", E.AMBIGUOUS),
        ("15/06/26 10h", E.PAST),  # a past two-digit year is still 20xx
        ("le lundi de Pâques", E.NO_TIME),
        ("demain dans une heure", E.AMBIGUOUS),
        ("jeudi ou vendredi 14h", E.UNRECOGNISED),
        ("pas jeudi, vendredi 14h", E.UNRECOGNISED),
    ],
)
def test_what_is_still_asked(text: str, expected: WhenError) -> None:
    check(parse_when(text, now=WEDNESDAY, tz=PARIS), expected)


def test_prochain_details_name_both_days() -> None:
    assert parse_when("jeudi prochain 14h", now=WEDNESDAY, tz=PARIS) == WhenProblem(
        E.AMBIGUOUS, "jeudi 11 mars 2027 ou jeudi 18 mars 2027"
    )


def test_a_very_long_text_is_refused_without_reading_it() -> None:
    result = parse_when("demain 14h " * 500, now=WEDNESDAY, tz=PARIS)
    assert result == WhenProblem(E.UNRECOGNISED)
