"""Decoding inbound emails: the corpus as real clients write it, then the hostile corners."""

from __future__ import annotations

import hashlib
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from handlers.mail.decode import (
    Attachment,
    InboundMail,
    decode_bytes,
    decode_words,
    html_to_text,
    parse_inbound,
    unflow,
)

CORPUS = Path(__file__).parent / "mail_corpus"
NEED_ID = "<need-TI-2026-0042-3f9a1c0d7e2b4a68@relais.example.org>"
RELAIS_PLUS = "relais+k3v9x2m4q8w1z7p5@relais.example.org"
NEED_SUBJECT = "[TI-2026-0042] Recrutement — Menuiserie X (Paray-le-Monial)"


def corpus(name: str, **options: Any) -> InboundMail:
    """One corpus email, decoded."""
    return parse_inbound((CORPUS / name).read_bytes(), **options)


def build(headers: str, body: str = "Bonjour.\n", *, encoding: str = "utf-8") -> bytes:
    """A raw message from header lines (From/To/Message-ID added unless given) and a body."""
    lines = headers.strip("\n").split("\n") if headers.strip() else []
    names = {line.split(":", 1)[0].lower() for line in lines if ":" in line}
    if "from" not in names:
        lines.insert(0, "From: Jean Dupont <jean.dupont@menuiserie-x.example>")
    if "to" not in names:
        lines.insert(1, "To: relais@relais.example.org")
    if "message-id" not in names:
        lines.append("Message-ID: <test-1@menuiserie-x.example>")
    return ("\n".join(lines) + "\n\n" + body).encode(encoding)


def summary(attachments: tuple[Attachment, ...]) -> list[tuple[str, str, int, bool]]:
    return [(a.filename, a.content_type, a.size, a.data is not None) for a in attachments]


# --- The corpus, field by field ----------------------------------------------------------------

