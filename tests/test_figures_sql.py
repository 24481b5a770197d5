"""A territory's figures computed in the database: the same as over whole tables, by indexes.

`bot.services.figures` reads only the period's rows; `insight.compute_stats` over every
row of the territory (what `DigestService.stats` loaded before) is the reference. Both run
on the same real SQLite databases: the week of `test_insight`, and a generated national
database (`bench/national_data.py`) over several periods, some with changes after their
end. The query plans are checked: no full scan of the big tables.
"""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, text
from sqlmodel import Session, col, select

from bot.services.digests import DigestService
from bot.services.figures import territories_stats, territory_stats
from bot.services.insight import TerritoryStats, compute_stats
from storage.db import Database
from storage.models import (
    KbQuery,
    Need,
    NeedEvent,
    NeedMessage,
    NeedRouting,
    Satisfaction,
)
from tests.test_insight import END, START, TI, animator_message, paris, week_rows

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from national_data import (
    ANCHOR,
    NationalShape,
    national_territories,
    sqlite_database,
)

PARIS = ZoneInfo("Europe/Paris")
BIG_TABLES = ("need", "need_event", "need_routing", "kb_query")


def reference(session: Session, territory_id: str, start: datetime,
              end: datetime) -> TerritoryStats:
    """The figures as computed before: every row of the territory loaded into Python."""
    needs = list(session.exec(select(Need).where(Need.territory_id == territory_id,
                                                 col(Need.created_at) < end)))
    ids = [n.id for n in needs]
    routings = list(session.exec(select(NeedRouting).where(
        col(NeedRouting.need_id).in_(ids)))) if ids else []
    events = list(session.exec(select(NeedEvent).where(
        col(NeedEvent.need_id).in_(ids)))) if ids else []
    queries = list(session.exec(select(KbQuery).where(
        KbQuery.territory_id == territory_id, col(KbQuery.asked_at) >= start,
        col(KbQuery.asked_at) < end)))
    ratings = [(r.score, r.answered_at, r.comment) for r in session.exec(
        select(Satisfaction).where(Satisfaction.territory_id == territory_id,
                                   col(Satisfaction.score).is_not(None),
                                   col(Satisfaction.answered_at) >= start,
                                   col(Satisfaction.answered_at) < end)
        .order_by(col(Satisfaction.id)))
        if r.score is not None and r.answered_at is not None]
    messages = list(session.exec(select(NeedMessage).where(
        col(NeedMessage.need_id).in_(ids), NeedMessage.author_kind == "animator",
        NeedMessage.to_kind == "firm"))) if ids else []
    return compute_stats(territory_id=territory_id, needs=needs, routings=routings,
                         events=events, queries=queries, ratings=ratings, start=start,
                         end=end, tz=PARIS, messages=messages)


