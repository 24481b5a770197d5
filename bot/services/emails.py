"""Emails as plain data: built from the templates in `bot/templates/`, stored in the outbox.

A draft is JSON-safe (`EmailDraft.to_payload`), so it is written in the same transaction as
the change that causes it; the email worker turns it into a MIME message
(`to_email_message`) only when it sends it.

Everything the firm typed is cleaned before it reaches a template or a header: control
characters and bidirectional overrides are dropped, line breaks are kept only where a
block of text allows them. Headers are built with `email.headerregistry`, never by
concatenating text, and the HTML template escapes every value.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from email import policy as email_policy
from email.errors import ObsoleteHeaderDefect
from email.headerregistry import Address
from email.message import EmailMessage
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from bot.catalogue import label, t
from bot.services import mime

# Cleaning what people typed (shared with the calendar invitations).
from bot.services.plaintext import CONTROLS as _CONTROLS
from bot.services.plaintext import LINE_BREAKS as _LINE_BREAKS
from bot.services.plaintext import one_line, text_block
from bot.services.plaintext import truncate as _truncate

__all__ = [
    "MEETING_KINDS",
    "EmailDraft",
    "FirmReplyView",
    "MeetingView",
    "NeedView",
    "firm_reply_email",
    "meeting_email",
    "meeting_message_id",
    "need_message_id",
    "new_reply_token",
    "partner_digest_email",
    "partner_need_email",
    "partner_relance_email",
    "relay_message_id",
    "relayed_email",
    "reply_address",
    "reply_subject",
    "territory_digest_email",
    "to_email_message",
    "to_outgoing",
]

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
PAYLOAD_VERSION = 1
# Where the email worker puts a report carried as a `Text` (the weekly digest's figures).
REPORT_SLOT = "<!--relais:report-->"
DEFAULT_TZ = ZoneInfo("Europe/Paris")

# Long enough for any real value, short enough that a pasted novel cannot bloat a subject.
SUBJECT_PART_LIMIT = 60
SUBJECT_LIMIT = 160
_NEEDS_CLEANING = re.compile(
    r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e"
    r"\u2066-\u2069\ud800-\udfff]"
)
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_ID_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_CID = re.compile(r"[A-Za-z0-9._-]{1,60}@[A-Za-z0-9.-]{1,100}")
_MESSAGE_ID = re.compile(r"^<[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+>$")
_HEADER_NAME = re.compile(r"^X-[A-Za-z0-9-]{1,60}$")
_MIME_TYPE = re.compile(r"^[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*$")
# Headers a draft may carry besides X-*; the structural ones are set from the draft's fields.
_ALLOWED_HEADERS = frozenset({"Auto-Submitted", "In-Reply-To", "References"})

_DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
_MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)


@dataclass(frozen=True, slots=True)
class NeedView:
    """What a partner's email shows of a need (the contact as the firm chose to share it)."""

    reference: str
    theme_label: str
    firm_name: str
    siret: str | None
    commune_name: str
    commune_insee: str
    epci_name: str | None
    description: str
    urgency_label: str
    contact_method_label: str
    # A phone number or an email address, or how to reach the firm through the animator.
    contact_value: str
    created_at: datetime
    territory_name: str | None
    # The firm's public facts (activity, size, OPCO), plain text; empty without a lookup.
    firm_facts: str = ""

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None or self.created_at.utcoffset() is None:
            raise ValueError("NeedView.created_at must be timezone-aware")
        if not _ID_TOKEN.fullmatch(self.reference):
            raise ValueError(f"unexpected need reference {self.reference!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailDraft:
    """An email ready to be stored in the outbox: addresses, subject, both bodies, headers."""

    to: tuple[str, ...]
    subject: str
    text: str
    html: str
    reply_to: str | None
    cc: tuple[str, ...] = ()
    message_id: str
    headers: dict[str, str] = field(default_factory=dict)
    # (filename, MIME type, content)
    attachments: tuple[tuple[str, str, bytes], ...] = ()
    # An iCalendar invitation (the .ics bytes and its METHOD), sent the way mail clients
    # offer to accept it (see bot.services.ics.attach_invitation).
    calendar: tuple[bytes, str] | None = None
    # PNG images shown inside the HTML part: (content id, filename, bytes).
    inline_images: tuple[tuple[str, str, bytes], ...] = ()

    def to_payload(self) -> dict[str, Any]:
        """Serialise for the outbox (JSON; attachment contents in base64)."""
        return {
            "version": PAYLOAD_VERSION,
            "to": list(self.to),
            "cc": list(self.cc),
            "reply_to": self.reply_to,
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "message_id": self.message_id,
            "headers": dict(self.headers),
            "attachments": [
                {
                    "filename": name,
                    "mime_type": mime,
                    "content": base64.b64encode(content).decode("ascii"),
                }
                for name, mime, content in self.attachments
            ],
            **({"calendar": {"ics": base64.b64encode(self.calendar[0]).decode("ascii"),
                             "method": self.calendar[1]}} if self.calendar else {}),
            **({"inline_images": [
                {"cid": cid, "filename": name, "content": base64.b64encode(data).decode("ascii")}
                for cid, name, data in self.inline_images]} if self.inline_images else {}),
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> EmailDraft:
        """Rebuild from an outbox payload."""
        version = payload.get("version", PAYLOAD_VERSION)
        if version != PAYLOAD_VERSION:
            raise ValueError(f"unsupported email payload version {version!r}")
        return cls(
            to=tuple(payload["to"]),
            cc=tuple(payload.get("cc", ())),
            reply_to=payload.get("reply_to"),
            subject=payload["subject"],
            text=payload["text"],
            html=payload["html"],
            message_id=payload["message_id"],
            headers=dict(payload.get("headers", {})),
            attachments=tuple(
                (a["filename"], a["mime_type"], base64.b64decode(a["content"], validate=True))
                for a in payload.get("attachments", ())
            ),
            calendar=(
                (base64.b64decode(payload["calendar"]["ics"], validate=True),
                 str(payload["calendar"]["method"]))
                if payload.get("calendar") else None
            ),
            inline_images=tuple(
                (i["cid"], i["filename"], base64.b64decode(i["content"], validate=True))
                for i in payload.get("inline_images", ())
            ),
        )


def _subject(key: str, **values: object) -> str:
    """A subject from the catalogue, its values already cleaned, cut to the subject limit."""
    return _truncate(t(key, **values).plain(), SUBJECT_LIMIT)


# --- French dates --------------------------------------------------------------------------


def french_date(day: date) -> str:
    """A date as written in a French letter: « mardi 1er décembre 2026 »."""
    number = "1er" if day.day == 1 else str(day.day)
    return f"{_DAYS[day.weekday()]} {number} {_MONTHS[day.month - 1]} {day.year}"


def _french_datetime(moment: datetime) -> str:
    number = "1er" if moment.day == 1 else str(moment.day)
    return (
        f"{number} {_MONTHS[moment.month - 1]} {moment.year} "
        f"à {moment.hour} h {moment.minute:02d}"
    )


def _format_siret(siret: str | None) -> str | None:
    if not siret:
        return None
    digits = one_line(siret, 40)
    if len(digits) == 14 and digits.isdigit():
        # The SIREN, then the establishment's number, as printed on an Insee notice.
        return f"{digits[0:3]} {digits[3:6]} {digits[6:9]} {digits[9:]}"
    return digits


# --- Templates -----------------------------------------------------------------------------


def _nl2br(value: object) -> Markup:
    """Escape a text block and show its line breaks as <br> (HTML templates only)."""
    return Markup("<br>\n").join(escape(line) for line in str(value).split("\n"))


def _finalize(value: object) -> object:
    """Last guard on every printed value: no CR, no control or bidi characters."""
    # Values are cleaned before rendering; this catches one a future template adds unclean.
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return text_block(value, len(value) + 1) if _NEEDS_CLEANING.search(value) else value


@cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        # Escape in .html only: a .txt body would show "&lt;" to the reader.
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_finalize,
        auto_reload=False,  # shipped with the code: no need to stat the file at every email
    )
    env.filters["nl2br"] = _nl2br
    return env


def render(name: str, context: Mapping[str, Any]) -> str:
    """Render one template of `bot/templates/`."""
    return _environment().get_template(name).render(context)


# --- Addresses and identifiers -------------------------------------------------------------


def _address(display_name: str, addr_spec: str) -> Address:
    spec = addr_spec.strip()
    if not spec or any(ch.isspace() for ch in spec) or _CONTROLS.search(spec):
        raise ValueError(f"invalid email address {addr_spec!r}")
    # Address() parses the addr-spec and raises on anything that is not one.
    address = Address(display_name=one_line(display_name, 120), addr_spec=spec)
    if not address.username or not address.domain:
        raise ValueError(f"invalid email address {addr_spec!r}")
    return address


@lru_cache(maxsize=1024)
def _mailbox(value: str) -> Address:
    """Parse one stored "Name <addr>" string back into an Address, refusing anything else."""
    if _LINE_BREAKS.search(value):
        raise ValueError(f"line break in address {value!r}")
    header = email_policy.default.header_factory("To", value)
    addresses = header.addresses
    # Obsolete syntax (e.g. "Relais T.I." unquoted) is still one clear mailbox: accept it.
    defects = [d for d in header.defects if not isinstance(d, ObsoleteHeaderDefect)]
    if len(addresses) != 1 or defects or not addresses[0].domain:
        raise ValueError(f"invalid email address {value!r}")
    return addresses[0]  # type: ignore[no-any-return]


def _recipient_key(partner_id: str | None, partner_email: str) -> str:
    if partner_id and _ID_TOKEN.fullmatch(partner_id):
        return partner_id
    # An id that cannot sit in a Message-ID, or no id at all: a short stable hash instead.
    basis = partner_id or partner_email.strip().lower()
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:16]


