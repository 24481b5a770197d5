"""Partner emails as a person reads them, and sending them through a real SMTP server."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest

from bot.config import Settings
from bot.mail import (
    MailConfigError,
    MailSender,
    MailSetupError,
    PermanentMailError,
    TransientMailError,
)
from bot.services.emails import (
    EmailDraft,
    NeedView,
    partner_need_email,
    to_email_message,
)
from testing.smtp import RecordingHandler, SmtpServer

MAIL_FROM = "Relais <relais@relais.example.org>"
PARTNER = "entreprises.paray@francetravail.example"
ANIMATOR = "claire.martin@example.org"
INJECTION = "X\r\nBcc: evil@x"
SCRIPT = "<script>alert('x')</script>"
EXPECTED_HEADERS = {
    "From", "To", "Reply-To", "Subject", "Date", "Message-ID", "Auto-Submitted",
    "X-Relais-Reference", "MIME-Version", "Content-Type",
}


def need(**changes: Any) -> NeedView:
    """A need as the routing service shows it to a partner."""
    values: dict[str, Any] = {
        "reference": "TI-2026-0042",
        "theme_label": "Recrutement",
        "firm_name": "Menuiserie X",
        "siret": "73282932000074",
        "commune_name": "Paray-le-Monial",
        "commune_insee": "71342",
        "epci_name": "CC Le Grand Charolais",
        "description": "Nous cherchons deux soudeurs qualifiés.\nPoste en CDI, dès janvier.",
        "urgency_label": "Dans le mois",
        "contact_method_label": "Par téléphone",
        "contact_value": "06 12 34 56 78",
        "created_at": datetime(2026, 11, 28, 9, 0, tzinfo=UTC),
        "territory_name": "Bourgogne Industrie",
    }
    values.update(changes)
    return NeedView(**values)


def draft(view: NeedView | None = None, **changes: Any) -> EmailDraft:
    """The partner email for a need (France Travail, acknowledgement within 2 working days)."""
    values: dict[str, Any] = {
        "need": view or need(),
        "partner_name": "France Travail Paray",
        "partner_email": PARTNER,
        "reason": "Partenaire « Recrutement » de la CC Le Grand Charolais.",
        "ack_days": 2,
        "ack_deadline": date(2026, 12, 1),
        "animator_name": "Claire Martin",
        "animator_email": ANIMATOR,
        "mail_domain": "relais.example.org",
    }
    values.update(changes)
    return partner_need_email(**values)


def as_received(message: EmailMessage) -> tuple[EmailMessage, bytes]:
    """The message as the partner's server gets it: flattened for SMTP, parsed back."""
    raw = message.as_bytes(policy=policy.SMTP)
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    return parsed, raw


def bodies(message: EmailMessage) -> tuple[str, str]:
    """The text and HTML parts, decoded, with the line endings a mail client shows."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


def header_names(raw: bytes) -> list[str]:
    """Names of the top-level header lines (continuation lines excluded)."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    return [line.split(":", 1)[0] for line in head.split("\r\n") if line and line[0] not in " \t"]


def email_for(recipient: str = PARTNER, **changes: Any) -> EmailMessage:
    """A ready-to-send partner email."""
    return to_email_message(draft(partner_email=recipient, **changes), mail_from=MAIL_FROM)


# --- Content ---------------------------------------------------------------------------------


