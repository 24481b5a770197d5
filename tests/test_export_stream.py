"""`relais export` streams: the same bytes as the whole-table export, chunk after chunk."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from sqlmodel import Session, SQLModel, col, select

from bot.export import needs_csv, needs_query, needs_xlsx, stream_csv, stream_xlsx
from storage.db import Database
from storage.models import Need

TZ = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def _fill(db: Database, count: int) -> None:
    with Session(db.sync_engine) as session:
        session.execute(insert(Need), [{
            "reference": f"TI-2026-{i:05d}", "theme": "recrutement", "urgency": "month",
            "contact_method": "telegram", "status": "routed",
            "territory_id": "ti-2703" if i % 2 else "ti-0001",
            # Firms type these fields: a formula-looking name is neutralised either way.
            "firm_name": "=SUM(A1)" if i == 7 else f"Firme {i}", "channel": "telegram",
            "created_at": NOW - timedelta(hours=i), "updated_at": NOW}
            for i in range(count)])
        session.commit()


async def test_streamed_csv_and_xlsx_equal_the_whole_table_export(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/export.db")
    SQLModel.metadata.create_all(db.sync_engine)
    _fill(db, 2_345)  # three chunks of 1,000
    needs = await db.run(lambda s: list(s.exec(select(Need).order_by(col(Need.id)))))
    seen: list[int] = []
    out = io.BytesIO()
    count = await stream_csv(db.stream(needs_query(), chunk=1_000), out, TZ, seen.append)
    assert (count, seen) == (2_345, [1_000, 1_000, 345])
    assert out.getvalue() == needs_csv(needs, TZ)
    mine = io.BytesIO()
    await stream_csv(db.stream(needs_query("ti-2703"), chunk=1_000), mine, TZ)
    assert mine.getvalue() == needs_csv([n for n in needs if n.territory_id == "ti-2703"], TZ)

    from openpyxl import load_workbook

    book = io.BytesIO()
    assert await stream_xlsx(db.stream(needs_query(), chunk=1_000), book, TZ) == 2_345
    streamed = load_workbook(book).active
    whole = load_workbook(io.BytesIO(needs_xlsx(needs, TZ))).active
    assert streamed is not None and whole is not None
    assert (streamed.title, streamed.freeze_panes) == (whole.title, whole.freeze_panes)
    assert list(streamed.values) == list(whole.values)
    await db.dispose()
