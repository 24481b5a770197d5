"""A chat turn: one thing a person did, handled in one transaction.

The turn locks the chat (two instances never run two turns of one chat at once), drops an
update Telegram delivers again, loads the chat's form row, lets the dispatcher call the
service, saves the form back if it changed (refusing if another instance saved it first),
and writes every reply to the outbox, all in one commit. A crash at any point either loses
nothing (not committed: Telegram sends the update again) or leaves the replies waiting in
the outbox (committed: the sweeper delivers them).

Whoever fed the update may ask for its own bookkeeping to be written in that same commit
(`Receipt`, set in `RECEIPT`): the webhook marks its stored update done there, instead of
in a transaction of its own after the turn.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import bindparam, delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot.catalogue import t
from bot.messages import Message
from bot.services import outbox
from bot.services.limits import ChatLimits, Verdict
from bot.services.types import Incoming, Reply, Result
from storage.db import Database, lock_chat
from storage.models import Conversation, ProcessedUpdate
from storage.types import utcnow

__all__ = ["RECEIPT", "ConversationConflict", "Dispatcher", "Receipt", "Turn", "TurnRunner"]

Clock = Callable[[], datetime]
# Attempts at a turn when another instance changed the conversation in the meantime.
_ATTEMPTS = 3


@dataclass(slots=True)
class Receipt:
    """Bookkeeping of the update being handled, written in its turn's transaction.

    `write(session, now, locked_chat)` runs inside the turn's transaction (the chat
    `locked_chat` already locked) and returns (first time, result): the feeder's own record
    of the update says whether it was handled before, so the turn records no
    `processed_update` row. Once that transaction has committed, `done` is set and `result`
    holds the result. A turn that did not commit leaves `done` False, and whoever set the
    receipt writes the bookkeeping itself.
    """

    update_id: int
    write: Callable[[Session, datetime, int], tuple[bool, Any]]
    done: bool = False
    result: Any = None


# Set by whoever feeds an update to the handlers (the webhook), read by the runner.
RECEIPT: ContextVar[Receipt | None] = ContextVar("relais_receipt", default=None)


class ConversationConflict(RuntimeError):
    """The conversation changed since it was read (another instance saved it first)."""


@dataclass(slots=True)
class Turn:
    """What a handler works with: the event, the open transaction, the form row, the reply."""

    session: Session
    event: Incoming
    now: datetime
    conversation: Conversation | None
    reply: Reply = field(default_factory=Reply)
    # What the dispatcher fetched before the transaction (network I/O), for this event.
    prefetched: Any = None
    # The form row was deleted (cancelled, submitted): nothing to save back.
    dropped: bool = False

    def say(self, message: Message) -> None:
        """Add a message for this chat."""
        self.reply.messages.append(message)

    def open_conversation(self, step: str, answers: dict[str, Any] | None = None) -> Conversation:
        """Start the chat's form at `step` (inserted with the turn's commit)."""
        conv = Conversation(
            chat_id=self.event.chat_id,
            user_id=self.event.user_id,
            channel=self.event.channel,
            step=step,
            answers=answers or {},
            created_at=self.now,
            updated_at=self.now,
        )
        self.session.add(conv)
        self.conversation = conv
        self.dropped = False
        return conv

    def drop_conversation(self) -> None:
        """Delete the chat's form (cancelled or submitted)."""
        conv = self.conversation
        if conv is None:
            return
        if conv in self.session:  # created in this same turn
            self.session.delete(conv)
        else:
            self.session.execute(_DELETE_CONVERSATION, {"chat_id": conv.chat_id})
        self.conversation = None
        self.dropped = True


class Dispatcher(Protocol):
    """What the runner needs of the dispatcher (`bot.dispatch.Dispatcher`)."""

    async def prefetch(self, event: Incoming,
                       peek: Callable[[int], Awaitable[Conversation | None]]) -> Any:
        """Network I/O for this event, before the transaction."""

    def dispatch(self, turn: Turn) -> None:
        """Call the handler for this event."""


