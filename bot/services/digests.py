"""Weekly digests and `/stats`: the territory's picture for animators, open needs for partners.

A digest is claimed by inserting a `digest_run` row (kind, period) in the transaction that
writes its messages to the outbox: one digest per territory and week, however many
processes run the weekly job. `relais digest --now` uses a period of its own, so it always
sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from bot.catalogue import label, t
from bot.messages import Message, Text
from bot.services import outbox
from bot.services.animators import territories_of
from bot.services.emails import EmailDraft, partner_digest_email, territory_digest_email
from bot.services.figures import compute_week, read_week, territory_stats
from bot.services.insight import (
    TerritoryStats,
    charts_png,
    period_title,
    stats_report,
)
from bot.services.lifecycle import OPEN_STATUSES
from bot.services.routing import animator_chats
from bot.services.types import Incoming, Reply
from knowledge.taxonomy import theme_label
from knowledge.territories import Territory, TerritoryDirectory
from storage.db import Database, claim_run
from storage.models import (
    DigestRun,
    Need,
    NeedRouting,
)

__all__ = ["DigestService", "StatsReady", "collector_paused", "week_period"]

log = logging.getLogger(__name__)

# A territory's figures and charts, computed before the transaction that queues them.
Prepared = tuple[TerritoryStats, list[tuple[str, bytes]]]
# A partner's digest, written before that transaction: (address, email).
PartnerDraft = tuple[str, EmailDraft]


@dataclass(frozen=True, slots=True)
class StatsReady:
    """What `/stats` will show, computed before its turn (see `prefetch_stats`)."""

    user_id: int
    items: tuple[Prepared, ...]

OPEN = tuple(s.value for s in OPEN_STATUSES)
# Territories whose weekly figures are computed together: one query per figure for all of
# them, and on PostgreSQL (whose session runs on the event loop) a bounded piece of work.
FIGURES_CHUNK = 32
# The caption under each chart, by the chart's file name.
CHART_CAPTIONS = {
    "besoins-par-theme.png": "animator.chart_caption_new_by_theme",
    "delais-accuse-reception.png": "animator.chart_caption_ack_delays",
    "satisfaction.png": "animator.chart_caption_satisfaction",
}


_PAUSES = 0
_PAUSE_LOCK = threading.Lock()
_COLLECTING = True


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while the block runs, back as it was after (nested
    and concurrent blocks: when the last one ends).

    A weekly job holds tens of thousands of rows at a time, and the collector's full passes
    over them took 0.2-0.5 s each at 500,000 needs, holding the interpreter: the event loop
    stalled that long. The rows are freed by reference counting when the job lets them go;
    cycles made meanwhile wait for the collector's return.
    """
    global _PAUSES, _COLLECTING
    with _PAUSE_LOCK:
        if _PAUSES == 0:
            _COLLECTING = gc.isenabled()
            gc.disable()
        _PAUSES += 1
    try:
        yield
    finally:
        with _PAUSE_LOCK:
            _PAUSES -= 1
            if _PAUSES == 0 and _COLLECTING:
                gc.enable()


def _chart_messages(charts: list[tuple[str, bytes]]) -> list[Message]:
    """Each chart as a photo with its caption."""
    return [Message(t(CHART_CAPTIONS[name]) if name in CHART_CAPTIONS else Text(), photo=png)
            for name, png in charts]


