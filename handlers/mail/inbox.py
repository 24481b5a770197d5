"""The bot's mailbox over IMAP: read, record, then flag; IDLE when offered, polling otherwise.

Order matters for "never lost, never twice": a message is first recorded in the database
(unique Message-ID), then acted on, and only then flagged `RelaisImported` on the server.
A crash before the flag makes the next pass read it again; the unique Message-ID makes
that re-read a no-op. Nothing is ever deleted or moved on the server.

Decoding a message and reading its text cost time in proportion to what the sender sent,
so they run in a worker thread, never on the event loop that serves every chat; the work
is bounded (size, part count, text caps) and a message still not read after
`parse_timeout` seconds is recorded as failed. The raw message is stored only when it is
within the size limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import aioimaplib
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

from bot.services.types import IncomingEmail
from handlers.mail.authenticity import authenticity
from handlers.mail.automatic import automatic_reason
from handlers.mail.decode import DEFAULT_MAX_PARTS, InboundMail, parse_inbound, synthetic_id
from handlers.mail.quotes import strip_quoted
from handlers.mail.threads import thread_keys
from handlers.ports import MailPort
from storage.db import Database
from storage.models import InboundEmail

__all__ = ["IMPORTED_FLAG", "ImapSettings", "MailboxReader"]

log = logging.getLogger(__name__)

# A keyword, not \\Seen: a person may read the mailbox too, and must not hide mail from us.
IMPORTED_FLAG = "RelaisImported"

Clock = Callable[[], datetime]


class MailboxError(ConnectionError):
    """The IMAP server refused a command or could not be reached."""


@dataclass(frozen=True, slots=True)
class ImapSettings:
    """Where the bot's mailbox is and how to log in."""

    host: str
    port: int
    security: str  # none | tls
    username: str
    password: str
    folder: str = "INBOX"
    poll_interval: float = 60.0
    timeout: float = 30.0


