"""The keys linking an inbound email to one of our conversations (candidates only)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.services.emails import need_message_id
from handlers.mail.decode import InboundMail, parse_inbound
from handlers.mail.threads import ThreadKeys, new_reply_token, reply_address, thread_keys

CORPUS = Path(__file__).parent / "mail_corpus"
DOMAIN = "relais.example.org"
NEED_ID = "<need-TI-2026-0042-3f9a1c0d7e2b4a68@relais.example.org>"
TOKEN = "k3v9x2m4q8w1z7p5"


def mail(headers: str, *, subject: str = "Bonjour") -> InboundMail:
    """An email with the given extra header lines (To defaults to our plain address)."""
    lines = [line for line in headers.strip("\n").split("\n") if line]
    if not any(line.lower().startswith("to:") for line in lines):
        lines.append("To: relais@relais.example.org")
    lines += [
        "From: Sophie Martin <sophie.martin@cci71.example>",
        f"Subject: {subject}",
        "Message-ID: <x-1@cci71.example>",
    ]
    return parse_inbound(("\n".join(lines) + "\n\nBonjour.\n").encode())


CORPUS_KEYS = {
    "human_outlook_fr.eml": ThreadKeys(
        tokens=(TOKEN,),
        message_ids=(NEED_ID,),
        references=("TI-2026-0042",),
        subject_refs=("TI-2026-0042",),
    ),
    "human_gmail_fr.eml": ThreadKeys(
        tokens=(TOKEN,),
        message_ids=(NEED_ID,),
        references=("TI-2026-0042",),
        subject_refs=("TI-2026-0042",),
    ),
    # A hand-written acknowledgement: the reference in its subject is not bracketed.
    "human_ack_orange.eml": ThreadKeys(
        tokens=(TOKEN,), message_ids=(NEED_ID,), references=("TI-2026-0042",)
    ),
    # Outlook meeting: "(TI-2026-0042)" in the subject is not a tag, no token, no reply.
    "human_outlook_meeting.eml": ThreadKeys(),
    "human_nested_related.eml": ThreadKeys(),
    "x_autoreply_hosting.eml": ThreadKeys(
        tokens=(TOKEN,),
        message_ids=("<need-TI-2026-0044-9e8d7c6b5a4f3e2d@relais.example.org>",),
        references=("TI-2026-0044",),
        subject_refs=("TI-2026-0044",),
    ),
    # Outlook's own ids in the NDR are not ours; the subject tag is still a candidate
    # (automatic_reason is what keeps a bounce out of the conversation).
    "ndr_exchange.eml": ThreadKeys(subject_refs=("TI-2026-0042",)),
}


@pytest.mark.parametrize(("name", "expected"), sorted(CORPUS_KEYS.items()))
def test_corpus(name: str, expected: ThreadKeys) -> None:
    keys = thread_keys(parse_inbound((CORPUS / name).read_bytes()), mail_domain=DOMAIN)
    assert keys == expected
    assert bool(keys) is (expected != ThreadKeys())


@pytest.mark.parametrize(
    ("headers", "tokens"),
    [
        (f"To: relais+{TOKEN}@relais.example.org", (TOKEN,)),
        (f"To: Relais <RELAIS+{TOKEN.upper()}@Relais.Example.Org>", (TOKEN,)),
        (f"To: anything.else+{TOKEN}@relais.example.org", (TOKEN,)),  # the local part is free
        (f"To: a+b+{TOKEN}@relais.example.org", (TOKEN,)),  # the last "+" separates the token
        (f"To: x@y.example\nCc: relais+{TOKEN}@relais.example.org", (TOKEN,)),
        (f"Delivered-To: relais+{TOKEN}@relais.example.org", (TOKEN,)),
        (f"X-Original-To: relais+{TOKEN}@relais.example.org", (TOKEN,)),
        (
            "Delivered-To: relais+aaaaaaaa@relais.example.org\nTo: relais+bbbbbbbb@relais.example.org, "
            "relais+aaaaaaaa@relais.example.org\nCc: relais+cccccccc@relais.example.org",
            ("aaaaaaaa", "bbbbbbbb", "cccccccc"),  # Delivered-To first, no duplicates
        ),
        ("To: relais+abcd1234@relais.example.org", ("abcd1234",)),  # 8: the shortest
        ("To: relais+" + "a" * 32 + "@relais.example.org", ("a" * 32,)),  # 32: the longest
        ("To: relais+abc1234@relais.example.org", ()),  # 7: too short
        ("To: relais+" + "a" * 33 + "@relais.example.org", ()),  # 33: too long
        ("To: relais+abcd-1234@relais.example.org", ()),  # not [a-z0-9]
        ("To: relais+abcd_1234@relais.example.org", ()),
        (f"To: +{TOKEN}@relais.example.org", ()),  # nothing before "+"
        (f"To: relais+{TOKEN}@other.example", ()),  # another domain
        (f"To: relais+{TOKEN}@sub.relais.example.org", ()),  # not even a subdomain
        (f"To: relais+{TOKEN}@relais.example.org.evil.example", ()),
        (f"Reply-To: relais+{TOKEN}@relais.example.org", ()),  # not a recipient
        (f"From: relais+{TOKEN}@relais.example.org", ()),
        ("To: relais@relais.example.org", ()),
    ],
)
def test_tokens(headers: str, tokens: tuple[str, ...]) -> None:
    assert thread_keys(mail(headers), mail_domain=DOMAIN).tokens == tokens


@pytest.mark.parametrize(
    ("headers", "message_ids", "references"),
    [
        (f"In-Reply-To: {NEED_ID}", (NEED_ID,), ("TI-2026-0042",)),
        (f"References: {NEED_ID}", (NEED_ID,), ("TI-2026-0042",)),
        (
            "In-Reply-To: <rdv-TI-2026-0042-20261204@relais.example.org>",
            ("<rdv-TI-2026-0042-20261204@relais.example.org>",),
            ("TI-2026-0042",),
        ),
        (
            "In-Reply-To: <relance.TI-2027-12345.3@RELAIS.EXAMPLE.ORG>",
            ("<relance.TI-2027-12345.3@RELAIS.EXAMPLE.ORG>",),
            ("TI-2027-12345",),  # numbers past 9999, domain case-insensitive
        ),
        (
            "In-Reply-To: <need-ti-2026-0042-abc@relais.example.org>",
            ("<need-ti-2026-0042-abc@relais.example.org>",),
            ("TI-2026-0042",),  # a client that lowercased the id
        ),
        (
            f"In-Reply-To: <CAFx9@mail.gmail.example>\nReferences: <other@x.example> {NEED_ID} "
            "<need-TI-2026-0043-ffff@relais.example.org> <PAXP1@outlook.example>",
            (NEED_ID, "<need-TI-2026-0043-ffff@relais.example.org>"),
            ("TI-2026-0042", "TI-2026-0043"),
        ),
        (
            f"In-Reply-To: {NEED_ID}\nReferences: {NEED_ID}",
            (NEED_ID,),
            ("TI-2026-0042",),
        ),
        ("In-Reply-To: <need-TI-2026-0042-abc@evil.example>", (), ()),  # not our domain
        ("In-Reply-To: <need-TI-2026-0042-abc@sub.relais.example.org>", (), ()),
        ("In-Reply-To: <need-TI-2026-0042-abc@relais.example.org.evil.example>", (), ()),
        (
            # A meeting email (meeting_message_id): ours, found by the id itself.
            "In-Reply-To: <rdv-0123456789abcdef01234567@relais.example.org>",
            ("<rdv-0123456789abcdef01234567@relais.example.org>",),
            (),
        ),
        # Ours too, but no valid reference inside.
        (
            "In-Reply-To: <XTI-2026-0042@relais.example.org>",
            ("<XTI-2026-0042@relais.example.org>",),
            (),
        ),
        (
            "In-Reply-To: <need-TI-26-0042-abc@relais.example.org>",
            ("<need-TI-26-0042-abc@relais.example.org>",),
            (),
        ),
        (
            "In-Reply-To: <need-TI-2026-042-abc@relais.example.org>",
            ("<need-TI-2026-042-abc@relais.example.org>",),
            (),
        ),
        ("In-Reply-To: <relais.example.org@other.example>", (), ()),
    ],
)
def test_message_ids_and_references(
    headers: str, message_ids: tuple[str, ...], references: tuple[str, ...]
) -> None:
    keys = thread_keys(mail(headers), mail_domain=DOMAIN)
    assert (keys.message_ids, keys.references) == (message_ids, references)


def test_need_message_id_of_the_outgoing_email_is_recognised() -> None:
    message_id = need_message_id(
        "TI-2026-0042", partner_email="entreprises.paray@francetravail.example", mail_domain=DOMAIN
    )
    keys = thread_keys(mail(f"In-Reply-To: {message_id}"), mail_domain=DOMAIN)
    assert keys.message_ids == (message_id,)
    assert keys.references == ("TI-2026-0042",)
    # The same with a partner id as the key, which may itself contain digits and dashes.
    message_id = need_message_id(
        "TI-2026-0042", partner_email="x@y.example", mail_domain=DOMAIN, partner_id="ft-71-2026"
    )
    assert thread_keys(mail(f"References: {message_id}"), mail_domain=DOMAIN).references == (
        "TI-2026-0042",
    )


@pytest.mark.parametrize(
    ("subject", "refs"),
    [
        ("[TI-2026-0042] Recrutement", ("TI-2026-0042",)),
        ("RE: [TI-2026-0042] Recrutement — Menuiserie X", ("TI-2026-0042",)),
        ("Re : Fwd: [ti-2026-0042] Recrutement", ("TI-2026-0042",)),
        ("[TI-2026-0042] et [TI-2026-0043]", ("TI-2026-0042", "TI-2026-0043")),
        ("[TI-2026-0042] [TI-2026-0042]", ("TI-2026-0042",)),
        ("[TI-2026-12345] Foncier", ("TI-2026-12345",)),
        ("TI-2026-0042 Recrutement", ()),  # not bracketed
        ("(TI-2026-0042) Recrutement", ()),
        ("[ TI-2026-0042 ] Recrutement", ()),
        ("[TI-2026-0042 ] Recrutement", ()),
        ("[Réf. TI-2026-0042] Recrutement", ()),
        ("[TI-26-0042] Recrutement", ()),
        ("[TI-2026-042] Recrutement", ()),
        ("Recrutement", ()),
    ],
)
def test_subject_refs(subject: str, refs: tuple[str, ...]) -> None:
    assert thread_keys(mail("", subject=subject), mail_domain=DOMAIN).subject_refs == refs


def test_references_in_the_body_are_ignored() -> None:
    raw = (
        "From: a@b.example\nTo: relais@relais.example.org\nSubject: Bonjour\n\n"
        f"Suite à [TI-2026-0042] et {NEED_ID}, relais+{TOKEN}@relais.example.org\n"
    ).encode()
    assert thread_keys(parse_inbound(raw), mail_domain=DOMAIN) == ThreadKeys()


def test_mail_domain_is_normalised() -> None:
    keys = thread_keys(mail(f"To: relais+{TOKEN}@relais.example.org"), mail_domain=" Relais.Example.ORG. ")
    assert keys.tokens == (TOKEN,)


# --- Building reply addresses ------------------------------------------------------------------


def test_new_reply_token() -> None:
    tokens = {new_reply_token() for _ in range(200)}
    assert len(tokens) == 200
    assert all(re.fullmatch(r"[a-z0-9]{16}", token) for token in tokens)


def test_reply_address_round_trip() -> None:
    token = new_reply_token()
    address = reply_address("relais", token, "Relais.Example.org")
    assert address == f"relais+{token}@relais.example.org"
    keys = thread_keys(mail(f"To: Relais <{address}>"), mail_domain=DOMAIN)
    assert keys.tokens == (token,)


@pytest.mark.parametrize(
    ("local", "token", "domain"),
    [
        ("relais+x", TOKEN, DOMAIN),  # a "+" in the local part would move the token
        ("", TOKEN, DOMAIN),
        ("re lais", TOKEN, DOMAIN),
        ("relais@", TOKEN, DOMAIN),
        ("relais\r\nBcc: x", TOKEN, DOMAIN),
        (".relais", TOKEN, DOMAIN),
        ("relais", "short", DOMAIN),
        ("relais", "UPPERCASE12", DOMAIN),
        ("relais", "a" * 33, DOMAIN),
        ("relais", "abcd-1234", DOMAIN),
        ("relais", TOKEN, ""),
        ("relais", TOKEN, "relais.example.org>"),
        ("relais", TOKEN, "-relais.example.org"),
        ("relais", TOKEN, "relais..example.org"),
    ],
)
def test_reply_address_refuses_invalid_parts(local: str, token: str, domain: str) -> None:
    with pytest.raises(ValueError):
        reply_address(local, token, domain)
