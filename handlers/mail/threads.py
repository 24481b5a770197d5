"""Linking an inbound email to one of our conversations: the candidate keys it carries.

Three kinds of key, from the most to the least reliable:

- `tokens`: the reply token of a plus-address we handed out, ``relais+<token>@<domain>``,
  found among the recipients (Delivered-To / X-Original-To first, as our own server wrote
  them, then To and Cc). The part before "+" may be anything; the token is 8 to 32 letters
  or digits, compared lowercased;
- `message_ids` / `references`: our own Message-IDs quoted in In-Reply-To and References
  (only ids on our own mail domain count), and the need references (``TI-2026-0042``) they
  contain. A need's email has ``<need-TI-2026-0042-<key>@domain>`` (see
  `bot.services.emails.need_message_id`), any ``<…-TI-YYYY-NNNN…@domain>`` gives its
  reference too; a meeting email's ``<rdv-<hash>@domain>`` (`meeting_message_id`) carries
  none and is found by looking the id itself up among the emails we sent;
- `subject_refs`: ``[TI-2026-0042]`` tags in the subject, in exactly that bracketed form
  (a reference merely mentioned in the subject or the body is not a key).

These are only candidates, all of them forgeable by whoever writes the email. This module
does not decide anything: the caller looks them up and must check that the sender
belongs to the conversation found (the partner the need was sent to, the firm that made
it) before attaching the email to it, and, before letting it change anything, that the
sender is verified and the email came to the need's token (`bot/services/mail_trust.py`).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from handlers.mail.decode import InboundMail

__all__ = ["TOKEN_LENGTH", "ThreadKeys", "new_reply_token", "reply_address", "thread_keys"]

TOKEN_LENGTH = 16
_TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_TOKEN = re.compile(r"[a-z0-9]{8,32}")
# The need reference: "TI-" year "-" a number of at least four digits (bot/services/intake).
_REFERENCE = r"TI-\d{4}-\d{4,}"
_SUBJECT_REF = re.compile(rf"\[({_REFERENCE})\]", re.IGNORECASE)
_ID_REF = re.compile(rf"(?<![A-Za-z0-9])({_REFERENCE})(?![0-9])", re.IGNORECASE)
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*/=?^_`{|}~-]+)*$")
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


@dataclass(frozen=True, slots=True)
class ThreadKeys:
    """The keys an email carries towards our conversations, each in first-seen order."""

    tokens: tuple[str, ...] = ()
    # Our own Message-IDs ("<need-TI-2026-0042-abc@…>", "<rdv-3f…@…>"), as written.
    message_ids: tuple[str, ...] = ()
    # The need references inside those ids, uppercased ("TI-2026-0042").
    references: tuple[str, ...] = ()
    subject_refs: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        """True when the email carries at least one key."""
        return bool(self.tokens or self.message_ids or self.references or self.subject_refs)


def thread_keys(mail: InboundMail, *, mail_domain: str) -> ThreadKeys:
    """The candidate keys linking `mail` to our conversations (unverified, see module doc)."""
    domain = _normalise_domain(mail_domain)
    tokens: dict[str, None] = {}
    for addr in (*mail.delivered_to, *mail.to, *mail.cc):
        token = _token_of(addr, domain)
        if token:
            tokens.setdefault(token)

    message_ids: dict[str, None] = {}
    references: dict[str, None] = {}
    for message_id in (*mail.in_reply_to, *mail.references):
        local, at, id_domain = message_id.strip("<>").rpartition("@")
        if not at or _normalise_domain(id_domain) != domain:
            continue
        message_ids.setdefault(message_id)
        for ref in _ID_REF.findall(local):
            references.setdefault(ref.upper())

    subject_refs = dict.fromkeys(ref.upper() for ref in _SUBJECT_REF.findall(mail.subject))
    return ThreadKeys(
        tokens=tuple(tokens),
        message_ids=tuple(message_ids),
        references=tuple(references),
        subject_refs=tuple(subject_refs),
    )


def _normalise_domain(domain: str) -> str:
    return domain.strip().rstrip(".").lower()


def _token_of(addr: str, domain: str) -> str | None:
    """The token of ``<anything>+<token>@<domain>``, lowercased, or None."""
    local, at, addr_domain = addr.rpartition("@")
    if not at or _normalise_domain(addr_domain) != domain:
        return None
    # The last "+" separates the token: "relais+abc" as well as "a+b+abc".
    base, plus, token = local.rpartition("+")
    token = token.lower()
    if not plus or not base or not _TOKEN.fullmatch(token):
        return None
    return token


def reply_address(local: str, token: str, domain: str) -> str:
    """The plus-address ``local+token@domain`` replies to a conversation are sent to."""
    if "+" in local or not _LOCAL_PART.fullmatch(local):
        raise ValueError(f"invalid local part {local!r}")
    if not _TOKEN.fullmatch(token):
        raise ValueError(f"invalid reply token {token!r}")
    if not _DOMAIN.fullmatch(domain):
        raise ValueError(f"invalid mail domain {domain!r}")
    return f"{local}+{token}@{domain.lower()}"


def new_reply_token() -> str:
    """A fresh unguessable reply token: 16 characters from [a-z0-9] (about 82 bits)."""
    return "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))
