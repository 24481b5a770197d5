"""Meeting invitations: the iCalendar they carry and the email structure around it."""

from __future__ import annotations

import dataclasses
import email
import email.policy
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage, Message
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar, Component

from bot.services import ics as ics_module
from bot.services.emails import EmailDraft, to_email_message
from bot.services.ics import Attendee, Invitation, attach_invitation, invitation_ics

PARIS = ZoneInfo("Europe/Paris")
STAMP = datetime(2027, 3, 1, 8, 15, tzinfo=UTC)


def make_invitation(**changes: Any) -> Invitation:
    """A meeting on the day France moves to summer time, with one optional attendee."""
    values: dict[str, Any] = {
        "uid": "rdv-42@relais.example",
        "sequence": 0,
        "start": datetime(2027, 3, 28, 10, 0, tzinfo=PARIS),
        "end": datetime(2027, 3, 28, 11, 30, tzinfo=PARIS),
        "summary": "Rendez-vous œnologie’s : accompagnement",
        "description": "Ordre du jour :\n- présentation\n- cœur du besoin’s",
        "location": "2 rue de l’Église, 18000 Bourges",
        "url": "",
        "organizer_name": "Anne Martin",
        "organizer_email": "anne.martin@ti.example",
        "attendees": (
            Attendee("Jean Dupont", "jean@firm.example"),
            Attendee("Zoé Lefèvre", "zoe@cci.example", required=False),
        ),
        "stamp": STAMP,
    }
    values.update(changes)
    return Invitation(**values)


def parse(ics: bytes) -> tuple[Calendar, Component]:
    """The calendar and its only VEVENT."""
    cal = Calendar.from_ical(ics)
    events = cal.walk("VEVENT")
    assert len(events) == 1
    return cal, events[0]


def physical_lines(ics: bytes) -> list[bytes]:
    assert ics.endswith(b"\r\n")
    return ics[:-2].split(b"\r\n")


def test_request_has_every_field() -> None:
    ics = invitation_ics(make_invitation(), method="REQUEST")
    cal, event = parse(ics)

    assert cal["PRODID"] == "-//Relais//Territoires d'industrie//FR"
    assert cal["VERSION"] == "2.0"
    assert cal["CALSCALE"] == "GREGORIAN"
    assert cal["METHOD"] == "REQUEST"

    assert event["UID"] == "rdv-42@relais.example"
    assert event.decoded("SEQUENCE") == 0
    assert event["STATUS"] == "CONFIRMED"
    assert event["TRANSP"] == "OPAQUE"
    assert event["SUMMARY"] == "Rendez-vous œnologie’s : accompagnement"
    assert event["DESCRIPTION"] == "Ordre du jour :\n- présentation\n- cœur du besoin’s"
    assert event["LOCATION"] == "2 rue de l’Église, 18000 Bourges"
    assert "URL" not in event
    # Reminders are the bot's job, not the invitation's.
    assert not cal.walk("VALARM")

    stamp = event.decoded("DTSTAMP")
    assert stamp == STAMP and stamp.utcoffset() == timedelta(0)
    assert b"\r\nDTSTAMP:20270301T081500Z\r\n" in ics

    organizer = event["ORGANIZER"]
    assert str(organizer) == "mailto:anne.martin@ti.example"
    assert organizer.params["CN"] == "Anne Martin"

    attendees = event["ATTENDEE"]
    assert [str(a) for a in attendees] == ["mailto:jean@firm.example", "mailto:zoe@cci.example"]
    jean, zoe = attendees
    assert dict(jean.params) == {
        "CN": "Jean Dupont",
        "CUTYPE": "INDIVIDUAL",
        "ROLE": "REQ-PARTICIPANT",
        "PARTSTAT": "NEEDS-ACTION",
        "RSVP": "TRUE",
    }
    assert zoe.params["CN"] == "Zoé Lefèvre"
    assert zoe.params["ROLE"] == "OPT-PARTICIPANT"
    assert zoe.params["PARTSTAT"] == "NEEDS-ACTION"
    assert zoe.params["RSVP"] == "TRUE"


