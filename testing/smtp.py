"""A real SMTP server for tests (aiosmtpd), running in the test's own event loop.

aiosmtpd's threaded Controller binds ::1 by default and lives in another thread; this one
listens on 127.0.0.1 in the current loop, so a test can stop and restart it between two
awaits and look at what it received.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any, Self

from aiosmtpd.smtp import SMTP, Envelope, Session

__all__ = ["Received", "RecordingHandler", "SmtpServer"]

_PARSER = BytesParser(policy=policy.default)


@dataclass(frozen=True, slots=True)
class Received:
    """One message the server accepted: envelope and parsed content."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    raw: bytes
    connection: int


@dataclass
class RecordingHandler:
    """aiosmtpd handler: keeps accepted messages, counts connections, refuses on demand."""

    messages: list[Received] = field(default_factory=list)
    connections: int = 0
    # Recipient address (lower case) -> reply, e.g. "550 5.1.1 Utilisateur inconnu".
    refuse_rcpt: dict[str, str] = field(default_factory=dict)
    # Reply to the end of DATA instead of accepting, e.g. "554 5.6.0 Contenu refusé".
    refuse_data: str | None = None
    # Replies to the next MAIL FROM commands, one each; a 421 also closes the session.
    mail_replies: list[str] = field(default_factory=list)
    ehlo_names: list[str] = field(default_factory=list)

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
        responses: list[str],
    ) -> list[str]:
        """Remember the client's name; keep aiosmtpd's capability lines."""
        session.host_name = hostname
        self.ehlo_names.append(hostname)
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        mail_options: list[str],
    ) -> str:
        """Accept the sender, unless a scripted reply is pending."""
        if self.mail_replies:
            reply = self.mail_replies.pop(0)
            if reply.startswith("421") and server.transport is not None:
                # Like a server that times an idle session out: say so, then hang up.
                asyncio.get_running_loop().call_soon(server.transport.close)
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        """Accept the recipient unless it is listed in `refuse_rcpt`."""
        reply = self.refuse_rcpt.get(address.lower())
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Parse and keep the message (or refuse it if told to)."""
        if self.refuse_data is not None:
            return self.refuse_data
        raw = envelope.original_content or b""
        parsed = _PARSER.parsebytes(raw)
        assert isinstance(parsed, EmailMessage)  # policy.default builds EmailMessage
        self.messages.append(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                message=parsed,
                raw=raw,
                connection=getattr(server, "connection_number", 0),
            )
        )
        return "250 2.0.0 Message accepted"


class SmtpServer:
    """aiosmtpd on 127.0.0.1 in the running loop; `stop()` then `start()` keeps the port."""

    def __init__(
        self, handler: RecordingHandler | None = None, *, host: str = "127.0.0.1",
        **smtp_options: Any,
    ) -> None:
        self.handler = handler or RecordingHandler()
        self.host = host
        self.port = 0
        # A fixed name: aiosmtpd would otherwise call getfqdn() for every connection.
        self.smtp_options: dict[str, Any] = {"hostname": "smtp.test", **smtp_options}
        self._server: asyncio.Server | None = None
        # Weak: a session the client closed is forgotten without bookkeeping.
        self._sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    @property
    def messages(self) -> list[Received]:
        """Messages accepted so far, oldest first."""
        return self.handler.messages

    @property
    def connections(self) -> int:
        """Connections accepted so far (across restarts)."""
        return self.handler.connections

    def _protocol(self) -> SMTP:
        self.handler.connections += 1
        smtp = SMTP(self.handler, loop=asyncio.get_running_loop(), **self.smtp_options)
        smtp.connection_number = self.handler.connections  # type: ignore[attr-defined]
        self._sessions.add(smtp)
        return smtp

    async def start(self) -> None:
        """Listen (on the same port as before after a `stop`)."""
        if self._server is not None:
            raise RuntimeError("SmtpServer is already running")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def drop_connections(self) -> None:
        """Hang up every open session without a word, as a crashing server would."""
        for smtp in list(self._sessions):
            if isinstance(smtp.transport, asyncio.WriteTransport):
                smtp.transport.abort()
        self._sessions.clear()

    async def stop(self) -> None:
        """Stop listening and drop the open sessions."""
        if self._server is None:
            return
        self._server.close()
        # Python 3.11's Server.close() leaves accepted connections open.
        self.drop_connections()
        await self._server.wait_closed()
        self._server = None
        await asyncio.sleep(0)  # let the connection_lost callbacks run

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