CORPUS_FIELDS: dict[str, dict[str, Any]] = {
    "human_outlook_fr.eml": {
        "message_id": "<PAXP192MB1234C5D6E7F8A9B0C1D2E3F4A5B6@PAXP192MB1234.EURP192.PROD.OUTLOOK.COM>",
        "from_name": "Sophie Martin",
        "from_addr": "sophie.martin@cci71.example",
        "to": (RELAIS_PLUS,),
        "cc": ("claire.martin@example.org",),
        "delivered_to": (RELAIS_PLUS,),
        "subject": "RE: " + NEED_SUBJECT,
        "date": datetime(2026, 12, 1, 9, 41, 11, tzinfo=UTC),
        "in_reply_to": (NEED_ID,),
        "references": (NEED_ID,),
        "content_type": "multipart/mixed",
        "attachments": [("Fiche de liaison CCI.pdf", "application/pdf", 142, True)],
    },
    "human_gmail_fr.eml": {
        "message_id": "<CAFx9kQtZ3+Yq7wN1bV0-8hG2m4pL5sR6tU7vW8xY9zA0bC1dE@mail.gmail.example>",
        "from_name": "Marc Dubois",
        "from_addr": "marc.dubois.bpi@gmail.example",
        "subject": "Re: " + NEED_SUBJECT,
        "date": datetime(2026, 12, 1, 10, 2, 37, tzinfo=UTC),
        "content_type": "multipart/alternative",
        "attachments": [],
    },
    "human_thunderbird_latin1.eml": {
        "subject": "Re : [TI-2026-0042] Recrutement",
        "from_addr": "p.garnier@ade71.example",
        "text": (
            "Le 01/12/2026 à 10:00, Relais Territoires d'industrie a écrit :\n"
            "> Bonjour,\n>\n"
            "> Une entreprise du territoire a un besoin qui relève de votre structure.\n>\n"
            "> Merci d'accuser réception en répondant à ce message.\n\n"
            # format=flowed: the soft break after "vous " is joined back.
            "Bien reçu. Nous prenons contact avec l'entreprise cette semaine et vous "
            "tiendrons informés de la suite.\n\n"
            "-- \nPierre Garnier\nAgence de développement économique"
        ),
    },
    "human_html_only_cp1252.eml": {
        "from_name": "Jean-François Cœur",
        "from_addr": "jf.coeur@fonderie-y.example",
        "subject": "Demande d’accompagnement – four à induction",
        "content_type": "text/html",
        "text": (
            "Bonjour,\n"
            "Notre entreprise (fonderie, 45 salariés) cherche un financement de 150 000 € pour un four.\n"
            "C’est urgent : la commande arrive en février.\n"
            "- Contact : 06 12 34 56 78\n"
            "- Site : fonderie-y.example\n"
            "Merci d’avance & bonne journée,\n"
            "Jean-François Cœur"
        ),
    },
    "human_nested_related.eml": {
        "from_name": "Fabre, Luc",
        "to": ("relais@relais.example.org", "claire.martin@example.org"),
        "cc": ("agnes.roux@sfr.example",),
        "text": "Bonjour,\n\nVoici le devis demandé pour la Menuiserie X.\n\nCordialement,\nLuc Fabre",
        # The logo of the HTML alternative stays an attachment; the path is cut off the PDF.
        "attachments": [
            ("logo.png", "image/png", 70, True),
            ("Devis n°2026-118.pdf", "application/pdf", 142, True),
        ],
    },
    "human_forward_rfc822.eml": {
        "subject": "Fwd: Besoin de recrutement",
        "text": "Pour info, la demande reçue hier. Peux-tu la saisir ?",
        "attachments": [("Besoin de recrutement.eml", "message/rfc822", 333, True)],
    },
    "human_outlook_meeting.eml": {
        "text": "Je vous propose un point téléphonique de 30 minutes sur ce dossier.",
        "attachments": [("attachment", "text/calendar", 541, True)],
    },
    "human_iphone.eml": {
        "subject": "Re : [TI-2026-0042] Recrutement",
        "text": (
            "D'accord, je passe les voir vendredi.\n\nEnvoyé de mon iPhone\n\n"
            "> Le 1 déc. 2026 à 10:00, Relais Territoires d'industrie "
            "<relais+k3v9x2m4q8w1z7p5@relais.example.org> a écrit :\n>\n> Bonjour,"
        ),
    },
    "bounce_postfix.eml": {
        "from_name": "Mail Delivery System",
        "from_addr": "mailer-daemon@mx1.relais.example.org",
        "content_type": "multipart/report",
        "report_type": "delivery-status",
        "date": datetime(2026, 12, 1, 9, 0, 4, tzinfo=UTC),
        "attachments": [
            ("attachment", "message/delivery-status", 535, True),
            ("message.eml", "message/rfc822", 1066, True),
        ],
    },
    "ndr_exchange.eml": {
        "from_name": "Microsoft Outlook",
        "from_addr": "microsoftexchange329e71ec88ae4615bbc36ab6ce41109e@cci71.example",
        "subject": "Non remis : Transfert : [TI-2026-0042] Recrutement",
        "report_type": "delivery-status",
        "attachments": [
            ("attachment", "message/delivery-status", 333, True),
            ("attachment", "text/rfc822-headers", 276, True),
        ],
    },
    "mdn_thunderbird.eml": {
        "subject": "Accusé de réception (affiché) : [TI-2026-0042] Recrutement",
        "report_type": "disposition-notification",
        "attachments": [
            ("MDNPart2.txt", "message/disposition-notification", 230, True),
            ("MDNPart3.txt", "text/rfc822-headers", 169, True),
        ],
    },
    "lying_latin1.eml": {
        "subject": "Français et déclaré",
        "text": "Nous cherchons un soudeur qualifié, idéalement dès février.",
    },
    "lying_utf8.eml": {
        "subject": "été déjà",  # two B-words with the space between them inside the second
        "text": "L’atelier a besoin d’un financement de 20\xa0000\xa0€.",
    },
    "malformed.eml": {
        # No Message-ID: a synthetic one, from the bytes.
        "message_id": "<sha256-"
        + hashlib.sha256((CORPUS / "malformed.eml").read_bytes()).hexdigest()
        + "@relais.invalid>",
        # Unterminated quote in From: the address is still found.
        "from_name": "Girard, Michèle",
        "from_addr": "m.girard@plasturgie-w.example",
        "to": ("relais@relais.example.org",),
        # Raw UTF-8, tab and BEL, RLO override: decoded, collapsed, dropped.
        "subject": "Problème de livraison urgent evil",
        "date": None,
        # Unknown charset holding Windows-1252 bytes, and a NUL byte.
        "text": "Nous avons un problème de livraison depuis le 2 décembre.\nCoût estimé : 12\xa0000 €.",
        # Windows path and a control character in the name; garbage base64 decoded as far as it goes.
        "attachments": [("relevé.xlsx", "application/octet-stream", 10, True)],
    },
}