def need_message_id(
    reference: str, *, partner_email: str, mail_domain: str, partner_id: str | None = None
) -> str:
    """The Message-ID of a need's email to a partner: the same need and partner, the same id."""
    if not _ID_TOKEN.fullmatch(reference):
        raise ValueError(f"unexpected need reference {reference!r}")
    if not _DOMAIN.fullmatch(mail_domain):
        raise ValueError(f"invalid mail domain {mail_domain!r}")
    key = _recipient_key(partner_id, partner_email)
    return f"<need-{reference}-{key}@{mail_domain.lower()}>"


# --- Reply addresses -----------------------------------------------------------------------

_TOKEN = re.compile(r"[a-z0-9]{8,32}")


def new_reply_token() -> str:
    """A random token for a need's reply address (16 characters, [a-z0-9])."""
    return secrets.token_hex(8)


def reply_address(local: str, token: str, domain: str) -> str:
    """relais+<token>@domain: mail to it comes back to the need whose token it is."""
    if not _TOKEN.fullmatch(token) or not _DOMAIN.fullmatch(domain):
        raise ValueError("invalid reply token or domain")
    return f"{local}+{token}@{domain.lower()}"


def optional_reply_address(local: str | None, token: str | None, domain: str) -> str | None:
    """The need's reply address when the bot reads its mailbox, else None."""
    return reply_address(local, token, domain) if local and token else None


