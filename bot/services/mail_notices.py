"""Strangers' emails reach the chefs de projet grouped, not one ping each.

Anyone can write to Relais' address, with any sender: a new need by email comes from a
stranger. The first one of a period (an hour by default) reaches the territory's chefs de
projet at once, as it always did (its card, or what it lacks); the next ones of that
period wait, and the first look at the mailbox in the next period lists them all in one
notice. Twenty emails in an hour make two pings, not twenty.

A period is claimed with a `digest_run` row (kind `mail_needs`, period
`<territory>:<start of the period>`) inserted once whatever the number of instances; each
need announced gets one too (kind `mail_need`, period its id), so a notice lists exactly
the needs not announced yet.

A thread that ping-pongs (a helpdesk answering every message without the Auto-Submitted
header) is set aside by the loop breaker; its chefs de projet are told once an hour.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from bot.catalogue import label, t
from bot.messages import Bullets, Message, Span, Text
from bot.services import outbox
from bot.services.routing import animator_chats
from knowledge.taxonomy import theme_label
from knowledge.territories import Territory, TerritoryDirectory
from storage.db import claim_run
from storage.models import DigestRun, InboundEmail, Need

__all__ = ["NewNeedNotices", "set_aside_loop"]

log = logging.getLogger(__name__)

KIND = "mail_needs"
NEED_KIND = "mail_need"
# Listed by name in one notice; the rest are counted.
MAX_LISTED = 15
# Needs older than this are never announced late (e.g. on the first run of this version).
HORIZON = timedelta(days=1)


class NewNeedNotices:
    """Announces needs created by email: the first of a period at once, the others grouped."""

    def __init__(self, territories: TerritoryDirectory, *, period: timedelta) -> None:
        self.territories = territories
        self.period = period

    def announce(self, session: Session, need: Need, messages: list[tuple[str, Message]],
                 *, now: datetime) -> bool:
        """A need just created from an email: its chefs de projet's `messages` now, or later.

        True when something was sent now. `messages` are what they would get for this need
        alone (its card, or what it lacks).
        """
        territory = self.territories.get(need.territory_id or "")
        if territory is None or self.period <= timedelta(0):
            _send(session, messages, now)
            if self.period > timedelta(0):
                # No chef de projet to tell yet: completed later, the need is carded then,
                # as any need of a thread (never listed as a new one).
                _mark(session, [need], now)
            return bool(messages)
        if not self._claim(session, territory.id, now):
            return False  # this period had its notice: listed in the next one
        waiting = [n for n in self._waiting(session, territory.id, now) if n.id != need.id]
        if waiting:
            self._send_list(session, territory, [*waiting, need], now)
        else:
            _send(session, messages, now)
            _mark(session, [need], now)
        return True

    def flush(self, session: Session, *, now: datetime) -> int:
        """List the needs not announced yet, territory by territory, if a period allows.

        Called after every look at the mailbox; returns the number of notices sent.
        """
        if self.period <= timedelta(0):
            return 0
        session.execute(delete(DigestRun).where(
            DigestRun.kind == NEED_KIND, col(DigestRun.ran_at) < now - 2 * HORIZON))
        territories = session.exec(
            select(Need.territory_id).where(
                Need.channel == "email", col(Need.territory_id).is_not(None),
                col(Need.created_at) > now - HORIZON).distinct()).all()
        sent = 0
        for territory_id in territories:
            territory = self.territories.get(territory_id or "")
            if territory is None:
                continue
            waiting = self._waiting(session, territory.id, now)
            if waiting and self._claim(session, territory.id, now):
                self._send_list(session, territory, waiting, now)
                sent += 1
        return sent

    # --- periods ---------------------------------------------------------------------------
    def _period_key(self, territory_id: str, now: datetime) -> str:
        """`<territory>:<start of the period>`, periods counted from midnight UTC."""
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        index = int((now - day) / self.period)
        start = day + index * self.period
        return f"{territory_id}:{start.strftime('%Y-%m-%dT%H:%M')}"

    def _claim(self, session: Session, territory_id: str, now: datetime) -> bool:
        """Take this period's notice for the territory; False if it was taken already."""
        return claim_run(session, KIND, self._period_key(territory_id, now), now)

    @staticmethod
    def _waiting(session: Session, territory_id: str, now: datetime) -> list[Need]:
        """The territory's needs created by email lately and not announced yet."""
        recent = list(session.exec(select(Need).where(
            Need.channel == "email", Need.territory_id == territory_id,
            col(Need.created_at) > now - HORIZON).order_by(col(Need.id))))
        if not recent:
            return []
        announced = set(session.exec(select(DigestRun.period).where(
            DigestRun.kind == NEED_KIND,
            col(DigestRun.period).in_([str(n.id) for n in recent]))).all())
        return [n for n in recent if str(n.id) not in announced]

    # --- the notice ------------------------------------------------------------------------
    def _send_list(self, session: Session, territory: Territory, needs: list[Need],
                   now: datetime) -> None:
        items = tuple((Span(self._line(need)),) for need in needs[:MAX_LISTED])
        text = Text((*t("animator.mail_needs_grouped", count=len(needs),
                        territory=territory.name).blocks, Bullets(items)))
        if len(needs) > MAX_LISTED:
            text += t("animator.mail_needs_more", count=len(needs) - MAX_LISTED)
        text += t("animator.mail_needs_how", reference=needs[-1].reference)
        chats = [int(c) for c in animator_chats(session, territory)]
        outbox.enqueue_for_chats(session, chats, Message(text), now=now)
        _mark(session, needs, now)
        log.info("grouped notice of %d email needs for %s", len(needs), territory.id)

    @staticmethod
    def _line(need: Need) -> str:
        if need.missing:
            what = t("animator.mail_needs_missing", missing=", ".join(
                label(f"animator.email_missing_{m}") for m in need.missing)).plain()
        else:
            what = theme_label(need.theme)
        return t("animator.mail_needs_line", reference=need.reference, what=what,
                 commune=need.commune_name or "—", sender=need.contact_value or "—").plain()




def _mark(session: Session, needs: list[Need], now: datetime) -> None:
    """Remember these needs as announced (never listed again)."""
    for need in needs:
        claim_run(session, NEED_KIND, str(need.id), now)


def _send(session: Session, messages: list[tuple[str, Message]], now: datetime) -> None:
    for chat, message in messages:
        outbox.enqueue(session, channel="telegram", recipient=chat, messages=[message],
                       now=now, claimed=False)


def set_aside_loop(session: Session, territories: TerritoryDirectory, row: InboundEmail,
                   need: Need, sender: str, *, now: datetime) -> None:
    """Keep an email of a thread that ping-pongs without acting on it; tell once an hour."""
    told = session.exec(select(func.count()).select_from(InboundEmail).where(
        InboundEmail.need_id == need.id, InboundEmail.kind == "loop",
        func.lower(col(InboundEmail.from_addr)) == sender.lower(),
        col(InboundEmail.received_at) > now - timedelta(hours=1))).one()
    row.status, row.kind, row.need_id, row.processed_at = "ignored", "loop", need.id, now
    row.note = "loop breaker: too many emails in this thread this hour"
    session.add(row)
    territory = territories.get(need.territory_id or "")
    if told or territory is None:
        return
    message = Message(t("animator.mail_loop", sender=sender, reference=need.reference))
    outbox.enqueue_for_chats(session, [int(c) for c in animator_chats(session, territory)], message,
                             now=now)
    log.warning("thread %s: emails from %s set aside (loop breaker)", need.reference, sender)
