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
