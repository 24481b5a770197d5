"""The email outbox under faults: SMTP down, a crash between sending and recording."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession
from sqlalchemy import func
from sqlmodel import Session, select

from bot.config import Settings
from bot.email_worker import EmailWorker
from bot.mail import MailSender
from bot.runtime import build_services
from bot.services.emails import EmailDraft
from bot.services.types import Incoming
from storage.models import Need, NeedRouting, Outbox
from testing.clock import FakeClock
from testing.smtp import RecordingHandler, SmtpServer
from tests.conftest import smtp_settings
from tests.helpers import DESCRIPTION


def settings_for(tmp_path: Path, smtp: SmtpServer) -> Settings:
    """Services only (no Telegram needed): the firms are played through the service API."""
    return Settings(_env_file=None, TELEGRAM_BOT_TOKEN="x",  # type: ignore[call-arg]
                    DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/db.sqlite",
                    RELAIS_FIRM_LOOKUP=False, **smtp_settings(smtp))


async def file_need(services, user_id: int, commune: str, theme_button: str) -> None:
    """One firm through the whole intake, via the same service the Telegram handlers call."""
    steps = [
        ("command", "start"), ("button", "consent:yes"), ("button", "siret:skip"),
        ("text", f"Entreprise {user_id}"), ("text", commune), ("button", theme_button),
        ("text", DESCRIPTION), ("button", "urg:month"), ("button", "cm:telegram"),
        ("button", "sum:confirm"),
    ]
    for kind, value in steps:
        await services.turns.handle(Incoming(chat_id=user_id, user_id=user_id, kind=kind,
                                              value=value))


async def drain(worker: EmailWorker, clock: FakeClock, rounds: int = 400) -> None:
    """Run the worker until nothing is due (moving the clock past retry delays)."""
    for _ in range(rounds):
        if await worker.run_once(limit=100) == 0:
            clock.advance(minutes=10)
            if await worker.run_once(limit=100) == 0:
                return


@pytest.mark.slow
async def test_500_needs_with_smtp_down_for_a_while(
    tmp_path: Path, smtp: SmtpServer, clock: FakeClock
) -> None:
    services = await build_services(settings_for(tmp_path, smtp), clock=clock)
    worker = EmailWorker(services.db, MailSender.from_settings(services.settings),
                         mail_from=services.settings.mail_from,
                         territories=services.territories, clock=clock)
    communes = ["Paray-le-Monial", "Le Creusot", "Dijon", "Autun", "Montceau-les-Mines"]
    themes = ["theme:recrutement", "theme:foncier", "theme:export", "theme:innovation"]
    for i in range(500):
        await file_need(services, 10_000 + i, communes[i % 5], themes[i % 4])
        if i == 100:
            await worker.run_once(limit=100)  # some go out while the server is up
            await smtp.stop()
        if i in (200, 300):
            await worker.run_once(limit=100)  # fails: the server is down; rows wait
        if i == 400:
            await smtp.start()
    await drain(worker, clock)
    await worker.sender.close()

    def expected(session: Session) -> tuple[int, int, int]:
        needs = session.exec(select(func.count()).select_from(Need)).one()
        routings = session.exec(select(func.count()).select_from(NeedRouting)).one()
        undelivered = session.exec(select(func.count()).select_from(Outbox).where(
            Outbox.channel == "email", Outbox.delivered_at.is_(None))).one()  # type: ignore[union-attr]
        return needs, routings, undelivered

    needs, routings, undelivered = await services.db.run(expected)
    await services.db.dispose()
    assert needs == 500
    assert undelivered == 0
    ids = [m.message["Message-ID"] for m in smtp.messages]
    assert len(ids) == routings, "every partner email arrived"
    assert len(set(ids)) == len(ids), "and none twice"


@dataclass
class CrashingHandler(RecordingHandler):
    """Keeps the message, then never answers the end of DATA: the sender dies waiting."""

    accepted: asyncio.Event = field(default_factory=asyncio.Event)
    hang: bool = True

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if self.hang:
            self.accepted.set()
            await asyncio.sleep(3600)
        return reply


async def test_crash_between_send_and_record_is_seen_once(
    tmp_path: Path, clock: FakeClock
) -> None:
    handler = CrashingHandler()
    smtp = SmtpServer(handler=handler)
    await smtp.start()
    services = await build_services(settings_for(tmp_path, smtp), clock=clock)
    await file_need(services, 42, "Paray-le-Monial", "theme:recrutement")
    worker = EmailWorker(services.db, MailSender.from_settings(services.settings),
                         mail_from=services.settings.mail_from,
                         territories=services.territories, clock=clock,
                         lease=timedelta(seconds=30))
    # The server has the message; the worker is killed before it hears back.
    task = asyncio.create_task(worker.run_once())
    await asyncio.wait_for(handler.accepted.wait(), 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await smtp.stop()
    handler.hang = False
    await smtp.start()

    # A new process starts; until the lease runs out nobody touches the row.
    restarted = EmailWorker(services.db, MailSender.from_settings(services.settings),
                            mail_from=services.settings.mail_from,
                            territories=services.territories, clock=clock)
    first = len(smtp.messages)
    await restarted.run_once()
    clock.advance(seconds=31)
    await drain(restarted, clock)
    await restarted.sender.close()
    await smtp.stop()
    await services.db.dispose()

    raw_ids = [m.message["Message-ID"] for m in smtp.messages]
    # Nothing lost: every partner's email is there, and the copy sent again after the crash
    # carries the same Message-ID, so a mailbox shows it once.
    assert first == 1
    assert len(raw_ids) == len(set(raw_ids)) + 1
    assert raw_ids.count(raw_ids[0]) == 2


@dataclass
class SlowHandler(RecordingHandler):
    """Each message takes the server 4 s of the test's clock to accept."""

    clock: FakeClock | None = None

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        assert self.clock is not None
        self.clock.advance(seconds=4)
        return reply


