"""Which inbound emails were sent by a program and must never be answered."""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers.mail.automatic import automatic_reason
from handlers.mail.decode import InboundMail, parse_inbound

CORPUS = Path(__file__).parent / "mail_corpus"

# Every corpus email, with the reason expected (None: a person wrote it, it may be answered).
CORPUS_REASONS: dict[str, str | None] = {
    "oof_outlook_fr.eml": "auto-submitted",
    "oof_zimbra_en.eml": "auto-submitted",  # "auto-replied (zimbra; vacation)": comment ignored
    "vacation_gmail.eml": "auto-submitted",  # its subject says nothing
    "ndr_exchange.eml": "dsn",
    "bounce_postfix.eml": "dsn",
    "bounce_exim_plain.eml": "dsn",  # not a multipart/report: X-Failed-Recipients
    "mdn_thunderbird.eml": "mdn",
    "list_sympa.eml": "precedence",
    "newsletter_brevo.eml": "list",
    "x_autoreply_hosting.eml": "x-autoreply",
    "suppress_oof_crm.eml": "x-auto-response-suppress",
    "null_return_path.eml": "null-return-path",
    "noreply_notification.eml": "sender",
    "oof_subject_only.eml": "subject",
    "human_outlook_fr.eml": None,  # X-MS-Exchange-* headers everywhere, still a person
    "human_outlook_meeting.eml": None,  # X-Auto-Response-Suppress: RN, NRN
    "human_gmail_fr.eml": None,
    "human_ack_orange.eml": None,  # subject "Accusé de réception – demande TI-2026-0042"
    "human_thunderbird_latin1.eml": None,  # Auto-Submitted: no
    "human_iphone.eml": None,
    "human_html_only_cp1252.eml": None,
    "human_nested_related.eml": None,
    "human_forward_rfc822.eml": None,
    "malformed.eml": None,
    "lying_latin1.eml": None,
    "lying_utf8.eml": None,
}


def test_every_corpus_email_has_an_expected_reason() -> None:
    assert sorted(p.name for p in CORPUS.glob("*.eml")) == sorted(CORPUS_REASONS)
    assert sum(reason is not None for reason in CORPUS_REASONS.values()) >= 14
    assert sum(reason is None for reason in CORPUS_REASONS.values()) >= 8


@pytest.mark.parametrize(("name", "reason"), sorted(CORPUS_REASONS.items()))
def test_corpus(name: str, reason: str | None) -> None:
    assert automatic_reason(parse_inbound((CORPUS / name).read_bytes())) == reason


def mail(headers: str = "", *, subject: str = "Question sur la demande", body: str = "Bonjour.") -> InboundMail:
    """A plain human email, with extra header lines (they may replace From)."""
    lines = [line for line in headers.strip("\n").split("\n") if line]
    if not any(line.lower().startswith("from:") for line in lines):
        lines.insert(0, "From: Jean Dupont <jean.dupont@menuiserie-x.example>")
    lines += [
        "To: relais@relais.example.org",
        f"Subject: {subject}",
        "Message-ID: <t-1@menuiserie-x.example>",
        "Date: Tue, 1 Dec 2026 10:00:00 +0100",
    ]
    return parse_inbound(("\n".join(lines) + "\n\n" + body + "\n").encode())


def test_a_plain_email_is_human() -> None:
    assert automatic_reason(mail()) is None


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        # RFC 3834 Auto-Submitted: anything but "no".
        ("Auto-Submitted: auto-generated", "auto-submitted"),
        ("Auto-Submitted: auto-replied", "auto-submitted"),
        ("Auto-Submitted: Auto-Replied; owner-email=x@y.example", "auto-submitted"),
        ("Auto-Submitted: auto-notified", "auto-submitted"),
        ("Auto-Submitted: no", None),
        ("Auto-Submitted: No (a person)", None),
        ("Auto-Submitted:", None),
        # Precedence.
        ("Precedence: bulk", "precedence"),
        ("Precedence: JUNK", "precedence"),
        ("Precedence: list", "precedence"),
        ("Precedence: auto_reply", "precedence"),
        ("Precedence: first-class", None),
        ("Precedence: normal", None),
        # Older auto-responder flags.
        ("X-Autoreply: yes", "x-autoreply"),
        ("X-Autoreply: YES", "x-autoreply"),
        ("X-Autoreply: no", None),
        ("X-Autorespond: vacation", "x-autorespond"),
        # Microsoft: only All, OOF or AutoReply mean automatic.
        ("X-Auto-Response-Suppress: All", "x-auto-response-suppress"),
        ("X-Auto-Response-Suppress: OOF", "x-auto-response-suppress"),
        ("X-Auto-Response-Suppress: DR, RN, NRN, OOF, AutoReply", "x-auto-response-suppress"),
        ("X-Auto-Response-Suppress: autoreply", "x-auto-response-suppress"),
        ("X-Auto-Response-Suppress: RN, NRN", None),
        ("X-Auto-Response-Suppress: DR", None),
        ("X-Auto-Response-Suppress: OOFish", None),
        # Lists.
        ("List-Id: <animateurs-ti.listes.anct.example>", "list"),
        ("List-Id: Animateurs TI <animateurs-ti.listes.anct.example>", "list"),
        ("List-Unsubscribe: <mailto:unsubscribe@news.example>", "list"),
        ("List-Unsubscribe:", None),
        ("List-Post: <mailto:x@lists.example>", None),  # alone, not decisive
        # Envelope sender.
        ("Return-Path: <>", "null-return-path"),
        ("Return-Path: < >", "null-return-path"),
        ("Return-Path: <> (bounce)", "null-return-path"),
        ("Return-Path: <jean.dupont@menuiserie-x.example>", None),
        ("Return-Path: <jean@x.example>\nReturn-Path: <>", None),  # the first is the envelope's
        # Reports and bounces.
        ("X-Failed-Recipients: contact@x.example", "dsn"),
        ("Content-Type: multipart/report; report-type=delivery-status; boundary=b", "dsn"),
        ('Content-Type: multipart/report; report-type="Disposition-Notification"; boundary=b', "mdn"),
        ("Content-Type: multipart/report; report-type=feedback-report; boundary=b", "report"),
        ("Content-Type: multipart/report; boundary=b", "report"),
        # Unrelated Exchange headers.
        ("X-MS-Exchange-Organization-SCL: -1\nX-MS-Has-Attach: yes\nThread-Index: AQHb", None),
        ("X-Mailer: Microsoft Outlook 16.0\nImportance: high", None),
    ],
)
def test_headers(headers: str, reason: str | None) -> None:
    assert automatic_reason(mail(headers)) == reason


