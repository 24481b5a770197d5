"""Periodic passes read only due rows, through indexes, in slices that miss nothing.

The follow-up (relances, alerts, close-or-keep), the reminders and the retention pass run
their SQL on a real SQLite database; every statement's plan (EXPLAIN QUERY PLAN) must
search an index, never scan `need`, `need_event`, `need_routing`, `outbox` or the tables
the retention purges. A pass over several slices (more due rows than one slice holds) must
act on each due row exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, func, insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, col, select

from bot.reminders import (
    RETENTION_DONE,
    ReminderScheduler,
    run_followup_slices,
    run_retention_slices,
)
from bot.services.followup import SLICE, FollowUpService
from bot.services.meetings import MeetingService
from bot.services.privacy import LEFTOVER_MARGIN, RetentionPass
from knowledge.territories import load_territories
from storage.db import Database
from storage.models import (
    DeadLetter,
    DigestRun,
    HeldMessage,
    InboundEmail,
    Need,
    NeedEvent,
    NeedMessage,
    NeedRouting,
    NeedStatus,
    Outbox,
    PendingUpdate,
    ProcessedUpdate,
)

TZ = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
TERRITORY = "ti-2703"
# Tables that grow with the years: a pass may never read them whole.
WATCHED = ("need", "need_event", "need_routing", "outbox", "processed_update", "inbound_email",
           "held_message", "pending_update", "dead_letter", "reminder")
DUE = SLICE * 2 + 50  # three slices


def followup_service() -> FollowUpService:
    return FollowUpService(load_territories(Path("territories")), tz=TZ,
                           mail_domain="relais.example.org", reply_local=None)


def fill(engine: Engine) -> None:
    """Due rows for every pass, among many more that are not due."""
    needs: list[dict[str, Any]] = []
    for i in range(DUE * 3):
        kind = i % 3  # 0: routed 10 days ago, 1: routed today, 2: closed long ago
        created = NOW - timedelta(days=10 if kind == 0 else 0 if kind == 1 else 400)
        needs.append({
            "reference": f"TI-2026-{i:05d}", "theme": "recrutement", "urgency": "month",
            "contact_method": "telegram", "territory_id": TERRITORY, "firm_name": f"Firme {i}",
            "status": NeedStatus.CLOSED_HELPED.value if kind == 2 else NeedStatus.ROUTED.value,
            "created_at": created, "updated_at": created})
    stale = [{**n, "reference": f"TI-2025-{i:05d}", "status": NeedStatus.IN_PROGRESS.value,
              "created_at": NOW - timedelta(days=40), "updated_at": NOW - timedelta(days=40)}
             for i, n in enumerate(needs[:DUE])]
    anonymisable = [{**n, "reference": f"TI-2022-{i:05d}", "status": "closed_helped",
                     "created_at": NOW - timedelta(days=1200),
                     "updated_at": NOW - timedelta(days=1200)}
                    for i, n in enumerate(needs[:DUE])]
    # Most of a real history is closed needs.
    history = [{**n, "reference": f"TI-2024-{i:05d}", "status": "closed_not_helped",
                "created_at": NOW - timedelta(days=300), "updated_at": NOW - timedelta(days=290)}
               for i, n in enumerate(needs * 3)]
    old = NOW - timedelta(days=120)
    with Session(engine) as session:
        session.execute(insert(Need), needs + stale + anonymisable + history)
        ids = list(session.exec(select(Need.id, Need.created_at).order_by(col(Need.id))))
        session.execute(insert(NeedRouting), [
            {"need_id": need_id, "partner_id": "ft-paray-le-monial", "partner_kind": "france_travail",
             "partner_name": "France Travail Paray-le-Monial",
             "partner_email": "ft-paray-le-monial@example.org", "level": "epci",
             "reason": "thème recrutement", "ack_days": 2, "routed_at": created}
            for need_id, created in ids[:DUE * 3]])
        session.execute(insert(NeedEvent), [
            {"need_id": need_id, "to_status": "routed", "note": "routage", "at": created}
            for need_id, created in ids[:DUE * 5]])
        session.execute(insert(Outbox), [
            {"recipient": str(i), "payload": {}, "created_at": old if i % 2 else NOW,
             "not_before": old, "delivered_at": old} for i in range(DUE * 2)])
        session.execute(insert(ProcessedUpdate), [
            {"update_id": i, "processed_at": old if i % 2 else NOW} for i in range(DUE * 2)])
        session.execute(insert(InboundEmail), [
            {"message_id": f"<m{i}@x>", "raw": b"x", "received_at": old if i % 2 else NOW,
             "need_id": ids[i][0]} for i in range(DUE * 2)])
        session.execute(insert(HeldMessage), [
            {"territory_id": TERRITORY, "email": "a@example.org", "source": f"s{i}",
             "payload": {}, "created_at": old if i % 2 else NOW} for i in range(DUE * 2)])
        session.execute(insert(PendingUpdate), [
            {"update_id": i, "payload": {}, "received_at": old, "done_at": old if i % 2 else None}
            for i in range(DUE * 2)])
        session.execute(insert(DeadLetter), [
            {"source": "webhook", "update_id": str(i), "reason": "x",
             "received_at": old if i % 2 else NOW} for i in range(DUE * 2)])
        session.commit()


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite file with rows due for every pass."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/passes.db")
    SQLModel.metadata.create_all(db.sync_engine)
    fill(db.sync_engine)
    with db.sync_engine.connect() as connection:
        # With the statistics production databases have, the planner's choices change.
        connection.exec_driver_sql("ANALYZE")
    yield db


def explained(engine: Engine, work: Callable[[Session], Any]) -> list[tuple[str, str]]:
    """Each statement `work` ran, with each line of its query plan."""
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
               _many: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")):
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        with Session(engine) as session:
            work(session)
            session.rollback()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    with engine.connect() as connection:
        return [(statement, str(row[-1])) for statement, parameters in statements
                for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}",
                                                      parameters).all()]


def plans(engine: Engine, work: Callable[[Session], Any]) -> list[tuple[str, str]]:
    """Each statement `work` ran, with its query plan's full scans of watched tables."""
    return [(statement, detail) for statement, detail in explained(engine, work)
            if detail.split()[:1] == ["SCAN"] and detail.split()[1] in WATCHED]