def test_output_is_stable_for_the_same_input() -> None:
    # DTSTAMP comes from the caller: no hidden clock, so an outbox retry sends the same bytes.
    assert invitation_ics(make_invitation(), method="REQUEST") == invitation_ics(
        make_invitation(), method="REQUEST"
    )


def vtimezone_offsets(cal: Calendar) -> dict[str, tuple[timedelta, timedelta]]:
    timezones = cal.walk("VTIMEZONE")
    assert len(timezones) == 1
    assert timezones[0]["TZID"] == "Europe/Paris"
    observances = {}
    for sub in timezones[0].subcomponents:
        assert sub.name not in observances
        observances[sub.name] = (sub.decoded("TZOFFSETFROM"), sub.decoded("TZOFFSETTO"))
    return observances


@pytest.mark.parametrize(
    ("day", "offset"),
    [
        # The night of 27 to 28 March 2027 France moves to summer time.
        (datetime(2027, 3, 28, 10, 0), timedelta(hours=2)),
        # The night of 30 to 31 October 2027 it moves back to winter time.
        (datetime(2027, 10, 31, 10, 0), timedelta(hours=1)),
        (datetime(2027, 1, 15, 14, 0), timedelta(hours=1)),
        (datetime(2027, 7, 14, 9, 0), timedelta(hours=2)),
    ],
)
def test_times_are_paris_wall_time_with_a_vtimezone(day: datetime, offset: timedelta) -> None:
    start = day.replace(tzinfo=PARIS)
    ics = invitation_ics(
        make_invitation(start=start, end=start + timedelta(hours=1)), method="REQUEST"
    )
    cal, event = parse(ics)
    wall = day.strftime("%Y%m%dT%H%M%S").encode()
    end_wall = (day + timedelta(hours=1)).strftime("%Y%m%dT%H%M%S").encode()
    assert b"\r\nDTSTART;TZID=Europe/Paris:" + wall + b"\r\n" in ics
    assert b"\r\nDTEND;TZID=Europe/Paris:" + end_wall + b"\r\n" in ics
    assert event["DTSTART"].params["TZID"] == "Europe/Paris"

    dtstart = event.decoded("DTSTART")
    assert dtstart.replace(tzinfo=None) == day
    assert dtstart.utcoffset() == offset
    assert dtstart == start
    assert event.decoded("DTEND") == start + timedelta(hours=1)

    # The VTIMEZONE must precede the event and carry both observances.
    assert ics.index(b"BEGIN:VTIMEZONE") < ics.index(b"BEGIN:VEVENT")
    assert vtimezone_offsets(cal) == {
        "STANDARD": (timedelta(hours=2), timedelta(hours=1)),
        "DAYLIGHT": (timedelta(hours=1), timedelta(hours=2)),
    }
    assert b"TZOFFSETTO:+0100" in ics and b"TZOFFSETTO:+0200" in ics

    # A client that trusts the VTIMEZONE, not its own tz database, finds the same instant.
    from_vtimezone = cal.walk("VTIMEZONE")[0].to_tz(lookup_tzid=False)
    assert day.replace(tzinfo=from_vtimezone).utcoffset() == offset


def test_vtimezone_uses_yearly_rules_outlook_understands() -> None:
    ics = invitation_ics(make_invitation(), method="REQUEST")
    timezone = Calendar.from_ical(ics).walk("VTIMEZONE")[0]
    rules = {
        sub.name: (sub["RRULE"].to_ical(), sub.decoded("DTSTART").strftime("%m%dT%H%M"))
        for sub in timezone.subcomponents
    }
    assert rules == {
        # Last Sunday of March at 02:00, last Sunday of October at 03:00 (local time).
        "DAYLIGHT": (b"FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3", "0329T0200"),
        "STANDARD": (b"FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10", "1025T0300"),
    }
    assert b"RDATE" not in ics


