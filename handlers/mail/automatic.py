"""Spotting emails sent by a program (auto-replies, bounces, receipts, lists).

Such an email must never be answered: two programs answering each other loop forever, and a
bounce answered goes nowhere. `automatic_reason` returns a short reason code for the log, or
None for an email a person wrote. The signals, strongest first:

- "dsn" / "mdn" / "report": a delivery status notification (multipart/report with
  report-type=delivery-status, or X-Failed-Recipients as Exim sends), a read receipt
  (report-type=disposition-notification) or any other machine report;
- "auto-submitted": RFC 3834 Auto-Submitted with any value but "no";
- "x-autoreply" / "x-autorespond": the older non-standard auto-responder flags;
- "x-auto-response-suppress": Microsoft's header, only for the values All, OOF or AutoReply.
  Outlook also puts it on ordinary mail a person sends (meeting requests carry "RN, NRN",
  read-receipt settings "DR"...), so its mere presence proves nothing; Exchange sets "All"
  on its own out-of-office replies and bulk senders set "OOF, AutoReply";
- "precedence": Precedence bulk, junk, list or auto_reply;
- "list": List-Id or List-Unsubscribe (a mailing list or newsletter). A partner whose
  shared address is a Google Group also gets List-Id on a human reply posted through the
  group: such a reply is skipped too, the safe side of the trade;
- "null-return-path": an empty envelope sender (Return-Path: <>), used only by bounces and
  other notifications that must not be answered (RFC 5321 §4.5.5);
- "sender": a role address that nobody reads (mailer-daemon, postmaster, noreply,
  ne-pas-repondre, Exchange's MicrosoftExchange<hex>...);
- "subject": a French or English out-of-office or non-delivery subject, as the first words
  only ("Réponse automatique :", "Out of Office:", "Non remis :"...). "Accusé de réception"
  is deliberately absent: it is what a partner writes by hand to acknowledge a need, and a
  real read receipt is already caught as an MDN by its content type.
"""

from __future__ import annotations

import re
import unicodedata

from handlers.mail.decode import InboundMail

__all__ = [
    "AUTO_SUBMITTED",
    "DSN",
    "LIST",
    "MDN",
    "NULL_RETURN_PATH",
    "PRECEDENCE",
    "REPORT",
    "SENDER",
    "SUBJECT",
    "X_AUTOREPLY",
    "X_AUTORESPOND",
    "X_AUTO_RESPONSE_SUPPRESS",
    "automatic_reason",
]

DSN = "dsn"
MDN = "mdn"
REPORT = "report"
AUTO_SUBMITTED = "auto-submitted"
X_AUTOREPLY = "x-autoreply"
X_AUTORESPOND = "x-autorespond"
X_AUTO_RESPONSE_SUPPRESS = "x-auto-response-suppress"
PRECEDENCE = "precedence"
LIST = "list"
NULL_RETURN_PATH = "null-return-path"
SENDER = "sender"
SUBJECT = "subject"

_AUTOMATIC_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply", "auto-reply"})
_SUPPRESS_VALUES = frozenset({"all", "oof", "autoreply"})
_FALSE_FLAGS = frozenset({"", "no", "false", "0", "off"})
_REPORT_PARTS = {
    "message/delivery-status": DSN,
    "message/global-delivery-status": DSN,
    "message/disposition-notification": MDN,
    "message/global-disposition-notification": MDN,
}
_COMMENT = re.compile(r"\([^()]*\)")
# Local parts (lowercased, without ".", "-", "_") of mailboxes nobody reads.
_ROLE_PREFIXES = ("mailerdaemon", "postmaster")
_ROLE_FRAGMENTS = ("noreply", "donotreply", "nepasrepondre", "nerepondezpas")
_EXCHANGE_SYSTEM = re.compile(r"^microsoftexchange[0-9a-f]{32}$")
# Matched on the subject without accents, lowercased. The words must open the subject and
# be followed by a colon or end it: "Out of office next week, can you call?" is a person.
_AUTOMATIC_SUBJECT = re.compile(
    r"^\s*(?:\[[^\]]{0,30}\]\s*)?"  # a gateway tag such as "[EXT]"
    r"(?:reponse automatique|message d'absence|absence du bureau|absent\(e\) du bureau"
    r"|absent du bureau|out of office(?: reply| autoreply)?|automatic reply|auto[- ]?reply"
    r"|undeliverable|non remis|delivery status notification"
    r"|mail delivery failed|echec de la remise|undelivered mail returned to sender)"
    r"\s*(?::|$|\()"
)