def test_followup_slices_search_indexes(database: Database) -> None:
    followup = followup_service()
    engine = database.sync_engine
    assert plans(engine, lambda s: followup.routing_slice(s, now=NOW)) == []
    assert plans(engine, lambda s: followup.stale_slice(s, now=NOW)) == []


def test_retention_slices_search_indexes(database: Database) -> None:
    work = RetentionPass(now=NOW, years=3, raw_days=90)
    for step, _limit in work.steps():
        assert plans(database.sync_engine, step) == [], step.__name__


def test_leftovers_since_the_last_pass_search_the_rows_time_indexes(
        database: Database) -> None:
    """Every statement of the leftovers step searches an index: the rows' times, then the
    needs by primary key; never every anonymised need."""
    work = RetentionPass(now=NOW, since=NOW - timedelta(days=2))
    step, _limit = work.steps()[0]
    seen = [detail for _statement, detail in explained(database.sync_engine, step)]
    assert all(plan.startswith("SEARCH") for plan in seen), seen
    for index in ("ix_need_message_at", "ix_need_event_at", "ix_inbound_raw_kept"):
        assert any(index in plan for plan in seen), index


def test_reminder_slice_searches_an_index(database: Database) -> None:
    meetings = MeetingService(load_territories(Path("territories")), tz=TZ,
                              mail_domain="relais.example.org")
    assert plans(database.sync_engine, lambda s: meetings.fire_due(s, now=NOW)) == []


async def test_followup_over_several_slices_acts_on_each_due_row_once(
        database: Database) -> None:
    followup = followup_service()
    counts = await run_followup_slices(database, followup, now=NOW)
    # Routed 10 days ago with 2 working days: one relance and one alert each; the needs
    # routed today wait; the closed ones are left alone. Open for 40 days: asked once.
    assert (counts.relances, counts.alerts, counts.stale) == (DUE, DUE, DUE)

    def state(session: Session) -> tuple[int, int, int, int]:
        relances = session.exec(select(func.count()).select_from(Outbox).where(
            col(Outbox.channel) == "email")).one()
        distinct = session.exec(select(func.count(func.distinct(NeedRouting.id))).where(
            col(NeedRouting.reminded_at) == NOW, col(NeedRouting.escalated_at) == NOW)).one()
        waiting = session.exec(select(func.count()).select_from(NeedRouting).where(
            col(NeedRouting.followup_at) > NOW)).one()
        asked = session.exec(select(func.count()).select_from(Need).where(
            col(Need.stale_asked_at) == NOW)).one()
        return relances, distinct, waiting, asked

    # The needs routed today are due again at the midnight after their deadline.
    assert await database.run(state) == (DUE, DUE, DUE, DUE)
    again = await run_followup_slices(database, followup, now=NOW + timedelta(minutes=5))
    assert (again.relances, again.alerts, again.stale) == (0, 0, 0)
    await database.dispose()


