"""Emails written directly as bytes (`bot.services.mime`): the same email, as safe, cheaper.

Each case builds the draft both ways, the standard library's `EmailMessage` and
`to_outgoing`, and reads the second back as a receiving client does.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from email import policy
from email.header import decode_header
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from bot.services import mime
from bot.services.emails import EmailDraft, to_email_message, to_outgoing
from testing.smtp import SmtpServer
from tests.test_mail import (
    ANIMATOR,
    EXPECTED_HEADERS,
    INJECTION,
    MAIL_FROM,
    PARTNER,
    bodies,
    draft,
    header_names,
    need,
    sender_for,
)

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
HOSTILE_NAMES = [
    "Frédérique Lebœuf",
    "Jean Dupont",
    "A. B. d'Ornano (CCI)",
    'Quote " back \\ slash',
    "x" * 200,
    "Menuiserie " * 30,
    "\u202eevil\u202c name\u200f",
    "=?utf-8?q?forged?=",
    "日本語の名前" * 15,
    INJECTION,
    "Tab\there\x00nul",
]


def outgoing(message_draft: EmailDraft, mail_from: str = MAIL_FROM) -> mime.OutgoingEmail:
    """The draft written directly (asserting it did not fall back to the standard library)."""
    built = to_outgoing(message_draft, mail_from=mail_from, now=NOW)
    assert isinstance(built, mime.OutgoingEmail)
    return built


def parsed(raw: bytes) -> EmailMessage:
    """The bytes as a receiving client parses them."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def raw_header(raw: bytes, name: str) -> str:
    """One header's value as written, unfolded."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii").replace("\r\n ", " ")
    [line] = [line for line in head.split("\r\n") if line.startswith(f"{name}: ")]
    return line[len(name) + 2:]


def display_name(value: str) -> str:
    """The display name of one written mailbox, as RFC 2047 decodes it.

    (The standard library's parser keeps the folding space between two encoded words of a
    display name; RFC 2047 says to drop it, as mail clients do.)
    """
    phrase = value.rsplit(" <", 1)[0]
    if phrase.startswith('"'):
        return phrase[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return "".join(part.decode(charset or "ascii") if isinstance(part, bytes) else part
                   for part, charset in decode_header(phrase))


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_the_same_email_as_the_standard_library(name: str) -> None:
    message_draft = draft(need(firm_name=name, description=f"Bonjour\n{name}\r\nFin \n"),
                          partner_name=name)
    raw = outgoing(message_draft).data
    ours = parsed(raw)
    theirs = parsed(to_email_message(message_draft, mail_from=MAIL_FROM, now=NOW)
                    .as_bytes(policy=policy.SMTP))
    assert set(header_names(raw)) == EXPECTED_HEADERS
    for header in ("From", "Date", "Message-ID", "Auto-Submitted", "X-Relais-Reference"):
        assert str(ours[header]) == str(theirs[header]), header
    # As typed, even when it looks like an encoded word (the standard library lets a
    # reader decode "=?utf-8?q?forged?=" as "forged").
    assert str(ours["Subject"]) == message_draft.subject
    for header, stored in (("To", message_draft.to[0]), ("Reply-To", message_draft.reply_to)):
        [mine], [reference] = ours[header].addresses, theirs[header].addresses
        assert mine.addr_spec == reference.addr_spec
        # The draft stores "Name <addr>" on one line: what every client must read back.
        expected = policy.default.header_factory(header, stored).addresses[0].display_name
        assert display_name(raw_header(raw, header)) == expected
    assert bodies(ours) == bodies(theirs)
    assert not ours.defects and not any(part.defects for part in ours.walk())


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_no_header_can_be_added_and_every_line_is_short_and_7_bit(name: str) -> None:
    raw = outgoing(draft(need(firm_name=name), partner_name=name)).data
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert set(header_names(raw)) == EXPECTED_HEADERS
    assert b"\r\nBcc:" not in head
    assert raw.isascii()
    assert max(len(line) for line in raw.split(b"\r\n")) <= mime.MAX_LINE
    # No bare CR or LF anywhere: every line ends with CRLF.
    assert raw.count(b"\r") == raw.count(b"\n") == raw.count(b"\r\n")
    assert "\u202e" not in display_name(raw_header(raw, "To"))


def test_a_value_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError):
        mime.unstructured_header("Subject", "Bonjour\r\nBcc: evil@x")
    with pytest.raises(ValueError):
        outgoing(replace(draft(), subject="Bonjour\nBcc: evil@x"))
    with pytest.raises(ValueError):
        outgoing(replace(draft(), headers={"X-Relais-Reference": "a\r\nBcc: evil@x"}))
    with pytest.raises(ValueError):
        outgoing(replace(draft(), headers={"Bcc": "evil@x"}))
    with pytest.raises(ValueError):
        outgoing(replace(draft(), to=("Evil <evil@x>\r\nBcc: other@x",)))


def test_the_envelope_is_the_sender_and_every_recipient() -> None:
    built = outgoing(draft(), mail_from="Relais T.I. <relais@relais.example.org>")
    assert built.sender == "relais@relais.example.org"
    assert built.recipients == (PARTNER,)
    assert built.get("Message-ID") == draft().message_id
    assert parsed(built.data)["From"].addresses[0].display_name == "Relais T.I."


def test_what_it_does_not_write_goes_through_the_standard_library() -> None:
    attached = replace(draft(), attachments=(("plan.pdf", "application/pdf", b"%PDF"),))
    assert isinstance(to_outgoing(attached, mail_from=MAIL_FROM), EmailMessage)
    international = replace(draft(), to=("Josée <jose@exémple.fr>",))
    assert isinstance(to_outgoing(international, mail_from=MAIL_FROM), EmailMessage)


async def test_sent_through_a_real_smtp_server(smtp: SmtpServer) -> None:
    async with sender_for(smtp) as sender:
        await sender.send(outgoing(draft(partner_name="Frédérique Lebœuf")))
    [received] = smtp.messages
    assert received.mail_from == "relais@relais.example.org"
    assert received.rcpt_tos == (PARTNER,)
    assert received.message["Subject"] == (
        "[TI-2026-0042] Recrutement — Menuiserie X (Paray-le-Monial)")
    assert received.message["Reply-To"] == f"Claire Martin <{ANIMATOR}>"
    assert received.message["To"].addresses[0].display_name == "Frédérique Lebœuf"
    assert bodies(received.message)[0] == draft().text


def test_both_builders_refuse_a_date_without_a_time_zone() -> None:
    """A naive Date would be read in the reader's zone: refused by the fast path too."""
    naive = datetime(2026, 12, 7, 9, 0)
    for build in (to_outgoing, to_email_message):
        with pytest.raises(ValueError, match="timezone-aware"):
            build(draft(), mail_from=MAIL_FROM, now=naive)
