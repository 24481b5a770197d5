"""Database access: one transaction per call, the same code for SQLite and PostgreSQL.

Services write plain synchronous SQLModel code against a `Session` and hand it to
`Database.run`. On SQLite the function runs inline on the event loop: a local file in
WAL mode commits in tens of microseconds, far less than a hop to a worker thread per
statement (which is what makes a naive `AsyncSession` on aiosqlite 15x slower than an
echo bot). On PostgreSQL it runs through `AsyncSession.run_sync` on asyncpg, so the loop
is never blocked by the network.

Inline, SQLite never waits for a lock: when another connection (another process: the
CLI, a backup) holds the write lock, the inline attempt fails at once, is rolled back,
and the unit of work runs again in a worker thread, which waits for the lock up to
`busy_timeout` seconds while the loop serves everyone else. Past that, `DatabaseBusy`:
the caller tries again later (a chat's update is postponed, not answered with an error).
A unit of work may therefore run twice; only its first, rolled back attempt is lost, as
when PostgreSQL's connection drops (below).

On SQLite each thread keeps one connection and one `Session` bound to it: a transaction
is begun and committed on that connection, and the session's identity map is emptied
after every call, so `run` keeps its contract (one transaction, objects returned
detached) without a pool checkout, a reset-on-return rollback and a new `Session` per
call, which together cost as much as the statements of a simple transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine, Row, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.sql.base import Executable
from sqlmodel import Session, SQLModel, create_engine

import storage.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from storage.models import DigestRun

__all__ = ["Database", "DatabaseBusy", "claim_run", "insert_for", "lock_chat", "sync_url"]

T = TypeVar("T")
_DISCONNECT_ATTEMPTS = 2
# SQLite result codes (the low byte of an extended code) meaning "someone else has the lock".
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


class DatabaseBusy(RuntimeError):
    """The database stayed locked by another connection longer than the busy timeout."""


def _is_busy(exc: OperationalError) -> bool:
    """Whether SQLite refused because another connection holds a lock."""
    original = exc.orig
    code = getattr(original, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return isinstance(original, sqlite3.OperationalError) and "locked" in str(original)


def insert_for(session: Session) -> Any:
    """The INSERT of the session's dialect (PostgreSQL or SQLite), for its ON CONFLICT."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def claim_run(session: Session, kind: str, period: str, now: datetime) -> bool:
    """Insert the (kind, period) row of `digest_run` unless it exists; whether this call did.

    Periodic jobs claim their period this way: of several instances, one inserts the row and
    runs the job, the others see the conflict and skip it.
    """
    table = DigestRun.__table__  # type: ignore[attr-defined]
    done = session.execute(insert_for(session)(table)
                           .values(kind=kind, period=period[:64], ran_at=now)
                           .on_conflict_do_nothing(index_elements=["kind", "period"]))
    return bool(done.rowcount)  # type: ignore[attr-defined]


def sync_url(url: str) -> str:
    """Map an async SQLite URL to the synchronous driver used inline."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    return url


# A transaction-scoped advisory lock per chat (PostgreSQL), released at commit or rollback.
_CHAT_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


def lock_chat(session: Session, chat_id: int) -> None:
    """Serialise the transactions touching one chat across processes (no-op on SQLite).

    Two instances handling updates of one chat, or storing an update while another marks
    the previous one done, run one after the other. SQLite has one writer at a time
    already, and the bot on SQLite is a single process.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_CHAT_LOCK, {"key": chat_id})


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL keeps readers off the writer's back; NORMAL sync survives a kill -9.

    In WAL mode, NORMAL writes each commit to the WAL file before returning but does not
    fsync it (checkpoints do): a killed process loses nothing it committed; only a power
    cut or a kernel crash may roll back the last commits (the database stays intact).
    """
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """No reset when a raw connection goes back to the pool.

    asyncpg's default reset sends a query of its own (unlock, close cursors, unlisten,
    reset settings) at every release: a second round trip for each single statement.
    The statements sent on the raw pool are autocommit and leave nothing of that behind.
    """


class _Bound(threading.local):
    """This thread's connection and session (SQLite), and whether a call is using them."""

    connection: Connection | None = None
    session: Session | None = None
    busy: bool = False