async def test_retention_over_several_slices_takes_each_due_row_once(
        database: Database) -> None:
    done = await run_retention_slices(database, now=NOW, years=3, raw_days=90,
                                      purge_limit=SLICE)
    # Half of each table is older than 90 days; the needs untouched for 3 years go.
    assert done == {"needs": DUE, "leftovers": 0, "outbox": DUE * 2, "emails": DUE,
                    "updates": DUE * 3}

    def left(session: Session) -> tuple[int, ...]:
        def count(model: Any, *where: Any) -> int:
            return session.exec(select(func.count()).select_from(model).where(*where)).one()

        return (count(Need, col(Need.anonymized_at).is_not(None)), count(Outbox),
                count(HeldMessage), count(InboundEmail, col(InboundEmail.raw).is_not(None)),
                count(ProcessedUpdate), count(PendingUpdate), count(DeadLetter),
                count(NeedEvent, col(NeedEvent.note).is_not(None)))

    assert await database.run(left) == (DUE, DUE, DUE, DUE, DUE, DUE, DUE, DUE * 4)
    again = await run_retention_slices(database, now=NOW, years=3, raw_days=90)
    assert set(again.values()) == {0}
    await database.dispose()


async def test_leftovers_are_looked_for_where_something_was_written_since_the_last_pass(
        database: Database) -> None:
    """A message or a note written to an anonymised need after the last pass is erased by
    the next one, which looks at no other anonymised need; a first pass looks at all."""
    first = await run_retention_slices(database, now=NOW, years=3, raw_days=90)
    assert first["needs"] == DUE
    later = NOW + timedelta(days=1)

    def write(session: Session) -> tuple[int, int, int]:
        a, b, c = session.exec(select(Need.id).where(col(Need.anonymized_at).is_not(None))
                               .order_by(col(Need.id)).limit(3)).all()
        assert a is not None and b is not None and c is not None
        session.add(NeedMessage(need_id=a, author_kind="partner", author="p@example.org",
                                text="Bonjour M. Dupont", at=later))
        session.add(NeedEvent(need_id=b, to_status="closed_helped", note="Appelé M. Dupont",
                              at=later))
        # Before the last pass (and its margin): that pass's business, not the next one's.
        session.add(NeedEvent(need_id=c, to_status="closed_helped", note="Vu M. Martin",
                              at=NOW - LEFTOVER_MARGIN - timedelta(minutes=1)))
        return a, b, c

    a, b, c = await database.run(write)

    def left(session: Session) -> tuple[int, list[int]]:
        messages = session.exec(select(func.count()).select_from(NeedMessage).where(
            col(NeedMessage.need_id) == a)).one()
        notes = session.exec(select(NeedEvent.need_id).where(
            col(NeedEvent.need_id).in_([b, c]), col(NeedEvent.note).is_not(None))).all()
        return messages, sorted(n for n in notes if n is not None)

    done = await run_retention_slices(database, now=later + timedelta(hours=1), years=3,
                                      raw_days=90, since=NOW - LEFTOVER_MARGIN)
    assert done["leftovers"] == 2
    assert await database.run(left) == (0, [c])
    # A first pass (no completed one to start from) looks at every anonymised need.
    done = await run_retention_slices(database, now=later + timedelta(hours=2), years=3,
                                      raw_days=90)
    assert done["leftovers"] == 1
    assert await database.run(left) == (0, [])
    await database.dispose()


async def test_the_daily_pass_starts_its_leftovers_from_the_last_completed_one(
        database: Database) -> None:
    """The scheduler records each pass that went to the end; the next day's pass looks for
    leftovers in what was written since then."""
    now = [NOW]
    meetings = MeetingService(load_territories(Path("territories")), tz=TZ,
                              mail_domain="relais.example.org")
    scheduler = ReminderScheduler(database, meetings, lambda: now[0], retention=(3, 90))
    first = await scheduler.run_retention()
    assert first is not None and first["needs"] == DUE

    def write(session: Session) -> None:
        need_id = session.exec(select(Need.id).where(col(Need.anonymized_at).is_not(None))
                               .order_by(col(Need.id))).first()
        assert need_id is not None
        session.add(NeedMessage(need_id=need_id, author_kind="partner", author="p@example.org",
                                text="Bonjour M. Dupont", at=NOW + timedelta(hours=5)))

    await database.run(write)
    now[0] = NOW + timedelta(days=1)
    second = await scheduler.run_retention()
    assert second is not None and second["leftovers"] == 1
    assert await scheduler.run_retention() is None  # once per day

    def runs(session: Session) -> list[tuple[str, datetime]]:
        return sorted((r.kind, r.ran_at) for r in session.exec(
            select(DigestRun).where(col(DigestRun.kind) == RETENTION_DONE)))

    assert await database.run(runs) == [(RETENTION_DONE, NOW),
                                        (RETENTION_DONE, NOW + timedelta(days=1))]
    await database.dispose()
