"""Two instances on one PostgreSQL database touching the same chat never lose a turn.

Instance A is simulated by a raw asyncpg connection doing what a turn does (it changes the
conversation row); instance B is the real `IntakeService` handling a firm's answer.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, func
from sqlmodel import Session, select

from bot.config import Settings
from bot.runtime import Services, build_services
from bot.services.types import Incoming
from storage.models import Consent, Conversation, Outbox, ProcessedUpdate
from testing.pg import fresh_database

# Real PostgreSQL (127.0.0.1:5432): `-m "not pg"` leaves these out.
pytestmark = pytest.mark.pg

CHAT = 501
NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@dataclass
class Instance:
    """The real services on the test database, and a raw DSN for the other 'instance'."""

    services: Services
    dsn: str


@pytest.fixture
async def instance() -> AsyncIterator[Instance]:
    async with fresh_database() as url:
        settings = Settings(_env_file=None, TELEGRAM_BOT_TOKEN="1:test", DATABASE_URL=url,
                            RELAIS_FIRM_LOOKUP=False)  # type: ignore[call-arg]
        services = await build_services(settings, clock=lambda: NOW)

        def seed(session: Session) -> None:
            session.add(Consent(user_id=CHAT, given_at=NOW))
            session.add(Conversation(chat_id=CHAT, user_id=CHAT, step="company_name",
                                     answers={}, created_at=NOW, updated_at=NOW))

        await services.db.run(seed)
        try:
            yield Instance(services, url.replace("postgresql+asyncpg://", "postgresql://"))
        finally:
            await services.db.dispose()


def _answer(update_id: int) -> Incoming:
    return Incoming(chat_id=CHAT, user_id=CHAT, kind="text", value="Fonderie Dupont",
                    update_id=update_id)


async def _conversation(services: Services) -> Conversation:
    conv = await services.db.run(lambda s: s.get(Conversation, CHAT))
    assert conv is not None
    return conv


async def _foreign_turn(connection: asyncpg.Connection) -> None:
    """What another instance's turn writes: a field of its own, and the version bumped."""
    answers: dict[str, Any] = json.loads(await connection.fetchval(
        "SELECT answers FROM conversation WHERE chat_id = $1", CHAT))
    answers["contact_name"] = "Camille (autre instance)"
    await connection.execute(
        "UPDATE conversation SET answers = $1, version = version + 1 WHERE chat_id = $2",
        json.dumps(answers), CHAT)


async def test_a_turn_waits_for_the_other_instance_holding_the_chat(instance: Instance) -> None:
    """B's turn starts only once A's transaction on the same chat has committed."""
    other = await asyncpg.connect(instance.dsn)
    try:
        transaction = other.transaction()
        await transaction.start()
        await other.execute("SELECT pg_advisory_xact_lock($1)", CHAT)
        await _foreign_turn(other)
        turn = asyncio.create_task(instance.services.turns.handle(_answer(1)))
        # PostgreSQL shows B's session waiting for the chat's lock: B is held, not slow.
        for _ in range(400):
            waiting = await other.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                " AND database = (SELECT oid FROM pg_database"
                " WHERE datname = current_database())")
            if waiting or turn.done():
                break
            await asyncio.sleep(0.05)
        assert not turn.done(), "B went ahead while A held the chat"
        assert waiting == 1
        await transaction.commit()
        result = await asyncio.wait_for(turn, 10)
    finally:
        await other.close()
    assert not result.duplicate
    conv = await _conversation(instance.services)
    # Both turns are there: A's field and B's answer, applied on top of A's state.
    assert conv.answers["contact_name"] == "Camille (autre instance)"
    assert conv.answers["company_name"] == "Fonderie Dupont"
    assert conv.step != "company_name"
    assert conv.version >= 3


async def test_a_write_between_read_and_save_is_retried_not_lost(instance: Instance) -> None:
    """Another instance saving between B's read and B's write: B's turn runs again on it."""
    services = instance.services
    fired: list[str] = []

    def other_instance_writes_now() -> None:
        async def write() -> None:
            connection = await asyncpg.connect(instance.dsn)
            try:
                await _foreign_turn(connection)
            finally:
                await connection.close()

        # The hook runs inside B's transaction on the event loop thread: the other
        # instance gets its own thread and loop, and B waits for its commit.
        thread = threading.Thread(target=lambda: asyncio.run(write()))
        thread.start()
        thread.join(10)

    def before_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE CONVERSATION") and not fired:
            fired.append(statement)
            other_instance_writes_now()

    engine = services.db.sync_engine
    event.listen(engine, "before_cursor_execute", before_execute)
    try:
        result = await services.turns.handle(_answer(2))
    finally:
        event.remove(engine, "before_cursor_execute", before_execute)
    assert fired, "the conversation was never written"
    assert not result.duplicate
    conv = await _conversation(services)
    assert conv.answers["contact_name"] == "Camille (autre instance)"
    assert conv.answers["company_name"] == "Fonderie Dupont"

    def counts(session: Session) -> tuple[int, int]:
        processed = session.exec(select(func.count()).select_from(ProcessedUpdate)).one()
        replies = session.exec(select(func.count()).select_from(Outbox)
                               .where(Outbox.recipient == str(CHAT))).one()
        return processed, replies

    # The first attempt rolled back whole: the update is recorded once, answered once.
    processed, replies = await services.db.run(counts)
    assert processed == 1
    assert replies == 1
