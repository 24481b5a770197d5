"""What the channel adapters need from the application, as interfaces.

The adapters (Telegram, the mailbox) depend on these protocols, not on the wiring in
`bot.runtime`, which imports the adapters to install them: `bot.runtime.Services` satisfies
`ChatPort`, and `bot.services.inbound.InboundService` satisfies `MailPort`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol

from sqlmodel import Session

from bot.services.types import Delivery, Incoming, IncomingEmail, Result

__all__ = ["ChatPort", "MailPort"]


class ChatPort(Protocol):
    """The application as a chat channel's adapter sees it: turns in, deliveries out."""

    def chat_lock(self, chat_id: int) -> AbstractAsyncContextManager[Any]:
        """The lock that keeps one chat's events in order within this process."""
        ...

    async def handle(self, event: Incoming) -> Result:
        """Handle one thing a person did; the outbox rows to deliver now and a toast."""
        ...

    async def report_undeliverable(self, chat_id: int, error: str) -> None:
        """The channel refused, for good, to deliver to this chat (blocked bot, deleted chat)."""
        ...

    async def keep_refused(self, delivery: Delivery, error: str) -> None:
        """The channel refused a message for good: an animator's is kept and sent by email."""
        ...

    async def delivery_failed(self, outbox_id: int, error: str, *,
                              retry_after: float | None = None,
                              permanent: bool = False) -> None:
        """Record a failed attempt: retried later, after `retry_after` seconds, or never."""
        ...

    async def release(self, outbox_ids: Sequence[int]) -> None:
        """Give back rows not attempted, so they are delivered later in the same order."""
        ...

    def mark_delivered(self, outbox_ids: Sequence[int]) -> Awaitable[None]:
        """Rows the channel accepted, marked at once; await the end of the marking."""
        ...

    async def animator_chat_ids(self) -> Iterable[int]:
        """The chats of every animator (they get a longer command menu)."""
        ...


class MailPort(Protocol):
    """The application as the mailbox reader sees it: one decoded email at a time."""

    def prepare(self, mail: IncomingEmail) -> IncomingEmail:
        """Work out what the text says, without the database (run in a worker thread)."""
        ...

    def handle(self, session: Session, mail: IncomingEmail, *, now: datetime) -> str | None:
        """Act on one email in the caller's transaction; its kind, or None if known."""
        ...

    def ignore(self, session: Session, inbound_id: int, *, kind: str, note: str,
               now: datetime) -> None:
        """Close an email without acting on it (automatic reply, our own message...)."""
        ...

    def after_pass(self, session: Session, *, now: datetime) -> None:
        """After each look at the mailbox: what waits for a period (grouped notices)."""
        ...
