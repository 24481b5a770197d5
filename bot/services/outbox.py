"""The outbox: every message leaves through a row written with the change that causes it.

The row is written claimed (leased) by the writer, which delivers it right after the
commit; if the process dies first, the lease expires and the sweeper delivers it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import bindparam, insert, update
from sqlmodel import Session, col, select

from bot.messages import Message
from bot.services.types import Delivery
from storage.db import Database
from storage.models import Outbox

__all__ = [
    "LEASE",
    "MAX_ATTEMPTS",
    "DeliveredMarker",
    "claim_due",
    "claim_raw",
    "enqueue",
    "enqueue_for_chats",
    "enqueue_payload",
    "mark_delivered",
    "record_failure",
    "release",
]

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=30)
MAX_ATTEMPTS = 8


def enqueue(
    session: Session,
    *,
    channel: str,
    recipient: str,
    messages: Iterable[Message],
    now: datetime,
    claimed: bool = True,
    lease: timedelta = LEASE,
) -> list[Delivery]:
    """Add messages to the outbox in the caller's transaction; return them as deliveries."""
    # Core INSERT … RETURNING: the ORM unit of work costs more than the rest of the turn.
    items = list(messages)
    if not items:
        return []
    rows = [
        {
            "channel": channel,
            "recipient": recipient,
            "kind": "edit" if m.edit_message_id is not None else "send",
            "payload": m.to_payload(),
            "created_at": now,
            "not_before": now,
            "claimed_until": now + lease if claimed else None,
            "attempts": 0,
        }
        for m in items
    ]
    ids = [
        row_id
        for (row_id,) in session.execute(_INSERT_RETURNING_ID, rows)
    ]
    return [
        Delivery(row_id, channel, recipient, m) for row_id, m in zip(ids, items, strict=True)
    ]


# Built once: building a statement (and its cache key) per call costs about as much as
# running it on SQLite.
_TABLE = Outbox.__table__  # type: ignore[attr-defined]
_INSERT_RETURNING_ID = insert(_TABLE).returning(_TABLE.c.id, sort_by_parameter_order=True)
_MARK_DELIVERED = (
    update(_TABLE)
    .where(_TABLE.c.id.in_(bindparam("ids", expanding=True)))
    .values(delivered_at=bindparam("now"), claimed_until=None)
)


def _delivery(row: Outbox) -> Delivery:
    assert row.id is not None
    return Delivery(row.id, row.channel, row.recipient, Message.from_payload(row.payload))


async def mark_delivered(db: Database, ids: Sequence[int], now: datetime) -> None:
    """Mark rows delivered (one statement for all of them)."""
    if not ids:
        return

    def work(session: Session) -> None:
        session.execute(_MARK_DELIVERED, {"ids": list(ids), "now": now})

    await db.run(work)


async def record_failure(
    db: Database,
    outbox_id: int,
    *,
    error: str,
    now: datetime,
    retry_after: float | None = None,
    permanent: bool = False,
) -> None:
    """Release a row after a failed delivery: retry later with backoff, or give up."""

    def work(session: Session) -> None:
        row = session.get(Outbox, outbox_id)
        if row is None:
            return
        row.attempts += 1
        row.last_error = error[:500]
        row.claimed_until = None
        if permanent or row.attempts >= MAX_ATTEMPTS:
            row.failed_at = now
        else:
            backoff = retry_after if retry_after is not None else min(2 ** row.attempts, 300)
            row.not_before = now + timedelta(seconds=backoff)
        session.add(row)

    await db.run(work)


async def release(db: Database, ids: Sequence[int]) -> None:
    """Give up the lease on rows not attempted (the sweeper will deliver them in order)."""
    if not ids:
        return

    def work(session: Session) -> None:
        session.execute(
            update(Outbox).where(col(Outbox.id).in_(list(ids))).values(claimed_until=None)
        )

    await db.run(work)