async def test_a_slow_server_never_outlives_the_lease_of_a_row_still_to_send(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Past half its lease, a batch hands its unsent rows back: no row is sent after its
    lease ran out (another worker may have claimed it by then)."""
    handler = SlowHandler(clock=clock)
    smtp = SmtpServer(handler=handler)
    await smtp.start()
    services = await build_services(settings_for(tmp_path, smtp), clock=clock)

    def write(session: Session) -> None:
        for n in range(5):
            draft = EmailDraft(to=(f"P{n} <p{n}@example.org>",), subject=f"Objet {n}",
                               text="Bonjour", html="<p>Bonjour</p>", reply_to=None,
                               message_id=f"<m{n}@relais.example.org>")
            session.add(Outbox(channel="email", recipient=f"p{n}@example.org",
                               payload={"email": draft.to_payload()}, created_at=clock(),
                               not_before=clock(), attempts=0))

    await services.db.run(write)
    worker = EmailWorker(services.db, MailSender.from_settings(services.settings),
                         mail_from=services.settings.mail_from,
                         territories=services.territories, clock=clock,
                         lease=timedelta(seconds=15))
    # 4 s each: after two (8 s > 7.5 s, half the lease), the other three are released.
    assert await worker.run_once() == 2
    assert len(smtp.messages) == 2

    def leased(session: Session) -> int:
        return len(session.exec(select(Outbox).where(
            Outbox.delivered_at.is_(None), Outbox.claimed_until.is_not(None))).all())  # type: ignore[union-attr]

    assert await services.db.run(leased) == 0
    await drain(worker, clock)
    assert sorted(str(m.message["Subject"]) for m in smtp.messages) == [
        f"Objet {n}" for n in range(5)]
    await worker.sender.close()
    await smtp.stop()
    await services.db.dispose()