def _partner_reply_path(
    reference: str, animator_name: str, animator_email: str, need_reply_address: str | None
) -> tuple[Address | None, Address | None, tuple[str, ...]]:
    """(animator, Reply-To, Cc) of a partner's email.

    With the need's reply address, replies come back to the bot (kept with the need,
    acknowledgements recognised) and the animator is in Cc; without it they go to the
    animator. Without an animator email there is no Reply-To: replies reach MAIL_FROM.
    """
    animator = _address(animator_name, animator_email) if animator_email.strip() else None
    if need_reply_address:
        cc = (str(animator),) if animator else ()
        name = t("partner.reply_to_name", reference=reference).plain()
        return animator, _address(name, need_reply_address), cc
    return animator, animator, ()


# --- The partner's email -------------------------------------------------------------------


def partner_need_email(
    *,
    need: NeedView,
    partner_name: str,
    partner_email: str,
    reason: str,
    ack_days: int,
    ack_deadline: date,
    animator_name: str,
    animator_email: str,
    mail_domain: str,
    partner_id: str | None = None,
    tz: tzinfo = DEFAULT_TZ,
    need_reply_address: str | None = None,
) -> EmailDraft:
    """The email that hands a confirmed need to a partner, who acknowledges by replying.

    With `need_reply_address`, replies go to the bot (attached to the need, acknowledgement
    recognised) and the animator is in Cc; without it they go to the animator directly.
    """
    # ack_days counts working days, like ack_deadline; created_at is shown in tz (people's
    # time, not UTC). Without an animator email there is no Reply-To: replies reach MAIL_FROM.
    to = _address(partner_name, partner_email)
    animator, reply_to, cc = _partner_reply_path(need.reference, animator_name, animator_email,
                                                 need_reply_address)
    firm = one_line(need.firm_name)
    commune = one_line(need.commune_name, 120)
    theme = one_line(need.theme_label, 80)
    subject = _subject(
        "partner.need_subject", reference=need.reference,
        theme=_truncate(theme, SUBJECT_PART_LIMIT), firm=_truncate(firm, SUBJECT_PART_LIMIT),
        commune=_truncate(commune, SUBJECT_PART_LIMIT),
    )
    context = {
        "reference": need.reference,
        "theme": theme,
        "firm": firm,
        "siret": _format_siret(need.siret),
        "firm_facts": one_line(need.firm_facts, 300) if need.firm_facts else None,
        "commune": commune,
        "insee": one_line(need.commune_insee, 10),
        "epci": one_line(need.epci_name, 200) if need.epci_name else None,
        "territory": one_line(need.territory_name, 200) if need.territory_name else None,
        "description": text_block(need.description),
        "urgency": one_line(need.urgency_label, 80),
        "contact_method": one_line(need.contact_method_label, 80),
        "contact_value": one_line(need.contact_value, 200),
        "created_at": _french_datetime(need.created_at.astimezone(tz)),
        "partner_name": one_line(partner_name, 120),
        "reason": text_block(reason, 1000),
        "ack_delay": (label("partner.ack_delay_one") if ack_days <= 1
                      else t("partner.ack_delay_other", days=ack_days).plain()),
        "ack_deadline": french_date(ack_deadline),
        "animator_name": one_line(animator_name, 120),
        "animator_email": animator.addr_spec if animator else None,
        "via_bot": bool(need_reply_address),
    }
    return EmailDraft(
        to=(str(to),),
        subject=subject,
        text=render("partner_need.txt", context),
        html=render("partner_need.html", context),
        reply_to=str(reply_to) if reply_to else None,
        cc=cc,
        message_id=need_message_id(
            need.reference, partner_email=to.addr_spec, mail_domain=mail_domain,
            partner_id=partner_id,
        ),
        headers={
            # RFC 3834: tells auto-responders and filters this was sent by a program.
            "Auto-Submitted": "auto-generated",
            "X-Relais-Reference": need.reference,
        },
    )