class MailboxReader:
    """One reader per process: passes over the unflagged messages of the folder."""

    def __init__(self, settings: ImapSettings, db: Database, inbound: MailPort, *,
                 clock: Clock, own_addresses: frozenset[str], mail_domain: str,
                 max_bytes: int, max_parts: int = DEFAULT_MAX_PARTS,
                 parse_timeout: float = 30.0,
                 authserv_ids: frozenset[str] = frozenset()) -> None:
        self.settings = settings
        self.db = db
        self.inbound = inbound
        self.clock = clock
        self.own_addresses = own_addresses
        self.mail_domain = mail_domain
        self.max_bytes = max_bytes
        self.max_parts = max_parts
        self.parse_timeout = parse_timeout
        # Whose Authentication-Results to believe (MAIL_AUTHSERV_ID); none: nobody's.
        self.authserv_ids = authserv_ids
        self.passes = 0
        self._client: aioimaplib.IMAP4 | None = None
        # One thread: messages are read one after the other, as they are acted on.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relais-mail")

    # --- connection --------------------------------------------------------------------------
    async def _connect(self) -> aioimaplib.IMAP4:
        s = self.settings
        if s.security == "tls":
            client: aioimaplib.IMAP4 = aioimaplib.IMAP4_SSL(host=s.host, port=s.port,
                                                            timeout=s.timeout)
        else:
            client = aioimaplib.IMAP4(host=s.host, port=s.port, timeout=s.timeout)
        await client.wait_hello_from_server()
        login = await client.login(s.username, s.password)
        if login.result != "OK":
            raise MailboxError(f"IMAP login refused for {s.username}")
        selected = await client.select(s.folder)
        if selected.result != "OK":
            raise MailboxError(f"IMAP folder {s.folder!r} cannot be opened")
        return client

    async def close(self) -> None:
        """Log out (best effort)."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.logout(), 5)

    # --- passes ------------------------------------------------------------------------------
    async def poll_once(self) -> int:
        """Read every message not yet imported; return how many were handled."""
        if self._client is not None and _closed(self._client):
            # The server went away (restart, network): a command would wait for its timeout.
            await self.close()
        if self._client is None:
            self._client = await self._connect()
        client = self._client
        found = await client.uid_search("UNKEYWORD", IMPORTED_FLAG, charset=None)
        if found.result != "OK":
            raise MailboxError("IMAP search failed")
        uids = [int(u) for line in found.lines[:1] for u in line.split() if u.isdigit()]
        handled = 0
        for uid in sorted(uids):
            fetched = await client.uid("fetch", str(uid), "(RFC822)")
            raw = next((bytes(part) for part in fetched.lines if isinstance(part, bytearray)),
                       None)
            if fetched.result != "OK" or raw is None:
                log.warning("IMAP fetch of UID %s failed", uid)
                continue
            await self.import_raw(raw)
            # Flag only once the message is recorded and acted on (see module docstring).
            stored = await client.uid("store", str(uid), "+FLAGS", f"({IMPORTED_FLAG})")
            if stored.result != "OK":
                log.warning("IMAP flag of UID %s failed; it will be read again (no-op)", uid)
            handled += 1
        now = self.clock()
        await self.db.run(lambda session: self.inbound.after_pass(session, now=now))
        self.passes += 1
        return handled

    async def import_raw(self, raw: bytes) -> str | None:
        """Record one raw message (once) and act on it; its kind, or None if already known."""
        now = self.clock()
        # Kept for inspection only within the size limit (whatever its size, it is read).
        kept = raw if len(raw) <= self.max_bytes else None
        loop = asyncio.get_running_loop()
        try:
            mail, reason, prepared = await asyncio.wait_for(
                loop.run_in_executor(self._worker, self._read, raw), self.parse_timeout)
        except Exception as exc:
            # Too long to read, or a reading bug: recorded as failed (and flagged), so that
            # the message is not read again and again.
            if isinstance(exc, TimeoutError):
                log.error("email of %d bytes not read within %.0f s: recorded as failed",
                          len(raw), self.parse_timeout)
            else:
                log.exception("email of %d bytes could not be read: recorded as failed",
                              len(raw))
            failed_id = await self.db.run(lambda session: _record(
                session, synthetic_id(raw), "", "", kept, now))
            if failed_id is not None:
                await self.db.run(lambda session: _fail(session, failed_id, now))
            return "failed" if failed_id is not None else None
        if mail.truncated:
            log.warning("email %s only partly read (size, parts or text over the limits)",
                        mail.message_id)
        inbound_id = await self.db.run(lambda session: _record(
            session, mail.message_id, mail.from_addr, mail.subject, kept, now))
        if inbound_id is None:
            return None  # imported before (a crash between recording and flagging)
        if reason is not None:
            # Never answered: that is how auto-reply loops start.
            await self.db.run(lambda session: self.inbound.ignore(
                session, inbound_id, kind="automatic", note=reason, now=now))
            log.info("email %s ignored: %s", inbound_id, reason)
            return "automatic"
        assert prepared is not None
        incoming = dataclasses.replace(prepared, inbound_id=inbound_id)
        try:
            return await self.db.run(
                lambda session: self.inbound.handle(session, incoming, now=now))
        except Exception:
            log.exception("email %s could not be handled", inbound_id)
            await self.db.run(lambda session: _fail(session, inbound_id, now))
            return "failed"

    def _read(self, raw: bytes) -> tuple[InboundMail, str | None, IncomingEmail | None]:
        """Decode, classify and read one message (in the worker thread, no database).

        Returns the decoded mail, why it must not be answered (None when it may), and the
        email as the service will get it (None when it is not to be acted on).
        """
        mail = parse_inbound(raw, max_attachment_bytes=self.max_bytes,
                             max_bytes=self.max_bytes, max_parts=self.max_parts)
        reason = automatic_reason(mail)
        if reason is None and mail.from_addr.lower() in self.own_addresses:
            reason = "own"
        if reason is not None:
            return mail, reason, None
        return mail, None, self.inbound.prepare(self._incoming(0, mail))

    def _incoming(self, inbound_id: int, mail: InboundMail) -> IncomingEmail:
        keys = thread_keys(mail, mail_domain=self.mail_domain)
        text = strip_quoted(mail.text).strip()
        verdict = authenticity(mail, authserv_ids=self.authserv_ids)
        if not verdict.verified:
            log.info("email %s: sender not verified (%s)", inbound_id, verdict.reason)
        return IncomingEmail(
            inbound_id=inbound_id, message_id=mail.message_id, from_addr=mail.from_addr,
            from_name=mail.from_name, subject=mail.subject, text=text,
            references=tuple(dict.fromkeys((*mail.references, *mail.in_reply_to))),
            need_refs=keys.references, tokens=keys.tokens, subject_refs=keys.subject_refs,
            attachments=tuple((a.filename, a.content_type, a.size, a.data)
                              for a in mail.attachments if a.content_id is None),
            oversized=mail.oversized, truncated=mail.truncated, verified=verdict.verified,
            auth_verdict=verdict.reason)

    async def run(self, stop: asyncio.Event) -> None:
        """Until stopped: a pass, then wait for the server (IDLE) or the poll interval."""
        first_backoff = min(5.0, self.settings.poll_interval)
        backoff = first_backoff
        try:
            while not stop.is_set():
                try:
                    await self.poll_once()
                    backoff = first_backoff
                    await self._wait(stop)
                except Exception as exc:  # the mailbox may be down for a while: retry
                    log.warning("mailbox pass failed: %s", exc)
                    await self.close()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), backoff)
                    backoff = min(backoff * 2, 300.0)
            await self.close()
        finally:
            self._worker.shutdown(wait=False, cancel_futures=True)

    async def _wait(self, stop: asyncio.Event) -> None:
        client = self._client
        interval = self.settings.poll_interval
        if client is None or not client.has_capability("IDLE"):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            return
        idle = await client.idle_start(timeout=interval)
        stopper = asyncio.ensure_future(stop.wait())
        pusher = asyncio.ensure_future(client.wait_server_push(timeout=interval))
        try:
            await asyncio.wait({stopper, pusher}, timeout=interval + 1,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            pusher.cancel()
            client.idle_done()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(idle, 5)


def _closed(client: aioimaplib.IMAP4) -> bool:
    transport = getattr(client.protocol, "transport", None)
    return transport is None or transport.is_closing()


def _record(session: Session, message_id: str, from_addr: str, subject: str,
            raw: bytes | None, now: datetime) -> int | None:
    """Insert the message unless its Message-ID is known; its row id, or None."""
    table = InboundEmail.__table__  # type: ignore[attr-defined]
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    result = session.execute(
        insert(table).values(
            message_id=message_id[:300], from_addr=from_addr[:320],
            subject=subject[:300], raw=raw, status="new", received_at=now,
        ).on_conflict_do_nothing(index_elements=["message_id"]).returning(table.c.id))
    row = result.first()
    if row is not None:
        return int(row[0])
    # Known already: act on it only if a crash stopped us before it was handled.
    existing = session.exec(select(InboundEmail).where(
        InboundEmail.message_id == message_id[:300])).first()
    return existing.id if existing is not None and existing.status == "new" else None


def _fail(session: Session, inbound_id: int, now: datetime) -> None:
    row = session.get(InboundEmail, inbound_id)
    if row is not None and row.status == "new":
        row.status, row.processed_at = "failed", now
        session.add(row)