@pytest.mark.parametrize("name", sorted(CORPUS_FIELDS))
def test_corpus_fields(name: str) -> None:
    mail = corpus(name)
    for field, expected in CORPUS_FIELDS[name].items():
        actual = summary(mail.attachments) if field == "attachments" else getattr(mail, field)
        assert actual == expected, field


def test_every_corpus_email_decodes_without_control_characters() -> None:
    names = sorted(p.name for p in CORPUS.glob("*.eml"))
    assert len(names) >= 20
    for name in names:
        mail = corpus(name)
        assert mail.message_id.startswith("<") and mail.message_id.endswith(">"), name
        assert mail.from_addr == mail.from_addr.lower(), name
        for text in (mail.subject, mail.from_name):
            assert not any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in text), name
        assert not any(ord(ch) < 32 and ch not in "\n\t" for ch in mail.text), name
        assert "\r" not in mail.text and "\ufffd" not in mail.text, name
        assert mail.date is None or mail.date.tzinfo is UTC, name


def test_outlook_bodies_prefer_plain_text_over_html() -> None:
    text = corpus("human_outlook_fr.eml").text
    # The plain alternative (CRLF, base64) and not the HTML one (which has no blank line
    # between "Bien reçu" and "Bonjour,").
    assert text.splitlines()[:4] == [
        "Bonjour,",
        "",
        "Bien reçu, merci. Nous contactons la Menuiserie X dès demain matin pour organiser un rendez-vous.",
        "Vous trouverez ci-joint notre fiche de liaison.",
    ]
    assert "De : Relais Territoires d'industrie <relais+k3v9x2m4q8w1z7p5@relais.example.org>" in text


def test_forwarded_message_is_kept_whole_as_an_attachment() -> None:
    (attachment,) = corpus("human_forward_rfc822.eml").attachments
    assert attachment.data is not None
    inner = parse_inbound(attachment.data)
    assert (inner.from_addr, inner.subject) == ("contact@menuiserie-x.example", "Besoin de recrutement")
    assert inner.text == "Bonjour, nous cherchons deux menuisiers."


def test_bounce_carries_our_original_message() -> None:
    original = corpus("bounce_postfix.eml").attachments[1]
    assert original.data is not None
    inner = parse_inbound(original.data)
    assert inner.message_id == NEED_ID
    assert inner.subject == NEED_SUBJECT


def test_inline_image_keeps_its_content_id() -> None:
    logo = corpus("human_nested_related.eml").attachments[0]
    assert logo.content_id == "<logo-sfr-4a2b@webmail.example>"
    assert logo.data is not None and logo.data.startswith(b"\x89PNG")


