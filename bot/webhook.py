"""Webhook mode: `relais serve`, for several instances behind a load balancer.

Telegram allows one poller per bot, so scale-out means webhooks. Each update is stored
(`pending_update`, keyed by `update_id`) before Telegram gets its 200, then handled by a
claim with a lease: an instance that dies in the middle leaves its updates to the others,
and a redelivered update is stored once. An update whose id is out of range, or that the
library cannot read, is set aside (`bot.updates.dead_letter`) and its chat goes on; one put
off because the database was locked is handled again a little later.

Operations: `/healthz` is liveness (the process answers and the database too); `/readyz`
is readiness (the bot started and the database answers), with the SMTP server's state
reported but never failing it (a mail outage must not take the bot off the balancer);
`/metrics` gives Prometheus counters and gauges from figures refreshed in the background
(no query per request), behind `METRICS_TOKEN` (a bearer token) when it is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import signal
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, Protocol

import asyncpg
from sqlalchemy import bindparam, case, func, null, or_, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from telegram import Update
from telegram.ext import Application
from uvicorn import Server

from bot.config import Settings
from bot.turn import RECEIPT, Receipt
from bot.updates import chat_of, dead_letter, in_range
from handlers.telegram import take_postponed
from storage.db import Database, lock_chat
from storage.models import DeadLetter, Outbox, PendingUpdate, Reminder

__all__ = ["UvicornServer", "WebhookServer", "chat_of"]

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_SECRET_NAME = SECRET_HEADER.lower().encode()  # as ASGI gives header names
LEASE = timedelta(seconds=30)
# An update put off (database locked) is tried again after this long (by the sweeper).
RETRY = timedelta(seconds=5)


class WebhookHost(Protocol):
    """What the webhook needs of the wiring (`bot.runtime.Services`, which starts it)."""

    settings: Settings
    db: Database
    clock: Callable[[], datetime]


class WebhookServer:
    """The ASGI app and the workers that handle stored updates."""

    def __init__(self, services: WebhookHost, application: Application, *, path: str,
                 secret: str) -> None:
        self.services = services
        self.application = application
        self.path = "/" + path.strip("/")
        self.secret = secret
        self.lease = timedelta(seconds=services.settings.update_lease)
        self.handled = 0
        self.received = 0
        self.dead = 0
        self.postponed = 0
        self.metrics_token = services.settings.metrics_token
        self.metrics_interval = services.settings.metrics_interval
        # Figures read in the background (see `refresh`): a scrape costs no query.
        self._figures: dict[str, Any] | None = None
        self._smtp = "unknown"
        self._tasks: set[asyncio.Task[None]] = set()
        self._secret = secret.encode()
        # The operations' routes; the hook itself is served before them (`__call__`).
        self.routes = Starlette(routes=[
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
        ])
        self.app: ASGIApp = self

    # --- receiving --------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry: Telegram's POSTs go straight to `receive_update`, the rest to Starlette.

        Starlette's request, routing and middleware cost, per update, about as much CPU as
        the store itself; the hook needs none of them.
        """
        if scope["type"] == "http" and scope["path"] == self.path:
            if scope["method"] != "POST":
                await _answer(send, 405, b"method not allowed")
                return
            await self.receive_update(scope, receive, send)
            return
        await self.routes(scope, receive, send)

    async def receive_update(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the secret, store the update, answer at once, handle it after."""
        given = b""
        for name, value in scope["headers"]:
            if name == _SECRET_NAME:
                given = value
                break
        if not given or not hmac.compare_digest(given, self._secret):
            await _answer(send, 403, b"forbidden")
            return
        body = await _body(receive)
        if body is None:
            await _answer(send, 413, b"update too large")
            return
        try:
            # Kept as received: it is what the store writes (no encoding it again).
            raw = body.decode()
            payload = json.loads(raw)
            update_id = int(payload["update_id"])
        except (ValueError, KeyError, TypeError):
            await _answer(send, 400, b"bad update")
            return
        now = self.services.clock()
        chat_id = chat_of(payload)
        if not in_range(update_id) or (chat_id is not None and not in_range(chat_id)):
            # Stored as is, it would fail at every attempt: set aside, and Telegram gets its
            # 200 so that it does not send it again.
            await self.services.db.run(lambda s: dead_letter(
                s, source="webhook", update_id=update_id, chat_id=chat_id, payload=payload,
                reason="id out of range", now=now))
            self.dead += 1
            await _answer(send, 200)
            return
        # Stored and, when nothing of its chat is ahead of it, claimed in one transaction.
        if self.services.db.is_sqlite:
            claimed = await self.services.db.run(
                lambda s: _store_and_claim(s, update_id, chat_id, payload, now, self.lease))
        else:
            claimed = await self._store_and_claim_pg(update_id, chat_id, payload, now, raw)
        self.received += 1
        if claimed is not None:
            task = asyncio.create_task(self._run(claimed))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await _answer(send, 200)

    async def _store_and_claim_pg(self, update_id: int, chat_id: int | None,
                                  payload: dict[str, Any], now: datetime,
                                  raw: str | None = None) -> _Claimed:
        """`_store_and_claim` on PostgreSQL: one autocommit statement on the raw pool.

        Through the ORM session this transaction cost more of the bot's CPU than the
        turn's own statements (webhook at 0.61x polling's throughput). `raw` is the
        payload's JSON text as Telegram sent it, if at hand.
        """
        db = self.services.db
        document = raw if raw is not None else json.dumps(payload)
        values = (update_id, chat_id, document, now, now + self.lease)
        for attempt in range(2):
            pool = await db.raw_pool()
            try:
                stored = await pool.fetchrow(_PG_STORE, *values)
                break
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
                # The connection was gone (server restart, idle timeout). Sending the
                # statement again is safe: a row it did store is only not claimed twice.
                if attempt:
                    raise
        if stored is not None:
            claimed = bool(stored[0])
        else:  # a redelivery: stored before, perhaps still to do
            claimed = await db.run(lambda s: _lease(s, update_id, now, self.lease))
        return (update_id, chat_id, payload) if claimed else None

    async def handle(self, update_id: int) -> bool:
        """Claim one stored update and run it through the handlers; False if not ours.

        An update waits while an earlier update of the same chat is not done (whichever
        instance holds it); whoever finishes a chat's update goes on with the next one.
        """
        now = self.services.clock()
        claimed = await self.services.db.run(lambda s: _claim(s, update_id, now, self.lease))
        if claimed is None:
            return False
        await self._run(claimed)
        return True

    async def _run(self, claimed: _Claimed) -> None:
        """Handle a claimed update, then each following update of its chat claimed after."""
        while claimed is not None:
            current, chat_id, payload = claimed
            try:
                update = Update.de_json(payload, self.application.bot)
            except Exception as exc:  # the library cannot read it: it never will
                now = self.services.clock()
                reason = f"not understood: {type(exc).__name__}: {exc}"
                await self.services.db.run(lambda s, current=current, chat_id=chat_id, now=now,
                                           payload=payload, reason=reason: dead_letter(
                    s, source="webhook", update_id=current, chat_id=chat_id, payload=payload,
                    reason=reason, now=now))
                self.dead += 1
            else:
                # The turn marks the update done (and claims its chat's next one) in its own
                # commit; only an update no turn committed costs a transaction of its own.
                receipt = Receipt(current, lambda s, now, locked, current=current,
                                  chat_id=chat_id: _mark_done(
                    s, current, chat_id, now, self.lease, locked_chat=locked))
                token = RECEIPT.set(receipt)
                try:
                    await self.application.process_update(update)
                finally:
                    RECEIPT.reset(token)
                if take_postponed(self.application, current):
                    # Not done: the sweeper takes it again once the pause is over; the
                    # chat's next updates wait behind it.
                    until = self.services.clock() + RETRY
                    await self.services.db.run(
                        lambda s, current=current, until=until: _put_off(s, current, until))
                    self.postponed += 1
                    return
                self.handled += 1
                if receipt.done:
                    claimed = receipt.result
                    continue
            done = self.services.clock()
            claimed = await self.services.db.run(
                lambda s, current=current, chat_id=chat_id, done=done: _done_and_next(
                    s, current, chat_id, done, self.lease))

    async def sweep(self, stop: asyncio.Event, *, interval: float = 5.0) -> None:
        """Handle stored updates nobody finished (an instance died, or a task failed)."""
        while not stop.is_set():
            try:
                now = self.services.clock()
                ids = await self.services.db.run(lambda s, now=now: _orphans(s, now))
                if ids:
                    log.info("taking over %d stored update(s)", len(ids))
                for update_id in ids:
                    await self.handle(update_id)
            except Exception:
                log.exception("pending update sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)

    async def drain(self) -> None:
        """Wait for the updates being handled (on shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)

    # --- operations -------------------------------------------------------------------------
    async def _database(self) -> str:
        try:
            await self.services.db.run(lambda s: s.execute(text("select 1")))
        except Exception as exc:
            return f"error: {type(exc).__name__}"
        return "ok"

    async def healthz(self, request: Request) -> Response:
        """Liveness: 200 while the process and its database answer, 503 otherwise."""
        database = await self._database()
        return JSONResponse({"database": database}, status_code=200 if database == "ok" else 503)

    async def readyz(self, request: Request) -> Response:
        """Readiness: the bot started and the database answers; SMTP reported, not required.

        Mail waits in the outbox during a mail outage: taking the bot off the load balancer
        for it would stop the chats too.
        """
        database = await self._database()
        running = bool(self.application.running)
        checks = {"database": database, "bot": "ok" if running else "starting",
                  "smtp": self._smtp}
        ready = database == "ok" and running
        return JSONResponse(checks, status_code=200 if ready else 503)

    async def refresh(self, stop: asyncio.Event) -> None:
        """Read the figures behind /metrics and the SMTP state, every `metrics_interval` s."""
        while not stop.is_set():
            try:
                await self.refresh_once()
            except Exception:
                log.exception("metrics refresh failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.metrics_interval)

    async def refresh_once(self) -> None:
        """Read the figures and the SMTP state once."""
        figures = await self.services.db.run(_figures)
        figures["at"] = self.services.clock()
        self._figures = figures
        self._smtp = await _smtp_state(self.services.settings)

    async def metrics(self, request: Request) -> Response:
        """Prometheus text format, from the figures read in the background."""
        if self.metrics_token is not None:
            given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), self.metrics_token.encode()):
                return PlainTextResponse("unauthorized", status_code=401,
                                         headers={"WWW-Authenticate": "Bearer"})
        if self._figures is None:
            await self.refresh_once()  # before the background refresh's first pass
        assert self._figures is not None
        now = self.services.clock()
        figures = dict(self._figures)
        oldest = figures["oldest_at"]
        # The oldest waiting message ages between two refreshes: its age is taken now.
        figures["oldest"] = (max((now - oldest).total_seconds(), 0.0)
                             if isinstance(oldest, datetime) and oldest.tzinfo else 0.0)
        lines = [
            "# HELP relais_updates_received_total Updates accepted by this instance.",
            "# TYPE relais_updates_received_total counter",
            f"relais_updates_received_total {self.received}",
            "# HELP relais_updates_handled_total Updates handled by this instance.",
            "# TYPE relais_updates_handled_total counter",
            f"relais_updates_handled_total {self.handled}",
            "# HELP relais_outbox_depth Messages waiting to be delivered.",
            "# TYPE relais_outbox_depth gauge",
            f"relais_outbox_depth {figures['depth']}",
            "# HELP relais_outbox_oldest_seconds Age of the oldest message waiting.",
            "# TYPE relais_outbox_oldest_seconds gauge",
            f"relais_outbox_oldest_seconds {figures['oldest']:.1f}",
            "# HELP relais_reminders_pending Meeting reminders planned and not yet due.",
            "# TYPE relais_reminders_pending gauge",
            f"relais_reminders_pending {figures['reminders']}",
            "# HELP relais_deliveries_failed Messages given up (permanent failure).",
            "# TYPE relais_deliveries_failed gauge",
            f"relais_deliveries_failed {figures['failed']}",
            "# HELP relais_updates_pending Webhook updates stored and not yet handled.",
            "# TYPE relais_updates_pending gauge",
            f"relais_updates_pending {figures['updates']}",
            "# HELP relais_updates_dead_letters Updates set aside (unreadable, out of range).",
            "# TYPE relais_updates_dead_letters gauge",
            f"relais_updates_dead_letters {figures['dead_letters']}",
            "# HELP relais_updates_postponed_total Updates put off by this instance (busy db).",
            "# TYPE relais_updates_postponed_total counter",
            f"relais_updates_postponed_total {self.postponed}",
            "# HELP relais_metrics_age_seconds Age of the figures above (background refresh).",
            "# TYPE relais_metrics_age_seconds gauge",
            f"relais_metrics_age_seconds {max((now - figures['at']).total_seconds(), 0.0):.1f}",
        ]
        return PlainTextResponse("\n".join(lines) + "\n",
                                 media_type="text/plain; version=0.0.4")


