"""Alembic: from the first migration to head, on SQLite and PostgreSQL, the models match."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel, create_engine

import storage.models  # noqa: F401
from storage.db import Database
from storage.migrate import FIRST_REVISION, current, head, upgrade
from testing.pg import fresh_database


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, SQLModel.metadata)


def test_sqlite_first_revision_to_head_matches_the_models(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/m.db"
    upgrade(url, FIRST_REVISION)
    assert current(url) == FIRST_REVISION
    upgrade(url)
    assert current(url) == head()
    engine = create_engine(f"sqlite:///{tmp_path}/m.db")
    with engine.connect() as connection:
        assert _diff(connection) == []
    engine.dispose()


def test_a_database_made_before_migrations_is_stamped_then_upgraded(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/old.db"
    database = Database(url)
    asyncio.run(database.create_all())
    asyncio.run(database.dispose())
    assert current(url) is None
    upgrade(url)
    assert current(url) == head()


@pytest.mark.pg
async def test_postgresql_first_revision_to_head_matches_the_models() -> None:
    async with fresh_database() as url:
        await asyncio.to_thread(upgrade, url, FIRST_REVISION)
        await asyncio.to_thread(upgrade, url)
        engine = create_async_engine(url)
        async with engine.connect() as connection:
            diff = await connection.run_sync(_diff)
        await engine.dispose()
        assert diff == []



async def _separations_round_trip(url: str) -> None:
    """Pairs stored by 0016 become sets of two at head, and pairs again after a downgrade."""
    from alembic import command
    from sqlalchemy import text
    from sqlmodel import Session

    from storage.migrate import alembic_config
    from storage.models import Need

    def needs_and_pairs(connection: Connection) -> None:
        session = Session(bind=connection)
        session.add_all([Need(id=n, reference=f"TI-2026-000{n}", theme="recrutement",
                              urgency="month", firm_name=f"F{n}", contact_method="telegram",
                              territory_id="ti-2703") for n in (1, 2, 3)])
        session.flush()
        connection.execute(text(
            "INSERT INTO radar_apart (territory_id, need_id, other_id, at) VALUES "
            "('ti-2703', 1, 2, CURRENT_TIMESTAMP), ('ti-2703', 1, 3, CURRENT_TIMESTAMP)"))

    await asyncio.to_thread(upgrade, url, "0016_radar_apart")
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(needs_and_pairs)
        await asyncio.to_thread(upgrade, url)
        async with engine.connect() as connection:
            rows = (await connection.execute(text(
                "SELECT set_key, need_id, territory_id FROM radar_apart "
                "ORDER BY set_key, need_id"))).all()
        assert [tuple(r) for r in rows] == [
            ("pair-1-2", 1, "ti-2703"), ("pair-1-2", 2, "ti-2703"),
            ("pair-1-3", 1, "ti-2703"), ("pair-1-3", 3, "ti-2703")]
        async with engine.begin() as connection:  # a group set aside at head: one set of 3
            await connection.execute(text(
                "INSERT INTO radar_apart (territory_id, set_key, need_id, at) VALUES "
                "('ti-2703', 'aside-x', 1, CURRENT_TIMESTAMP), "
                "('ti-2703', 'aside-x', 2, CURRENT_TIMESTAMP), "
                "('ti-2703', 'aside-x', 3, CURRENT_TIMESTAMP)"))
        await engine.dispose()
        await asyncio.to_thread(command.downgrade, alembic_config(url), "0016_radar_apart")
        async with engine.connect() as connection:
            pairs = (await connection.execute(text(
                "SELECT need_id, other_id FROM radar_apart ORDER BY need_id, other_id"))).all()
        assert [tuple(r) for r in pairs] == [(1, 2), (1, 3), (2, 3)]
    finally:
        await engine.dispose()


async def test_sqlite_separations_survive_the_change_to_sets(tmp_path: Path) -> None:
    await _separations_round_trip(f"sqlite+aiosqlite:///{tmp_path}/s.db")


@pytest.mark.pg
async def test_postgresql_separations_survive_the_change_to_sets() -> None:
    async with fresh_database() as url:
        await _separations_round_trip(url)
