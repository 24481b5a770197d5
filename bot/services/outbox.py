"""The outbox: every message leaves through a row written with the change that causes it.

The row is written claimed (leased) by the writer, which delivers it right after the
commit; if the process dies first, the lease expires and the sweeper delivers it.

Delivery rules, for every channel:
- one recipient's messages go out in order: a message is handed to its channel only once
  every older message to the same recipient (chat, or email address) was delivered or given
  up, so a later one waits while an earlier one is pending;
- a transient failure (outage, 5xx, timeout) is tried again with a growing delay capped at
  `MAX_DELAY`, until the retry horizon (`RELAIS_RETRY_HOURS`, 48 h) has passed since the
  message was written; only a permanent refusal, or the horizon, ends a row;
- a row is marked delivered as soon as the channel accepted it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, func, insert, not_, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from bot.messages import Message
from bot.services.types import Delivery
from storage.db import Database
from storage.models import Outbox

__all__ = [
    "HORIZON",
    "LEASE",
    "MAX_DELAY",
    "DeliveredMarker",
    "LateMessage",
    "backoff",
    "claim_due",
    "claim_late",
    "claim_raw",
    "configure",
    "default_lease",
    "enqueue",
    "enqueue_for_chats",
    "enqueue_payload",
    "enqueue_unclaimed",
    "mark_delivered",
    "next_due",
    "record_failure",
    "release",
]

# Defaults until `configure` sets the process's values from the settings.
log = logging.getLogger(__name__)

LEASE = timedelta(seconds=30)
HORIZON = timedelta(hours=48)
# The longest wait between two attempts at a message.
MAX_DELAY = timedelta(minutes=15)


@dataclass(slots=True)
class _Defaults:
    lease: timedelta = LEASE
    horizon: timedelta = HORIZON


_defaults = _Defaults()


def configure(*, lease: timedelta | None = None, horizon: timedelta | None = None) -> None:
    """Set the lease (RELAIS_OUTBOX_LEASE) and retry horizon (RELAIS_RETRY_HOURS) used when a
    caller gives none (the turn writes its replies with the default lease)."""
    if lease is not None:
        _defaults.lease = lease
    if horizon is not None:
        _defaults.horizon = horizon


def default_lease() -> timedelta:
    """The lease rows get when the caller gives none (RELAIS_OUTBOX_LEASE)."""
    return _defaults.lease


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: 2 s, 4 s, 8 s… at most `MAX_DELAY`."""
    return min(timedelta(seconds=2 ** min(max(attempts, 1), 20)), MAX_DELAY)


def enqueue(
    session: Session,
    *,
    channel: str,
    recipient: str,
    messages: Iterable[Message],
    now: datetime,
    claimed: bool = True,
    lease: timedelta | None = None,
    not_before: datetime | None = None,
    kind: str | None = None,
) -> list[Delivery]:
    """Add messages to the outbox in the caller's transaction; return those to deliver now.

    Claimed rows are returned for the caller to deliver right after its commit, unless an
    older message to the same recipient is still pending (waiting for a retry, or queued):
    then they are left to the sweeper, which delivers them after it, in order.
    """
    # Core INSERT … RETURNING: the ORM unit of work costs more than the rest of the turn.
    items = list(messages)
    if not items:
        return []
    if claimed and session.execute(
        _PENDING_FOR, {"channel": channel, "recipient": recipient, "now": now}
    ).first() is not None:
        claimed = False
    until = now + (lease if lease is not None else _defaults.lease)
    rows = [
        {
            "channel": channel,
            "recipient": recipient,
            "kind": kind or ("edit" if m.edit_message_id is not None else "send"),
            "payload": m.to_payload(),
            "created_at": now,
            "not_before": not_before or now,
            "claimed_until": until if claimed else None,
            "attempts": 0,
        }
        for m in items
    ]
    ids = [
        row_id
        for (row_id,) in session.execute(_INSERT_RETURNING_ID, rows)
    ]
    if not claimed:
        return []
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
# Rows scheduled for later and never tried yet (a relayed message spaced or held by the
# flood limit, kind SCHEDULED_KIND; anything written with a future `not_before`) hold back
# nothing else for their recipient: only a message waiting for a retry does. A held
# message must not delay the chef de projet's own replies.
SCHEDULED_KIND = "relay"


