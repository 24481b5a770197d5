"""Meeting invitations as iCalendar (RFC 5545) scheduling messages (iTIP, RFC 5546).

`invitation_ics` builds the VCALENDAR of a REQUEST (new or rescheduled meeting) or a CANCEL;
`attach_invitation` puts it into an email the way calendar clients recognise.

Choices made for Outlook, which is the least tolerant client:

* Times are written as local wall time with `TZID=Europe/Paris` and a VTIMEZONE whose
  STANDARD and DAYLIGHT observances use yearly RRULEs (the shape Google Calendar and
  Thunderbird emit). Outlook turns a VTIMEZONE into a single Windows rule and is known to
  misread the RDATE-only shape `icalendar.Timezone.from_tzid` produces, which shifts
  meetings by an hour; that shape is only a fallback for zones without a simple yearly rule.
* No VALARM: the bot sends its own reminders; an alarm in an invitation is dropped by many
  servers and clients, and where it is kept it comes on top of the attendee's own reminder.
* Everything typed by people goes through the same cleaning as emails (no control or bidi
  characters, line breaks only in the description); icalendar escapes TEXT values and quotes
  parameters, and values it does not escape (addresses, URL, UID) are validated instead.
"""

from __future__ import annotations

import calendar as gregorian
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage, MIMEPart
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import (
    Calendar,
    Event,
    Timezone,
    TimezoneDaylight,
    TimezoneStandard,
    vCalAddress,
)

from bot.catalogue import t
from bot.services.plaintext import one_line, text_block

__all__ = ["Attendee", "Invitation", "attach_invitation", "invitation_ics"]

Method = Literal["REQUEST", "CANCEL"]

PRODID = "-//Relais//Territoires d'industrie//FR"
ATTACHMENT_NAME = "invite.ics"
SUMMARY_LIMIT = 200
NAME_LIMIT = 120
LOCATION_LIMIT = 300
DESCRIPTION_LIMIT = 5000

_METHODS = frozenset({"REQUEST", "CANCEL"})
# A UID is matched byte for byte by every client: refuse rather than silently rewrite one.
_UID = re.compile(r"^[\x21-\x7e]{1,255}$")
# Whitespace, controls, bidi/format characters, and RFC 5322 specials that have no place in
# a plain addr-spec: the value of ORGANIZER/ATTENDEE is not escaped by icalendar.
_BAD_EMAIL_CHARS = re.compile(
    r"[\s\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff"
    r"\ud800-\udfff<>()\[\]\\,;:\"]"
)
# URI values are not escaped either: only plain http(s) links without spaces or controls.
_URL = re.compile(
    r"^https?://[^\s\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069"
    r"\ufeff\ud800-\udfff<>\"]{1,2000}$",
    re.IGNORECASE,
)
_TZID = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+){0,2}$")
# The first year any yearly rule is said to apply from, as Google and Thunderbird write it.
_RULE_EPOCH = 1970


def _check_email(value: str) -> str:
    email = value.strip()
    local, at, domain = email.partition("@")
    if not at or not local or not domain or "@" in domain or _BAD_EMAIL_CHARS.search(email):
        raise ValueError(f"invalid email address {value!r}")
    return email


def _check_aware(name: str, value: datetime) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")


@dataclass(frozen=True, slots=True)
class Attendee:
    """Someone invited to a meeting; optional attendees are shown as such by clients."""

    name: str
    email: str
    required: bool = True

    def __post_init__(self) -> None:
        _check_email(self.email)


@dataclass(frozen=True, slots=True, kw_only=True)
class Invitation:
    """One meeting as sent to its attendees (the caller owns UID and SEQUENCE)."""

    uid: str
    sequence: int
    start: datetime
    end: datetime
    summary: str
    description: str
    location: str = ""
    url: str = ""
    organizer_name: str
    organizer_email: str
    attendees: tuple[Attendee, ...]
    # The DTSTAMP: passed in (the caller's clock), so the same input gives the same bytes.
    stamp: datetime
    tz: str = "Europe/Paris"

    def __post_init__(self) -> None:
        if not _UID.fullmatch(self.uid):
            raise ValueError(f"invalid UID {self.uid!r}")
        if isinstance(self.sequence, bool) or not isinstance(self.sequence, int):
            raise ValueError("sequence must be an integer")
        if self.sequence < 0:
            raise ValueError("sequence must not be negative")
        _check_aware("start", self.start)
        _check_aware("end", self.end)
        _check_aware("stamp", self.stamp)
        if self.end <= self.start:
            raise ValueError("a meeting must end after it starts")
        if self.url and not _URL.fullmatch(self.url.strip()):
            raise ValueError(f"invalid meeting URL {self.url!r}")
        _check_email(self.organizer_email)
        if not self.attendees:
            raise ValueError("an invitation needs at least one attendee")
        for attendee in self.attendees:
            if not isinstance(attendee, Attendee):
                raise ValueError("attendees must be Attendee objects")
        _zone(self.tz)