def test_relevant_headers_are_kept_decoded_and_read_only() -> None:
    mail = corpus("oof_zimbra_en.eml")
    assert dict(mail.headers) == {
        "auto-submitted": ("auto-replied (zimbra; vacation)",),
        "precedence": ("bulk",),
        "return-path": ("<t.bernard@bpifrance.example>",),
    }
    assert mail.header("Auto-Submitted") == "auto-replied (zimbra; vacation)"
    assert mail.header("List-Id") is None
    with pytest.raises(TypeError):
        mail.headers["precedence"] = ("list",)  # type: ignore[index]
    with pytest.raises(FrozenInstanceError):
        mail.subject = "x"  # type: ignore[misc]
    assert hash(mail) == hash(corpus("oof_zimbra_en.eml"))


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("*.eml")))
def test_crlf_and_lf_line_endings_decode_alike(name: str) -> None:
    raw = (CORPUS / name).read_bytes()
    lf, crlf = parse_inbound(raw), parse_inbound(raw.replace(b"\n", b"\r\n"))
    for field in ("from_name", "from_addr", "to", "cc", "subject", "date", "text", "references"):
        assert getattr(crlf, field) == getattr(lf, field), field
    names = [(a.filename, a.content_type) for a in crlf.attachments]
    assert names == [(a.filename, a.content_type) for a in lf.attachments]


# --- Size limit --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "kept", "oversized"),
    [
        (10 * 1024 * 1024, [True, True], False),
        (212, [True, True], False),  # 70 + 142: exactly the limit is not over it
        (211, [True, False], True),
        (100, [True, False], True),
        (50, [False, False], True),
        (0, [False, False], True),
    ],
)
def test_attachment_size_limit(limit: int, kept: list[bool], oversized: bool) -> None:
    mail = corpus("human_nested_related.eml", max_attachment_bytes=limit)
    assert [a.data is not None for a in mail.attachments] == kept
    assert [a.size for a in mail.attachments] == [70, 142]  # the size is known either way
    assert mail.oversized is oversized


# --- Headers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Message-ID: <abc@x.example>", "<abc@x.example>"),
        ("Message-ID:   <abc@x.example>  (comment)", "<abc@x.example>"),
        ("Message-ID: abc@x.example", "<abc@x.example>"),
        ("Message-ID:\n <folded.id@x.example>", "<folded.id@x.example>"),
        ("Message-Id: <Mixed.Case@X.Example>", "<Mixed.Case@X.Example>"),
    ],
)
def test_message_id_normalised(header: str, expected: str) -> None:
    assert parse_inbound(build(header)).message_id == expected


@pytest.mark.parametrize("header", ["Message-ID: <>", "Message-ID:", "Message-ID: not an id"])
def test_unusable_message_id_gets_a_synthetic_one(header: str) -> None:
    raw = build(header)
    expected = f"<sha256-{hashlib.sha256(raw).hexdigest()}@relais.invalid>"
    assert parse_inbound(raw).message_id == expected
    assert parse_inbound(raw + b"x").message_id != expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("In-Reply-To: <a@x>", ("<a@x>",)),
        ("In-Reply-To: <a@x> (Jean's message of Tue, 1 Dec 2026)", ("<a@x>",)),
        ("In-Reply-To: a@x", ("<a@x>",)),
        ("In-Reply-To: <a@x>\nIn-Reply-To: <b@x>", ("<a@x>", "<b@x>")),
        ("In-Reply-To: <a@x> <a@x>", ("<a@x>",)),
        ("In-Reply-To: garbage here", ()),
    ],
)
def test_in_reply_to(header: str, expected: tuple[str, ...]) -> None:
    assert parse_inbound(build(header)).in_reply_to == expected


def test_references_folded_over_lines_keep_their_order() -> None:
    raw = build("References: <root@r.example>\n <mid@m.example>\n\t<last@l.example>")
    assert parse_inbound(raw).references == ("<root@r.example>", "<mid@m.example>", "<last@l.example>")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Tue, 1 Dec 2026 10:00:00 +0100", datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
        ("Tue, 01 Dec 2026 10:00:00 -0000", datetime(2026, 12, 1, 10, 0, tzinfo=UTC)),
        ("1 Dec 2026 10:00:00 GMT", datetime(2026, 12, 1, 10, 0, tzinfo=UTC)),
        ("Tue,  1 Dec 2026 10:00:04 +0100 (CET)", datetime(2026, 12, 1, 9, 0, 4, tzinfo=UTC)),
        ("mardi 1 décembre 2026", None),
        ("", None),
        ("Tue, 99 Dec 2026 99:00:00 +0100", None),
    ],
)
def test_date(value: str, expected: datetime | None) -> None:
    assert parse_inbound(build(f"Date: {value}")).date == expected