class TurnRunner:
    """Runs each event as one transaction through the dispatcher."""

    def __init__(self, db: Database, dispatcher: Dispatcher, *, clock: Clock = utcnow,
                 lease: timedelta = outbox.LEASE, limits: ChatLimits | None = None) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self.clock = clock
        # How long a turn's replies stay claimed by this process: past it, replies of a
        # process that died before delivering them go to the sweeper (RELAIS_OUTBOX_LEASE).
        self.lease = lease
        # Per-person limits against floods (RELAIS_LIMIT_*); None: no limit.
        self.limits = limits

    async def handle(self, event: Incoming) -> Result:
        """Handle one event in one transaction; return the deliveries to make now."""
        receipt = RECEIPT.get()
        if receipt is not None and (receipt.done or receipt.update_id != event.update_id):
            receipt = None
        verdict = (self.limits.message(event.user_id, self.clock())
                   if self.limits is not None else Verdict.OK)
        if verdict is Verdict.SILENT:
            # Beyond the limit, after the notice: dropped unread, at no cost (no database
            # write), so that a flood cannot slow anyone else down. The feeder's receipt
            # stays undone: it writes its bookkeeping itself.
            return Result()
        instead = _flood_notice if verdict is Verdict.NOTICE else None
        prefetched = (await self.dispatcher.prefetch(event, self._peek)
                      if instead is None else None)
        for attempt in range(_ATTEMPTS):
            try:
                result, written = await self.db.run(
                    lambda session: self._turn(session, event, prefetched, receipt, instead))
            except (ConversationConflict, IntegrityError):
                # Another instance changed (or created) this chat's conversation between our
                # read and our write: the transaction rolled back whole (update id included),
                # so running it again on the fresh state is safe.
                if attempt == _ATTEMPTS - 1:
                    raise
                continue
            if receipt is not None:  # committed with the turn
                receipt.done, receipt.result = True, written
            return result
        raise AssertionError("unreachable")

    async def _peek(self, chat_id: int) -> Conversation | None:
        """The chat's form as it is now, read before the transaction (for prefetching)."""
        return await self.db.run(lambda session: _load_conversation(session, chat_id))

    def _turn(self, session: Session, event: Incoming, prefetched: Any,
              receipt: Receipt | None,
              instead: Callable[[Turn], None] | None = None) -> tuple[Result, Any]:
        now = self.clock()
        # Two instances never run two turns of one chat at once (PostgreSQL); the version
        # check in `_save_conversation` is the second line of defence.
        lock_chat(session, event.chat_id)
        # The feeder's bookkeeping, in this commit: one transaction per update, not two. It
        # tells a redelivery too (the feeder's record of the update is done), else the
        # update id is recorded here.
        if receipt is not None:
            first, written = receipt.write(session, now, event.chat_id)
        else:
            first, written = (event.update_id is None
                              or _first_time(session, event.update_id, now)), None
        if not first:
            return Result(duplicate=True), written
        # Read and written with plain SQL: through the ORM (identity map, unit of work,
        # attribute history) the same two statements cost three times as much CPU.
        conv = _load_conversation(session, event.chat_id)
        loaded = _saved_state(conv) if conv is not None else None
        read_version = conv.version if conv is not None else 0
        turn = Turn(session, event, now, conv, prefetched=prefetched)
        if instead is not None:
            instead(turn)
        else:
            self.dispatcher.dispatch(turn)
        if (conv is not None and not turn.dropped and turn.conversation is conv
                and _saved_state(conv) != loaded):
            _save_conversation(session, conv, read_version)
        deliveries = outbox.enqueue(
            session, channel=event.channel, recipient=str(event.chat_id),
            messages=turn.reply.messages, now=now, lease=self.lease,
        )
        for recipient, message in turn.reply.others:
            deliveries += outbox.enqueue(
                session, channel="telegram", recipient=recipient, messages=[message], now=now,
                lease=self.lease,
            )
        return (Result(deliveries=deliveries + turn.reply.deliveries, toast=turn.reply.toast),
                written)


def _flood_notice(turn: Turn) -> None:
    """The one notice of a person over the per-minute limit (the next updates are dropped)."""
    turn.say(Message(t("firm.limits_messages")))


_CONVERSATION = Conversation.__table__  # type: ignore[attr-defined]
_CONVERSATION_FIELDS = tuple(c.key for c in _CONVERSATION.c if not c.primary_key)
_LOAD_CONVERSATION = select(_CONVERSATION).where(
    _CONVERSATION.c.chat_id == bindparam("chat_id")
)
_SAVE_CONVERSATION = (
    update(_CONVERSATION)
    .where(_CONVERSATION.c.chat_id == bindparam("where_chat_id"),
           _CONVERSATION.c.version == bindparam("where_version"))
    .values({key: bindparam(f"new_{key}") for key in _CONVERSATION_FIELDS})
)
_DELETE_CONVERSATION = delete(_CONVERSATION).where(
    _CONVERSATION.c.chat_id == bindparam("chat_id")
)
# Built once: constructing the statement per update costs more than running it.
_PROCESSED_INSERT = {
    is_pg: (pg_insert if is_pg else sqlite_insert)(
        ProcessedUpdate.__table__  # type: ignore[attr-defined]
    ).on_conflict_do_nothing(index_elements=["update_id"])
    for is_pg in (False, True)
}


def _first_time(session: Session, update_id: int, now: datetime) -> bool:
    """Record the update id; False when it was already handled (a redelivery)."""
    stmt = _PROCESSED_INSERT[session.get_bind().dialect.name == "postgresql"]
    result = session.execute(stmt, {"update_id": update_id, "processed_at": now})
    return result.rowcount == 1  # type: ignore[attr-defined]


def _load_conversation(session: Session, chat_id: int) -> Conversation | None:
    row = session.execute(_LOAD_CONVERSATION, {"chat_id": chat_id}).first()
    return Conversation(**row._mapping) if row is not None else None


def _saved_state(conv: Conversation) -> tuple[Any, ...]:
    # Copies of the dict columns, so that a change made in place is seen too.
    return tuple(
        dict(value) if isinstance(value := getattr(conv, key), dict) else value
        for key in _CONVERSATION_FIELDS
    )


def _save_conversation(session: Session, conv: Conversation, read_version: int) -> None:
    """Write the conversation back if nobody saved it since it was read (else conflict)."""
    conv.version = max(conv.version, read_version + 1)
    params = {f"new_{key}": getattr(conv, key) for key in _CONVERSATION_FIELDS}
    params["where_chat_id"] = conv.chat_id
    params["where_version"] = read_version
    if session.execute(_SAVE_CONVERSATION, params).rowcount != 1:  # type: ignore[attr-defined]
        raise ConversationConflict(f"conversation {conv.chat_id} changed since version "
                                   f"{read_version}")
