"""Two processes on one PostgreSQL database never both send a reminder (row claiming)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from bot.config import DEFAULT_TERRITORIES_DIR
from bot.services.meetings import MeetingService
from knowledge.geography import default_geography
from knowledge.territories import load_territories
from storage.db import Database
from storage.models import Meeting, MeetingAttendee, Need, Outbox, Reminder
from testing.pg import fresh_database

# Real PostgreSQL (127.0.0.1:5432): `-m "not pg"` leaves these out.
pytestmark = pytest.mark.pg

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
MEETINGS = 120
OFFSETS = (1, 2, 3)


def seed(session: Session) -> None:
    """Confirmed meetings whose reminders are all due at NOW."""
    for i in range(MEETINGS):
        need = Need(reference=f"TI-2026-{i + 1:04d}", theme="recrutement", urgency="month",
                    firm_name=f"Firme {i}", contact_method="telegram", telegram_chat_id=10_000 + i,
                    telegram_user_id=10_000 + i, commune_insee="71342",
                    commune_name="Paray-le-Monial", territory_id="ti-2703")
        session.add(need)
        session.flush()
        start = NOW + timedelta(hours=1)
        meeting = Meeting(uid=f"rdv-{i}@relais.example.org", need_id=need.id or 0,
                          territory_id="ti-2703", start_at=start,
                          end_at=start + timedelta(hours=1), status="confirmed",
                          organizer_name="Claire Martin", firm_chat_id=10_000 + i,
                          place="Atelier")
        session.add(meeting)
        session.flush()
        session.add(MeetingAttendee(meeting_id=meeting.id or 0, kind="partner",
                                    name="France Travail", email="ft@example.org"))
        for minutes in OFFSETS:
            session.add(Reminder(meeting_id=meeting.id or 0, offset_minutes=minutes,
                                 due_at=NOW - timedelta(minutes=minutes)))


@pytest.mark.slow
async def test_two_workers_send_each_reminder_once() -> None:
    geography = default_geography()
    service = MeetingService(load_territories(DEFAULT_TERRITORIES_DIR, geography=geography),
                             tz=ZoneInfo("Europe/Paris"), mail_domain="relais.example.org")
    async with fresh_database() as url:
        first, second = Database(url), Database(url)
        await first.create_all()
        await first.run(seed)

        async def worker(db: Database) -> int:
            sent = 0
            while True:
                fired = await db.run(lambda s: service.fire_due(s, now=NOW, limit=25))
                sent += fired.sent
                if fired.sent + fired.skipped + fired.cancelled == 0:
                    return sent

        counts = await asyncio.gather(worker(first), worker(second), worker(first),
                                      worker(second))

        def totals(session: Session) -> tuple[int, int, int]:
            sent = session.exec(select(func.count()).select_from(Reminder)
                                .where(Reminder.status == "sent")).one()
            telegram = session.exec(select(func.count()).select_from(Outbox)
                                    .where(Outbox.channel == "telegram")).one()
            emails = session.exec(select(func.count()).select_from(Outbox)
                                  .where(Outbox.channel == "email")).one()
            return sent, telegram, emails

        expected = MEETINGS * len(OFFSETS)
        assert sum(counts) == expected
        assert await first.run(totals) == (expected, expected, expected)
        await first.dispose()
        await second.dispose()
