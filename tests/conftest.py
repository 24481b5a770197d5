"""Shared fixtures: a local Bot API, the real bot running against it, a controllable clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.config import Settings
from bot.runtime import Services, build_services, running_bot
from testing.botapi import LocalBotAPI
from testing.clock import FakeClock
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
async def smtp() -> AsyncIterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on a free loopback port."""
    server = SmtpServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def smtp_settings(server: SmtpServer) -> dict[str, object]:
    """Settings that point the email worker at a test SMTP server."""
    return {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": server.port,
        "SMTP_SECURITY": "none",
        "MAIL_FROM": "Relais Bourgogne <relais@relais.example.org>",
        "RELAIS_EMAIL_POLL": 0.05,
    }


@dataclass
class RunningBot:
    """The bot under test and what the tests need to look at."""

    api: LocalBotAPI
    services: Services
    settings: Settings
    clock: FakeClock
    smtp: SmtpServer


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