@pytest.fixture
async def week_db(tmp_path: Path) -> AsyncIterator[Database]:
    """The week of test_insight (plus first responses and ratings) in a SQLite file."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'week.db'}")
    await db.create_all()
    rows = week_rows()
    seen: set[tuple[int, str]] = set()
    for routing in rows["routings"]:  # one row per (need, partner) in a real database
        while (routing.need_id, routing.partner_id) in seen:
            routing.partner_id += "-bis"
        seen.add((routing.need_id, routing.partner_id))

    def load(session: Session) -> None:
        session.add_all(rows["needs"])
        session.flush()
        session.add_all([*rows["events"], *rows["routings"], *rows["queries"]])
        session.add_all(Satisfaction(need_id=i + 1, territory_id=TI, score=score,
                                     comment=comment, asked_at=at, answered_at=at)
                        for i, (score, at, comment) in enumerate(rows["ratings"]))
        session.add_all([animator_message(1, paris(11, 23, 15)),
                         animator_message(2, paris(11, 24, 14)),
                         animator_message(6, paris(11, 28, 10)),
                         animator_message(2, paris(11, 24, 12), to_kind="animator",
                                          author_kind="firm")])
        session.add(NeedEvent(need_id=6, from_status="routed", to_status="in_progress",
                              actor="animator", at=paris(11, 27, 9)))

    await db.run(load)
    yield db
    await db.dispose()


def _periods() -> Iterator[tuple[datetime, datetime]]:
    utc = (START.astimezone(UTC), END.astimezone(UTC))
    yield utc
    yield utc[0] - timedelta(days=7), utc[0]
    yield utc[0] + timedelta(days=2), utc[1] + timedelta(days=3)
    yield paris(11, 26, 9, 30), paris(11, 27, 9)
    yield paris(11, 1), paris(12, 5)


async def test_week_figures_match_the_whole_table_computation(week_db: Database) -> None:
    for start, end in _periods():
        expected = await week_db.run(lambda s, a=start, b=end: reference(s, TI, a, b))
        got = await week_db.run(lambda s, a=start, b=end: territory_stats(
            s, TI, start=a, end=b, tz=PARIS))
        assert got == expected, (start, end)
    # The week itself is not empty: the comparison compares something.
    week = await week_db.run(lambda s: territory_stats(s, TI, start=START, end=END, tz=PARIS))
    assert week.open_count == 6 and week.closed_count == 2
    assert week.late_acks and week.median_ack_hours_by_partner
    assert week.satisfaction is not None and week.unanswered_questions
    assert week.median_first_response_hours is not None


@pytest.fixture(scope="module")
def national(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, NationalShape]]:
    """A generated national database of 3,000 needs (migrations, then bulk rows, ANALYZE)."""
    cache = tmp_path_factory.mktemp("national")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RELAIS_BENCH_CACHE", str(cache))
        yield sqlite_database(3000, log=None)


def _national_periods() -> Iterator[tuple[datetime, datetime]]:
    yield ANCHOR - timedelta(days=7), ANCHOR  # /stats
    monday = datetime(2026, 12, 6, 23, tzinfo=UTC)  # Monday 00:00 in Paris
    yield monday - timedelta(days=7), monday  # the weekly digest, changes after its end
    yield ANCHOR - timedelta(days=120), ANCHOR - timedelta(days=90)
    yield ANCHOR - timedelta(days=500), ANCHOR - timedelta(days=499)


@pytest.mark.slow
async def test_national_figures_match_the_whole_table_computation(
        national: tuple[Path, NationalShape]) -> None:
    path, shape = national
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        busiest = list(shape.needs_by_territory)[:6]
        compared = 0
        for territory_id in busiest:
            for start, end in _national_periods():
                expected = await db.run(lambda s, t=territory_id, a=start, b=end: reference(
                    s, t, a, b))
                got = await db.run(lambda s, t=territory_id, a=start, b=end: territory_stats(
                    s, t, start=a, end=b, tz=PARIS))
                assert got == expected, (territory_id, start, end)
                compared += bool(expected.open_count or expected.new_by_theme)
        assert compared >= len(busiest) * 2
    finally:
        await db.dispose()


async def _grouped_equal_each_territorys(db: Database, shape: NationalShape) -> int:
    """Every territory's figures computed together equal the reference computed alone;
    how many territories had something to compare."""
    ids = [t.id for t in national_territories().territories]
    assert set(shape.needs_by_territory) <= set(ids)
    compared = 0
    for start, end in list(_national_periods())[:2]:
        grouped = await db.run(lambda s, a=start, b=end: territories_stats(
            s, ids, start=a, end=b, tz=PARIS))
        assert sorted(grouped) == sorted(ids)
        for territory_id in ids:
            expected = await db.run(lambda s, t=territory_id, a=start, b=end: reference(
                s, t, a, b))
            assert grouped[territory_id] == expected, (territory_id, start, end)
            compared += bool(expected.open_count or expected.new_by_theme)
    # A few territories asked together: the same figures as all of them.
    some = ids[::17]
    start, end = ANCHOR - timedelta(days=7), ANCHOR
    part = await db.run(lambda s: territories_stats(s, some, start=start, end=end, tz=PARIS))
    whole = await db.run(lambda s: territories_stats(s, ids, start=start, end=end, tz=PARIS))
    assert part == {t: whole[t] for t in some}
    return compared


@pytest.mark.slow
async def test_grouped_figures_equal_each_territorys(
        national: tuple[Path, NationalShape]) -> None:
    """The weekly job's figures of all territories at once: each equals its own."""
    path, shape = national
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        assert await _grouped_equal_each_territorys(db, shape) >= 100
    finally:
        await db.dispose()


