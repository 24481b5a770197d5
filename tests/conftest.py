"""Shared fixtures: a local Bot API, the real bot running against it, a controllable clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.config import Settings
from bot.runtime import Services, build_services, running_bot
from bot.webhook import WebhookServer
from storage.db import Database
from storage.models import Outbox
from testing.botapi import BotMessage, LocalBotAPI, SimUser
from testing.clock import FakeClock
from testing.imap import BOT_ADDRESS, ImapServer
from testing.smtp import SmtpServer


@pytest.fixture
def clock() -> FakeClock:
    """28 November 2026, 10:00 in Paris."""
    return FakeClock(datetime(2026, 11, 28, 9, 0, tzinfo=UTC))


def make_settings(api: LocalBotAPI, db_path: Path, **extra: object) -> Settings:
    """Settings for a test bot: local API, its own SQLite file, no .env file."""
    values: dict[str, object] = {
        "TELEGRAM_BOT_TOKEN": api.token,
        "TELEGRAM_API_URL": api.base_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{db_path}",
        "RELAIS_POLLING_TIMEOUT": 1,
        "RELAIS_OUTBOX_LEASE": 1,
        # The flood limiter would only slow the tests down (Telegram's limits, not the double's).
        "RELAIS_RATE_LIMIT": False,
        # The public company directory is never called in tests (tests that need it point
        # RECHERCHE_ENTREPRISES_URL at testing/directory.py and turn this on).
        "RELAIS_FIRM_LOOKUP": False,
        # Tests move the clock by hand: the reminder table is looked at often.
        "REMINDER_TICK": 0.1,
        "RELAIS_FOLLOWUP_TICK": 0.1,
        # A person's limits count on the fake clock, which most tests never move: two
        # intakes in a row would look like a flood. tests/test_abuse.py turns them on.
        "RELAIS_LIMIT_MESSAGES_PER_MINUTE": 0,
        "RELAIS_LIMIT_QUESTIONS_PER_MINUTE": 0,
        "RELAIS_LIMIT_NEEDS_PER_DAY": 0,
    }
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
async def api() -> AsyncIterator[LocalBotAPI]:
    """A Bot API double on a free loopback port."""
    server = LocalBotAPI()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def imap() -> AsyncIterator[ImapServer]:
    """The bot's mailbox: a real IMAP server (aioimaplib's) on a free loopback port."""
    server = ImapServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on a free loopback port."""
    server = SmtpServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def imap_settings(server: ImapServer) -> dict[str, object]:
    """Settings that make the bot read its mailbox on a test IMAP server (every 0.2 s)."""
    return {
        "IMAP_HOST": "127.0.0.1",
        "IMAP_PORT": server.port,
        "IMAP_SECURITY": "none",
        "IMAP_USERNAME": BOT_ADDRESS,
        "IMAP_PASSWORD": "secret",
        "IMAP_POLL": 0.2,
    }


def smtp_settings(server: SmtpServer) -> dict[str, object]:
    """Settings that point the email worker at a test SMTP server."""
    return {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": server.port,
        "SMTP_SECURITY": "none",
        "MAIL_FROM": "Relais Bourgogne <relais@relais.example.org>",
        "RELAIS_EMAIL_POLL": 0.05,
    }