def week_period(now: datetime, tz: ZoneInfo) -> tuple[str, datetime, datetime]:
    """The ISO week that ended before `now` (Monday 00:00 to Monday 00:00, people's time)."""
    local = now.astimezone(tz)
    this_monday = (local - timedelta(days=local.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0)
    start = this_monday - timedelta(days=7)
    # Wall-clock arithmetic on zoneinfo datetimes: a DST week still starts at midnight.
    start = start.replace(tzinfo=tz)
    year, week, _ = start.isocalendar()
    return f"{year}-W{week:02d}", start, this_monday.replace(tzinfo=tz)


class DigestService:
    """Builds and queues digests; computes `/stats` for an animator."""

    def __init__(self, territories: TerritoryDirectory, *, tz: ZoneInfo,
                 mail_domain: str, db: Database | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.territories = territories
        self.tz = tz
        self.mail_domain = mail_domain
        # With both, `/stats` computes its figures and charts before its turn's transaction.
        self.db = db
        self.clock = clock

    # --- data -------------------------------------------------------------------------------
    def stats(self, session: Session, territory: Territory, *, start: datetime,
              end: datetime) -> TerritoryStats:
        """The territory's figures for [start, end), computed in the database."""
        return territory_stats(session, territory.id, start=start, end=end, tz=self.tz)

    # --- /stats -----------------------------------------------------------------------------
    async def prefetch_stats(self, event: Incoming, _peek: object) -> StatsReady | None:
        """Before a `/stats` turn: its figures (database worker thread) and charts (a
        thread), so that the turn's transaction on the event loop only writes the replies."""
        if self.db is None or self.clock is None or event.kind != "command" \
                or event.value != "stats":
            return None
        db, now = self.db, self.clock()
        territories = await db.run(
            lambda session: territories_of(session, self.territories, event.user_id))
        ready: list[Prepared] = []
        for territory in territories:
            figures = await db.run_apart(lambda session, territory=territory: self.stats(
                session, territory, start=now - timedelta(days=7), end=now))
            ready.append((figures, await asyncio.to_thread(charts_png, figures, tz=self.tz)))
        return StatsReady(user_id=event.user_id, items=tuple(ready))

    def stats_command(self, session: Session, user_id: int, *, now: datetime,
                      prepared: object = None) -> Reply:
        """`/stats`: the last 7 days of the animator's territories, text and charts.

        `prepared` is what `prefetch_stats` computed for this turn, if it did.
        """
        territories = territories_of(session, self.territories, user_id)
        if not territories:
            return Reply([Message(t("animator.animators_only"))])
        ready = {figures.territory_id: (figures, charts)
                 for figures, charts in prepared.items} \
            if isinstance(prepared, StatsReady) and prepared.user_id == user_id else {}
        result = Reply()
        for territory in territories:
            if territory.id in ready:
                figures, charts = ready[territory.id]
            else:
                figures = self.stats(session, territory, start=now - timedelta(days=7),
                                     end=now)
                charts = charts_png(figures, tz=self.tz)
            result.messages.append(Message(stats_report(figures, tz=self.tz)))
            result.messages.extend(_chart_messages(charts))
        return result

    # --- weekly digests ---------------------------------------------------------------------
    def claim(self, session: Session, kind: str, period: str, now: datetime) -> bool:
        """Insert the (kind, period) row; False when another run already did."""
        return claim_run(session, kind, period, now)

    def period(self, now: datetime, period: str | None) -> tuple[str, datetime, datetime]:
        """The digest's period name and bounds: the last ISO week, or on demand the last
        7 days up to now."""
        week, start, end = week_period(now, self.tz)
        period = period or week
        if period != week:
            start, end = now - timedelta(days=7), now
        return period, start, end

    def send_all(self, session: Session, *, now: datetime, period: str | None = None,
                 territory_id: str | None = None,
                 prepared: Prepared | None = None,
                 partner_drafts: list[PartnerDraft] | None = None) -> int:
        """The week's digests of every territory (or one); how many were queued.

        `prepared` holds the territory's figures and charts computed beforehand, and
        `partner_drafts` its partners' digests written beforehand (see `send_territory`):
        this transaction then only claims and queues.
        """
        period, start, end = self.period(now, period)
        sent = 0
        for territory in self.territories.territories:
            if territory_id is not None and territory.id != territory_id:
                continue
            if self.claim(session, f"territory:{territory.id}", period, now):
                ready = prepared if prepared and prepared[0].territory_id == territory.id \
                    else None
                self._territory_digest(session, territory, start, end, period, now, ready)
                sent += 1
            if self.claim(session, f"partners:{territory.id}", period, now):
                drafts = partner_drafts if territory_id == territory.id \
                    and partner_drafts is not None \
                    else self.partner_drafts(territory, self.partner_rows(session, territory),
                                             period)
                sent += self._queue_partner_digests(session, territory, drafts, now)
        return sent

    async def send_week(self, db: Database, *, now: datetime, period: str | None = None) -> int:
        """Every territory's digests of the week, as the weekly job sends them; how many
        were queued.

        The territories whose week is still unclaimed are read once; their figures are
        computed together, `FIGURES_CHUNK` territories at a time: one query per figure for
        all of them (in the database's worker thread on SQLite), then the figures from the
        rows in a thread. Their charts and partners' digests are made in threads, and each
        territory's last transaction only claims its week and queues its messages. A
        territory that fails is logged and left for the next run.
        """
        name, start, end = self.period(now, period)

        def claimed(session: Session) -> set[str]:
            """The kinds already claimed for the period (one read for every territory)."""
            return set(session.exec(select(DigestRun.kind).where(DigestRun.period == name)))

        done = await db.run(claimed)
        todo = [t for t in self.territories.territories
                if not {f"territory:{t.id}", f"partners:{t.id}"} <= done]
        with collector_paused():
            return await self._send_chunks(db, todo, now=now, period=name, start=start,
                                           end=end)

    async def _send_chunks(self, db: Database, todo: Sequence[Territory], *, now: datetime,
                           period: str, start: datetime, end: datetime) -> int:
        """`send_week`'s work for the territories still to do, chunk after chunk."""
        sent = 0
        for first in range(0, len(todo), FIGURES_CHUNK):
            chunk = todo[first:first + FIGURES_CHUNK]
            try:
                figures = await self._figures(db, chunk, start, end)
            except Exception:
                log.exception("weekly figures of %s failed",
                              ", ".join(t.id for t in chunk))
                continue
            # Each territory's charts are drawn in a thread while the previous territory's
            # transaction runs: PNG encoding leaves the interpreter free for the writes.
            drawing = self._draw(figures[chunk[0].id])
            for index, territory in enumerate(chunk):
                current = drawing
                if index + 1 < len(chunk):
                    drawing = self._draw(figures[chunk[index + 1].id])
                try:
                    charts = await current
                    sent += await self._queue(db, territory, (figures[territory.id], charts),
                                              now=now, period=period)
                except Exception:
                    log.exception("weekly digest of %s failed", territory.id)
        return sent

    async def _figures(self, db: Database, territories: Sequence[Territory], start: datetime,
                       end: datetime) -> dict[str, TerritoryStats]:
        """The territories' figures: the rows read away from the loop (the database's worker
        thread on SQLite), the figures computed from them in a thread (on PostgreSQL the
        session's Python runs on the loop)."""
        rows = await db.run_apart(lambda session: read_week(
            session, [t.id for t in territories], start=start, end=end))
        return await asyncio.to_thread(compute_week, rows, tz=self.tz)

    def _draw(self, figures: TerritoryStats) -> asyncio.Future[list[tuple[str, bytes]]]:
        """The figures' charts, drawn in a thread from now on."""
        return asyncio.ensure_future(asyncio.to_thread(charts_png, figures, tz=self.tz))

    async def _queue(self, db: Database, territory: Territory, prepared: Prepared, *,
                     now: datetime, period: str) -> int:
        """Claim the territory's week and queue its messages, in one transaction.

        The partners' digests are written before it, in a thread: a busy territory's are
        thousands of lines, and on PostgreSQL the transaction's Python runs on the loop.
        """
        rows = await db.run_apart(lambda session: self.partner_rows(session, territory))
        drafts = await asyncio.to_thread(self.partner_drafts, territory, rows, period)
        return await db.run_apart(lambda session: self.send_all(
            session, now=now, period=period, territory_id=territory.id, prepared=prepared,
            partner_drafts=drafts))

    async def send_territory(self, db: Database, territory: Territory, *, now: datetime,
                             period: str | None = None) -> int:
        """One territory's digests with nothing heavy on the event loop; how many queued.

        The figures are read in the database's worker thread (SQLite) and the charts drawn
        in a thread; the last transaction only claims the period and queues the messages.
        A period already claimed (another process, a rerun) costs one read.
        """
        name, start, end = self.period(now, period)

        def claimed(session: Session) -> bool:
            kinds = [f"territory:{territory.id}", f"partners:{territory.id}"]
            rows = session.exec(select(DigestRun.kind).where(
                DigestRun.period == name, col(DigestRun.kind).in_(kinds))).all()
            return len(rows) == len(kinds)

        if await db.run(claimed):
            return 0
        with collector_paused():
            figures = (await self._figures(db, [territory], start, end))[territory.id]
            charts = await self._draw(figures)
            return await self._queue(db, territory, (figures, charts), now=now, period=name)

    def _territory_digest(self, session: Session, territory: Territory, start: datetime,
                          end: datetime, period: str, now: datetime,
                          prepared: Prepared | None) -> None:
        if prepared is None:
            figures = self.stats(session, territory, start=start, end=end)
            charts = charts_png(figures, tz=self.tz)
        else:
            figures, charts = prepared
        report = stats_report(figures, tz=self.tz)
        title = period_title(figures.period_start, figures.period_end, self.tz)
        for animator in territory.animators:
            draft = territory_digest_email(
                to_name=animator.name, to_email=str(animator.email), territory=territory.name,
                title=title, charts=charts,
                period=period.replace(":", "-"), mail_domain=self.mail_domain)
            outbox.enqueue_payload(session, channel="email", recipient=str(animator.email),
                                   now=now, payload={"email": draft.to_payload(),
                                                     "report": Message(report).to_payload(),
                                                     "territory_id": territory.id,
                                                     "key": draft.message_id.strip("<>")})
        messages = [Message(report), *_chart_messages(charts)]
        for chat in animator_chats(session, territory):
            outbox.enqueue(session, channel="telegram", recipient=chat, messages=messages,
                           now=now, claimed=False)

    def partner_rows(self, session: Session, territory: Territory) -> list[Any]:
        """The territory's open needs and their partners awaiting them, as plain rows."""
        # Plain columns, not ORM objects: thousands of open needs in a busy territory.
        return list(session.exec(
            select(NeedRouting.partner_email, NeedRouting.partner_name, NeedRouting.routed_at,
                   NeedRouting.status, Need.reference, Need.theme, Need.firm_name,
                   Need.commune_name).where(
                NeedRouting.need_id == Need.id, Need.territory_id == territory.id,
                col(Need.status).in_(OPEN),
                col(NeedRouting.status).in_(["routed", "acknowledged"]))
            .order_by(col(Need.id))).all())

    def partner_drafts(self, territory: Territory, rows: Sequence[Any],
                       period: str) -> list[PartnerDraft]:
        """Each partner's digest of its open needs, by address (no database: can run in a
        thread)."""
        by_partner: dict[str, list[Any]] = {}
        for row in rows:
            by_partner.setdefault(row.partner_email.lower(), []).append(row)
        animator = territory.animators[0]
        return [(email, partner_digest_email(
            partner_name=items[0].partner_name, partner_email=email,
            territory=territory.name, needs=self._lines(items), period=period,
            mail_domain=self.mail_domain, reply_to=f"{animator.name} <{animator.email}>"))
            for email, items in sorted(by_partner.items())]

    def _queue_partner_digests(self, session: Session, territory: Territory,
                               drafts: Sequence[PartnerDraft], now: datetime) -> int:
        for email, draft in drafts:
            outbox.enqueue_payload(session, channel="email", recipient=email,
                                   now=now, payload={"email": draft.to_payload(),
                                                     "territory_id": territory.id,
                                                     "key": draft.message_id.strip("<>")})
        return len(drafts)

    def _lines(self, items: Sequence[Any]) -> list[dict[str, str]]:
        # Thousands of lines in a busy territory: the fixed words are looked up once.
        anonymised = label("partner.firm_anonymised")
        states = {True: label("partner.digest_state_acknowledged"),
                  False: label("partner.digest_state_waiting")}
        return [{
            "reference": row.reference, "theme": theme_label(row.theme),
            "firm": row.firm_name or anonymised,
            "commune": row.commune_name or "—",
            "routed_on": row.routed_at.astimezone(self.tz).strftime("%d/%m/%Y"),
            "state": states[row.status == "acknowledged"],
        } for row in items]
