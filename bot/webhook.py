"""Webhook mode: `relais serve`, for several instances behind a load balancer.

Telegram allows one poller per bot, so scale-out means webhooks. Each update is stored
(`pending_update`, keyed by `update_id`) before Telegram gets its 200, then handled by a
claim with a lease: an instance that dies in the middle leaves its updates to the others,
and a redelivered update is stored once. `/healthz` says whether the database and the SMTP
server answer; `/metrics` gives Prometheus counters and gauges.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, or_, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from telegram import Update
from telegram.ext import Application
from uvicorn import Server

from bot.config import Settings
from storage.db import Database, lock_chat
from storage.models import Outbox, PendingUpdate, Reminder

__all__ = ["UvicornServer", "WebhookServer", "chat_of"]

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
LEASE = timedelta(seconds=30)


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
        self._tasks: set[asyncio.Task[None]] = set()
        self.app = Starlette(routes=[
            Route(self.path, self.receive, methods=["POST"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
        ])

    # --- receiving --------------------------------------------------------------------------
    async def receive(self, request: Request) -> Response:
        """Check the secret, store the update, answer at once, handle it after."""
        given = request.headers.get(SECRET_HEADER, "")
        if not given or not hmac.compare_digest(given.encode(), self.secret.encode()):
            return PlainTextResponse("forbidden", status_code=403)
        try:
            payload = await request.json()
            update_id = int(payload["update_id"])
        except (ValueError, KeyError, TypeError):
            return PlainTextResponse("bad update", status_code=400)
        now = self.services.clock()
        chat_id = chat_of(payload)
        # Stored and, when nothing of its chat is ahead of it, claimed in one transaction.
        claimed = await self.services.db.run(
            lambda s: _store_and_claim(s, update_id, chat_id, payload, now, self.lease))
        self.received += 1
        if claimed is not None:
            task = asyncio.create_task(self._run(claimed))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return PlainTextResponse("ok")

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
            update = Update.de_json(payload, self.application.bot)
            await self.application.process_update(update)
            done = self.services.clock()
            claimed = await self.services.db.run(
                lambda s, current=current, chat_id=chat_id, done=done: _done_and_next(
                    s, current, chat_id, done, self.lease))
            self.handled += 1

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
    async def healthz(self, request: Request) -> Response:
        """200 when the database and the SMTP server answer, 503 otherwise."""
        checks: dict[str, str] = {}
        try:
            await self.services.db.run(lambda s: s.execute(text("select 1")))
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        settings = self.services.settings
        try:
            _reader, writer = await asyncio.wait_for(
                asyncio.open_connection(settings.smtp_host, settings.smtp_port), 3)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            checks["smtp"] = "ok"
        except (OSError, TimeoutError) as exc:
            checks["smtp"] = f"error: {type(exc).__name__}"
        healthy = all(v == "ok" for v in checks.values())
        return JSONResponse(checks, status_code=200 if healthy else 503)

    async def metrics(self, request: Request) -> Response:
        """Prometheus text format."""
        now = self.services.clock()
        figures = await self.services.db.run(lambda s: _figures(s, now))
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


_Claimed = tuple[int, int | None, dict[str, Any]] | None


def _store_and_claim(session: Session, update_id: int, chat_id: int | None,
                     payload: dict[str, Any], now: datetime, lease: timedelta) -> _Claimed:
    """Store the update (once, whatever the redeliveries), then claim it if it may go now."""
    if chat_id is not None:
        # Against `_done_and_next` of the chat's previous update: without it, each can miss
        # the other's write (not yet committed) and the update waits for the sweeper.
        lock_chat(session, chat_id)
    table = PendingUpdate.__table__  # type: ignore[attr-defined]
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(table).values(update_id=update_id, chat_id=chat_id, payload=payload,
                                         received_at=now)
                    .on_conflict_do_nothing(index_elements=["update_id"]))
    # The stored payload is the one Telegram sent: no need to read it back.
    return (update_id, chat_id, payload) if _lease(session, update_id, now, lease) else None


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
                   lease: timedelta) -> _Claimed:
    """Mark an update done and claim the next one of its chat, if one is waiting."""
    if chat_id is not None:
        lock_chat(session, chat_id)
    session.execute(update(PendingUpdate).where(col(PendingUpdate.update_id) == update_id)
                    .values(done_at=now))
    if chat_id is None:
        return None
    following = session.exec(
        select(PendingUpdate.update_id)
        .where(PendingUpdate.chat_id == chat_id, col(PendingUpdate.update_id) > update_id,
               col(PendingUpdate.done_at).is_(None))
        .order_by(col(PendingUpdate.update_id)).limit(1)).first()
    return _claim(session, following, now, lease) if following is not None else None


def _orphans(session: Session, now: datetime) -> list[int]:
    return list(session.exec(
        select(PendingUpdate.update_id).where(
            col(PendingUpdate.done_at).is_(None),
            or_(col(PendingUpdate.claimed_until).is_(None),
                col(PendingUpdate.claimed_until) < now),
            col(PendingUpdate.received_at) < now - timedelta(seconds=2))
        .order_by(col(PendingUpdate.update_id)).limit(200)))


def _figures(session: Session, now: datetime) -> dict[str, float]:
    waiting = (col(Outbox.delivered_at).is_(None), col(Outbox.failed_at).is_(None))
    depth = session.exec(select(func.count()).select_from(Outbox).where(*waiting)).one()
    oldest = session.exec(select(func.min(Outbox.created_at)).where(*waiting)).one()
    failed = session.exec(select(func.count()).select_from(Outbox).where(
        col(Outbox.failed_at).is_not(None))).one()
    reminders = session.exec(select(func.count()).select_from(Reminder).where(
        Reminder.status == "pending")).one()
    updates = session.exec(select(func.count()).select_from(PendingUpdate).where(
        col(PendingUpdate.done_at).is_(None))).one()
    age = (now - oldest).total_seconds() if isinstance(oldest, datetime) else 0.0
    if isinstance(oldest, datetime) and oldest.tzinfo is None:
        age = 0.0
    return {"depth": depth, "oldest": max(age, 0.0), "failed": failed,
            "reminders": reminders, "updates": updates}