def _scheduled(now: datetime) -> ColumnElement[bool]:
    return and_(_TABLE.c.attempts == 0, _TABLE.c.not_before > now)


# Any pending row of a recipient (ix_outbox_recipient_pending finds it without a scan).
_PENDING_FOR = (
    select(_TABLE.c.id)
    .where(_TABLE.c.recipient == bindparam("recipient"),
           _TABLE.c.delivered_at.is_(None), _TABLE.c.failed_at.is_(None),
           _TABLE.c.channel == bindparam("channel"),
           not_(and_(_TABLE.c.attempts == 0, _TABLE.c.not_before > bindparam("now"))))
    .limit(1)
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
    horizon: timedelta | None = None,
    on_give_up: Callable[[Session, Outbox], None] | None = None,
) -> bool:
    """Release a row after a failed attempt: tried again later, or given up; True if given up.

    A transient failure waits `retry_after` seconds (Telegram's flood control) or the
    backoff; the row is given up when the failure is permanent or the retry horizon has
    passed since it was written. `on_give_up` runs in the same transaction (an alert).
    """
    limit = horizon if horizon is not None else _defaults.horizon

    def work(session: Session) -> bool:
        row = session.get(Outbox, outbox_id)
        if row is None or row.delivered_at is not None or row.failed_at is not None:
            return False
        row.attempts += 1
        row.last_error = error[:500]
        row.claimed_until = None
        deadline = row.created_at + limit
        if permanent or now >= deadline:
            row.failed_at = now
            session.add(row)
            if on_give_up is not None and not permanent:
                on_give_up(session, row)
            return True
        wait = timedelta(seconds=retry_after) if retry_after is not None else backoff(row.attempts)
        # One last attempt when the horizon ends, rather than none after a long wait.
        row.not_before = min(now + wait, deadline)
        session.add(row)
        return False

    return await db.run(work)


async def release(db: Database, ids: Sequence[int]) -> None:
    """Give up the lease on rows not attempted (the sweeper will deliver them in order)."""
    if not ids:
        return

    def work(session: Session) -> None:
        session.execute(
            update(Outbox).where(col(Outbox.id).in_(list(ids))).values(claimed_until=None)
        )

    await db.run(work)