@pytest.mark.pg
@pytest.mark.slow
async def test_grouped_figures_equal_each_territorys_on_postgresql() -> None:
    """The same on PostgreSQL."""
    from national_data import pg_database

    async with pg_database(2000, log=None) as (url, shape):
        db = Database(url)
        try:
            assert await _grouped_equal_each_territorys(db, shape) >= 100
        finally:
            await db.dispose()


_FULL_SCAN = re.compile(r"^SCAN ({})\b".format("|".join(BIG_TABLES)))


async def _full_scans(db: Database, work: Callable[[], Awaitable[object]],
                      least: int) -> list[tuple[str, str]]:
    """The full scans of the big tables in the plans of the SELECTs `work` runs (at least
    `least` of them)."""
    statements: list[tuple[str, Any]] = []

    def capture(_conn: object, _cursor: object, statement: str, params: Any,
                _context: object, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, params))

    event.listen(db.sync_engine, "before_cursor_execute", capture)
    try:
        await work()
    finally:
        event.remove(db.sync_engine, "before_cursor_execute", capture)
    assert len(statements) >= least

    def plans(session: Session) -> list[tuple[str, list[str]]]:
        return [(statement, [str(row[3]) for row in session.connection().exec_driver_sql(
            f"EXPLAIN QUERY PLAN {statement}", params).all()])
            for statement, params in statements]

    return [(" ".join(statement.split())[:160], line)
            for statement, lines in await db.run(plans)
            for line in lines if _FULL_SCAN.match(line)]


@pytest.mark.slow
async def test_stats_and_digest_queries_use_indexes(
        national: tuple[Path, NationalShape]) -> None:
    path, shape = national
    db = Database(f"sqlite+aiosqlite:///{path}")
    digests = DigestService(national_territories(), tz=PARIS, mail_domain="example.org")
    territory = digests.territories.get(shape.busiest)
    assert territory is not None

    async def work() -> None:
        # /stats (up to now) and the week's digest (ended last night: changes since).
        await db.run(lambda s: digests.stats(s, territory, start=ANCHOR - timedelta(days=7),
                                             end=ANCHOR))
        await db.run(lambda s: digests.send_all(s, now=ANCHOR, territory_id=territory.id))

    try:
        assert await _full_scans(db, work, least=11) == []
    finally:
        await db.dispose()


@pytest.mark.slow
async def test_weekly_job_figures_use_indexes(national: tuple[Path, NationalShape]) -> None:
    """The figures of a chunk of territories read together (the weekly job): no full scan."""
    from bot.services.digests import FIGURES_CHUNK, week_period
    from bot.services.figures import read_week

    path, _shape = national
    db = Database(f"sqlite+aiosqlite:///{path}")
    ids = [t.id for t in national_territories().territories][:FIGURES_CHUNK]
    _week, start, end = week_period(ANCHOR, PARIS)
    try:
        assert await _full_scans(db, lambda: db.run(lambda s: read_week(
            s, ids, start=start, end=end)), least=9) == []
    finally:
        await db.dispose()


async def test_reference_sees_the_same_tables(week_db: Database) -> None:
    """The fixture holds what the comparison needs: every table has rows."""
    def counts(session: Session) -> list[int]:
        return [session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in (*BIG_TABLES, "need_message", "satisfaction")]

    assert all(await week_db.run(counts))


