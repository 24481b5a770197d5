"""Database migrations (Alembic): `relais db upgrade`, and on start of `relais run`.

A database created before migrations existed (tables, no `alembic_version`) is stamped at
the first revision, then upgraded like any other.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlmodel import create_engine

from storage.db import sync_url

__all__ = ["FIRST_REVISION", "MIGRATIONS_DIR", "alembic_config", "current", "upgrade"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
FIRST_REVISION = "0001"


def alembic_config(url: str) -> Config:
    """An Alembic configuration pointed at `url` (async URLs accepted)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = url
    return config


def _inspect_sqlite(url: str) -> tuple[set[str], str | None]:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            revision = MigrationContext.configure(connection).get_current_revision()
        return tables, revision
    finally:
        engine.dispose()


def current(url: str) -> str | None:
    """The database's revision (None: never migrated). SQLite only; PostgreSQL via CLI."""
    if make_url(url).get_backend_name() != "sqlite":
        return None
    return _inspect_sqlite(url)[1]


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database to `revision` (blocking; run it in a thread from async code)."""
    config = alembic_config(url)
    if make_url(url).get_backend_name() == "sqlite":
        tables, version = _inspect_sqlite(url)
        if version is None and "need" in tables:
            # Made by create_all: already the current schema, or one from before 0001.
            command.stamp(config, "head" if _matches_models(url) else FIRST_REVISION)
    command.upgrade(config, revision)


def _matches_models(url: str) -> bool:
    from alembic.autogenerate import compare_metadata
    from sqlmodel import SQLModel

    import storage.models  # noqa: F401  (registers the tables)

    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            return not compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()


def head() -> str:
    """The newest revision shipped."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    result = script.get_current_head()
    assert result is not None
    return result