def test_start_given_in_utc_is_written_in_paris_time() -> None:
    start = datetime(2027, 3, 28, 8, 0, tzinfo=UTC)
    ics = invitation_ics(
        make_invitation(start=start, end=start + timedelta(minutes=45)), method="REQUEST"
    )
    assert b"\r\nDTSTART;TZID=Europe/Paris:20270328T100000\r\n" in ics
    assert b"\r\nDTEND;TZID=Europe/Paris:20270328T104500\r\n" in ics


def test_second_occurrence_of_the_repeated_hour_is_written_in_utc() -> None:
    # 02:30 happens twice on 31 October 2027; TZID wall time would mean the first one.
    start = datetime(2027, 10, 31, 2, 30, fold=1, tzinfo=PARIS)
    ics = invitation_ics(
        make_invitation(start=start, end=start + timedelta(hours=1)), method="REQUEST"
    )
    _, event = parse(ics)
    assert b"\r\nDTSTART:20271031T013000Z\r\n" in ics
    # In UTC: PEP 495 makes a fold=1 time unequal to anything in another zone.
    assert event.decoded("DTSTART") == start.astimezone(UTC)
    assert event.decoded("DTEND") == datetime(2027, 10, 31, 2, 30, tzinfo=UTC)
    assert b"\r\nDTEND;TZID=Europe/Paris:20271031T033000\r\n" in ics


def test_other_time_zone() -> None:
    tz = ZoneInfo("America/New_York")
    start = datetime(2027, 7, 1, 9, 0, tzinfo=tz)
    ics = invitation_ics(
        make_invitation(start=start, end=start + timedelta(hours=1), tz="America/New_York"),
        method="REQUEST",
    )
    cal, event = parse(ics)
    assert b"DTSTART;TZID=America/New_York:20270701T090000" in ics
    assert event.decoded("DTSTART") == start
    from_vtimezone = cal.walk("VTIMEZONE")[0].to_tz(lookup_tzid=False)
    assert datetime(2027, 7, 1, 9).replace(tzinfo=from_vtimezone).utcoffset() == timedelta(hours=-4)


def test_utc_meeting_needs_no_vtimezone() -> None:
    start = datetime(2027, 5, 3, 9, 0, tzinfo=UTC)
    ics = invitation_ics(
        make_invitation(start=start, end=start + timedelta(hours=1), tz="UTC"), method="REQUEST"
    )
    cal, event = parse(ics)
    assert not cal.walk("VTIMEZONE")
    assert b"\r\nDTSTART:20270503T090000Z\r\n" in ics
    assert event.decoded("DTSTART") == start


def test_zone_without_a_yearly_rule_falls_back_to_explicit_switches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As for a zone whose switches follow no "nth weekday" rule (e.g. Africa/Casablanca).
    monkeypatch.setattr(ics_module, "_yearly_observances", lambda tzid, year: None)
    for day, offset in ((datetime(2027, 3, 28, 10), 2), (datetime(2027, 10, 31, 10), 1)):
        start = day.replace(tzinfo=PARIS)
        ics = invitation_ics(
            make_invitation(start=start, end=start + timedelta(hours=1)), method="REQUEST"
        )
        cal, event = parse(ics)
        timezone = cal.walk("VTIMEZONE")[0]
        assert {sub.name for sub in timezone.subcomponents} == {"STANDARD", "DAYLIGHT"}
        from_vtimezone = timezone.to_tz(lookup_tzid=False)
        assert day.replace(tzinfo=from_vtimezone).utcoffset() == timedelta(hours=offset)
        assert event.decoded("DTSTART") == start