def automatic_reason(mail: InboundMail) -> str | None:
    """Why this email was sent by a program (a reason code), or None if a person wrote it."""
    for check in (
        _report,
        _auto_submitted,
        _flags,
        _precedence,
        _list,
        _null_return_path,
        _sender,
        _subject,
    ):
        reason = check(mail)
        if reason:
            return reason
    return None


def _token(value: str) -> str:
    """A header's keyword: comments and parameters dropped, lowercased."""
    return _COMMENT.sub("", value).split(";", 1)[0].strip().lower()


def _report(mail: InboundMail) -> str | None:
    if mail.content_type == "multipart/report":
        if mail.report_type == "delivery-status":
            return DSN
        if mail.report_type == "disposition-notification":
            return MDN
        return REPORT  # feedback-report (abuse), or a report-type we do not know
    if mail.header("x-failed-recipients"):
        return DSN
    # A report wrapped in another multipart still carries its machine-readable part.
    for attachment in mail.attachments:
        reason = _REPORT_PARTS.get(attachment.content_type)
        if reason:
            return reason
    return None


def _auto_submitted(mail: InboundMail) -> str | None:
    values = mail.headers.get("auto-submitted", ())
    # An empty value says nothing; "no" explicitly says a person sent it.
    if any(_token(v) not in {"", "no"} for v in values):
        return AUTO_SUBMITTED
    return None


def _flags(mail: InboundMail) -> str | None:
    for name, reason in (("x-autoreply", X_AUTOREPLY), ("x-autorespond", X_AUTORESPOND)):
        if any(_token(v) not in _FALSE_FLAGS for v in mail.headers.get(name, ())):
            return reason
    for value in mail.headers.get("x-auto-response-suppress", ()):
        words = {w.strip().lower() for w in re.split(r"[,;\s]+", value)}
        if words & _SUPPRESS_VALUES:
            return X_AUTO_RESPONSE_SUPPRESS
    return None


def _precedence(mail: InboundMail) -> str | None:
    values = mail.headers.get("precedence", ())
    return PRECEDENCE if any(_token(v) in _AUTOMATIC_PRECEDENCE for v in values) else None


def _list(mail: InboundMail) -> str | None:
    names = ("list-id", "list-unsubscribe")
    return LIST if any(v.strip() for n in names for v in mail.headers.get(n, ())) else None


def _null_return_path(mail: InboundMail) -> str | None:
    # The delivering server adds Return-Path on top: the first one is the envelope sender.
    value = mail.header("return-path")
    if value is not None and "".join(_COMMENT.sub("", value).split()) == "<>":
        return NULL_RETURN_PATH
    return None


def _sender(mail: InboundMail) -> str | None:
    local = mail.from_addr.rpartition("@")[0] or mail.from_addr
    squeezed = re.sub(r"[._\-+]", "", local.lower())
    if not squeezed:
        return None
    if squeezed.startswith(_ROLE_PREFIXES) or _EXCHANGE_SYSTEM.match(squeezed):
        return SENDER
    if any(fragment in squeezed for fragment in _ROLE_FRAGMENTS):
        return SENDER
    return None


def _subject(mail: InboundMail) -> str | None:
    return SUBJECT if _AUTOMATIC_SUBJECT.match(_fold(mail.subject)) else None


def _fold(text: str) -> str:
    """Lowercased, without accents, typographic apostrophes made plain."""
    decomposed = unicodedata.normalize("NFKD", text.replace("\u2019", "'"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
