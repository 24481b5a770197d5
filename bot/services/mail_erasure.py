"""Erasure asked by email: a confirmation at the address on file, then the erasure.

Anyone can put a firm's address in From: and write "supprimer mes données". So such an
email erases nothing: it sends, to the address the need has on file (never to the From:
of the request when it differs), a message whose reply address carries a one-time token,
``relais+<token>@…``. Only a reply to that address, from the address on file, saying
"oui", erases (`bot.services.privacy.erase_person`). The token proves the person reads the
mailbox: it needs no verdict of the receiving server, so a firm whose provider signs
nothing can still be forgotten.

A request while a confirmation sent less than a day ago is pending sends nothing: a
forger cannot flood the firm's mailbox with confirmations. A token is valid for a week
and used once; only its SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from bot.services.emails import new_reply_token
from storage.models import MailEraseConfirm, Need

__all__ = ["COOLDOWN", "VALID_FOR", "ask_confirmation", "confirmed_need", "says_yes"]

VALID_FOR = timedelta(days=7)
COOLDOWN = timedelta(days=1)

# "Oui", "OUI.", "oui, je confirme", "Je confirme"; not "non", not "oui ? non".
_YES = re.compile(r"^\W*(?:(?:bonjour|bonsoir)\W+)?(?:oui|je\s+confirme|confirm[ée]e?|confirmer)\b",
                  re.IGNORECASE)
_NO = re.compile(r"\bnon\b", re.IGNORECASE)
# A greeting line before the answer ("Bonjour,", "Bonjour Madame,").
_GREETING = re.compile(r"^\W*(?:bonjour|bonsoir|madame|monsieur|hello)\b[^.!?]{0,30}[,.!]?$",
                       re.IGNORECASE)


def _hash(token: str) -> str:
    return hashlib.sha256(token.lower().encode()).hexdigest()


def ask_confirmation(session: Session, need: Need, *, now: datetime) -> str | None:
    """A fresh one-time token confirming the erasure of the need's contact, or None.

    None when the need has no address on file, or a confirmation was sent for it less
    than `COOLDOWN` ago and is still pending.
    """
    if need.id is None or not need.contact_value:
        return None
    recent = session.exec(select(MailEraseConfirm).where(
        MailEraseConfirm.need_id == need.id, col(MailEraseConfirm.used_at).is_(None),
        col(MailEraseConfirm.created_at) > now - COOLDOWN)).first()
    if recent is not None:
        return None
    token = new_reply_token()
    session.add(MailEraseConfirm(need_id=need.id, token_hash=_hash(token), created_at=now,
                                 expires_at=now + VALID_FOR))
    return token


def confirmed_need(session: Session, *, tokens: Iterable[str], sender: str, text: str,
                   now: datetime) -> Need | None:
    """The need whose erasure this email confirms (its token then used), or None.

    It must come to a valid token's address, from the address on file, and say yes.
    """
    hashes = [_hash(t) for t in tokens]
    if not hashes:
        return None
    pending = session.exec(select(MailEraseConfirm).where(
        col(MailEraseConfirm.token_hash).in_(hashes), col(MailEraseConfirm.used_at).is_(None),
        col(MailEraseConfirm.expires_at) > now)).first()
    if pending is None:
        return None
    need = session.get(Need, pending.need_id)
    if need is None or not need.contact_value:
        return None
    if need.contact_value.strip().lower() != sender.strip().lower() or not says_yes(text):
        return None
    pending.used_at = now
    session.add(pending)
    return need


def says_yes(text: str) -> bool:
    """Whether a reply confirms: its first line after a greeting opens with "oui"."""
    for line in (line.strip() for line in text.splitlines()):
        if _YES.match(line):
            return not _NO.search(line)
        if line and not _GREETING.match(line):
            return False
    return False