class UvicornServer(Server):
    """uvicorn's server, minus its re-raising of SIGTERM once it has stopped.

    uvicorn stops serving on SIGTERM, then raises the signal again so that the default
    action kills the process: the bot's own shutdown (updates being handled, outbox marks
    not yet written, scheduler) would never run. Here the signal only asks the server to
    stop, and `serve_forever` finishes the rest (tested: exit code 0 in test_scaleout_pg).
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Ask the server to stop on SIGINT/SIGTERM, and nothing more."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


_Claimed = tuple[int, int | None, dict[str, Any]] | None


def _store_and_claim(session: Session, update_id: int, chat_id: int | None,
                     payload: dict[str, Any], now: datetime, lease: timedelta) -> _Claimed:
    """Store the update (once, whatever the redeliveries), then claim it if it may go now."""
    if chat_id is not None:
        # Against `_done_and_next` of the chat's previous update: without it, each can miss
        # the other's write (not yet committed) and the update waits for the sweeper.
        lock_chat(session, chat_id)
    # Stored already claimed when nothing of its chat is ahead of it: one statement.
    stored = session.execute(
        _STORE[session.get_bind().dialect.name == "postgresql"],
        {"update_id": update_id, "chat_id": chat_id, "payload": payload, "received_at": now,
         "until": now + lease}).first()
    if stored is not None:
        claimed = stored[0] is not None
    else:  # a redelivery: stored before, perhaps still to do
        claimed = _lease(session, update_id, now, lease)
    # The stored payload is the one Telegram sent: no need to read it back.
    return (update_id, chat_id, payload) if claimed else None


_PENDING = PendingUpdate.__table__  # type: ignore[attr-defined]


def _store_statement(insert: Any) -> Any:
    ahead = aliased(_PENDING)
    ahead_open = (select(ahead.c.update_id)
                  .where(ahead.c.chat_id == bindparam("chat_id"),
                         ahead.c.update_id < bindparam("update_id"),
                         ahead.c.done_at.is_(None))
                  .exists())
    return (insert(_PENDING)
            .values(update_id=bindparam("update_id"), chat_id=bindparam("chat_id"),
                    payload=bindparam("payload", type_=_PENDING.c.payload.type),
                    received_at=bindparam("received_at", type_=_PENDING.c.received_at.type),
                    claimed_until=case((ahead_open, null()),
                                       else_=bindparam("until",
                                                       type_=_PENDING.c.claimed_until.type)))
            .on_conflict_do_nothing(index_elements=["update_id"])
            .returning(_PENDING.c.claimed_until))


# The store on PostgreSQL, without the chat lock `_store_and_claim` takes (no round trip
# to begin, lock and commit). What the lock guarded against: this store and the previous
# update's `_done_and_next` each missing the other's uncommitted write, leaving the update
# to the sweeper. Here the earlier open updates of the chat are locked FOR SHARE instead:
# one being marked done is waited for and read again as committed (done, so not ahead); one
# locked first makes the mark (in `relais_done_and_next`) wait for this commit, so the
# look-up after it, a later statement with its own snapshot, sees the new update and claims
# it. Tested in tests/test_webhook_pg.py.
_PG_STORE = """
INSERT INTO pending_update (update_id, chat_id, payload, received_at, claimed_until)
SELECT $1::bigint, $2::bigint, $3::json, $4::timestamptz,
       CASE WHEN EXISTS (SELECT 1 FROM pending_update ahead
                         WHERE ahead.chat_id = $2::bigint AND ahead.update_id < $1::bigint
                           AND ahead.done_at IS NULL
                         FOR SHARE)
            THEN NULL ELSE $5::timestamptz END