def _claim_heads(
    session: Session, now: datetime, *, channel: str, limit: int, lease: timedelta | None
) -> list[Outbox]:
    """Lease, for each recipient whose oldest pending row is due and free, that row and the
    due rows right after it; oldest first.

    A recipient whose oldest message waits (retry delay, or leased by another deliverer)
    gets nothing newer, and one recipient's long backlog never hides the other recipients'
    messages (every due head comes first).
    """
    pending = (
        col(Outbox.channel) == channel,
        col(Outbox.delivered_at).is_(None),
        col(Outbox.failed_at).is_(None),
    )
    # Email addresses are compared case-insensitively (Jean.Dupont@ is jean.dupont@).
    key = func.lower(col(Outbox.recipient)) if channel == "email" else col(Outbox.recipient)
    claimable = (col(Outbox.not_before) <= now,
                 (col(Outbox.claimed_until).is_(None)) | (col(Outbox.claimed_until) < now))
    heads = select(func.min(col(Outbox.id))).where(*pending, not_(_scheduled(now))).group_by(key)
    claimed = list(session.exec(
        select(Outbox)
        .where(col(Outbox.id).in_(heads), *pending, *claimable)
        .order_by(col(Outbox.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all())
    until = now + (lease if lease is not None else _defaults.lease)
    claimed = _lease_free(session, claimed, now, until)
    if claimed and len(claimed) < limit:
        # Each claimed recipient's following rows, while they are due and free.
        first = {_key(row.recipient, channel): row.id for row in claimed}
        followers = session.exec(
            select(Outbox)
            .where(key.in_(list(first)), *pending, col(Outbox.id).not_in(list(first.values())))
            .order_by(col(Outbox.id))
            .limit(limit - len(claimed))
            .with_for_update(skip_locked=True)
        ).all()
        stopped: set[str] = set()
        wanted: list[Outbox] = []
        for row in followers:
            recipient = _key(row.recipient, channel)
            if row.attempts == 0 and row.not_before > now:
                continue  # scheduled for later: holds nothing back
            free = row.claimed_until is None or row.claimed_until < now
            if recipient in stopped or not free or row.not_before > now:
                stopped.add(recipient)
                continue
            wanted.append(row)
        won = _lease_free(session, wanted, now, until)
        # A follower another deliverer took meanwhile stops its recipient's rows after it:
        # they would otherwise overtake it.
        won_ids = {row.id for row in won}
        lost: dict[str, int] = {}
        for row in wanted:
            if row.id not in won_ids:
                lost.setdefault(_key(row.recipient, channel), row.id or 0)
        kept, late = [], []
        for row in won:
            stop = lost.get(_key(row.recipient, channel))
            (kept if stop is None or (row.id or 0) < stop else late).append(row)
        _unlease(session, late, until)
        claimed.extend(kept)
        claimed.sort(key=lambda row: row.id or 0)
    return claimed


def _lease_free(session: Session, rows: list[Outbox], now: datetime,
                until: datetime) -> list[Outbox]:
    """Lease those of `rows` that are still pending and free; the others are left out.

    The rows were read free, but on SQLite the read takes no lock (no SKIP LOCKED), and a
    deliverer on another connection (the worker thread's) may have leased them since: the
    lease is taken by one conditional UPDATE, so each row goes to one deliverer only.
    """
    if not rows:
        return []
    taken = set(session.execute(
        update(Outbox)
        .where(col(Outbox.id).in_([row.id for row in rows]),
               col(Outbox.delivered_at).is_(None), col(Outbox.failed_at).is_(None),
               col(Outbox.claimed_until).is_(None) | (col(Outbox.claimed_until) < now))
        .values(claimed_until=until)
        .returning(col(Outbox.id))
        .execution_options(synchronize_session=False)
    ).scalars())
    won = [row for row in rows if row.id in taken]
    for row in won:
        set_committed_value(row, "claimed_until", until)
    return won


def _unlease(session: Session, rows: list[Outbox], until: datetime) -> None:
    """Give back leases just taken (only if still ours: same `until`)."""
    if rows:
        session.execute(
            update(Outbox)
            .where(col(Outbox.id).in_([row.id for row in rows]),
                   col(Outbox.claimed_until) == until)
            .values(claimed_until=None)
            .execution_options(synchronize_session=False))


def _key(recipient: str, channel: str) -> str:
    return recipient.lower() if channel == "email" else recipient


async def claim_due(
    db: Database,
    now: datetime,
    *,
    channel: str,
    limit: int = 50,
    lease: timedelta | None = None,
) -> list[Delivery]:
    """Lease due rows of a channel, each recipient's in order from its oldest pending one."""

    def work(session: Session) -> list[Delivery]:
        rows = _claim_heads(session, now, channel=channel, limit=limit, lease=lease)
        return [_delivery(row) for row in rows]

    return await db.run(work)


async def next_due(db: Database, now: datetime, *, channel: str) -> float | None:
    """Seconds until the next pending row of a channel falls due (None: nothing waits)."""

    def work(session: Session) -> datetime | None:
        return session.exec(
            select(func.min(col(Outbox.not_before))).where(
                col(Outbox.channel) == channel, col(Outbox.delivered_at).is_(None),
                col(Outbox.failed_at).is_(None), col(Outbox.not_before) > now)
        ).one()

    due = await db.run(work)
    return None if due is None else (due - now).total_seconds()


class DeliveredMarker:
    """Marks rows delivered as soon as their channel accepted them.

    No timer: a marking starts at once, and rows accepted while one is being written are
    marked together right after it, so under load one UPDATE covers many messages while a
    quiet bot marks each message alone. The window in which a crash sends a message again
    is the time of that one UPDATE.
    """

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock
        self._pending: list[int] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, ids: Sequence[int]) -> asyncio.Future[None]:
        """Queue rows Telegram (or SMTP) accepted; the future is done once they are marked."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if not ids:
            done.set_result(None)
            return done
        self._pending.extend(ids)
        self._waiters.append(done)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain(), name="outbox-delivered")
        return done

    async def _drain(self) -> None:
        while self._pending:
            ids, self._pending = self._pending, []
            waiters, self._waiters = self._waiters, []
            try:
                await mark_delivered(self.db, ids, self.clock())
            except BaseException as exc:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def flush(self) -> None:
        """Wait until every row queued so far is marked (at shutdown)."""
        while self._task is not None and not self._task.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._task)


@dataclass(frozen=True, slots=True)
class LateMessage:
    """A message still waiting long after it was written, whose animators were not told."""

    outbox_id: int
    channel: str
    recipient: str
    kind: str
    payload: dict[str, Any]
    created_at: datetime
    last_error: str | None


def claim_late(
    session: Session, now: datetime, *, after: timedelta, limit: int = 200
) -> list[LateMessage]:
    """Pending messages written more than `after` ago, once each: one per recipient.

    Every such row is marked as told; only the oldest of a recipient is returned, and none
    if an older late message of that recipient was already reported and is still pending:
    an outage alerts once per recipient, not once per message.
    """
    pending = (col(Outbox.delivered_at).is_(None), col(Outbox.failed_at).is_(None))
    rows = list(session.exec(
        select(Outbox)
        .where(*pending, col(Outbox.late_alerted_at).is_(None),
               col(Outbox.created_at) <= now - after)
        .order_by(col(Outbox.id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all())
    if not rows:
        return []
    told = {
        (channel, recipient.lower())
        for channel, recipient in session.exec(
            select(Outbox.channel, Outbox.recipient)
            .where(*pending, col(Outbox.late_alerted_at).is_not(None),
                   col(Outbox.recipient).in_({row.recipient for row in rows}))
            .distinct()
        ).all()
    }
    found: list[LateMessage] = []
    for row in rows:
        row.late_alerted_at = now
        session.add(row)
        key = (row.channel, row.recipient.lower())
        if key in told or row.id is None:
            continue
        told.add(key)
        found.append(LateMessage(row.id, row.channel, row.recipient, row.kind,
                                 dict(row.payload), row.created_at, row.last_error))
    session.flush()
    return found


def enqueue_payload(
    session: Session,
    *,
    channel: str,
    recipient: str,
    payload: dict[str, object],
    now: datetime,
    kind: str = "send",
    not_before: datetime | None = None,
) -> int:
    """Add one raw row (e.g. an email) for the channel's worker; return its id."""
    table = Outbox.__table__  # type: ignore[attr-defined]
    row = {
        "channel": channel, "recipient": recipient, "kind": kind, "payload": payload,
        "created_at": now, "not_before": not_before or now, "claimed_until": None,
        "attempts": 0,
    }
    return int(session.execute(insert(table).returning(table.c.id), [row]).scalar_one())


async def claim_raw(
    db: Database, now: datetime, *, channel: str, limit: int = 50,
    lease: timedelta | None = None,
) -> list[tuple[int, str, dict[str, object]]]:
    """Lease due rows of a channel, each recipient's in order from its oldest pending one, as
    (id, recipient, payload): for non-chat channels, e.g. email."""

    def work(session: Session) -> list[tuple[int, str, dict[str, object]]]:
        rows = _claim_heads(session, now, channel=channel, limit=limit, lease=lease)
        return [(row.id, row.recipient, dict(row.payload)) for row in rows if row.id is not None]

    return await db.run(work)


def enqueue_unclaimed(session: Session, messages: Sequence[tuple[str, str, Message]], *,
                      now: datetime) -> None:
    """Queue (channel, recipient, message) rows for the sweeper, 50 per statement.

    For a pass that writes hundreds of messages in a slice: an INSERT of many rows costs
    a fraction of as many single ones. Not all in one: on PostgreSQL the rows' parameters
    are prepared on the event loop, and 600 of them held it 50–90 ms at a time.
    """
    for start in range(0, len(messages), _ROWS_PER_INSERT):
        session.execute(insert(_TABLE), [
            {"channel": channel, "recipient": recipient,
             "kind": "edit" if message.edit_message_id is not None else "send",
             "payload": message.to_payload(), "created_at": now, "not_before": now,
             "claimed_until": None, "attempts": 0}
            for channel, recipient, message in messages[start:start + _ROWS_PER_INSERT]])


_ROWS_PER_INSERT = 50


def enqueue_for_chats(
    session: Session, chat_ids: Iterable[int | None], message: Message, *, now: datetime
) -> None:
    """Queue one Telegram message for each chat (e.g. every animator of a territory).

    Left unclaimed: the sweeper delivers them, so the caller's reply is not held up.
    """
    for chat_id in sorted({c for c in chat_ids if c is not None}):
        enqueue(session, channel="telegram", recipient=str(chat_id),
                messages=[message], now=now, claimed=False)