# --- Time zones ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Observance:
    """One yearly switch of a zone: to daylight time or back to standard time."""

    daylight: bool
    offset_from: timedelta
    offset_to: timedelta
    name: str
    month: int
    # 1..4 for "the nth weekday of the month", -1 for "the last one".
    week: int
    weekday: int
    # Local wall time before the switch, as DTSTART of a STANDARD/DAYLIGHT must be written.
    at: timedelta


def _zone(tzid: str) -> ZoneInfo:
    # The name is written as a TZID parameter: only what IANA names are made of.
    if not _TZID.fullmatch(tzid):
        raise ValueError(f"unknown time zone {tzid!r}")
    try:
        return ZoneInfo(tzid)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown time zone {tzid!r}") from exc


@lru_cache(maxsize=64)
def _transitions(tzid: str, year: int) -> tuple[datetime, ...]:
    """The UTC instants in `year` from which the zone's offset changes."""
    zone = _zone(tzid)
    found = []
    moment = datetime(year, 1, 1, tzinfo=UTC)
    stop = datetime(year + 1, 1, 1, tzinfo=UTC)
    step = timedelta(days=1)
    while moment < stop:
        following = moment + step
        if moment.astimezone(zone).utcoffset() != following.astimezone(zone).utcoffset():
            # Narrow the day down to the minute where the offset changes.
            low, high = moment, following
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == low.astimezone(zone).utcoffset():
                    low = middle
                else:
                    high = middle
            found.append(high.replace(second=0, microsecond=0))
        moment = following
    return tuple(found)


def _nth_weekday(year: int, month: int, week: int, weekday: int) -> date:
    days = gregorian.monthrange(year, month)[1]
    if week == -1:
        last = date(year, month, days)
        return last - timedelta(days=(last.weekday() - weekday) % 7)
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (week - 1))


@lru_cache(maxsize=64)
def _yearly_observances(tzid: str, year: int) -> tuple[_Observance, ...] | None:
    """The zone's switches in `year` as yearly rules, or None if they are not that simple."""
    zone = _zone(tzid)
    switches = _transitions(tzid, year)
    if len(switches) not in (0, 2):
        return None
    observances = []
    for instant in switches:
        before = (instant - timedelta(minutes=1)).astimezone(zone).utcoffset()
        after = instant.astimezone(zone)
        offset_to = after.utcoffset()
        assert before is not None and offset_to is not None  # a ZoneInfo always has one
        local = (instant + before).replace(tzinfo=None)
        days = gregorian.monthrange(local.year, local.month)[1]
        week = -1 if local.day + 7 > days else (local.day - 1) // 7 + 1
        observances.append(
            _Observance(
                daylight=bool(after.dst()),
                offset_from=before,
                offset_to=offset_to,
                name=after.tzname() or "",
                month=local.month,
                week=week,
                weekday=local.weekday(),
                at=local - datetime(local.year, local.month, local.day),
            )
        )
    if observances and sorted(o.daylight for o in observances) != [False, True]:
        return None
    return tuple(observances)


def _rule_vtimezone(tzid: str, observances: tuple[_Observance, ...], year: int) -> Timezone:
    vtimezone = Timezone()
    vtimezone.add("TZID", tzid)
    if not observances:
        # No daylight saving time: a single observance that never changes.
        moment = datetime(year, 1, 1, tzinfo=_zone(tzid))
        offset = moment.utcoffset()
        standard = TimezoneStandard()
        standard.add("DTSTART", datetime(_RULE_EPOCH, 1, 1))
        standard.add("TZOFFSETFROM", offset)
        standard.add("TZOFFSETTO", offset)
        standard.add("TZNAME", moment.tzname() or tzid)
        vtimezone.add_component(standard)
        return vtimezone
    weekdays = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
    for observance in sorted(observances, key=lambda o: not o.daylight):
        component = TimezoneDaylight() if observance.daylight else TimezoneStandard()
        first = _nth_weekday(_RULE_EPOCH, observance.month, observance.week, observance.weekday)
        component.add("DTSTART", datetime(first.year, first.month, first.day) + observance.at)
        component.add("TZOFFSETFROM", observance.offset_from)
        component.add("TZOFFSETTO", observance.offset_to)
        component.add("TZNAME", observance.name)
        component.add(
            "RRULE",
            {
                "FREQ": "YEARLY",
                "BYMONTH": observance.month,
                "BYDAY": f"{observance.week}{weekdays[observance.weekday]}",
            },
        )
        vtimezone.add_component(component)
    return vtimezone