@pytest.mark.parametrize(
    ("header", "name", "addr"),
    [
        ("From: Jean Dupont <Jean.Dupont@Menuiserie-X.example>", "Jean Dupont", "jean.dupont@menuiserie-x.example"),
        ('From: "Dupont, Jean" <jean@x.example>', "Dupont, Jean", "jean@x.example"),
        ("From: =?utf-8?q?H=C3=A9l=C3=A8ne?= <h@x.example>", "Hélène", "h@x.example"),
        ("From: =?x-unknown?q?H=E9l=E8ne?= <h@x.example>", "H\ufffdl\ufffdne", "h@x.example"),
        ("From: jean@x.example (Jean Dupont)", "Jean Dupont", "jean@x.example"),
        ("From: <jean@x.example>", "", "jean@x.example"),
        ("From: Jean <jean@x.example>, Paul <paul@x.example>", "Jean", "jean@x.example"),
        ("From: MAILER-DAEMON", "", "mailer-daemon"),
        ("From:", "", ""),
        ("From: \u202eevil <e@x.example>".encode().decode("latin-1"), "evil", "e@x.example"),
    ],
)
def test_from(header: str, name: str, addr: str) -> None:
    mail = parse_inbound(build(header, encoding="latin-1"))
    assert (mail.from_name, mail.from_addr) == (name, addr)


def test_address_lists_lowercased_deduplicated_and_cleaned() -> None:
    raw = build(
        "To: A <A@X.example>, a@x.example, undisclosed-recipients:;, <>, bad address@x\n"
        "Cc: =?utf-8?q?Agn=C3=A8s?= <agnes@x.example>\n"
        "Reply-To: Secr <secretariat@x.example>\n"
        "Delivered-To: Relais+TOKEN123@relais.example.org\n"
        "X-Original-To: relais+token123@relais.example.org"
    )
    mail = parse_inbound(raw)
    assert mail.to == ("a@x.example",)
    assert mail.cc == ("agnes@x.example",)
    assert mail.reply_to == ("secretariat@x.example",)
    assert mail.delivered_to == ("relais+token123@relais.example.org",)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Plain subject", "Plain subject"),
        ("=?utf-8?Q?R=C3=A9ponse?=", "Réponse"),
        ("=?UTF-8?B?UsOpcG9uc2U=?=", "Réponse"),
        ("=?utf-8?B?w6k=?= =?utf-8?B?w6k=?=", "éé"),  # space between words is folding
        ("=?utf-8?B?w6k=?= and =?utf-8?B?w6k=?=", "é and é"),
        ("=?utf-8?B?4oI=?=\n =?utf-8?B?rA==?=", "€"),  # a character split across two words
        ("=?iso-8859-1?q?caf=E9?=", "café"),
        ("=?windows-1252?q?=93ok=94?=", "“ok”"),
        ("=?utf-8*fr?q?caf=C3=A9?=", "café"),  # RFC 2231 language tag
        ("=?x-unknown?q?caf=E9?=", "café"),  # unknown charset: cp1252 fallback
        ("=?utf-8?q?unterminated", "=?utf-8?q?unterminated"),
        ("Re:\t\tspaces   \x07and\x00 bell", "Re: spaces and bell"),
        ("=?utf-8?B?bad base64?=", "=?utf-8?B?bad base64?="),
    ],
)
def test_subject(value: str, expected: str) -> None:
    assert parse_inbound(build(f"Subject: {value}")).subject == expected


def test_raw_8bit_headers_in_latin1() -> None:
    raw = build("Subject: Probl\xe8me\nFrom: Ren\xe9 <rene@x.example>", encoding="latin-1")
    mail = parse_inbound(raw)
    assert (mail.subject, mail.from_name) == ("Problème", "René")