def test_the_strongest_signal_is_reported() -> None:
    headers = "Precedence: bulk\nList-Id: <l.example>\nAuto-Submitted: auto-generated\nReturn-Path: <>"
    assert automatic_reason(mail(headers)) == "auto-submitted"


def test_report_part_wrapped_in_mixed_is_still_a_dsn() -> None:
    body = (
        "--b\nContent-Type: text/plain\n\nDelivery failed.\n"
        "--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n\n"
        "Final-Recipient: rfc822; x@y.example\nAction: failed\nStatus: 5.1.1\n--b--"
    )
    assert automatic_reason(mail('Content-Type: multipart/mixed; boundary="b"', body=body)) == "dsn"


@pytest.mark.parametrize(
    ("sender", "reason"),
    [
        ("From: MAILER-DAEMON@mx.example (Mail Delivery System)", "sender"),
        ("From: Mailer-Daemon@smtp.example", "sender"),
        ("From: MAILER-DAEMON", "sender"),
        ("From: postmaster@mairie.example", "sender"),
        ("From: noreply@service.example", "sender"),
        ("From: no-reply@service.example", "sender"),
        ("From: No_Reply+abc123@service.example", "sender"),
        ("From: notifications-noreply@plateforme.example", "sender"),
        ("From: donotreply@banque.example", "sender"),
        ("From: do-not-reply@banque.example", "sender"),
        ("From: ne-pas-repondre@impots.example", "sender"),
        ("From: nepasrepondre@caf.example", "sender"),
        ("From: ne_pas_repondre@urssaf.example", "sender"),
        ("From: Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@x.example>", "sender"),
        ("From: norbert.reply@menuiserie.example", None),
        ("From: contact@noreply-services.example", None),  # the domain is not the mailbox
        ("From: postmaster.jean@x.example", "sender"),
        ("From: Jean Dupont <jean.dupont@menuiserie-x.example>", None),
        ("From: Service <reponse@x.example>", None),
    ],
)
def test_sender(sender: str, reason: str | None) -> None:
    assert automatic_reason(mail(sender)) == reason


@pytest.mark.parametrize(
    ("subject", "reason"),
    [
        ("Réponse automatique : [TI-2026-0042] Recrutement", "subject"),
        ("Réponse automatique: [TI-2026-0042] Recrutement", "subject"),
        ("=?utf-8?Q?R=C3=A9ponse_automatique=C2=A0:_Recrutement?=", "subject"),
        ("REPONSE AUTOMATIQUE : absent", "subject"),
        ("Absence du bureau", "subject"),
        ("Absent(e) du bureau : Recrutement", "subject"),
        ("Message d'absence", "subject"),
        ("Message d’absence : retour le 5 janvier", "subject"),
        ("Out of Office: Recrutement", "subject"),
        ("Out of office reply: Recrutement", "subject"),
        ("Automatic reply: Recrutement", "subject"),
        ("Auto-Reply: Recrutement", "subject"),
        ("AutoReply: Recrutement", "subject"),
        ("[EXT] Réponse automatique : Recrutement", "subject"),
        ("Undeliverable: Recrutement", "subject"),
        ("Non remis : Recrutement", "subject"),
        ("Delivery Status Notification (Failure)", "subject"),
        ("Mail delivery failed: returning message to sender", "subject"),
        # A person writing about absences, or acknowledging by hand: answered.
        ("Accusé de réception", None),
        ("Accusé de réception : demande TI-2026-0042", None),
        ("Accusé de réception – demande TI-2026-0042", None),
        ("RE: Réponse automatique : Recrutement", None),
        ("Out of office next week, can you call?", None),
        ("Question sur l'absence du bureau d'études", None),
        ("Absences du bureau d'études en décembre", None),
        ("Re: [TI-2026-0042] Recrutement", None),
        ("Lu : [TI-2026-0042] Recrutement", None),  # a read receipt is caught by its type
    ],
)
def test_subject(subject: str, reason: str | None) -> None:
    assert automatic_reason(mail(subject=subject)) == reason