class Database:
    """Owns the engine and runs unit-of-work functions in one transaction each."""

    def __init__(self, url: str, *, busy_timeout: float = 5.0) -> None:
        self.url = url
        self.busy_timeout = busy_timeout
        # Units of work waiting in the worker thread for another connection's lock (SQLite).
        self.waiting = 0
        self._waiter: ThreadPoolExecutor | None = None
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        # An in-memory SQLite database exists once per connection: never off the loop.
        self._in_memory = self.is_sqlite and (parsed.database or ":memory:") == ":memory:"
        self._sync_engine: Engine | None = None
        self._async_engine: AsyncEngine | None = None
        self._bound = _Bound()
        self._connections: list[Connection] = []
        self._connections_lock = threading.Lock()
        # A plain asyncpg pool beside the engine, for the few hot single statements (the
        # webhook's store on receipt) that cost more in ORM and SQLAlchemy than in the server.
        self._raw_pool: asyncpg.Pool | None = None
        self._raw_pool_lock = asyncio.Lock()
        if self.is_sqlite:
            database = parsed.database or ""
            if database and database != ":memory:":
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self._sync_engine = create_engine(
                sync_url(url), connect_args={"check_same_thread": False}
            )
            event.listen(self._sync_engine, "connect", _sqlite_pragmas)
        else:
            # No pre-ping: it costs a round trip and half the CPU of a small transaction.
            # A connection the server dropped fails on first use instead, the pool
            # invalidates it, and `run` starts the transaction again on a fresh one.
            self._async_engine = create_async_engine(url, pool_recycle=1800)

    @property
    def sync_engine(self) -> Engine:
        """The synchronous engine (SQLite) or the async engine's sync facade."""
        if self._sync_engine is not None:
            return self._sync_engine
        assert self._async_engine is not None
        return self._async_engine.sync_engine

    def raw_dsn(self) -> str:
        """The PostgreSQL URL without SQLAlchemy's driver name, as asyncpg takes it."""
        if self.is_sqlite:
            raise RuntimeError("no raw asyncpg connection on SQLite")
        return make_url(self.url).set(drivername="postgresql").render_as_string(
            hide_password=False)

    async def raw_pool(self) -> asyncpg.Pool:
        """A plain asyncpg pool on the same database (PostgreSQL only), made on first use."""
        if self._raw_pool is None:
            async with self._raw_pool_lock:
                if self._raw_pool is None:
                    # Small: each statement sent on it is one short autocommit round trip.
                    self._raw_pool = await asyncpg.create_pool(
                        self.raw_dsn(), min_size=1, max_size=4,
                        max_inactive_connection_lifetime=300, reset=_keep_session)
        return self._raw_pool

    async def run(self, fn: Callable[[Session], T]) -> T:
        """Run `fn(session)` in one transaction: commit if it returns, roll back if it raises."""
        if self._sync_engine is not None:
            try:
                return self._run_sqlite(fn, wait=False)
            except OperationalError as exc:
                if not _is_busy(exc):
                    raise
            return await self._run_waiting(fn)
        assert self._async_engine is not None
        for attempt in range(_DISCONNECT_ATTEMPTS):
            async with AsyncSession(
                self._async_engine, expire_on_commit=False, sync_session_class=Session
            ) as asession:
                try:
                    result = await asession.run_sync(fn)
                except DBAPIError as exc:
                    # The server had closed the connection (restart, failover, idle timeout)
                    # before the commit: nothing was committed, so running it again on a
                    # fresh connection is safe. A failure at the commit itself is not
                    # retried (the commit may have happened).
                    if exc.connection_invalidated and attempt < _DISCONNECT_ATTEMPTS - 1:
                        continue
                    raise
                await asession.commit()
                return result
        raise AssertionError("unreachable")

    async def run_apart(self, fn: Callable[[Session], T]) -> T:
        """Like `run`, but never on the event loop: for a periodic pass's slice.

        On SQLite the slice runs in the worker thread on that thread's own connection, so
        however long it takes, the loop goes on serving conversations (their writes wait
        for the slice's commit in the same thread, never on the loop). PostgreSQL is
        already asynchronous: `run` awaits each statement.
        """
        if self._sync_engine is None or self._in_memory:
            return await self.run(fn)
        return await self._in_worker(fn)

    async def _in_worker(self, fn: Callable[[Session], T]) -> T:
        """Run `fn` in the worker thread on its connection; a lock held too long is busy."""
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._worker(), self._run_sqlite, fn, True)
        except OperationalError as exc:
            if _is_busy(exc):
                raise DatabaseBusy(f"database locked for more than {self.busy_timeout:g} s") \
                    from exc
            raise

    def _worker(self) -> ThreadPoolExecutor:
        if self._waiter is None:
            # One thread: SQLite has one writer at a time anyway, and the waits queue there.
            self._waiter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relais-db")
        return self._waiter

    async def stream(self, statement: Executable, *,
                     chunk: int = 1000) -> AsyncIterator[Sequence[Row[Any]]]:
        """The rows of a read-only query, `chunk` at a time, from a server-side cursor.

        Memory holds one chunk however many rows the query returns (a whole export). On
        SQLite the cursor steps through the file; on PostgreSQL a server-side cursor sends
        rows as they are fetched. Not for the bot's loop: a SQLite chunk is read inline.
        """
        if self._sync_engine is not None:
            with self._sync_engine.connect() as connection:
                result = connection.execution_options(yield_per=chunk).execute(statement)
                for part in result.partitions():
                    yield part
                    await asyncio.sleep(0)
            return
        assert self._async_engine is not None
        async with self._async_engine.connect() as aconnection:
            streamed = await aconnection.stream(statement.execution_options(yield_per=chunk))
            async for part in streamed.partitions():
                yield part

    async def _run_waiting(self, fn: Callable[[Session], T]) -> T:
        """Run `fn` in the worker thread, which may wait for the lock (SQLite)."""
        self.waiting += 1
        try:
            return await self._in_worker(fn)
        finally:
            self.waiting -= 1

    def _run_sqlite(self, fn: Callable[[Session], T], wait: bool) -> T:
        bound = self._bound
        if bound.busy:
            # Re-entered from inside a unit of work (never done today): its own transaction.
            with Session(self._sync_engine, expire_on_commit=False) as session:
                result = fn(session)
                session.commit()
                return result
        session, connection = bound.session, bound.connection
        if session is None or connection is None or connection.closed or connection.invalidated:
            session = self._bind_thread(wait)
        bound.busy = True
        try:
            result = fn(session)
            session.commit()
            return result
        except BaseException:
            session.rollback()
            raise
        finally:
            # Objects leave detached, as with a fresh session per call (expire_on_commit
            # is off, so their loaded attributes stay readable).
            session.expunge_all()
            bound.busy = False

    def _bind_thread(self, wait: bool) -> Session:
        assert self._sync_engine is not None
        connection = self._sync_engine.connect()
        # Only the worker thread waits for a lock; inline, waiting would stop the loop.
        timeout_ms = int(self.busy_timeout * 1000) if wait else 0
        connection.exec_driver_sql(f"PRAGMA busy_timeout={timeout_ms}")
        connection.commit()
        with self._connections_lock:
            self._connections.append(connection)
        bound = self._bound
        bound.connection = connection
        # The session begins a transaction on the connection and commits it (or rolls it
        # back) at the end of each call; the connection itself stays open.
        bound.session = Session(bind=connection, expire_on_commit=False)
        return bound.session

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
            if self._waiter is not None:
                # Its unit of work (if any) finishes first; its connection is closed below.
                self._waiter.shutdown(wait=True)
                self._waiter = None
            with self._connections_lock:
                connections, self._connections = self._connections, []
            for connection in connections:
                connection.close()
            self._bound = _Bound()
            self._sync_engine.dispose()
        if self._raw_pool is not None:
            pool, self._raw_pool = self._raw_pool, None
            await pool.close()
        if self._async_engine is not None:
            await self._async_engine.dispose()
