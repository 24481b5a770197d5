"""Alerts about the outbox: a message late beyond a threshold, a message given up.

Messages are tried again for hours (see `bot.services.outbox`); meanwhile the people who
can act are the territory's animators: they are told, once per recipient, when a message
to a firm or a partner is late, and again if it is given up, so they can call instead.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from bot.catalogue import t
from bot.messages import Message, Text
from bot.services import outbox
from bot.services.routing import animator_chats
from knowledge.territories import Territory, TerritoryDirectory
from storage.models import Need, Outbox

__all__ = ["DeliveryAlerts", "duration_fr"]

log = logging.getLogger(__name__)


class DeliveryAlerts:
    """Writes the animators' alerts about late and given-up messages to the outbox."""

    def __init__(self, territories: TerritoryDirectory, *, tz: ZoneInfo,
                 late_after: timedelta, horizon: timedelta) -> None:
        self.territories = territories
        self.tz = tz
        self.late_after = late_after
        self.horizon = horizon

    def check_late(self, session: Session, now: datetime) -> int:
        """Alert about messages that became late since the last look; return the alerts."""
        sent = 0
        for late in outbox.claim_late(session, now, after=self.late_after):
            deadline = (late.created_at + self.horizon).astimezone(self.tz)
            values = {"waited": duration_fr(now - late.created_at),
                      "deadline": f"{deadline:%d/%m/%Y} à {deadline.hour} h {deadline:%M}"}
            found = self._about(session, late.channel, late.recipient, late.payload)
            if found is None:
                log.warning("outbox %s (%s) late; no animator to tell", late.outbox_id,
                            late.channel)
                continue
            territory, about = found
            key = "animator.telegram_late" if late.channel == "telegram" else "animator.email_late"
            sent += self._tell(session, territory, t(key, **about, **values), now)
        return sent

    def given_up(self, session: Session, row: Outbox) -> None:
        """The retry horizon passed without the channel taking the message: say so."""
        if row.kind == "edit":
            return  # an edited button message: nothing the animator needs to act on
        found = self._about(session, row.channel, row.recipient, row.payload)
        if found is None:
            return
        territory, about = found
        key = ("animator.telegram_given_up" if row.channel == "telegram"
               else "animator.email_given_up")
        self._tell(session, territory, t(key, **about, duration=duration_fr(self.horizon)),
                   row.failed_at or row.created_at)

    def _about(self, session: Session, channel: str, recipient: str,
               payload: dict[str, Any]) -> tuple[Territory, dict[str, object]] | None:
        """The territory to tell and what names the message, or None (nobody to tell)."""
        if channel == "telegram":
            if not recipient.lstrip("-").isdigit() or self._is_animators_chat(session, recipient):
                return None  # never alert about an alert
            need = session.exec(
                select(Need).where(Need.telegram_chat_id == int(recipient),
                                   col(Need.territory_id).is_not(None))
                .order_by(col(Need.id).desc()).limit(1)
            ).first()
            territory = self.territories.get(need.territory_id or "") if need else None
            if need is None or territory is None:
                return None  # a firm without a need yet: no territory is in charge
            return territory, {"reference": need.reference, "firm": need.firm_name or "—"}
        territory = self.territories.get(str(payload.get("territory_id") or ""))
        if territory is None:
            return None
        email = payload.get("email")
        subject = email.get("subject") if isinstance(email, dict) else None
        return territory, {"to": recipient, "subject": str(subject or "—")}

    def _is_animators_chat(self, session: Session, recipient: str) -> bool:
        return any(recipient in animator_chats(session, territory)
                   for territory in self.territories.territories)

    def _tell(self, session: Session, territory: Territory, text: Text, now: datetime) -> int:
        chats = animator_chats(session, territory)
        for chat in chats:
            outbox.enqueue(session, channel="telegram", recipient=chat, messages=[Message(text)],
                           now=now, claimed=False)
        return len(chats)


def duration_fr(span: timedelta) -> str:
    """A duration as a person says it: « 45 minutes », « 1 heure », « 2 h 30 », « 2 jours »."""
    minutes = max(int(span.total_seconds() // 60), 1)
    if minutes < 60:
        return f"{minutes} minute{'s' if minutes > 1 else ''}"
    hours, rest = divmod(minutes, 60)
    if hours >= 48 and hours % 24 == 0 and not rest:
        return f"{hours // 24} jours"
    if rest:
        return f"{hours} h {rest:02d}"
    return f"{hours} heure{'s' if hours > 1 else ''}"