def test_cancel_keeps_uid_and_takes_the_new_sequence() -> None:
    first = make_invitation()
    request = invitation_ics(first, method="REQUEST")
    cancel = invitation_ics(dataclasses.replace(first, sequence=1), method="CANCEL")
    cal, event = parse(cancel)
    _, original = parse(request)
    assert cal["METHOD"] == "CANCEL"
    assert event["UID"] == original["UID"] == "rdv-42@relais.example"
    assert event.decoded("SEQUENCE") == 1
    assert original.decoded("SEQUENCE") == 0
    assert event["STATUS"] == "CANCELLED"
    # RFC 5546 CANCEL: organizer and the attendees being told, same times.
    assert str(event["ORGANIZER"]) == "mailto:anne.martin@ti.example"
    assert len(event["ATTENDEE"]) == 2
    assert event.decoded("DTSTART") == first.start


def test_video_link_goes_to_location_url_and_description() -> None:
    url = "https://visio.example/room/abc?pwd=x1"
    ics = invitation_ics(make_invitation(location="", url=url), method="REQUEST")
    _, event = parse(ics)
    assert event["LOCATION"] == url
    assert str(event["URL"]) == url
    assert event["DESCRIPTION"].endswith(f"\n\nLien de la visioconférence : {url}")
    assert event["DESCRIPTION"].startswith("Ordre du jour :\n")


def test_address_and_video_link() -> None:
    url = "https://visio.example/room/abc"
    ics = invitation_ics(make_invitation(url=url), method="REQUEST")
    _, event = parse(ics)
    assert event["LOCATION"] == "2 rue de l’Église, 18000 Bourges"
    assert str(event["URL"]) == url
    assert url in event["DESCRIPTION"]


def test_no_location_nor_description() -> None:
    ics = invitation_ics(make_invitation(location="", description=""), method="REQUEST")
    _, event = parse(ics)
    assert "LOCATION" not in event
    assert "DESCRIPTION" not in event


def test_line_breaks_in_summary_cannot_add_an_attendee() -> None:
    inv = make_invitation(
        summary="Réunion\r\nATTENDEE:mailto:evil@x",
        location="Mairie\nATTENDEE:mailto:evil@x",
        description="Bonjour\r\nATTENDEE:mailto:evil@x\u2028suite\x00\x1b[31m\u202egnp.exe",
    )
    ics = invitation_ics(inv, method="REQUEST")
    _, event = parse(ics)
    assert [str(a) for a in event["ATTENDEE"]] == [
        "mailto:jean@firm.example",
        "mailto:zoe@cci.example",
    ]
    assert b"\r\nATTENDEE:" not in ics
    assert event["SUMMARY"] == "Réunion ATTENDEE:mailto:evil@x"
    assert event["LOCATION"] == "Mairie ATTENDEE:mailto:evil@x"
    # In the description line breaks stay (escaped as \n); other controls and bidi go.
    assert event["DESCRIPTION"] == "Bonjour\nATTENDEE:mailto:evil@x\nsuite[31mgnp.exe"
    assert b"\x1b" not in ics and b"\x00" not in ics
    assert "\u202e".encode() not in ics
    for line in physical_lines(ics):
        assert b"\r" not in line and b"\n" not in line


def test_names_with_quotes_and_separators_stay_in_their_parameter() -> None:
    inv = make_invitation(
        organizer_name='Anne "La Boss" Martin; ROLE=CHAIR: x',
        attendees=(Attendee('Dupont, Jean; "Jo"\r\nATTENDEE:mailto:evil@x', "jean@firm.example"),),
    )
    ics = invitation_ics(inv, method="REQUEST")
    _, event = parse(ics)
    organizer = event["ORGANIZER"]
    assert str(organizer) == "mailto:anne.martin@ti.example"
    assert organizer.params["CN"] == "Anne 'La Boss' Martin; ROLE=CHAIR: x"
    assert "ROLE" not in organizer.params
    attendee = event["ATTENDEE"]
    # A single attendee is not a list.
    assert str(attendee) == "mailto:jean@firm.example"
    assert attendee.params["CN"] == "Dupont, Jean; 'Jo' ATTENDEE:mailto:evil@x"
    assert attendee.params["ROLE"] == "REQ-PARTICIPANT"
    unfolded = ics.replace(b"\r\n ", b"")
    assert b"ORGANIZER;CN=\"Anne 'La Boss' Martin; ROLE=CHAIR: x\":mailto:" in unfolded