def test_digest_email_carries_the_report_as_text_rendered_by_the_worker() -> None:
    """The service writes a `Text`; the email worker renders it, escaped, into the template."""
    from bot.email_worker import with_rendered_body
    from bot.messages import Message
    from bot.services.emails import REPORT_SLOT, EmailDraft, territory_digest_email
    from bot.services.insight import stats_report, stats_text
    from tests.test_insight import small_stats

    stats = small_stats()
    draft = territory_digest_email(
        to_name="Claire Martin", to_email="claire.martin@example.org",
        territory="Bourgogne Industrie", title="Semaine du 23 au 29 novembre 2026",
        charts=[("besoins-par-theme.png", b"\x89PNG")], period="2026-W48",
        mail_domain="example.org")
    # Stored as JSON in the outbox, then read back by the worker.
    stored = EmailDraft.from_payload(draft.to_payload())
    payload: dict[str, object] = {"report": Message(stats_report(stats, tz=PARIS)).to_payload()}
    sent = with_rendered_body(stored, payload)
    assert REPORT_SLOT not in sent.text and REPORT_SLOT not in sent.html
    assert stats_text(stats, tz=PARIS, html=False) in sent.text
    assert "A &lt;&amp;&gt; B 4,3 h" in sent.html and "A <&> B" not in sent.html
    assert "Semaine du 23 au 29 novembre 2026</b>" in sent.html
    assert "cid:besoins-par-theme.2026-W48@example.org" in sent.html


@pytest.mark.pg
@pytest.mark.slow
async def test_national_figures_match_on_postgresql() -> None:
    """The same comparison on PostgreSQL (timestamptz, another dialect and planner)."""
    from national_data import pg_database

    async with pg_database(2000, log=None) as (url, shape):
        db = Database(url)
        try:
            for territory_id in list(shape.needs_by_territory)[:4]:
                for start, end in _national_periods():
                    expected = await db.run(lambda s, t=territory_id, a=start, b=end:
                                            reference(s, t, a, b))
                    got = await db.run(lambda s, t=territory_id, a=start, b=end:
                                       territory_stats(s, t, start=a, end=b, tz=PARIS))
                    assert got == expected, (territory_id, start, end)
        finally:
            await db.dispose()


def test_working_days_by_weeks_equal_the_day_by_day_count() -> None:
    """Late acknowledgements count working days by weeks: the same as one day at a time."""
    import random
    from datetime import date

    from bot.services.workdays import is_working_day, working_days_between

    def day_by_day(after: date, until: date) -> int:
        days = (until - after).days
        return sum(is_working_day(after + timedelta(days=i)) for i in range(1, days + 1))

    rng = random.Random(18)
    for _ in range(500):
        after = date(2024, 1, 1) + timedelta(days=rng.randrange(1500))
        until = after + timedelta(days=rng.randrange(-5, 800))
        assert working_days_between(after, until) == day_by_day(after, until), (after, until)
    # Christmas 2026 (Friday) and New Year's Day 2027 (Friday) are not worked.
    assert working_days_between(date(2026, 12, 23), date(2027, 1, 4)) == 6


async def test_events_and_routings_carry_their_needs_territory(tmp_path: Path) -> None:
    """New rows (events, routings, messages) copy their need's territory; a territory found
    later moves the rows along."""
    from tests.test_insight import event, need, routing

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'copies.db'}")
    await db.create_all()
    try:
        def write(session: Session) -> None:
            session.add(need(1, "export", START, territory=None))
            session.flush()
            session.add_all([event(1, None, "submitted", START),
                             routing(1, "OPCO 2i", START),
                             animator_message(1, START + timedelta(minutes=5))])

        def territories(session: Session) -> list[str | None]:
            return [*session.exec(select(NeedEvent.territory_id)),
                    *session.exec(select(NeedRouting.territory_id)),
                    *session.exec(select(NeedMessage.territory_id))]

        await db.run(write)
        assert await db.run(territories) == [None, None, None]

        def found(session: Session) -> None:
            found_need = session.get(Need, 1)
            assert found_need is not None
            found_need.territory_id = TI
            session.add(found_need)
            session.add(event(1, "submitted", "routed", START + timedelta(hours=1)))

        await db.run(found)
        assert await db.run(territories) == [TI, TI, TI, TI]
    finally:
        await db.dispose()