# --- Charsets ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "charset", "expected"),
    [
        (b"caf\xe9", "iso-8859-1", "café"),
        (b"\x93ok\x94 \x80", "iso-8859-1", "“ok” €"),  # Latin-1 label read as Windows-1252
        ("café".encode(), "iso-8859-1", "café"),  # lying label: valid UTF-8 wins
        ("café".encode(), "us-ascii", "café"),
        (b"caf\xe9", "utf-8", "café"),  # lying the other way
        (b"caf\xe9", None, "café"),
        (b"caf\xe9", "x-unknown", "café"),
        (b"caf\xe9", '"ISO-8859-1"', "café"),
        (b"caf\xc3\xa9", "", "café"),
        (b"\\x41\\u0042", "unicode-escape", "\\x41\\u0042"),  # never an escape decoder
        (b"hello", "base64", "hello"),  # nor a bytes transform
        (b"\x81\x8d", "utf-8", "\ufffd\ufffd"),  # neither UTF-8 nor Windows-1252
        ("проверка".encode("koi8-r"), "koi8-r", "проверка"),
        ("日本".encode("iso-2022-jp"), "iso-2022-jp", "日本"),
    ],
)
def test_decode_bytes(data: bytes, charset: str | None, expected: str) -> None:
    assert decode_bytes(data, charset) == expected


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        (
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable",
            "Caf=C3=A9 cr=C3=A8me, une ligne tr=\nop longue.\n",
            "Café crème, une ligne trop longue.",
        ),
        (
            "Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: base64",
            "Q2Fm6SBjcuhtZQ==\n",
            "Café crème",
        ),
        (
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64",
            "Q2Fmw6kgY3LDqG1l!!!\n",  # trailing garbage
            "Café crème",
        ),
        (
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: x-unknown",
            "brut\n",
            "brut",
        ),
        ("", "sans en-t\u00eate\n", "sans en-tête"),  # no MIME headers at all, 8-bit UTF-8
    ],
)
def test_transfer_encodings(headers: str, body: str, expected: str) -> None:
    assert parse_inbound(build("MIME-Version: 1.0\n" + headers, body)).text == expected


def test_nul_and_control_bytes_in_body_are_dropped() -> None:
    raw = build("Content-Type: text/plain; charset=utf-8", "a\x00b\x1bc\r\nd\re\u2028f\u202eg\n")
    assert parse_inbound(raw).text == "abc\nd\ne\nfg"


def test_html_alternative_is_used_when_plain_is_empty() -> None:
    raw = build(
        'Content-Type: multipart/alternative; boundary="b"',
        "--b\nContent-Type: text/plain\n\n\n--b\nContent-Type: text/html\n\n<p>Seul le HTML</p>\n--b--\n",
    )
    mail = parse_inbound(raw)
    assert (mail.text, mail.attachments) == ("Seul le HTML", ())


def test_mixed_body_split_around_an_inline_image_keeps_both_halves() -> None:
    # Apple Mail: text, inline image, text; all in one multipart/mixed.
    raw = build(
        'Content-Type: multipart/mixed; boundary="b"',
        "--b\nContent-Type: text/plain; charset=utf-8\n\nAvant l'image.\n"
        "--b\nContent-Type: image/jpeg; name=photo.jpg\nContent-Disposition: inline; filename=photo.jpg\n"
        "Content-Transfer-Encoding: base64\n\n/9j/4AAQ\n"
        "--b\nContent-Type: text/plain; charset=utf-8\n\nApr\u00e8s l'image.\n--b--\n",
    )
    mail = parse_inbound(raw)
    assert mail.text == "Avant l'image.\n\nAprès l'image."
    assert summary(mail.attachments) == [("photo.jpg", "image/jpeg", 6, True)]