def test_partner_email_as_the_partner_reads_it() -> None:
    message, _ = as_received(
        to_email_message(draft(), mail_from=MAIL_FROM, now=datetime(2026, 11, 28, 9, 5, tzinfo=UTC))
    )
    assert message["Subject"] == "[TI-2026-0042] Recrutement — Menuiserie X (Paray-le-Monial)"
    assert message["From"] == MAIL_FROM
    assert message["To"] == f"France Travail Paray <{PARTNER}>"
    assert message["Reply-To"] == f"Claire Martin <{ANIMATOR}>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-Relais-Reference"] == "TI-2026-0042"
    assert message["Message-ID"] == "<need-TI-2026-0042-" + message["Message-ID"].split("-", 4)[4]
    assert message["Message-ID"].endswith("@relais.example.org>")
    assert message.get_content_type() == "multipart/alternative"
    sent_at = message["Date"].datetime
    assert sent_at == datetime(2026, 11, 28, 9, 5, tzinfo=UTC)
    assert sent_at.utcoffset() is not None and sent_at.utcoffset().total_seconds() == 0

    text, html = bodies(message)
    assert text.startswith(
        "Bonjour,\n\nMerci d'accuser réception avant le mardi 1er décembre 2026 "
        "(sous 2 jours ouvrés) en répondant à ce message ; votre réponse parvient "
        "directement à Claire Martin, qui suit la demande.\n"
    )
    # What is expected first, then the need, then why this partner, then whom to contact.
    positions = [
        text.index(part)
        for part in (
            "Merci d'accuser réception",
            "Entreprise : Menuiserie X",
            "SIRET : 732 829 320 00074",
            "Commune : Paray-le-Monial (71342)",
            "Intercommunalité : CC Le Grand Charolais",
            "Déposée le : 28 novembre 2026 à 10 h 00",  # Paris time
            "Coordonnées : 06 12 34 56 78",
            "    Nous cherchons deux soudeurs qualifiés.\n    Poste en CDI, dès janvier.",
            "Partenaire « Recrutement » de la CC Le Grand Charolais.",
            "Claire Martin, Territoire d'industrie Bourgogne Industrie\nclaire.martin@example.org",
        )
    ]
    assert positions == sorted(positions)
    assert "Merci d'accuser réception avant le mardi 1er décembre 2026</strong>" in html
    assert "Nous cherchons deux soudeurs qualifiés.<br>\nPoste en CDI, dès janvier." in html
    assert '<html lang="fr">' in html


def test_message_id_is_stable_for_a_need_and_a_partner() -> None:
    first, second = draft(), draft()
    assert first.message_id == second.message_id
    assert to_email_message(first, mail_from=MAIL_FROM)["Message-ID"] == first.message_id
    other_partner = draft(partner_email="contact@cci71.example")
    assert other_partner.message_id != first.message_id
    other_need = draft(need(reference="TI-2026-0043"))
    assert other_need.message_id != first.message_id
    # With the partner's id from the territory file, the id says who it went to.
    assert draft(partner_id="ft-paray").message_id == (
        "<need-TI-2026-0042-ft-paray@relais.example.org>"
    )
    # An address written differently is still the same partner.
    assert draft(partner_email=PARTNER.upper()).message_id == first.message_id


@pytest.mark.parametrize("field", ["firm_name", "description", "commune_name", "contact_value"])
def test_firm_text_cannot_add_a_header(field: str) -> None:
    view = need(**{field: INJECTION})
    message, raw = as_received(
        to_email_message(draft(view, partner_name=INJECTION), mail_from=MAIL_FROM)
    )
    assert set(header_names(raw)) == EXPECTED_HEADERS
    assert "Bcc" not in message
    assert b"\r\nBcc:" not in raw.split(b"\r\n\r\n", 1)[0]
    assert message["To"].addresses[0].addr_spec == PARTNER
    text, _ = bodies(message)
    assert "Bcc: evil@x" not in text.split("\n") and "\r" not in text


def test_script_is_escaped_in_html_and_verbatim_in_text() -> None:
    message, _ = as_received(
        to_email_message(draft(need(firm_name=SCRIPT, description=f"Bonjour\n{SCRIPT}")),
                         mail_from=MAIL_FROM)
    )
    text, html = bodies(message)
    assert f"Entreprise : {SCRIPT}" in text
    assert f"    Bonjour\n    {SCRIPT}" in text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "Bonjour<br>\n&lt;script&gt;" in html
    assert message["Subject"] == f"[TI-2026-0042] Recrutement — {SCRIPT} (Paray-le-Monial)"