def test_duplicate_attendees_are_merged() -> None:
    inv = make_invitation(
        attendees=(
            Attendee("Jean", "jean@firm.example", required=False),
            Attendee("Jean D.", "JEAN@firm.example"),
        )
    )
    _, event = parse(invitation_ics(inv, method="REQUEST"))
    attendee = event["ATTENDEE"]
    assert str(attendee) == "mailto:jean@firm.example"
    assert attendee.params["ROLE"] == "REQ-PARTICIPANT"


@pytest.mark.parametrize(
    "changes",
    [
        {"start": datetime(2027, 3, 28, 10, 0)},
        {"end": datetime(2027, 3, 28, 11, 0)},
        {"stamp": datetime(2027, 3, 1, 8, 0)},
        {"end": datetime(2027, 3, 28, 10, 0, tzinfo=PARIS)},
        {"end": datetime(2027, 3, 28, 9, 0, tzinfo=PARIS)},
        {"sequence": -1},
        {"sequence": True},
        {"uid": ""},
        {"uid": "rdv 42@relais.example"},
        {"uid": "rdv-42@relais.example\r\nATTENDEE:mailto:evil@x"},
        {"organizer_email": "anne.martin.ti.example"},
        {"organizer_email": "a@b@c"},
        {"organizer_email": "anne@ti.example\r\nATTENDEE:mailto:evil@x"},
        {"organizer_email": "anne martin@ti.example"},
        {"organizer_email": "anne@ti.example:x"},
        {"attendees": ()},
        {"url": "javascript:alert(1)"},
        {"url": "https://visio.example/a b"},
        {"url": "https://visio.example/a\r\nATTENDEE:mailto:evil@x"},
        {"tz": "Europe/Nowhere"},
        {"tz": "../etc/passwd"},
        {"tz": "Europe"},
        {"tz": "Europe/Paris\r\nX"},
    ],
)
def test_invalid_invitations_are_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make_invitation(**changes)


@pytest.mark.parametrize(
    "address", ["jean.firm.example", "jean@", "@firm.example", "je an@firm.example", "j\x00@x.fr"]
)
def test_invalid_attendee_email_is_rejected(address: str) -> None:
    with pytest.raises(ValueError):
        Attendee("Jean", address)


def test_unknown_method_is_rejected() -> None:
    with pytest.raises(ValueError):
        invitation_ics(make_invitation(), method="PUBLISH")  # type: ignore[arg-type]


def test_lines_are_crlf_and_folded_at_75_octets() -> None:
    inv = make_invitation(
        summary="Réunion " + "œuvre’s é " * 30,
        description=("Une très longue ligne d’explication, avec des œ et des ’ " * 20 + "\n") * 3,
        organizer_name="Anne-Éléonore de La Tour d’Auvergne " * 3,
        url="https://visio.example/" + "a" * 150,
    )
    ics = invitation_ics(inv, method="REQUEST")
    assert b"\n" not in ics.replace(b"\r\n", b"")
    assert b"\r" not in ics.replace(b"\r\n", b"")
    lines = physical_lines(ics)
    assert any(line.startswith(b" ") for line in lines)  # something was folded
    for line in lines:
        assert len(line) <= 75, line
        line.decode("utf-8")  # never cut inside a multi-byte character
    _, event = parse(ics)
    assert event["SUMMARY"].startswith("Réunion œuvre’s é œuvre’s")
    assert str(event["URL"]) == inv.url