def test_text_attachment_is_not_body() -> None:
    raw = build(
        'Content-Type: multipart/mixed; boundary="b"',
        "--b\nContent-Type: text/plain\n\nLe corps.\n"
        '--b\nContent-Type: text/plain; name="notes.txt"\nContent-Disposition: attachment; filename="notes.txt"\n\nNotes.\n'
        "--b\nContent-Type: text/csv\n\na;b\n--b--\n",
    )
    mail = parse_inbound(raw)
    assert mail.text == "Le corps."
    assert summary(mail.attachments) == [
        ("notes.txt", "text/plain", 6, True),
        ("attachment", "text/csv", 3, True),
    ]


def test_related_root_found_by_start_parameter() -> None:
    raw = build(
        'Content-Type: multipart/related; boundary="b"; start="<root@x>"',
        "--b\nContent-Type: image/gif\nContent-ID: <img@x>\n\nGIF89a\n"
        "--b\nContent-Type: text/html\nContent-ID: <root@x>\n\n<div>Racine</div>\n--b--\n",
    )
    mail = parse_inbound(raw)
    assert mail.text == "Racine"
    assert [(a.content_type, a.content_id) for a in mail.attachments] == [("image/gif", "<img@x>")]


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("devis.pdf", "devis.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\\\Users\\\\jean\\\\devis.pdf", "devis.pdf"),
        (".htaccess", "htaccess"),
        ("...", "attachment"),
        ("", "attachment"),
        ("a\x01b\x7f.pdf", "ab.pdf"),
        ("\u202efdp.exe", "fdp.exe"),
        ("  devis   final .pdf ", "devis final .pdf"),
        ("a" * 200 + ".pdf", "a" * 116 + ".pdf"),
        ("b" * 200, "b" * 120),
        ("=?utf-8?b?w6l0w6kucGRm?=", "été.pdf"),
    ],
)
def test_attachment_filename_sanitised(filename: str, expected: str) -> None:
    raw = build(
        'Content-Type: multipart/mixed; boundary="b"',
        "--b\nContent-Type: text/plain\n\nVoir PJ.\n"
        f'--b\nContent-Type: application/pdf\nContent-Disposition: attachment; filename="{filename}"\n'
        "Content-Transfer-Encoding: base64\n\nJVBERi0=\n--b--\n",
    )
    (attachment,) = parse_inbound(raw).attachments
    assert attachment.filename == expected
    assert len(attachment.filename) <= 120


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\x01\x02\xff" * 50,
        b"not an email at all",
        b"From: a@b\n\n",
        b"Subject: no body",
        b"From a@b Tue Dec  1 10:00:00 2026\nFrom: a@b\n\nmbox line\n",
        b"X-Weird\nFrom: a@b\n\nheader line without colon\n",
        b"From: a@b\nContent-Type: multipart/mixed\n\nno boundary\n",
        b'From: a@b\nContent-Type: multipart/mixed; boundary="x"\n\n--x\nContent-Type: text/plain\n\nunterminated',
        b"From: a@b\nContent-Type: message/rfc822\n\nnot really a message",
        b"From: a@b\nContent-Type: text/plain; charset=\"\xff\xfe\"\n\nbody",
        b"From: a@b\nContent-Type: text/plain; charset*=utf-8''%ZZ\n\nbody",
        b"From: ,,,,<<<>>>@@@\nTo: \"\\\nCc: =?utf-8?B?====?=\nDate: Tue, 1 Dec 99999 10:00 +0100\n\nx",
        b"From: a@b\nContent-Type: text/html\n\n<script>alert(1)" + b"<" * 1000,
        b"From: a@b\nContent-Type: multipart/alternative; boundary=b\n\n--b\n--b--\n",
        b"Subject: " + b"=?utf-8?q?" + b"=FF" * 2000 + b"?=\n\nx",
    ],
)
def test_hostile_input_never_raises(raw: bytes) -> None:
    mail = parse_inbound(raw)
    assert mail.message_id.startswith("<")
    assert isinstance(mail.text, str)