def test_invisible_and_control_characters_are_dropped() -> None:
    # U+202E would display the rest of the line reversed; \x1b starts a terminal escape.
    text, html = bodies(as_received(to_email_message(
        draft(need(firm_name="Atelier\u202e lirpa\x1b[31m", description="a\x00b\u2028c\x0bd")),
        mail_from=MAIL_FROM,
    ))[0])
    assert "Entreprise : Atelier lirpa [31m\n" in text
    assert "    ab\n    c\n    d\n" in text
    assert "\u202e" not in html and "\x1b" not in html


def test_long_subject_is_limited_and_folded() -> None:
    message, raw = as_received(
        to_email_message(draft(need(firm_name="Menuiserie " * 80)), mail_from=MAIL_FROM)
    )
    subject = message["Subject"]
    assert len(subject) <= 160
    assert subject.startswith("[TI-2026-0042] Recrutement — Menuiserie")
    assert subject.endswith("… (Paray-le-Monial)")
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 78


def test_sender_address_in_obsolete_but_common_form() -> None:
    message = to_email_message(draft(), mail_from="Relais T.I. <relais@relais.example.org>")
    assert message["From"].addresses[0].addr_spec == "relais@relais.example.org"
    assert message["From"].addresses[0].display_name == "Relais T.I."


def test_without_animator_email_replies_go_to_the_sender() -> None:
    message, _ = as_received(
        to_email_message(draft(animator_name="Relais", animator_email=""), mail_from=MAIL_FROM)
    )
    assert "Reply-To" not in message
    text, _ = bodies(message)
    assert "en répondant à ce message.\n" in text


def test_payload_is_json_and_round_trips_with_attachments() -> None:
    original = draft()
    with_file = EmailDraft(
        **{**{f: getattr(original, f) for f in original.__dataclass_fields__},
           "attachments": (("fiche besoin.pdf", "application/pdf", b"%PDF-1.4\x00\xff"),)}
    )
    payload = json.loads(json.dumps(with_file.to_payload()))
    assert EmailDraft.from_payload(payload) == with_file
    message = to_email_message(EmailDraft.from_payload(payload), mail_from=MAIL_FROM)
    assert message.get_content_type() == "multipart/mixed"
    parts = list(message.iter_attachments())
    assert [(p.get_filename(), p.get_content_type()) for p in parts] == [
        ("fiche besoin.pdf", "application/pdf")
    ]
    assert parts[0].get_content() == b"%PDF-1.4\x00\xff"
    assert bodies(message)[0] == original.text


def test_a_stored_payload_cannot_smuggle_headers() -> None:
    payload = draft().to_payload()
    for tampered in (
        {**payload, "headers": {"Bcc": "evil@x"}},
        {**payload, "headers": {"X-Relais-Reference": "a\r\nBcc: evil@x"}},
        {**payload, "subject": "Bonjour\r\nBcc: evil@x"},
        {**payload, "to": ["evil@x\r\nBcc: other@x"]},
        {**payload, "to": ["a@x, b@y"]},
        {**payload, "message_id": "<a@b>\r\nBcc: evil@x"},
    ):
        with pytest.raises(ValueError):
            to_email_message(EmailDraft.from_payload(tampered), mail_from=MAIL_FROM)


def test_naive_created_at_is_refused() -> None:
    with pytest.raises(ValueError):
        need(created_at=datetime(2026, 11, 28, 9, 0))


# --- Sending ---------------------------------------------------------------------------------


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    """An SMTP server on 127.0.0.1 in the test's loop."""
    async with SmtpServer() as server:
        yield server


def sender_for(server: SmtpServer, **options: Any) -> MailSender:
    """A plaintext MailSender for the test server."""
    values: dict[str, Any] = {
        "host": "127.0.0.1", "port": server.port, "security": "none", "timeout": 5.0,
        "local_hostname": "relais.test",
    }
    values.update(options)
    return MailSender(**values)