# --- MIME ----------------------------------------------------------------------------------


def _checked_headers(headers: Mapping[str, str]) -> Iterable[tuple[str, str]]:
    for name, value in headers.items():
        if name not in _ALLOWED_HEADERS and not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"header {name!r} may not be set by a draft")
        if _LINE_BREAKS.search(value):
            raise ValueError(f"line break in header {name}")
        yield name, one_line(value, 500)


def _checked_filename(name: str) -> str:
    # Keep the last path component only: a receiving client must not see a path.
    base = one_line(name, 120).replace("\\", "/").rsplit("/", 1)[-1].strip(". ")
    if not base:
        raise ValueError(f"invalid attachment filename {name!r}")
    return base


def _checked(draft: EmailDraft, now: datetime | None) -> datetime:
    """Refuse a draft whose headers could be injected or are incomplete; its Date."""
    if _LINE_BREAKS.search(draft.subject):
        raise ValueError("line break in subject")
    if not _MESSAGE_ID.fullmatch(draft.message_id):
        raise ValueError(f"invalid Message-ID {draft.message_id!r}")
    if not draft.to:
        raise ValueError("an email needs at least one recipient")
    sent_at = now if now is not None else datetime.now(UTC)
    if sent_at.tzinfo is None:
        raise ValueError("the Date of an email must be timezone-aware")
    return sent_at