def test_non_ascii_round_trips() -> None:
    inv = make_invitation(
        summary="Œuvre’s — réunion à Évreux",
        organizer_name="Éloïse Cœur",
        attendees=(Attendee("Gaëtan L’Hôte", "gaetan@firm.example"),),
    )
    ics = invitation_ics(inv, method="REQUEST")
    _, event = parse(ics)
    assert event["SUMMARY"] == "Œuvre’s — réunion à Évreux"
    assert event["ORGANIZER"].params["CN"] == "Éloïse Cœur"
    assert event["ATTENDEE"].params["CN"] == "Gaëtan L’Hôte"
    assert "Œuvre’s — réunion à Évreux".encode() in ics.replace(b"\r\n ", b"")


# --- The email -----------------------------------------------------------------------------


def text_only_message() -> EmailMessage:
    msg = EmailMessage(policy=email.policy.default)
    msg["From"] = "Relais <relais@ti.example>"
    msg["To"] = "jean@firm.example"
    msg["Subject"] = "Invitation : réunion œnologie"
    msg.set_content("Bonjour, vous êtes invité’s.\n")
    return msg


def text_and_html_message() -> EmailMessage:
    draft = EmailDraft(
        to=("Jean Dupont <jean@firm.example>",),
        subject="Invitation : réunion œnologie",
        text="Bonjour, vous êtes invité’s.\n",
        html="<p>Bonjour, vous êtes invité’s.</p>\n",
        reply_to=None,
        message_id="<rdv-42-0@relais.example>",
    )
    return to_email_message(draft, mail_from="Relais <relais@ti.example>", now=STAMP)


def structure(part: Message) -> Any:
    """The MIME tree as nested (content type, children) tuples."""
    if part.is_multipart():
        payload = part.get_payload()
        assert isinstance(payload, list)
        return (part.get_content_type(), [structure(child) for child in payload])
    return part.get_content_type()


def check_invitation_email(msg: EmailMessage, ics: bytes, method: str, bodies: list[str]) -> None:
    raw = msg.as_bytes(policy=email.policy.SMTP)
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"] == "Invitation : réunion œnologie"
    assert structure(parsed) == (
        "multipart/mixed",
        [("multipart/alternative", [*bodies, "text/calendar"]), "application/ics"],
    )
    alternative, attachment = parsed.iter_parts()
    *_, inline = alternative.iter_parts()

    assert inline.get_param("method") == method
    assert inline.get_param("charset") == "UTF-8"
    assert inline.get_content_disposition() is None
    assert inline["Content-Transfer-Encoding"] == "base64"
    assert inline.get_payload(decode=True) == ics

    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_filename() == "invite.ics"
    assert attachment.get_param("name") == "invite.ics"
    assert attachment.get_payload(decode=True) == ics

    # The readable bodies are still there and still decode.
    body = parsed.get_body(preferencelist=("plain",))
    assert body is not None
    # Lines arrive with CRLF once sent with the SMTP policy.
    assert body.get_content().splitlines() == ["Bonjour, vous êtes invité’s."]
    cal, _ = parse(attachment.get_payload(decode=True))
    assert cal["METHOD"] == method


def test_attach_to_text_only_message() -> None:
    ics = invitation_ics(make_invitation(), method="REQUEST")
    msg = text_only_message()
    attach_invitation(msg, ics, method="REQUEST")
    assert msg["To"] == "jean@firm.example"
    check_invitation_email(msg, ics, "REQUEST", ["text/plain"])


def test_attach_to_text_and_html_message() -> None:
    ics = invitation_ics(make_invitation(), method="REQUEST")
    msg = text_and_html_message()
    attach_invitation(msg, ics, method="REQUEST")
    assert msg["Message-ID"] == "<rdv-42-0@relais.example>"
    check_invitation_email(msg, ics, "REQUEST", ["text/plain", "text/html"])
    html = msg.get_body(preferencelist=("html",))
    assert html is not None
    assert "invité’s" in html.get_content()


