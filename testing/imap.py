"""A real IMAP server on loopback for the email channel's tests (aioimaplib's test server).

It speaks IMAP4rev1 over TCP with IDLE, UID SEARCH/FETCH/STORE and keywords: the bot's
reader talks to it exactly as it would to a production server.
"""

from __future__ import annotations

import asyncio
import email
from email import policy

from aioimaplib.imap_testing_server import Mail, MockImapServer

__all__ = ["BOT_ADDRESS", "ImapServer"]

BOT_ADDRESS = "relais@relais.example.org"


class ImapServer:
    """The bot's mailbox, on a free port of 127.0.0.1."""

    def __init__(self, user: str = BOT_ADDRESS) -> None:
        self.user = user
        self._server = MockImapServer(loop=asyncio.get_running_loop())
        self._listener: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> None:
        """Listen on a free loopback port."""
        await self._listen(0)

    async def start_again(self) -> None:
        """Listen again on the same port after `stop()` (the mailbox keeps its messages)."""
        await self._listen(self.port)

    async def _listen(self, port: int) -> None:
        self._listener = await self._server.run_server(host="127.0.0.1", port=port)
        self.port = self._listener.sockets[0].getsockname()[1]
        state = self._server._server_state
        state.mailboxes.setdefault(self.user, {})
        for mailbox in state.DEFAULT_MAILBOXES:
            state.create_mailbox_if_not_exists(self.user, mailbox)

    async def stop(self) -> None:
        """Close the listener and every connection."""
        if self._listener is not None:
            self._listener.close()
            for connection in list(self._server._connections):
                if connection.transport is not None:
                    connection.transport.close()
            await self._listener.wait_closed()

    def deliver(self, raw: bytes) -> int:
        """Put a message in the mailbox's INBOX (as an MTA would); its UID."""
        message = email.message_from_bytes(raw, policy=policy.compat32)
        state = self._server._server_state
        connection = state.connections.get(self.user)
        transport = getattr(connection, "transport", None)
        if connection is not None and (transport is None or transport.is_closing()):
            # The reader went away: nobody to notify (IDLE) until it logs in again.
            state.connections.pop(self.user, None)
        return self._server.receive(Mail(message), imap_user=self.user)[0]

    def flags(self) -> list[list[str]]:
        """The flags of every message, in UID order."""
        messages = self._server._server_state.get_mailbox_messages(self.user, "INBOX") or []
        return [list(m.flags) for m in messages]

    def count(self) -> int:
        """How many messages the mailbox holds (nothing is ever deleted)."""
        return len(self._server._server_state.get_mailbox_messages(self.user, "INBOX") or [])