async def test_sends_through_a_real_smtp_server(smtp: SmtpServer) -> None:
    async with sender_for(smtp) as sender:
        await sender.send(email_for())
    [received] = smtp.messages
    assert received.mail_from == "relais@relais.example.org"
    assert received.rcpt_tos == (PARTNER,)
    assert received.message["Subject"] == "[TI-2026-0042] Recrutement — Menuiserie X (Paray-le-Monial)"
    assert received.message["Reply-To"] == f"Claire Martin <{ANIMATOR}>"
    assert received.message["Message-ID"] == draft().message_id
    assert bodies(received.message)[0] == draft().text
    assert set(header_names(received.raw)) == EXPECTED_HEADERS
    assert smtp.handler.ehlo_names == ["relais.test"]


async def test_one_connection_for_many_messages(smtp: SmtpServer) -> None:
    async with sender_for(smtp) as sender:
        for n in range(5):
            await sender.send(email_for(f"partner{n}@example.org"))
        assert sender.connections == 1
    assert smtp.connections == 1
    assert [m.rcpt_tos[0] for m in smtp.messages] == [f"partner{n}@example.org" for n in range(5)]
    assert {m.connection for m in smtp.messages} == {1}


async def test_a_fresh_connection_after_the_per_connection_cap(smtp: SmtpServer) -> None:
    async with sender_for(smtp, max_messages_per_connection=2) as sender:
        for n in range(5):
            await sender.send(email_for(f"partner{n}@example.org"))
    assert [m.connection for m in smtp.messages] == [1, 1, 2, 2, 3]


async def test_server_down_then_back(smtp: SmtpServer) -> None:
    async with sender_for(smtp) as sender:
        await sender.send(email_for())
        await smtp.stop()
        with pytest.raises(TransientMailError) as caught:
            await sender.send(email_for())
        assert isinstance(caught.value, ConnectionError)
        await smtp.start()
        await sender.send(email_for("other@example.org"))
    assert [m.rcpt_tos for m in smtp.messages] == [(PARTNER,), ("other@example.org",)]
    assert smtp.connections == 2