ON CONFLICT (update_id) DO NOTHING
RETURNING claimed_until IS NOT NULL
"""

# Built once: constructing the statement per update costs more than running it.
_STORE = {is_pg: _store_statement(pg_insert if is_pg else sqlite_insert)
          for is_pg in (False, True)}


_EARLIER = aliased(PendingUpdate)


def _claimable(now: datetime) -> tuple[Any, ...]:
    """Not done, not held by a live lease, and no earlier update of its chat still to do."""
    earlier_open = (
        select(_EARLIER.update_id)
        .where(col(_EARLIER.chat_id) == col(PendingUpdate.chat_id),
               col(_EARLIER.update_id) < col(PendingUpdate.update_id),
               col(_EARLIER.done_at).is_(None))
        .correlate(PendingUpdate)
        .exists()
    )
    return (col(PendingUpdate.done_at).is_(None),
            or_(col(PendingUpdate.claimed_until).is_(None),
                col(PendingUpdate.claimed_until) < now),
            ~earlier_open)


def _lease(session: Session, update_id: int, now: datetime, lease: timedelta) -> bool:
    """Take the update for `lease` if it may be handled now; False if it may not."""
    result = session.execute(
        update(PendingUpdate)
        .where(col(PendingUpdate.update_id) == update_id, *_claimable(now))
        .values(claimed_until=now + lease))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _claim(session: Session, update_id: int, now: datetime,
           lease: timedelta = LEASE) -> _Claimed:
    if not _lease(session, update_id, now, lease):
        return None
    row = session.get(PendingUpdate, update_id)
    return (update_id, row.chat_id, dict(row.payload)) if row is not None else None


def _done_and_next(session: Session, update_id: int, chat_id: int | None, now: datetime,
                   lease: timedelta, *, locked_chat: int | None = None) -> _Claimed:
    """Mark an update done and claim the next one of its chat, if one is waiting.

    Run on its own when no turn committed the update (the turn runs `_mark_done`).
    """
    return _mark_done(session, update_id, chat_id, now, lease, locked_chat=locked_chat)[1]


def _mark_done(session: Session, update_id: int, chat_id: int | None, now: datetime,
               lease: timedelta, *, locked_chat: int | None = None) -> tuple[bool, _Claimed]:
    """Mark an update done, and claim the next one of its chat if one is waiting.

    Also says whether the update was not done already: run by the turn's transaction
    (`bot.turn.Receipt`, `locked_chat` locked already), this is the turn's check for a
    duplicate, in place of a `processed_update` row. The mark commits with the turn, so an
    update is done exactly when a turn of it committed (or it was given up).
    """
    if chat_id is not None and chat_id != locked_chat:
        lock_chat(session, chat_id)
    # Handled: only what ordering and de-duplication need stays (the update and chat ids);
    # the payload, which held names, usernames and typed text stored before any consent,
    # is emptied.
    if session.get_bind().dialect.name == "postgresql":
        # Both statements below in one round trip (storage.models.DONE_AND_NEXT_FUNCTION).
        first, following = session.execute(_DONE_AND_NEXT, {
            "done_id": update_id, "chat_id": chat_id, "now": now}).one()
    else:
        result = session.execute(_MARK_DONE, {"done_id": update_id, "now": now})
        first = bool(result.rowcount)  # type: ignore[attr-defined]
        following = (session.execute(_FOLLOWING, {"chat_id": chat_id,
                                                  "update_id": update_id}).scalar()
                     if chat_id is not None else None)
    claimed = _claim(session, following, now, lease) if following is not None else None
    return bool(first), claimed


# Built once: constructing the statements per update costs more than running them.
_MARK_DONE = (update(_PENDING)
              .where(_PENDING.c.update_id == bindparam("done_id"), _PENDING.c.done_at.is_(None))
              .values(done_at=bindparam("now", type_=_PENDING.c.done_at.type), payload={}))
_DONE_AND_NEXT = text(
    "SELECT first, following FROM relais_done_and_next(:done_id, :chat_id, :now)"
).bindparams(bindparam("done_id", type_=_PENDING.c.update_id.type),
             bindparam("chat_id", type_=_PENDING.c.chat_id.type),
             bindparam("now", type_=_PENDING.c.done_at.type))
_FOLLOWING = (select(_PENDING.c.update_id)
              .where(_PENDING.c.chat_id == bindparam("chat_id"),
                     _PENDING.c.update_id > bindparam("update_id"),
                     _PENDING.c.done_at.is_(None))
              .order_by(_PENDING.c.update_id).limit(1))


def _orphans(session: Session, now: datetime) -> list[int]:
    return list(session.exec(
        select(PendingUpdate.update_id).where(
            col(PendingUpdate.done_at).is_(None),
            or_(col(PendingUpdate.claimed_until).is_(None),
                col(PendingUpdate.claimed_until) < now),
            col(PendingUpdate.received_at) < now - timedelta(seconds=2))
        .order_by(col(PendingUpdate.update_id)).limit(200)))


def _put_off(session: Session, update_id: int, until: datetime) -> None:
    """Leave an update for later: claimed by nobody until `until`, then the sweeper's."""
    session.execute(update(PendingUpdate).where(col(PendingUpdate.update_id) == update_id)
                    .values(claimed_until=until))