def test_attach_cancel() -> None:
    ics = invitation_ics(make_invitation(sequence=1), method="CANCEL")
    msg = text_and_html_message()
    attach_invitation(msg, ics, method="CANCEL")
    check_invitation_email(msg, ics, "CANCEL", ["text/plain", "text/html"])


def test_attach_to_message_that_already_has_attachments() -> None:
    draft = dataclasses.replace(
        EmailDraft.from_payload(text_and_html_message_payload()),
        attachments=(("ordre-du-jour.pdf", "application/pdf", b"%PDF-1.4"),),
    )
    msg = to_email_message(draft, mail_from="Relais <relais@ti.example>", now=STAMP)
    ics = invitation_ics(make_invitation(), method="REQUEST")
    attach_invitation(msg, ics, method="REQUEST")
    parsed = email.message_from_bytes(
        msg.as_bytes(policy=email.policy.SMTP), policy=email.policy.default
    )
    assert structure(parsed) == (
        "multipart/mixed",
        [
            ("multipart/alternative", ["text/plain", "text/html", "text/calendar"]),
            "application/pdf",
            "application/ics",
        ],
    )


def text_and_html_message_payload() -> dict[str, Any]:
    return {
        "to": ["jean@firm.example"],
        "subject": "Invitation : réunion œnologie",
        "text": "Bonjour, vous êtes invité’s.\n",
        "html": "<p>Bonjour</p>\n",
        "reply_to": None,
        "message_id": "<rdv-42-0@relais.example>",
    }


def test_attach_to_mixed_message_whose_body_is_plain_text() -> None:
    msg = text_only_message()
    msg.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="odj.pdf")
    ics = invitation_ics(make_invitation(), method="REQUEST")
    attach_invitation(msg, ics, method="REQUEST")
    parsed = email.message_from_bytes(
        msg.as_bytes(policy=email.policy.SMTP), policy=email.policy.default
    )
    assert structure(parsed) == (
        "multipart/mixed",
        [
            ("multipart/alternative", ["text/plain", "text/calendar"]),
            "application/pdf",
            "application/ics",
        ],
    )


def test_attach_to_message_without_content_type() -> None:
    msg = EmailMessage(policy=email.policy.default)
    msg["Subject"] = "Invitation : réunion œnologie"
    msg.set_payload("Bonjour, vous êtes invité’s.\n".encode("ascii", "replace").decode())
    ics = invitation_ics(make_invitation(), method="REQUEST")
    attach_invitation(msg, ics, method="REQUEST")
    parsed = email.message_from_bytes(
        msg.as_bytes(policy=email.policy.SMTP), policy=email.policy.default
    )
    assert structure(parsed) == (
        "multipart/mixed",
        [("multipart/alternative", ["text/plain", "text/calendar"]), "application/ics"],
    )
    body = parsed.get_body(preferencelist=("plain",))
    assert body is not None and body.get_content().startswith("Bonjour")


def test_attach_rejects_a_mismatched_method_and_a_second_invitation() -> None:
    ics = invitation_ics(make_invitation(), method="REQUEST")
    with pytest.raises(ValueError):
        attach_invitation(text_only_message(), ics, method="CANCEL")
    with pytest.raises(ValueError):
        attach_invitation(text_only_message(), b"not a calendar", method="REQUEST")
    msg = text_only_message()
    attach_invitation(msg, ics, method="REQUEST")
    with pytest.raises(ValueError):
        attach_invitation(msg, ics, method="REQUEST")
    not_readable = EmailMessage(policy=email.policy.default)
    not_readable.set_content(b"%PDF-1.4", maintype="application", subtype="pdf")
    with pytest.raises(ValueError):
        attach_invitation(not_readable, ics, method="REQUEST")
    with pytest.raises(ValueError):
        attach_invitation(EmailMessage(policy=email.policy.default), ics, method="REQUEST")