async def test_a_silently_dead_connection_is_replaced(
    smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.mail")
    async with sender_for(smtp) as sender:
        await sender.send(email_for())
        # No await between the hang-up and the send: the client still thinks it is connected.
        smtp.drop_connections()
        await sender.send(email_for("other@example.org"))
        assert sender.connections == 2
    assert len(smtp.messages) == 2
    assert "was closed; reconnecting" in caplog.text


async def test_a_421_on_a_reused_connection_is_retried_once(
    smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.mail")
    async with sender_for(smtp) as sender:
        await sender.send(email_for())
        smtp.handler.mail_replies.append("421 4.4.2 smtp.test Error: timeout exceeded")
        await sender.send(email_for("other@example.org"))
    assert [m.connection for m in smtp.messages] == [1, 2]
    assert "(421); reconnecting" in caplog.text


async def test_a_421_on_a_fresh_connection_is_transient(smtp: SmtpServer) -> None:
    smtp.handler.mail_replies.extend(["421 4.3.2 Service not available"])
    async with sender_for(smtp) as sender:
        with pytest.raises(TransientMailError):
            await sender.send(email_for())
        await sender.send(email_for())
    assert len(smtp.messages) == 1


async def test_recipient_refused_for_good(smtp: SmtpServer) -> None:
    smtp.handler.refuse_rcpt[PARTNER] = "550 5.1.1 Utilisateur inconnu"
    async with sender_for(smtp) as sender:
        with pytest.raises(PermanentMailError) as caught:
            await sender.send(email_for())
        assert isinstance(caught.value, ValueError)
        assert "550" in str(caught.value) and PARTNER in str(caught.value)
        # The session was reset, not lost: the next message uses the same connection.
        await sender.send(email_for("other@example.org"))
    assert smtp.connections == 1
    assert [m.rcpt_tos for m in smtp.messages] == [("other@example.org",)]


async def test_recipient_refused_for_now(smtp: SmtpServer) -> None:
    smtp.handler.refuse_rcpt[PARTNER] = "451 4.7.1 Greylisted, try again later"
    async with sender_for(smtp) as sender:
        with pytest.raises(TransientMailError) as caught:
            await sender.send(email_for())
    assert "451" in str(caught.value)
    assert not isinstance(caught.value, PermanentMailError)


async def test_data_refused_for_good(smtp: SmtpServer) -> None:
    smtp.handler.refuse_data = "554 5.6.0 Message refusé"
    async with sender_for(smtp) as sender:
        with pytest.raises(PermanentMailError):
            await sender.send(email_for())


async def test_starttls_required_but_not_offered(smtp: SmtpServer) -> None:
    sender = sender_for(smtp, security="starttls", username="relais", password="secret")
    with pytest.raises(MailSetupError) as caught:
        await sender.send(email_for())
    await sender.close()
    assert "STARTTLS" in str(caught.value)
    assert isinstance(caught.value, TransientMailError)  # retry once the server is fixed
    assert smtp.messages == []


async def test_implicit_tls_against_a_plaintext_server(smtp: SmtpServer) -> None:
    sender = sender_for(smtp, security="tls")
    with pytest.raises(MailSetupError):
        await sender.send(email_for())
    await sender.close()
    assert smtp.messages == []


async def test_whole_send_is_bounded_by_one_timeout(smtp: SmtpServer) -> None:
    class Slow(RecordingHandler):
        """Answers every step in 0.2 s: each command is in time, the whole is not."""

        async def handle_RCPT(self, *args: Any) -> str:
            await asyncio.sleep(0.2)
            return await super().handle_RCPT(*args)

        async def handle_MAIL(self, *args: Any) -> str:
            await asyncio.sleep(0.2)
            return await super().handle_MAIL(*args)

        async def handle_DATA(self, *args: Any) -> str:
            await asyncio.sleep(0.2)
            return await super().handle_DATA(*args)

    async with SmtpServer(Slow()) as slow:
        sender = sender_for(slow, timeout=0.45)
        # Each step is in time and the whole takes 0.6 s or more: only a bound on the whole
        # send can fail it, and the error names that bound.
        with pytest.raises(TransientMailError) as caught:
            await sender.send(email_for())
        assert "0.45" in str(caught.value)
        assert not sender.connected
        await sender.close()


def test_credentials_are_never_sent_in_plaintext_to_a_remote_host() -> None:
    with pytest.raises(MailConfigError):
        MailSender(host="smtp.example.org", port=25, security="none", username="relais",
                   password="secret")
    with pytest.raises(MailConfigError):
        MailSender(host="smtp.example.org", port=587, password="secret")
    # On this machine nothing leaves it: allowed (a local relay).
    for host in ("localhost", "127.0.0.1", "::1"):
        MailSender(host=host, port=25, security="none", username="relais", password="secret")


def test_from_settings() -> None:
    settings = Settings(_env_file=None, SMTP_HOST="smtp.example.org", SMTP_PORT=465,  # type: ignore[call-arg]
                        SMTP_SECURITY="tls", SMTP_USERNAME="relais", SMTP_PASSWORD="secret",
                        SMTP_TIMEOUT=7)
    sender = MailSender.from_settings(settings)
    assert (sender.host, sender.port, sender.security, sender.timeout) == (
        "smtp.example.org", 465, "tls", 7.0
    )
    plaintext = Settings(_env_file=None, SMTP_HOST="smtp.example.org", SMTP_SECURITY="none",  # type: ignore[call-arg]
                         SMTP_USERNAME="relais", SMTP_PASSWORD="secret")
    with pytest.raises(MailConfigError):
        MailSender.from_settings(plaintext)
