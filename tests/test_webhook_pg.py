"""The webhook's store on PostgreSQL (one statement on the raw asyncpg pool) and its races.

The store no longer takes the chat lock: it locks the chat's earlier open updates FOR
SHARE. Both orders against the previous update's `_done_and_next` are forced here (the
other transaction held in the server by an advisory lock another connection owns), and in
both the new update is claimed by exactly one side, never left to the sweeper.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from bot.config import Settings
from bot.webhook import _PG_STORE, WebhookServer, _done_and_next, _mark_done
from storage.db import Database
from storage.models import PendingUpdate
from testing.pg import fresh_database

# Real PostgreSQL (127.0.0.1:5432): `-m "not pg"` leaves these out.
pytestmark = pytest.mark.pg

CHAT = 777
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
# The advisory lock that holds a transaction in the server until the test releases it.
GATE = 424242


@dataclass
class Host:
    """What `WebhookServer` needs of the wiring."""

    settings: Settings
    db: Database
    clock: Callable[[], datetime]


@pytest.fixture
async def server() -> AsyncIterator[WebhookServer]:
    async with fresh_database() as url:
        db = Database(url)
        await db.create_all()
        settings = Settings(_env_file=None, TELEGRAM_BOT_TOKEN="1:test",  # type: ignore[call-arg]
                            DATABASE_URL=url)
        try:
            yield WebhookServer(Host(settings, db, lambda: NOW), None,  # type: ignore[arg-type]
                                path="/hook", secret="s")
        finally:
            await db.dispose()


def _update(update_id: int) -> dict[str, Any]:
    return {"update_id": update_id,
            "message": {"message_id": update_id, "date": 0, "text": "Bonjour",
                        "chat": {"id": CHAT, "type": "private"}}}


async def _waiting_on_a_lock(db: Database, query: str) -> None:
    """Until a backend running `query…` waits for a lock held by another transaction."""
    pool = await db.raw_pool()
    for _ in range(2000):
        waiting = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE $1", f"%{query}%")
        if waiting:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"nothing waits on a lock running {query!r}")


async def _gated(db: Database, fn: Callable[[Session], Any],
                 gate: asyncpg.Connection) -> Awaitable[Any]:
    """Run `fn` in a transaction that then waits (in the server) for `gate`'s lock."""

    def work(session: Session) -> Any:
        result = fn(session)
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": GATE})
        return result

    task = asyncio.create_task(db.run(work))
    await _waiting_on_a_lock(db, "pg_advisory_xact_lock")
    return task


async def test_store_is_one_statement_and_a_redelivery_is_stored_once(
        server: WebhookServer) -> None:
    """Stored and claimed at once; sent again while claimed, neither stored nor claimed."""
    db = server.services.db
    payload = _update(10)
    assert await server._store_and_claim_pg(10, CHAT, payload, NOW) == (10, CHAT, payload)
    assert await server._store_and_claim_pg(10, CHAT, payload, NOW) is None
    # The next update of the chat waits behind the first one (not done).
    assert await server._store_and_claim_pg(11, CHAT, _update(11), NOW) is None
    rows = await db.run(lambda s: {r.update_id: r for r in s.exec(select(PendingUpdate))})
    assert set(rows) == {10, 11} and rows[10].payload == payload
    assert rows[10].claimed_until == NOW + LEASE and rows[11].claimed_until is None


async def test_store_waits_for_the_previous_update_being_marked_done(
        server: WebhookServer) -> None:
    """Previous update marked done first (not committed): the store waits, then claims."""
    db = server.services.db
    assert await server._store_and_claim_pg(20, CHAT, _update(20), NOW) is not None
    gate = await asyncpg.connect(db.raw_dsn())
    try:
        await gate.execute("SELECT pg_advisory_lock($1)", GATE)
        done = await _gated(db, lambda s: _done_and_next(s, 20, CHAT, NOW, LEASE), gate)
        store = asyncio.create_task(server._store_and_claim_pg(21, CHAT, _update(21), NOW))
        await _waiting_on_a_lock(db, "INSERT INTO pending_update")
        await gate.execute("SELECT pg_advisory_unlock($1)", GATE)
        # The done transaction did not see the new update; the store saw it done.
        assert await done is None
        assert await store == (21, CHAT, _update(21))
    finally:
        await gate.close()


async def test_previous_update_marked_done_after_the_store_claims_the_new_one(
        server: WebhookServer) -> None:
    """Store first (not committed): marking the previous done waits, then claims the new."""
    db = server.services.db
    assert await server._store_and_claim_pg(30, CHAT, _update(30), NOW) is not None
    store = await asyncpg.connect(db.raw_dsn())
    try:
        transaction = store.transaction()
        await transaction.start()
        claimed = await store.fetchval(_PG_STORE, 31, CHAT, '{"update_id": 31}', NOW,
                                       NOW + LEASE)
        assert claimed is False  # update 30 is not done yet
        done = asyncio.create_task(db.run(lambda s: _done_and_next(s, 30, CHAT, NOW, LEASE)))
        # The mark waits inside `relais_done_and_next` (the client's statement calls it).
        await _waiting_on_a_lock(db, "relais_done_and_next")
        await transaction.commit()
        following = await done
        assert following is not None and following[0] == 31
    finally:
        await store.close()


async def test_marking_done_tells_a_redelivery_and_finds_the_next_update(
        server: WebhookServer) -> None:
    """`relais_done_and_next`: first mark True, again False; the chat's next one claimed."""
    db = server.services.db
    assert await server._store_and_claim_pg(40, CHAT, _update(40), NOW) is not None
    assert await server._store_and_claim_pg(41, CHAT, _update(41), NOW) is None
    first = await db.run(lambda s: _mark_done(s, 40, CHAT, NOW, LEASE))
    assert first == (True, (41, CHAT, _update(41)))
    again = await db.run(lambda s: _mark_done(s, 40, CHAT, NOW, LEASE))
    assert again == (False, None)  # done already; 41 is claimed (its lease runs)
    rows = await db.run(lambda s: {r.update_id: r for r in s.exec(select(PendingUpdate))})
    assert rows[40].done_at == NOW and rows[40].payload == {}
    assert rows[41].done_at is None and rows[41].claimed_until == NOW + LEASE