async def wait_until(
    check: Callable[[], Awaitable[bool]], what: str, *, within: float = 20.0
) -> None:
    """Poll `check` until it is true; fail after `within` seconds (a bound, not a measure)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _unfinished(session: Session, channel: str | None = None) -> int:
    """Outbox rows neither delivered nor given up (of one channel, or all)."""
    stmt = select(func.count()).select_from(Outbox).where(
        col(Outbox.delivered_at).is_(None), col(Outbox.failed_at).is_(None))
    if channel is not None:
        stmt = stmt.where(Outbox.channel == channel)
    return session.exec(stmt).one()


def _in_flight(session: Session) -> int:
    """Outbox rows someone holds a lease on: being delivered, or delivered and not yet marked."""
    return session.exec(select(func.count()).select_from(Outbox).where(
        col(Outbox.delivered_at).is_(None), col(Outbox.failed_at).is_(None),
        col(Outbox.claimed_until).is_not(None))).one()


async def outbox_drained(db: Database, *, channel: str | None = None,
                         within: float = 20.0) -> None:
    """Wait until every outbox row (of `channel`) is delivered and recorded, or given up."""

    async def check() -> bool:
        return await db.run(lambda s: _unfinished(s, channel)) == 0

    await wait_until(check, "the outbox to drain", within=within)


async def outbox_settled(db: Database, *, within: float = 20.0) -> None:
    """Wait until no outbox row is in flight (rows waiting for a retry may remain).

    Before a jump of the fake clock past the outbox lease: a row still leased by its
    deliverer would look abandoned and be sent a second time.
    """

    async def check() -> bool:
        return await db.run(_in_flight) == 0

    await wait_until(check, "the outbox deliveries to be recorded", within=within)


@dataclass
class RunningBot:
    """The bot under test and what the tests need to look at."""

    api: LocalBotAPI
    services: Services
    settings: Settings
    clock: FakeClock
    smtp: SmtpServer

    async def drained(self) -> None:
        """Wait until every outbox row is delivered or given up: nothing more will be sent."""
        await outbox_drained(self.services.db)

    async def settled(self) -> None:
        """Wait until no outbox row is in flight (safe to jump the clock past the lease)."""
        await outbox_settled(self.services.db)

    async def answered(self, user: SimUser, press: Awaitable[int]) -> list[BotMessage]:
        """Press a button; return the chat's new messages once nothing more can come.

        The bot answers a press after its turn committed (replies in the outbox) and
        before delivering them: the answer, then a drained outbox, end the turn for sure.
        """
        before, answers = len(user.messages), len(user.callback_answers)
        await press

        async def answered() -> bool:
            return len(user.callback_answers) > answers

        await wait_until(answered, "the press to be answered")
        await self.drained()
        return list(user.messages[before:])


@pytest.fixture
async def relais(
    api: LocalBotAPI, smtp: SmtpServer, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[RunningBot]:
    """The real Application, polling the local API, with a fresh database and SMTP server."""
    settings = make_settings(api, tmp_path / "relais.db", **smtp_settings(smtp))
    services = await build_services(settings, clock=clock)
    async with running_bot(services):
        yield RunningBot(api, services, settings, clock, smtp)
    await services.db.dispose()


@pytest.fixture
async def relais_done(relais: RunningBot, tmp_path: Path) -> AsyncIterator[tuple[RunningBot, str]]:
    """A bot with one confirmed need from Paray-le-Monial; yields it and its database URL."""
    from tests.helpers import press, reach_summary

    user = relais.api.user(6001)
    await reach_summary(user)
    await press(user, "Envoyer la demande")
    yield relais, relais.settings.database_url


# Webhook mode: the secret Telegram sends and the URL it posts to.
WEBHOOK_SECRET = "s3cr3t-webhook-token"
WEBHOOK_URL = "https://relais.example.org/telegram/hook"


@pytest.fixture
async def served(api: LocalBotAPI, smtp: SmtpServer, tmp_path: Path, clock: FakeClock,
                 request: pytest.FixtureRequest,
                 ) -> AsyncIterator[tuple[WebhookServer, httpx.AsyncClient]]:
    """The webhook's ASGI app on an httpx client (settings added by `indirect` params)."""
    extra = getattr(request, "param", {})
    settings = make_settings(api, tmp_path / "relais.db", **smtp_settings(smtp),
                             WEBHOOK_URL=WEBHOOK_URL, WEBHOOK_SECRET=WEBHOOK_SECRET, RELAIS_UPDATE_LEASE=1,
                             **extra)
    services = await build_services(settings, clock=clock)
    async with running_bot(services, polling=False) as (application, _stop, _task):
        await application.bot.set_webhook(url=WEBHOOK_URL, secret_token=WEBHOOK_SECRET)
        server = WebhookServer(services, application, path="/telegram/hook",
                               secret=WEBHOOK_SECRET)
        transport = httpx.ASGITransport(app=server.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://relais") as client:
            yield server, client
        await server.drain()
    await services.db.dispose()
