"""The same intake on PostgreSQL (asyncpg): storage code is shared with SQLite."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.runtime import build_services, running_bot
from testing.botapi import LocalBotAPI
from testing.clock import FakeClock
from testing.pg import fresh_database
from tests.conftest import make_settings, outbox_drained, wait_until
from tests.helpers import all_needs, press, reach_summary

# Real PostgreSQL (127.0.0.1:5432): `-m "not pg"` leaves these out.
pytestmark = pytest.mark.pg


@pytest.mark.slow
async def test_intake_on_postgresql(api: LocalBotAPI, tmp_path: Path, clock: FakeClock) -> None:
    async with fresh_database() as url:
        settings = make_settings(api, tmp_path / "unused.db", DATABASE_URL=url)
        services = await build_services(settings, clock=clock)
        try:
            async with running_bot(services) as (application, _stop, _polling):
                poller = application.bot_data["poller"]
                users = [api.user(7000 + i) for i in range(5)]

                async def firm(user) -> None:
                    await reach_summary(user, name=f"Firme {user.user_id}")
                    await press(user, "Envoyer la demande")

                await asyncio.gather(*(firm(u) for u in users))
                # A redelivered update is ignored on PostgreSQL too.
                update_id = api.calls_of("getUpdates")[-1].params.get("offset", 1) - 1
                handled = poller.handled
                api.redeliver(update_id)

                async def went_through() -> bool:
                    return poller.handled > handled

                # The duplicate went through the handlers; what it wrote (nothing) is out.
                await wait_until(went_through, "the redelivered update to be handled")
                await outbox_drained(services.db, channel="telegram")  # no SMTP server here
            needs = await all_needs(services.db)
        finally:
            await services.db.dispose()
    assert sorted(n.reference for n in needs) == [f"TI-2026-000{i}" for i in range(1, 6)]
    assert {n.firm_name for n in needs} == {f"Firme {7000 + i}" for i in range(5)}
    assert all(n.created_at.tzinfo is not None for n in needs)


async def test_a_connection_dropped_by_the_server_is_replaced_transparently() -> None:
    """After the server closes every pooled connection, the next transaction still runs."""
    import asyncpg
    from sqlalchemy import text

    from storage.db import Database
    from testing.pg import fresh_database

    async with fresh_database() as url:
        db = Database(url)
        pid = await db.run(lambda s: s.execute(text("select pg_backend_pid()")).scalar_one())
        admin = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            assert await admin.fetchval("select pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        # The pooled connection is dead: the first statement fails, the pool invalidates it
        # and the transaction runs again on a fresh connection.
        again = await db.run(lambda s: s.execute(text("select pg_backend_pid()")).scalar_one())
        assert again != pid
        await db.dispose()