@pytest.mark.parametrize(
    ("raw", "text", "attachments"),
    [
        (b"From: a@b\nContent-Type: multipart/mixed\n\nno boundary\n", "no boundary", []),
        (
            b"From: a@b\nContent-Type: message/rfc822\n\nnot really a message",
            "",
            [("message.eml", "message/rfc822", 21, True)],
        ),
        (b"From a@b Tue Dec  1 10:00:00 2026\nFrom: a@b\n\nmbox line\n", "mbox line", []),
        (
            b"From: a@b\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0=\n",
            "",
            [("attachment", "application/pdf", 5, True)],
        ),
    ],
)
def test_degenerate_structures(raw: bytes, text: str, attachments: list[Any]) -> None:
    mail = parse_inbound(raw)
    assert (mail.text, summary(mail.attachments)) == (text, attachments)


def test_deeply_nested_multipart_does_not_recurse_forever() -> None:
    depth = 300
    head = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i) for i in range(depth)
    )
    tail = b"".join(b"\n--b%d--\n" % i for i in reversed(range(depth)))
    raw = b"From: a@b\n" + head + b"Content-Type: text/plain\n\nDeep.\n" + tail
    mail = parse_inbound(raw)
    # Beyond the nesting limit the content is dropped, not walked.
    assert (mail.text, mail.attachments, mail.from_addr) == ("", (), "a@b")


# --- HTML and flowed text ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>Un</p><p>Deux</p>", "Un\nDeux"),
        ("<div>a</div><div><br></div><div>b</div>", "a\n\nb"),  # Gmail's blank line
        ('<p class="MsoNormal">a</p><p class="MsoNormal">&nbsp;</p><p>b</p>', "a\n\nb"),  # Outlook's
        ("a<br>b<br/>c", "a\nb\nc"),
        ("<ul><li>un</li><li>deux</li></ul>", "- un\n- deux"),
        ("<table><tr><td>Nom</td><td>Jean</td></tr><tr><td>Tel</td><td>06</td></tr></table>", "Nom Jean\nTel 06"),
        ("<style>p{color:red}</style><script>alert('x')</script><p>Texte</p>", "Texte"),
        ("<head><title>Titre</title></head><body>Corps</body>", "Corps"),
        ("<!--[if mso]><p>Outlook</p><![endif]--><p>Tous</p>", "Tous"),
        ("&lt;b&gt; &amp; &eacute;t&#233; &#x20AC; &nbsp;!", "<b> & été €  !"),
        ("  beaucoup   d'espaces\n\n  ici  ", "beaucoup d'espaces ici"),
        ("<pre>  code\n    indenté</pre>", "  code\n    indenté"),
        ("<p>Réponse</p><blockquote><p>Question</p><blockquote>Avant</blockquote></blockquote>", "Réponse\n> Question\n>> Avant"),
        ("<p>Non fermé <b>gras <i>italique", "Non fermé gras italique"),
        ("<img src=x onerror=alert(1)>Image", "Image"),
        ("", ""),
    ],
)
def test_html_to_text(html: str, expected: str) -> None:
    assert html_to_text(html) == expected


@pytest.mark.parametrize(
    ("text", "delsp", "expected"),
    [
        ("Une ligne \ncoupée.\nFixe.", False, "Une ligne coupée.\nFixe."),
        ("Une ligne \ncoupée.", True, "Une lignecoupée."),
        ("> cité \n> suite\nréponse", False, "> cité suite\nréponse"),
        (">> deux \n> un", False, ">> deux \n> un"),  # another depth ends the paragraph
        (" From here\n -- x", False, "From here\n-- x"),  # space-stuffing removed
        ("-- \nsignature", False, "-- \nsignature"),  # the delimiter is not a soft break
        ("fin \n", False, "fin "),
    ],
)
def test_unflow(text: str, delsp: bool, expected: str) -> None:
    assert unflow(text, delsp=delsp) == expected


def test_decode_words_keeps_plain_text_around_encoded_words() -> None:
    assert decode_words("RE: =?utf-8?q?Pi=C3=A8ce?= jointe") == "RE: Pièce jointe"
