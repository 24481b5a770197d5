"""Telegram updates that cannot be handled: set aside (dead letters), then skipped.

An update the library cannot read, or whose id (or chat id) does not fit a 64-bit integer,
would otherwise fail again at every attempt and hold back every later update of its chat.
It is recorded in `dead_letter` (its id as received, its chat, its top-level fields and
why: not its content) and the poller or the webhook goes on with the next one.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlmodel import Session

from storage.models import DeadLetter

__all__ = ["ID_MAX", "chat_of", "dead_letter", "in_range"]

log = logging.getLogger(__name__)

# The largest id a BIGINT column holds; Telegram's update and chat ids are far below.
ID_MAX = 2**63 - 1


def in_range(value: object) -> bool:
    """Whether `value` is an integer id the database can store (update id, chat id)."""
    return isinstance(value, int) and not isinstance(value, bool) and -ID_MAX <= value <= ID_MAX


def dead_letter(session: Session, *, source: str, update_id: object, chat_id: object,
                payload: Any, reason: str, now: datetime) -> None:
    """Record an update set aside, without its content."""
    fields = (",".join(sorted(str(k) for k in payload if k != "update_id"))
              if isinstance(payload, dict) else type(payload).__name__)
    log.error("update %s (%s) set aside: %s", str(update_id)[:40], source, reason)
    session.add(DeadLetter(source=source, update_id=str(update_id)[:40],
                           chat_id=chat_id if in_range(chat_id) else None,  # type: ignore[arg-type]
                           fields=fields[:300], reason=reason[:300], received_at=now))


def chat_of(payload: dict[str, Any]) -> int | None:
    """The chat an update belongs to (the sender's private chat for a button), if any."""
    for key, value in payload.items():
        if key == "update_id" or not isinstance(value, dict):
            continue
        message = value.get("message") if key == "callback_query" else value
        chat = message.get("chat") if isinstance(message, dict) else None
        if isinstance(chat, dict) and isinstance(chat.get("id"), int):
            return int(chat["id"])
        sender = value.get("from") or value.get("user")
        if isinstance(sender, dict) and isinstance(sender.get("id"), int):
            return int(sender["id"])
    return None