def _agrees(vtimezone: Timezone, zone: ZoneInfo, moments: tuple[datetime, ...]) -> bool:
    """Whether a reader of the VTIMEZONE finds the same offsets as zoneinfo at `moments`."""
    # lookup_tzid=False: build the zone from the component itself, not from the TZID name.
    parsed = vtimezone.to_tz(lookup_tzid=False)
    for moment in moments:
        wall = moment.astimezone(zone).replace(tzinfo=None)
        if wall.replace(tzinfo=parsed).utcoffset() != wall.replace(tzinfo=zone).utcoffset():
            return False
    return True


def _vtimezone(tzid: str, start: datetime, end: datetime) -> Timezone:
    """A VTIMEZONE that is right for the whole meeting, in the shape Outlook reads best."""
    zone = _zone(tzid)
    year = start.astimezone(zone).year
    end_year = end.astimezone(zone).year
    observances = _yearly_observances(tzid, year)
    if observances is not None:
        vtimezone = _rule_vtimezone(tzid, observances, year)
        # Both ends of the meeting, and every switch in the years it spans.
        switches = (t for y in range(year, end_year + 1) for t in _transitions(tzid, y))
        checks = (start, end, *switches)
        if _agrees(vtimezone, zone, checks):
            return vtimezone
    # Irregular zone: icalendar's explicit list of switches, covering the meeting's years.
    return Timezone.from_tzid(tzid, first_date=date(year, 1, 1), last_date=date(end_year + 1, 1, 1))


def _local(moment: datetime, zone: ZoneInfo) -> datetime:
    """The moment as wall time in `zone`, or in UTC if that wall time is ambiguous."""
    local = moment.astimezone(zone).replace(microsecond=0)
    # A TZID time in the repeated hour of autumn means its first occurrence (RFC 5545
    # 3.3.5); the second one can only be written unambiguously in UTC.
    if local.replace(fold=0).astimezone(UTC) != local.astimezone(UTC):
        return local.astimezone(UTC)
    return local.replace(fold=0)


# --- The calendar --------------------------------------------------------------------------


