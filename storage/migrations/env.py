"""Alembic environment: the URL comes from `storage.migrate` (never from a config file)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel, create_engine

import storage.models  # noqa: F401  (registers every table on SQLModel.metadata)
from storage.db import sync_url

target_metadata = SQLModel.metadata
# Any fixed 64-bit number, distinct from the chat ids locked by the intake (negative).
MIGRATION_LOCK = -7_237_001_000


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Several instances starting together on one database: one migrates, the others
            # wait here, then find the database at head (held until this transaction ends).
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": MIGRATION_LOCK})
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


def run_migrations_online() -> None:
    """Upgrade (or downgrade) the database the caller named."""
    url = context.config.attributes["url"]
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(sync_url(url), poolclass=pool.NullPool)
        with engine.connect() as connection:
            _run(connection)
        engine.dispose()
    else:
        # asyncpg is the project's PostgreSQL driver: run the sync migration code in it.
        asyncio.run(_run_async(url))


run_migrations_online()