# Telegram's updates are a few kilobytes (a message is at most 4,096 characters). Whatever
# holds the secret (a leak, a misconfigured proxy) still cannot make this process buffer and
# parse megabytes on the event loop.
MAX_UPDATE_BYTES = 1 << 20


async def _body(receive: Receive) -> bytes | None:
    """The request's whole body (ASGI messages); None past `MAX_UPDATE_BYTES`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_UPDATE_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _answer(send: Send, status: int, text: bytes = b"") -> None:
    """A plain-text response; an empty one for 200, which the server writes in one go."""
    headers = [(b"content-length", str(len(text)).encode())]
    if text:
        headers.append((b"content-type", b"text/plain; charset=utf-8"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": text})


async def _smtp_state(settings: Settings) -> str:
    """Whether the SMTP server accepts a connection: "ok" or the error's name."""
    try:
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(settings.smtp_host, settings.smtp_port), 3)
    except (OSError, TimeoutError) as exc:
        return f"error: {type(exc).__name__}"
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return "ok"


def _figures(session: Session) -> dict[str, Any]:
    waiting = (col(Outbox.delivered_at).is_(None), col(Outbox.failed_at).is_(None))
    depth = session.exec(select(func.count()).select_from(Outbox).where(*waiting)).one()
    oldest = session.exec(select(func.min(Outbox.created_at)).where(*waiting)).one()
    failed = session.exec(select(func.count()).select_from(Outbox).where(
        col(Outbox.failed_at).is_not(None))).one()
    reminders = session.exec(select(func.count()).select_from(Reminder).where(
        Reminder.status == "pending")).one()
    updates = session.exec(select(func.count()).select_from(PendingUpdate).where(
        col(PendingUpdate.done_at).is_(None))).one()
    dead = session.exec(select(func.count()).select_from(DeadLetter)).one()
    return {"depth": depth, "oldest_at": oldest, "failed": failed, "reminders": reminders,
            "updates": updates, "dead_letters": dead}