def to_email_message(
    draft: EmailDraft, *, mail_from: str, now: datetime | None = None
) -> EmailMessage:
    """The MIME message for a draft: text and HTML alternatives, attachments if any."""
    sent_at = _checked(draft, now)

    msg = EmailMessage(policy=email_policy.default)
    msg["From"] = _mailbox(mail_from)
    msg["To"] = tuple(_mailbox(a) for a in draft.to)
    if draft.cc:
        msg["Cc"] = tuple(_mailbox(a) for a in draft.cc)
    if draft.reply_to:
        msg["Reply-To"] = _mailbox(draft.reply_to)
    # The policy folds a long subject and encodes non-ASCII as RFC 2047 words.
    msg["Subject"] = one_line(draft.subject, SUBJECT_LIMIT)
    msg["Date"] = sent_at.astimezone(UTC)
    msg["Message-ID"] = draft.message_id
    for name, value in _checked_headers(draft.headers):
        msg[name] = value
    # Quoted-printable keeps long French lines intact through servers without 8BITMIME.
    msg.set_content(draft.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(draft.html, subtype="html", charset="utf-8", cte="quoted-printable")
    if draft.inline_images:
        html_part = msg.get_body(("html",))
        assert html_part is not None
        for cid, filename, data in draft.inline_images:
            if not _CID.fullmatch(cid):
                raise ValueError(f"invalid content id {cid!r}")
            # multipart/related: the HTML shows the image with <img src="cid:...">.
            html_part.add_related(data, maintype="image", subtype="png", cid=f"<{cid}>",
                                  filename=_checked_filename(filename), disposition="inline")
    for filename, mime_type, content in draft.attachments:
        if not _MIME_TYPE.fullmatch(mime_type):
            raise ValueError(f"invalid attachment MIME type {mime_type!r}")
        maintype, subtype = mime_type.split("/", 1)
        # add_attachment turns multipart/alternative into multipart/mixed.
        msg.add_attachment(
            content, maintype=maintype, subtype=subtype, filename=_checked_filename(filename)
        )
    if draft.calendar is not None:
        from bot.services.ics import attach_invitation

        ics, method = draft.calendar
        if method not in {"REQUEST", "CANCEL"}:
            raise ValueError(f"unsupported calendar method {method!r}")
        attach_invitation(msg, ics, method=method)  # type: ignore[arg-type]
    return msg


@lru_cache(maxsize=16)
def _from_header(mail_from: str) -> tuple[str, str]:
    """The From header's encoded line and the envelope sender, computed once per sender."""
    sender = _mailbox(mail_from)
    return mime.mailbox_header("From", [sender]), sender.addr_spec


def to_outgoing(
    draft: EmailDraft, *, mail_from: str, now: datetime | None = None
) -> mime.OutgoingEmail | EmailMessage:
    """What the email worker sends: the message's bytes, written directly when it can be.

    The same checks as `to_email_message`, and the same message once parsed; a draft with
    attachments, an invitation, inline images or an internationalised address is built by
    `to_email_message` (the standard library), the common email in a tenth of its time.
    """
    sent_at = _checked(draft, now)
    if draft.attachments or draft.calendar is not None or draft.inline_images:
        return to_email_message(draft, mail_from=mail_from, now=sent_at)
    from_line, sender = _from_header(mail_from)
    to = [_mailbox(a) for a in draft.to]
    cc = [_mailbox(a) for a in draft.cc]
    reply_to = _mailbox(draft.reply_to) if draft.reply_to else None
    everyone = [*to, *cc, *([reply_to] if reply_to else [])]
    if not sender.isascii() or not all(a.addr_spec.isascii() for a in everyone):
        return to_email_message(draft, mail_from=mail_from, now=now)  # needs SMTPUTF8
    headers = [from_line, mime.mailbox_header("To", to)]
    if cc:
        headers.append(mime.mailbox_header("Cc", cc))
    if reply_to:
        headers.append(mime.mailbox_header("Reply-To", [reply_to]))
    headers += [
        mime.unstructured_header("Subject", one_line(draft.subject, SUBJECT_LIMIT)),
        mime.date_header(sent_at),
        f"Message-ID: {draft.message_id}\r\n",
        *(mime.unstructured_header(name, value) for name, value in
          _checked_headers(draft.headers)),
    ]
    return mime.OutgoingEmail(
        sender=sender, recipients=tuple(a.addr_spec for a in (*to, *cc)),
        data=mime.alternative(headers, draft.text, draft.html), message_id=draft.message_id)


def partner_relance_email(
    *,
    need: NeedView,
    partner_name: str,
    partner_email: str,
    partner_id: str,
    routed_on: date,
    deadline: date,
    animator_name: str,
    animator_email: str,
    mail_domain: str,
    need_reply_address: str | None = None,
) -> EmailDraft:
    """The one reminder a partner gets when it has not acknowledged a need in time."""
    to = _address(partner_name, partner_email)
    animator, reply_to, cc = _partner_reply_path(need.reference, animator_name, animator_email,
                                                 need_reply_address)
    firm = one_line(need.firm_name)
    original = need_message_id(need.reference, partner_email=to.addr_spec,
                               mail_domain=mail_domain, partner_id=partner_id)
    context = {
        "reference": need.reference,
        "theme": one_line(need.theme_label, 80),
        "firm": firm,
        "commune": one_line(need.commune_name, 120),
        "routed_on": french_date(routed_on),
        "deadline": french_date(deadline),
        "animator_name": one_line(animator_name, 120),
        "animator_email": animator.addr_spec if animator else None,
        "via_bot": bool(need_reply_address),
    }
    key = hashlib.sha256(f"relance|{original}".encode()).hexdigest()[:24]
    return EmailDraft(
        to=(str(to),),
        subject=_subject("partner.relance_subject", reference=need.reference,
                         theme=one_line(need.theme_label, 60),
                         firm=_truncate(firm, SUBJECT_PART_LIMIT)),
        text=render("partner_relance.txt", context),
        html=render("partner_relance.html", context),
        reply_to=str(reply_to) if reply_to else None,
        cc=cc,
        message_id=f"<relance-{key}@{mail_domain.lower()}>",
        headers={"Auto-Submitted": "auto-generated", "X-Relais-Reference": need.reference,
                 "In-Reply-To": original, "References": original},
    )


# --- Weekly digests ------------------------------------------------------------------------


def territory_digest_email(
    *, to_name: str, to_email: str, territory: str, title: str,
    charts: Sequence[tuple[str, bytes]], period: str, mail_domain: str,
) -> EmailDraft:
    """The weekly picture of a territory for one animator, charts inline (PNG).

    The report itself travels as a `Text` in the outbox payload (``report``): the email
    worker renders it into both parts at `REPORT_SLOT` when it sends the email.
    """
    to = _address(to_name, to_email)
    images = tuple((f"{name.removesuffix('.png')}.{period}@{mail_domain.lower()}", name, data)
                   for name, data in charts)
    context = {"to_name": one_line(to_name, 120), "territory": one_line(territory, 120),
               "report": REPORT_SLOT, "report_html": Markup(REPORT_SLOT),
               "images": [cid for cid, _name, _data in images]}
    key = hashlib.sha256(f"digest|{territory}|{period}|{to.addr_spec}".encode()).hexdigest()
    return EmailDraft(
        to=(str(to),), subject=_subject("animator.territory_digest_subject",
                                        title=one_line(title, 80), territory=territory),
        text=render("territory_digest.txt", context),
        html=render("territory_digest.html", context), reply_to=None,
        message_id=f"<digest-{key[:24]}@{mail_domain.lower()}>",
        headers={"Auto-Submitted": "auto-generated"}, inline_images=images)


class _DigestLine(NamedTuple):
    """One need of a partner's digest, as the templates print it."""

    reference: str
    what: str  # theme · firm (commune)
    routed_on: str
    state: str


def _digest_lines(needs: Sequence[Mapping[str, str]]) -> list[_DigestLine]:
    """Each need's fields cleaned, theme, firm and commune joined as the line prints them.

    A busy territory's partner has hundreds of lines: the templates print four values a
    line rather than six (each printed value is finalized, and escaped in HTML), read as
    attributes (Jinja tries an attribute before a key), and a value repeated from line to
    line (theme, state, commune, day) is cleaned once. The separators have nothing to
    escape: the lines read exactly as if printed field by field.
    """
    cleaned: dict[str, str] = {}

    def clean(value: str) -> str:
        text = cleaned.get(value)
        if text is None:
            text = cleaned[value] = one_line(value, 200)
        return text

    return [_DigestLine(clean(need["reference"]),
                        f"{clean(need['theme'])} · {clean(need['firm'])} "
                        f"({clean(need['commune'])})",
                        clean(need["routed_on"]), clean(need["state"])) for need in needs]


def partner_digest_email(
    *, partner_name: str, partner_email: str, territory: str,
    needs: Sequence[Mapping[str, str]], period: str, mail_domain: str,
    reply_to: str | None,
) -> EmailDraft:
    """The weekly list of a partner's open needs (sent only when there are some)."""
    to = _address(partner_name, partner_email)
    context = {"territory": one_line(territory, 120), "needs": _digest_lines(needs)}
    key = hashlib.sha256(f"pdigest|{territory}|{period}|{to.addr_spec}".encode()).hexdigest()
    return EmailDraft(
        to=(str(to),), subject=_subject("partner.digest_subject", count=len(needs),
                                        territory=territory),
        text=render("partner_digest.txt", context), html=render("partner_digest.html", context),
        reply_to=reply_to, message_id=f"<pdigest-{key[:24]}@{mail_domain.lower()}>",
        headers={"Auto-Submitted": "auto-generated"})


# --- Replies to firms that write to the bot ---------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FirmReplyView:
    """What the bot answers a firm that wrote by email (one reply per incoming message)."""

    kind: str  # new | update | erase_confirm | erased
    reference: str
    theme_label: str | None
    commune: str | None
    missing: tuple[str, ...]
    partners: tuple[str, ...]
    animator_name: str | None
    territory_name: str | None
    cards: tuple[tuple[str, str, str], ...]  # (title, summary, url)
    attachments: tuple[str, ...] = ()
    oversized: bool = False
    max_size: str  # "10 Mo"


def firm_reply_email(
    *,
    view: FirmReplyView,
    to_email: str,
    to_name: str,
    subject: str,
    in_reply_to: str,
    references: tuple[str, ...],
    reply_to: str,
    mail_domain: str,
) -> EmailDraft:
    """The bot's automatic answer to a firm's email, threaded, marked auto-replied."""
    to = _address(to_name, to_email)
    base = one_line(subject, 100) or label("firm.email_reply_subject")
    tag = f"[{view.reference}]"
    subject_line = base if tag in base else f"{tag} {base}"
    if not subject_line.lower().startswith(("re:", "re :")):
        subject_line = f"Re: {subject_line}"
    context = {
        "kind": view.kind,
        "reference": view.reference,
        "theme": one_line(view.theme_label, 80) if view.theme_label else None,
        "commune": one_line(view.commune, 120) if view.commune else None,
        "missing": [one_line(m, 200) for m in view.missing],
        "partners": [one_line(p, 120) for p in view.partners],
        "animator": one_line(view.animator_name, 120) if view.animator_name else None,
        "territory": one_line(view.territory_name, 120) if view.territory_name else None,
        "cards": [{"title": one_line(t, 120), "summary": one_line(s, 300),
                   "url": one_line(u, 300)} for t, s, u in view.cards],
        "attachments": [one_line(a, 120) for a in view.attachments],
        "oversized": view.oversized,
        "max_size": view.max_size,
    }
    key = hashlib.sha256(f"reply|{in_reply_to}".encode()).hexdigest()[:24]
    headers = {
        # RFC 3834: an automatic answer; well-behaved responders never answer it back.
        "Auto-Submitted": "auto-replied",
        "X-Relais-Reference": view.reference,
        "In-Reply-To": in_reply_to,
        "References": " ".join((*references[-10:], in_reply_to)),
    }
    return EmailDraft(
        to=(str(to),),
        subject=_truncate(subject_line, SUBJECT_LIMIT),
        text=render("firm_reply.txt", context),
        html=render("firm_reply.html", context),
        reply_to=reply_to,
        message_id=f"<reply-{key}@{mail_domain.lower()}>",
        headers=headers,
    )


# --- Messages relayed by email between people ------------------------------------------


def relay_message_id(reference: str, key: str, mail_domain: str) -> str:
    """The Message-ID of a relayed email: it names the need, so an answer finds its thread."""
    if not _ID_TOKEN.fullmatch(reference):
        raise ValueError(f"unexpected need reference {reference!r}")
    if not _DOMAIN.fullmatch(mail_domain):
        raise ValueError(f"invalid mail domain {mail_domain!r}")
    digest = hashlib.sha256(f"relay|{key}".encode()).hexdigest()[:20]
    return f"<relay-{reference}-{digest}@{mail_domain.lower()}>"


def reply_subject(previous: str | None, fallback: str, reference: str) -> str:
    """"Re: [TI-…] <the subject answered>", or the fallback when nothing is answered."""
    base = one_line(previous or "", 100)
    if not base:
        return _truncate(one_line(fallback), SUBJECT_LIMIT)
    tag = f"[{reference}]"
    line = base if tag in base else f"{tag} {base}"
    if not line.lower().startswith(("re:", "re :")):
        line = f"Re: {line}"
    return _truncate(line, SUBJECT_LIMIT)


def relayed_email(
    *,
    reference: str,
    to_name: str,
    to_email: str,
    subject: str,
    intro: str,
    text: str,
    outro: str,
    message_id: str,
    reply_to: str | None,
    reply_to_name: str = "",
    cc: Sequence[tuple[str, str]] = (),
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
) -> EmailDraft:
    """A person's message relayed by email, threaded after the email it answers."""
    to = _address(to_name, to_email)
    copies = tuple(str(_address(name, email)) for name, email in cc if email.strip())
    answer_to = _address(reply_to_name, reply_to) if reply_to else None
    context = {"intro": text_block(intro, 1000), "text": text_block(text, 20_000),
               "outro": text_block(outro, 1000)}
    headers = {"X-Relais-Reference": reference}
    if in_reply_to:
        headers["In-Reply-To"] = in_reply_to
        chain = [r for r in references if r != in_reply_to][-10:]
        headers["References"] = " ".join((*chain, in_reply_to))
    return EmailDraft(
        to=(str(to),), cc=copies, subject=_truncate(one_line(subject), SUBJECT_LIMIT),
        text=render("relayed.txt", context), html=render("relayed.html", context),
        reply_to=str(answer_to) if answer_to else None, message_id=message_id,
        headers=headers)


# --- Meetings ------------------------------------------------------------------------------

# One subject per kind, `partner.meeting_subject_<kind>` in the catalogue.
MEETING_KINDS = frozenset({"invite", "update", "cancel", "reminder"})


@dataclass(frozen=True, slots=True, kw_only=True)
class MeetingView:
    """What a meeting email shows: the need, the slot in people's words, place, who."""

    reference: str
    firm_name: str
    commune_name: str
    theme_label: str
    slot: str  # "jeudi 14 janvier 2027, 14h30–15h30"
    place: str
    video_url: str | None
    participants: tuple[str, ...]
    organizer_name: str
    organizer_email: str | None
    description: str = ""


def meeting_message_id(uid: str, kind: str, sequence: int, to: str, mail_domain: str,
                       extra: str = "") -> str:
    """A stable Message-ID per meeting version, kind and recipient (a resend is the same)."""
    if not _DOMAIN.fullmatch(mail_domain):
        raise ValueError(f"invalid mail domain {mail_domain!r}")
    key = hashlib.sha256(f"{uid}|{kind}|{sequence}|{to.lower()}|{extra}".encode()).hexdigest()
    return f"<rdv-{key[:24]}@{mail_domain.lower()}>"


def meeting_email(
    *,
    kind: str,
    meeting: MeetingView,
    to_name: str,
    to_email: str,
    uid: str,
    sequence: int,
    mail_domain: str,
    calendar: tuple[bytes, str] | None = None,
    extra_key: str = "",
) -> EmailDraft:
    """An invitation, update, cancellation or reminder of a meeting, to one person."""
    if kind not in MEETING_KINDS:
        raise ValueError(f"unknown meeting email kind {kind!r}")
    to = _address(to_name, to_email)
    reply_to = (_address(meeting.organizer_name, meeting.organizer_email)
                if meeting.organizer_email else None)
    firm = one_line(meeting.firm_name)
    slot = one_line(meeting.slot, 120)
    subject = _subject(f"partner.meeting_subject_{kind}", reference=meeting.reference,
                       firm=_truncate(firm, SUBJECT_PART_LIMIT), slot=slot)
    context = {
        "kind": kind,
        "reference": meeting.reference,
        "firm": firm,
        "commune": one_line(meeting.commune_name, 120),
        "theme": one_line(meeting.theme_label, 80),
        "slot": slot,
        "place": one_line(meeting.place, 300),
        "video_url": one_line(meeting.video_url, 500) if meeting.video_url else None,
        "participants": [one_line(p, 200) for p in meeting.participants],
        "organizer_name": one_line(meeting.organizer_name, 120),
        "organizer_email": reply_to.addr_spec if reply_to else None,
        "to_name": one_line(to_name, 120),
        "description": text_block(meeting.description, 1000) if meeting.description else "",
    }
    return EmailDraft(
        to=(str(to),),
        subject=subject,
        text=render("meeting.txt", context),
        html=render("meeting.html", context),
        reply_to=str(reply_to) if reply_to else None,
        message_id=meeting_message_id(uid, kind, sequence, to.addr_spec, mail_domain,
                                      extra_key),
        headers={"Auto-Submitted": "auto-generated", "X-Relais-Reference": meeting.reference},
        calendar=calendar,
    )
