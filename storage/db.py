"""Database access: one transaction per call, the same code for SQLite and PostgreSQL.

Services write plain synchronous SQLModel code against a `Session` and hand it to
`Database.run`. On SQLite the function runs inline on the event loop: a local file in
WAL mode commits in tens of microseconds, far less than a hop to a worker thread per
statement (which is what makes a naive `AsyncSession` on aiosqlite 15x slower than an
echo bot). On PostgreSQL it runs through `AsyncSession.run_sync` on asyncpg, so the loop
is never blocked by the network.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlmodel import Session, SQLModel, create_engine

import storage.models  # noqa: F401  (registers the tables on SQLModel.metadata)

__all__ = ["Database", "sync_url"]

T = TypeVar("T")


def sync_url(url: str) -> str:
    """Map an async SQLite URL to the synchronous driver used inline."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL keeps readers off the writer's back; NORMAL sync survives a kill -9."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


class Database:
    """Owns the engine and runs unit-of-work functions in one transaction each."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self._sync_engine: Engine | None = None
        self._async_engine: AsyncEngine | None = None
        if self.is_sqlite:
            database = parsed.database or ""
            if database and database != ":memory:":
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self._sync_engine = create_engine(
                sync_url(url), connect_args={"check_same_thread": False}
            )
            event.listen(self._sync_engine, "connect", _sqlite_pragmas)
        else:
            self._async_engine = create_async_engine(url, pool_pre_ping=True)

    @property
    def sync_engine(self) -> Engine:
        """The synchronous engine (SQLite) or the async engine's sync facade."""
        if self._sync_engine is not None:
            return self._sync_engine
        assert self._async_engine is not None
        return self._async_engine.sync_engine

    async def run(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` in one transaction: commit if it returns, roll back if it raises."""
        if self._sync_engine is not None:
            with Session(self._sync_engine, expire_on_commit=False) as session:
                result = fn(session)
                session.commit()
                return result
        assert self._async_engine is not None
        async with AsyncSession(
            self._async_engine, expire_on_commit=False, sync_session_class=Session
        ) as asession:
            result = await asession.run_sync(fn)
            await asession.commit()
            return result

    async def create_all(self) -> None:
        """Create missing tables (migrations take over in a later step)."""
        if self._sync_engine is not None:
            SQLModel.metadata.create_all(self._sync_engine)
            return
        assert self._async_engine is not None
        async with self._async_engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.create_all)

    async def dispose(self) -> None:
        """Close every pooled connection."""
        if self._sync_engine is not None:
            self._sync_engine.dispose()
        if self._async_engine is not None:
            await self._async_engine.dispose()