async def claim_due(
    db: Database,
    now: datetime,
    *,
    channel: str,
    limit: int = 50,
    lease: timedelta = LEASE,
) -> list[Delivery]:
    """Lease due, unclaimed rows of a channel (oldest first) and return them for delivery."""

    def work(session: Session) -> list[Delivery]:
        # Look at every pending row, due or not, so that a recipient whose oldest message
        # is waiting (retry backoff, or leased by another deliverer) gets nothing newer:
        # messages of one chat are delivered in order.
        stmt = (
            select(Outbox)
            .where(
                Outbox.channel == channel,
                col(Outbox.delivered_at).is_(None),
                col(Outbox.failed_at).is_(None),
            )
            .order_by(col(Outbox.id))
            .limit(limit * 4)
            .with_for_update(skip_locked=True)
        )
        blocked: set[str] = set()
        claimed: list[Outbox] = []
        for row in session.exec(stmt).all():
            busy = row.claimed_until is not None and row.claimed_until >= now
            if row.recipient in blocked or busy or row.not_before > now:
                blocked.add(row.recipient)
                continue
            row.claimed_until = now + lease
            session.add(row)
            claimed.append(row)
            if len(claimed) >= limit:
                break
        session.flush()
        return [_delivery(row) for row in claimed]

    return await db.run(work)


class DeliveredMarker:
    """Marks delivered rows in batches: one UPDATE for every row delivered in a short window.

    Under load this turns one transaction per message into one per tick. The price is a
    window of `delay` seconds in which a crash makes a delivered message go out again;
    the lease keeps the sweeper of a live process away from rows not yet marked.
    """

    def __init__(self, db: Database, clock: Callable[[], datetime], *, delay: float = 0.01) -> None:
        self.db = db
        self.clock = clock
        self.delay = delay
        self._pending: list[int] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, ids: Sequence[int]) -> None:
        """Queue rows that Telegram (or SMTP) accepted."""
        if ids:
            self._pending.extend(ids)
            self._wake.set()

    async def run(self) -> None:
        """Flush forever (cancel to stop; call `flush` after)."""
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.delay)
            try:
                await self.flush()
            except Exception:  # a locked or unreachable database: the marks wait
                log.exception("delivered messages not marked yet; trying again")

    async def flush(self) -> None:
        """Mark everything queued so far (kept queued if the database refuses)."""
        self._wake.clear()
        ids, self._pending = self._pending, []
        if ids:
            try:
                await mark_delivered(self.db, ids, self.clock())
            except Exception:
                self._pending[:0] = ids
                self._wake.set()
                raise


def enqueue_payload(
    session: Session,
    *,
    channel: str,
    recipient: str,
    payload: dict[str, object],
    now: datetime,
    kind: str = "send",
) -> int:
    """Add one raw row (e.g. an email) for the channel's worker; return its id."""
    table = Outbox.__table__  # type: ignore[attr-defined]
    row = {
        "channel": channel, "recipient": recipient, "kind": kind, "payload": payload,
        "created_at": now, "not_before": now, "claimed_until": None, "attempts": 0,
    }
    return int(session.execute(insert(table).returning(table.c.id), [row]).scalar_one())


async def claim_raw(
    db: Database, now: datetime, *, channel: str, limit: int = 50, lease: timedelta = LEASE
) -> list[tuple[int, str, dict[str, object]]]:
    """Lease due rows of a channel and return (id, recipient, payload) — for non-chat channels."""

    def work(session: Session) -> list[tuple[int, str, dict[str, object]]]:
        stmt = (
            select(Outbox)
            .where(
                Outbox.channel == channel,
                col(Outbox.delivered_at).is_(None),
                col(Outbox.failed_at).is_(None),
                col(Outbox.not_before) <= now,
                (col(Outbox.claimed_until).is_(None)) | (col(Outbox.claimed_until) < now),
            )
            .order_by(col(Outbox.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = list(session.exec(stmt).all())
        for row in rows:
            row.claimed_until = now + lease
            session.add(row)
        return [(row.id, row.recipient, dict(row.payload)) for row in rows if row.id is not None]

    return await db.run(work)


def enqueue_for_chats(
    session: Session, chat_ids: Iterable[int | None], text: str, *, now: datetime
) -> None:
    """Queue one Telegram message for each chat (e.g. every animator of a territory).

    Left unclaimed: the sweeper delivers them, so the caller's reply is not held up.
    """
    for chat_id in sorted({c for c in chat_ids if c is not None}):
        enqueue(session, channel="telegram", recipient=str(chat_id),
                messages=[Message.legacy(text)], now=now, claimed=False)
