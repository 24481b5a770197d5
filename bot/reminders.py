"""The reminder clock: APScheduler wakes the bot, the `reminder` rows say what is due.

Nothing about a reminder lives in the scheduler's memory. A periodic tick (and, between
ticks, a one-off wake-up at the next due time) runs `MeetingService.fire_due`, which claims
due rows in the database. A restart therefore loses nothing: the first run after start
catches up with whatever fell due while the bot was down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlmodel import Session, col, select

from bot.services.digests import DigestService
from bot.services.followup import SLICE, FollowUpCounts, FollowUpService
from bot.services.meetings import FiredReminder, MeetingService
from bot.services.privacy import LEFTOVER_MARGIN, PURGE_SLICE, RetentionPass
from storage.db import Database, claim_run
from storage.models import DigestRun

__all__ = ["ReminderScheduler", "run_followup_slices", "run_retention_slices"]

Clock = Callable[[], datetime]

log = logging.getLogger(__name__)

# Telegram's flood limit is about 30 messages/s for a bot; reminders leave room for chats.
SEND_RATE = 25.0
# A burst is never fired more than this many seconds before it falls due.
MAX_LEAD = 120.0
# The digest_run kind that records a retention pass that went to the end.
RETENTION_DONE = "retention_done"


async def run_followup_slices(db: Database, followup: FollowUpService, *,
                              now: datetime) -> FollowUpCounts:
    """The follow-up pass slice after slice, each away from the event loop; what it sent."""
    counts = FollowUpCounts()
    for step in (followup.routing_slice, followup.stale_slice):
        while True:
            done, seen = await db.run_apart(
                lambda session, step=step: step(session, now=now))  # type: ignore[misc]
            counts = counts + done
            if seen < SLICE:
                break
            await asyncio.sleep(0)  # the loop's turn between two slices (PostgreSQL)
    return counts


async def run_retention_slices(db: Database, *, now: datetime, years: int, raw_days: int,
                               purge_limit: int = PURGE_SLICE,
                               since: datetime | None = None) -> dict[str, int]:
    """The retention pass slice after slice, each away from the event loop; its counts.

    A crash in the middle leaves the rest for the next pass: every step starts again from
    what is still due. `since`: when the last completed pass ran (see `RetentionPass`).
    """
    work = RetentionPass(now=now, years=years, raw_days=raw_days, purge_limit=purge_limit,
                         since=since)
    for step, limit in work.steps():
        while True:
            if await db.run_apart(step) < limit:
                break
            await asyncio.sleep(0)  # the loop's turn between two slices (PostgreSQL)
    return work.done


class ReminderScheduler:
    """Fires due reminders on a tick and at the next due time; safe to run in N processes."""

    def __init__(self, db: Database, meetings: MeetingService, clock: Clock, *,
                 tick: float = 5.0, batch: int = 200, followup: FollowUpService | None = None,
                 followup_tick: float = 300.0, digests: DigestService | None = None,
                 tz: ZoneInfo | None = None, retention: tuple[int, int] | None = None,
                 send_rate: float = SEND_RATE, max_lead: float = MAX_LEAD) -> None:
        # A burst of N reminders takes N / send_rate seconds to leave through Telegram's
        # flood limit: it is fired that much ahead of its due time (at most max_lead). Its
        # emails, which need no head start, wait in the outbox until their due time.
        self.send_rate = send_rate
        self.max_lead = max_lead
        # (years before anonymising a need, days before purging raw data); None: off.
        self.retention = retention
        self.followup = followup
        self.digests = digests
        self.tz = tz or ZoneInfo("Europe/Paris")
        self.followup_tick = followup_tick
        self.db = db
        self.meetings = meetings
        self.clock = clock
        self.tick = tick
        self.batch = batch
        self.ticks = 0
        self.total = FiredReminder()
        self._lock = asyncio.Lock()
        self._scheduler = AsyncIOScheduler(timezone=UTC)

    async def start(self) -> None:
        """Catch up with what fell due while stopped, then keep time."""
        self._scheduler.add_job(self.run_due, IntervalTrigger(seconds=self.tick), id="tick",
                                max_instances=1, coalesce=True, misfire_grace_time=None)
        if self.followup is not None:
            self._scheduler.add_job(self.run_followup, IntervalTrigger(seconds=self.followup_tick),
                                    id="followup", max_instances=1, coalesce=True,
                                    misfire_grace_time=None)
        if self.digests is not None:
            # Monday morning, people's time; the digest_run table makes it once per week
            # however many processes run this job.
            self._scheduler.add_job(self.run_digests,
                                    CronTrigger(day_of_week="mon", hour=7, timezone=self.tz),
                                    id="digests", max_instances=1, coalesce=True,
                                    misfire_grace_time=6 * 3600)
        if self.retention is not None:
            self._scheduler.add_job(self.run_retention,
                                    CronTrigger(hour=3, minute=30, timezone=self.tz),
                                    id="retention", max_instances=1, coalesce=True,
                                    misfire_grace_time=12 * 3600)
        self._scheduler.start()
        await self.run_due()

    def stop(self) -> None:
        """Stop waking up (a run in progress finishes its transaction)."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    async def run_due(self) -> FiredReminder:
        """Send everything due now, batch after batch; plan a wake-up for the next one."""
        async with self._lock:
            self.ticks += 1
            sent = skipped = cancelled = 0
            lead = await self._lead()
            while True:
                now = self.clock()
                try:
                    # Away from the loop: a batch writes up to `batch` emails.
                    fired = await self.db.run_apart(
                        lambda session, now=now: self.meetings.fire_due(
                            session, now=now, limit=self.batch, until=now + lead))
                except Exception:
                    log.exception("reminder run failed")
                    break
                sent, skipped = sent + fired.sent, skipped + fired.skipped
                cancelled += fired.cancelled
                if fired.sent + fired.skipped + fired.cancelled < self.batch:
                    break
                # Let the senders work between two batches.
                await asyncio.sleep(0)
            if sent or skipped:
                log.info("reminders: %d sent, %d skipped", sent, skipped)
            self.total = FiredReminder(self.total.sent + sent, self.total.skipped + skipped,
                                       self.total.cancelled + cancelled)
            await self._plan_wake()
            return FiredReminder(sent, skipped, cancelled)

    async def _lead(self) -> timedelta:
        """How far ahead to fire: the time Telegram's rate needs for what falls due soon.

        One reminder a minute fires at its due time (a fraction of a second ahead); 1,000
        due in the same second fire 40 s ahead at 25 messages/s, so that the last one
        leaves on time instead of 40 s late.
        """
        if self.max_lead <= 0 or self.send_rate <= 0:
            return timedelta(0)
        horizon = self.clock() + timedelta(seconds=self.max_lead)
        try:
            coming = await self.db.run(
                lambda session: self.meetings.due_count(session, until=horizon))
        except Exception:
            log.exception("could not count the coming reminders")
            return timedelta(0)
        return timedelta(seconds=min(self.max_lead, coming / self.send_rate))

    async def run_followup(self) -> FollowUpCounts | None:
        """Relances, alerts and close-or-keep questions due now (each sent once).

        In slices of `SLICE` rows, each its own transaction away from the event loop; the
        loop gets a turn between two.
        """
        followup = self.followup
        if followup is None:
            return None
        try:
            counts = await run_followup_slices(self.db, followup, now=self.clock())
        except Exception:
            log.exception("follow-up run failed")
            return None
        if counts.relances or counts.alerts or counts.stale:
            log.info("follow-up: %s", counts)
        return counts

    async def run_digests(self) -> int:
        """The weekly digests of the week that just ended (each territory once).

        Away from the event loop: the figures of all territories computed together, then
        one transaction per territory (`DigestService.send_week`); conversations go on
        meanwhile.
        """
        digests = self.digests
        if digests is None:
            return 0
        try:
            return await digests.send_week(self.db, now=self.clock())
        except Exception:
            log.exception("weekly digests failed")
            return 0

    async def run_retention(self) -> dict[str, int] | None:
        """The daily retention pass, once per day across processes."""
        if self.retention is None:
            return None
        years, raw_days = self.retention
        now = self.clock()
        day = now.astimezone(self.tz).date().isoformat()

        def claim(session: Session) -> bool:
            return claim_run(session, "retention", day, now)

        def last_completed(session: Session) -> datetime | None:
            # The latest day first, through the (kind, period) unique index.
            return session.exec(select(DigestRun.ran_at).where(DigestRun.kind == RETENTION_DONE)
                                .order_by(col(DigestRun.period).desc()).limit(1)).first()

        def completed(session: Session) -> None:
            session.add(DigestRun(kind=RETENTION_DONE, period=day, ran_at=now))

        try:
            if not await self.db.run(claim):
                return None
            # Leftovers are looked for in what was written since the last pass that went
            # to the end (a pass that failed leaves its share to the next one).
            last = await self.db.run(last_completed)
            done = await run_retention_slices(
                self.db, now=now, years=years, raw_days=raw_days,
                since=None if last is None else last - LEFTOVER_MARGIN)
            await self.db.run(completed)
        except Exception:
            log.exception("retention pass failed")
            return None
        if any(done.values()):
            log.info("retention: %s", done)
        return done

    async def _plan_wake(self) -> None:
        """Between two ticks, wake up exactly when the next reminder falls due."""
        try:
            due = await self.db.run(self.meetings.next_due)
        except Exception:
            log.exception("could not read the next reminder")
            return
        if due is None or not self._scheduler.running:
            return
        delay = (due - self.clock()).total_seconds()
        if delay < self.tick:
            # Due already (it fell due while this pass ran): wake up at once, not at the
            # next tick.
            # (A floor, so a pass that keeps failing cannot spin the event loop.)
            delay = max(delay, 0.05)
            self._scheduler.add_job(
                self.run_due, DateTrigger(run_date=datetime.now(UTC) + timedelta(seconds=delay)),
                id="wake", replace_existing=True, misfire_grace_time=None)