def _address(name: str, email: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{_check_email(email)}")
    # RFC 5545 has no way to put a double quote inside a quoted parameter; icalendar would
    # use RFC 6868's ^' which not every client decodes. A plain apostrophe reads the same.
    cn = one_line(name, NAME_LIMIT).replace('"', "'")
    if cn:
        address.params["CN"] = cn
    return address


def _attendees(attendees: tuple[Attendee, ...]) -> list[Attendee]:
    # Twice the same address would show two rows in Outlook; required wins over optional.
    unique: dict[str, Attendee] = {}
    for attendee in attendees:
        key = _check_email(attendee.email).lower()
        known = unique.get(key)
        if known is None:
            unique[key] = attendee
        elif attendee.required and not known.required:
            unique[key] = Attendee(known.name, known.email, required=True)
    return list(unique.values())


def _description(inv: Invitation) -> str:
    text = text_block(inv.description, DESCRIPTION_LIMIT)
    if inv.url:
        link = t("partner.ics_video_link", url=inv.url.strip()).plain()
        text = f"{text}\n\n{link}" if text else link
    return text


def invitation_ics(inv: Invitation, *, method: Method) -> bytes:
    """The iCalendar bytes (CRLF, folded at 75 octets) of a meeting REQUEST or CANCEL."""
    if method not in _METHODS:
        raise ValueError(f"unsupported iTIP method {method!r}")
    zone = _zone(inv.tz)

    cal = Calendar()
    cal.add("PRODID", PRODID)
    cal.add("VERSION", "2.0")
    cal.add("CALSCALE", "GREGORIAN")
    cal.add("METHOD", method)

    event = Event()
    event.add("UID", inv.uid)
    # Same UID and a higher SEQUENCE is how a client knows this replaces what it has.
    event.add("SEQUENCE", inv.sequence)
    event.add("DTSTAMP", inv.stamp.astimezone(UTC).replace(microsecond=0))
    event.add("DTSTART", _local(inv.start, zone))
    event.add("DTEND", _local(inv.end, zone))
    event.add("SUMMARY", one_line(inv.summary, SUMMARY_LIMIT))
    description = _description(inv)
    if description:
        event.add("DESCRIPTION", description)
    location = one_line(inv.location, LOCATION_LIMIT) or inv.url.strip()
    if location:
        event.add("LOCATION", location)
    if inv.url:
        event.add("URL", inv.url.strip())
    event.add("ORGANIZER", _address(inv.organizer_name, inv.organizer_email))
    for attendee in _attendees(inv.attendees):
        address = _address(attendee.name, attendee.email)
        address.params["CUTYPE"] = "INDIVIDUAL"
        address.params["ROLE"] = "REQ-PARTICIPANT" if attendee.required else "OPT-PARTICIPANT"
        address.params["PARTSTAT"] = "NEEDS-ACTION"
        address.params["RSVP"] = "TRUE"
        event.add("ATTENDEE", address)
    event.add("STATUS", "CONFIRMED" if method == "REQUEST" else "CANCELLED")
    event.add("TRANSP", "OPAQUE")
    cal.add_component(event)
    if cal.get_used_tzids() - {"UTC"}:
        # Before the VEVENT: some readers resolve a TZID only against zones already seen.
        cal.subcomponents.insert(0, _vtimezone(inv.tz, inv.start, inv.end))
    # Insertion order: VERSION and PRODID first, as every client writes them.
    return bytes(cal.to_ical(sorted=False))


# --- The email -----------------------------------------------------------------------------


def _body_container(msg: EmailMessage) -> MIMEPart:
    """The part that holds the message's readable alternatives (or will, once converted)."""
    content_type = msg.get_content_type()
    if content_type == "multipart/alternative":
        return msg
    if content_type == "multipart/mixed":
        parts = list(msg.iter_parts())
        if parts and parts[0].get_content_type() in ("multipart/alternative", "multipart/related"):
            return parts[0]
        if parts and parts[0].get_content_maintype() == "text":
            return parts[0]
        raise ValueError("the message has no readable body to add an invitation to")
    if content_type == "multipart/related" or msg.get_content_maintype() == "text":
        return msg
    raise ValueError(f"cannot add an invitation to a {content_type} message")


def attach_invitation(msg: EmailMessage, ics: bytes, *, method: Method) -> None:
    """Add the calendar to an email as an inline text/calendar part and an invite.ics file.

    The result is the structure Gmail sends and Outlook, Thunderbird and Gmail all act on:

        multipart/mixed
          multipart/alternative
            text/plain, text/html (what was there)
            text/calendar; method=REQUEST|CANCEL; charset="UTF-8"   <- accept/decline buttons
          application/ics; name="invite.ics" (attachment)           <- "add to calendar"

    The calendar is base64-encoded in both places: iCalendar needs its CRLF line endings and
    UTF-8 bytes kept exactly, which no text transfer encoding guarantees across relays.
    """
    if method not in _METHODS:
        raise ValueError(f"unsupported iTIP method {method!r}")
    if not ics.startswith(b"BEGIN:VCALENDAR\r\n"):
        raise ValueError("not an iCalendar object")
    # Outlook ignores an invitation whose MIME method differs from the calendar's METHOD.
    if f"\r\nMETHOD:{method}\r\n".encode("ascii") not in ics:
        raise ValueError(f"the calendar's METHOD is not {method}")
    if any(part.get_content_type() == "text/calendar" for part in msg.walk()):
        raise ValueError("the message already carries an invitation")
    if not msg.is_multipart() and msg.get_payload() in (None, ""):
        raise ValueError("the message has no body")
    if "Content-Type" not in msg:
        # Without Content-* headers, converting to multipart would drop the body.
        msg["Content-Type"] = "text/plain"

    container = _body_container(msg)
    # Bare MIMEParts: EmailMessage subparts would each repeat a MIME-Version header.
    inline = MIMEPart(policy=msg.policy)
    inline.set_content(
        ics,
        maintype="text",
        subtype="calendar",
        cte="base64",
        params={"method": method, "charset": "UTF-8"},
    )
    attachment = MIMEPart(policy=msg.policy)
    attachment.set_content(
        ics,
        maintype="application",
        subtype="ics",
        cte="base64",
        disposition="attachment",
        filename=ATTACHMENT_NAME,
        params={"name": ATTACHMENT_NAME},
    )
    # A single text part or a multipart/related becomes the first of the alternatives.
    if container.get_content_type() != "multipart/alternative":
        container.make_alternative()
    container.attach(inline)
    if msg.get_content_type() != "multipart/mixed":
        msg.make_mixed()
    msg.attach(attachment)
