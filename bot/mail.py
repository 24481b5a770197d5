"""Sending email over SMTP (aiosmtplib) with one reused connection.

Errors say what to do with the message: `TransientMailError` (retry later),
`PermanentMailError` (never retry this message), and `MailSetupError`, a transient error
that no message can get past until an operator fixes the configuration or the server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from email.message import EmailMessage
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

import aiosmtplib

from bot.services.mime import OutgoingEmail

if TYPE_CHECKING:
    from bot.config import Settings

__all__ = [
    "MailConfigError",
    "MailError",
    "MailSender",
    "MailSetupError",
    "PermanentMailError",
    "TransientMailError",
]

log = logging.getLogger(__name__)

Security = Literal["none", "starttls", "tls"]

# Servers cap the messages of one session (Exchange: 20 by default, often raised); opening
# a fresh connection now and then stays below such caps without costing much.
MAX_MESSAGES_PER_CONNECTION = 100
# QUIT on close is a courtesy: never let it hold up a shutdown.
QUIT_TIMEOUT = 2.0


class MailError(Exception):
    """Any failure to send an email."""


class TransientMailError(MailError, ConnectionError):
    """The email could not be sent now (server down, timeout, 4xx reply): retry later."""


class PermanentMailError(MailError, ValueError):
    """The server refused this email for good (5xx for its recipients or content)."""


class MailSetupError(TransientMailError):
    """The connection cannot be set up as configured (STARTTLS, TLS, login): fix, then retry."""


class MailConfigError(MailError, ValueError):
    """The SMTP settings are refused before any connection (e.g. a password in plaintext)."""


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine (traffic never leaves it)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class MailSender:
    """Sends emails one at a time over a cached SMTP connection, reconnecting when needed.

    `timeout` bounds a whole `send` (connection, TLS, login, retry and the message itself);
    aiosmtplib's own timeout only bounds each command.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: Security = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        local_hostname: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        max_messages_per_connection: int = MAX_MESSAGES_PER_CONNECTION,
    ) -> None:
        if security not in ("none", "starttls", "tls"):
            raise MailConfigError(f"SMTP_SECURITY inconnu : {security!r} (none, starttls ou tls)")
        if password and not username:
            # aiosmtplib would silently skip the login; the server would then refuse
            # recipients as relaying and every email would fail for good.
            raise MailConfigError("SMTP_PASSWORD est défini sans SMTP_USERNAME.")
        if username and security == "none" and not is_loopback(host):
            raise MailConfigError(
                f"SMTP_USERNAME est défini mais SMTP_SECURITY=none : le mot de passe "
                f"partirait en clair vers {host}. Choisissez starttls ou tls."
            )
        if timeout <= 0 or max_messages_per_connection < 1:
            raise MailConfigError("SMTP_TIMEOUT et le nombre de messages par connexion : > 0")
        self.host = host
        self.port = port
        self.security: Security = security
        self.timeout = timeout
        self.max_messages_per_connection = max_messages_per_connection
        self.connections = 0  # opened so far, for logs and tests
        self._sent_on_connection = 0
        self._lock = asyncio.Lock()
        self._client = aiosmtplib.SMTP(
            hostname=host,
            port=port,
            username=username,
            password=password,
            timeout=timeout,
            local_hostname=local_hostname,
            use_tls=security == "tls",
            # Explicit: None would mean "upgrade only if the server offers it", i.e. a
            # silent fallback to plaintext.
            start_tls=security == "starttls",
            tls_context=tls_context,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> MailSender:
        """A sender configured by the SMTP_* settings."""
        values: dict[str, object] = {
            "host": settings.smtp_host,
            "port": settings.smtp_port,
            "security": settings.smtp_security,
            "username": settings.smtp_username or None,
            "password": settings.smtp_password or None,
            "timeout": settings.smtp_timeout,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    @property
    def connected(self) -> bool:
        """Whether a connection is open (it may still turn out dead on the next command)."""
        return self._client.is_connected

    async def send(self, message: EmailMessage | OutgoingEmail) -> None:
        """Send one message; raise TransientMailError or PermanentMailError if it did not go."""
        async with self._lock:
            try:
                # Inside the lock: time spent queueing behind other sends does not count.
                async with asyncio.timeout(self.timeout):
                    await self._send(message)
            except TimeoutError as exc:
                # The session is in an unknown state (a command may be half answered).
                self._drop()
                raise TransientMailError(
                    f"SMTP {self.host}:{self.port} : pas de réponse en {self.timeout:g} s"
                ) from exc

    async def _transmit(self, message: EmailMessage | OutgoingEmail) -> dict[str, Any]:
        """MAIL, RCPT and DATA; the recipients refused, when others took it."""
        if isinstance(message, OutgoingEmail):
            # Written already (`bot.services.mime`): no parsing or flattening here.
            refused, _ = await self._client.sendmail(message.sender, list(message.recipients),
                                                     message.data)
        else:
            refused, _ = await self._client.send_message(message)
        return refused

    async def _send(self, message: EmailMessage | OutgoingEmail) -> None:
        reused = self._client.is_connected
        if reused and self._sent_on_connection >= self.max_messages_per_connection:
            await self._quit()
            reused = False
        try:
            if not reused:
                await self._connect()
            try:
                refused = await self._transmit(message)
            except aiosmtplib.SMTPServerDisconnected:
                if not reused:
                    raise
                # The cached connection was dead (server restarted, idle timeout):
                # nothing was accepted on it, so one attempt on a fresh one is safe.
                log.info("SMTP connection to %s:%s was closed; reconnecting", self.host, self.port)
                self._drop()
                await self._connect()
                refused = await self._transmit(message)
            except aiosmtplib.SMTPResponseException as exc:
                # 421: the server is closing this session (idle too long, restarting).
                if not reused or exc.code != 421:
                    raise
                log.info("SMTP server %s:%s closed the session (421); reconnecting",
                         self.host, self.port)
                self._drop()
                await self._connect()
                refused = await self._transmit(message)
        except aiosmtplib.SMTPException as exc:
            raise _classify(exc, self) from exc
        except ssl.SSLError as exc:
            self._drop()
            raise MailSetupError(f"SMTP {self.host}:{self.port} : échec TLS ({exc})") from exc
        except OSError as exc:
            self._drop()
            raise TransientMailError(f"SMTP {self.host}:{self.port} : {exc}") from exc
        except ValueError as exc:
            # aiosmtplib: no sender or recipient, or an address unsafe on a command line.
            raise PermanentMailError(f"message refusé avant envoi : {exc}") from exc
        self._sent_on_connection += 1
        if refused:
            # Some recipients took it: retrying would send it to them again. Say who did not.
            log.warning(
                "SMTP %s: message %s refused for %s",
                self.host, message.get("Message-ID", "?"),
                ", ".join(f"{rcpt} ({r.code} {r.message})" for rcpt, r in refused.items()),
            )

    async def _connect(self) -> None:
        await self._client.connect()
        self.connections += 1
        self._sent_on_connection = 0

    def _drop(self) -> None:
        self._client.close()

    async def _quit(self) -> None:
        try:
            async with asyncio.timeout(QUIT_TIMEOUT):
                await self._client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            pass  # the session is over either way
        finally:
            self._drop()

    async def close(self) -> None:
        """Say QUIT and close the connection, if one is open."""
        async with self._lock:
            if self._client.is_connected:
                await self._quit()
            else:
                self._drop()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


def _classify(exc: aiosmtplib.SMTPException, sender: MailSender) -> MailError:
    """Map an aiosmtplib error to what the caller should do with the message."""
    where = f"SMTP {sender.host}:{sender.port}"
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        detail = ", ".join(f"{r.recipient} ({r.code} {r.message})" for r in exc.recipients)
        if all(code >= 500 for code in codes):
            return PermanentMailError(f"{where} : destinataire refusé : {detail}")
        return TransientMailError(f"{where} : destinataire refusé pour l'instant : {detail}")
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return MailSetupError(
            f"{where} : identifiants refusés ({exc.code} {exc.message}). "
            "Vérifiez SMTP_USERNAME et SMTP_PASSWORD."
        )
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        if exc.code == 552:
            # MAIL FROM carries SIZE=: 552 there means this message is too large.
            return PermanentMailError(f"{where} : message trop gros ({exc.code} {exc.message})")
        if 400 <= exc.code < 500:
            return TransientMailError(f"{where} : expéditeur refusé pour l'instant "
                                      f"({exc.code} {exc.message})")
        return MailSetupError(f"{where} : expéditeur {exc.sender} refusé "
                              f"({exc.code} {exc.message}). Vérifiez MAIL_FROM.")
    if isinstance(exc, aiosmtplib.SMTPDataError):
        if exc.code >= 500:
            return PermanentMailError(f"{where} : message refusé ({exc.code} {exc.message})")
        return TransientMailError(f"{where} : message refusé pour l'instant "
                                  f"({exc.code} {exc.message})")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        # HELO, greeting or an unexpected reply: not about this message.
        return TransientMailError(f"{where} : réponse {exc.code} {exc.message}")
    if isinstance(exc, (aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPServerDisconnected)):
        return TransientMailError(f"{where} : {exc.message}")
    if isinstance(exc, aiosmtplib.SMTPConnectError):
        if isinstance(exc.__cause__, ssl.SSLError):
            return MailSetupError(f"{where} : échec TLS ({exc.__cause__})")
        return TransientMailError(f"{where} : connexion impossible ({exc.message})")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        # Raised for a non-ASCII address the server cannot take (no SMTPUTF8).
        return PermanentMailError(f"{where} : {exc.message}")
    if "STARTTLS" in exc.message:
        return MailSetupError(
            f"{where} ne propose pas STARTTLS : rien n'est envoyé en clair. "
            "Choisissez SMTP_SECURITY=tls (port 465) ou un serveur qui chiffre."
        )
    # Anything else arises while setting the session up (e.g. no AUTH offered).
    return MailSetupError(f"{where} : {exc.message}")
