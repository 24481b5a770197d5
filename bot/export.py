"""Exports of a territory's needs (CSV for any spreadsheet, XLSX for Excel users)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from typing import Any, BinaryIO, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select

from bot.catalogue import label
from bot.catalogue.labels import channel_label, status_label, urgency_label
from knowledge.taxonomy import theme_label
from storage.models import Need

__all__ = ["COLUMNS", "ExportRow", "columns", "count_query", "needs_csv", "needs_query",
           "needs_rows", "needs_xlsx", "stream_csv", "stream_xlsx"]

# The columns, in order: their headers are `animator.export_col_<name>` in the catalogue.
COLUMNS = ("reference", "status", "theme", "urgency", "firm", "siret", "commune", "insee",
           "epci", "epci_siren", "territory", "channel", "created", "updated")


def columns() -> list[str]:
    """The header row, in French."""
    return [label(f"animator.export_col_{name}") for name in COLUMNS]


class ExportRow(Protocol):
    """What a row needs: a `Need`, or a database row of `needs_query`'s columns."""

    reference: str
    status: str
    theme: str
    urgency: str
    firm_name: str | None
    siret: str | None
    commune_name: str | None
    commune_insee: str | None
    epci_name: str | None
    epci_siren: str | None
    territory_id: str | None
    channel: str
    created_at: Any
    updated_at: Any


# The columns an export reads: nothing else of the need is loaded.
_FIELDS = ("reference", "status", "theme", "urgency", "firm_name", "siret", "commune_name",
           "commune_insee", "epci_name", "epci_siren", "territory_id", "channel",
           "created_at", "updated_at")


def needs_query(territory: str | None = None) -> Select[Any]:
    """The needs to export (one territory, or all), in reference order of creation."""
    query = select(*(getattr(Need, name) for name in _FIELDS)).order_by(Need.id)  # type: ignore[arg-type]
    if territory:
        query = query.where(Need.territory_id == territory)  # type: ignore[arg-type]
    return query


def count_query(territory: str | None = None) -> Select[Any]:
    """How many needs `needs_query` returns (for the progress bar)."""
    query = select(func.count()).select_from(Need)
    if territory:
        query = query.where(Need.territory_id == territory)  # type: ignore[arg-type]
    return query


def _row(n: ExportRow, tz: ZoneInfo) -> list[str]:
    return [
        n.reference, status_label(n.status), theme_label(n.theme),
        urgency_label(n.urgency), n.firm_name or "", n.siret or "",
        n.commune_name or "", n.commune_insee or "", n.epci_name or "", n.epci_siren or "",
        n.territory_id or "", channel_label(n.channel),
        n.created_at.astimezone(tz).strftime("%d/%m/%Y %H:%M"),
        n.updated_at.astimezone(tz).strftime("%d/%m/%Y %H:%M"),
    ]


def needs_rows(needs: Iterable[ExportRow], tz: ZoneInfo) -> list[list[str]]:
    """One row per need, in COLUMNS order; dates in people's time."""
    return [_row(n, tz) for n in needs]


def _safe(cell: str) -> str:
    # A cell starting with = + - @ is a formula to a spreadsheet: firms type these fields.
    return f"'{cell}" if cell[:1] in {"=", "+", "-", "@", "\t", "\r"} else cell


def needs_csv(needs: Sequence[Need], tz: ZoneInfo) -> bytes:
    """UTF-8 CSV with BOM and semicolons (what French Excel opens correctly)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(columns())
    for row in needs_rows(needs, tz):
        writer.writerow([_safe(c) for c in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


async def stream_csv(chunks: AsyncIterable[Sequence[ExportRow]], out: BinaryIO, tz: ZoneInfo,
                     progress: Callable[[int], None] | None = None) -> int:
    """Write the CSV of `needs_csv` chunk by chunk as rows come; the number of rows.

    Memory holds one chunk, whatever the number of needs.
    """
    text = io.StringIO()
    writer = csv.writer(text, delimiter=";", lineterminator="\r\n")
    writer.writerow(columns())
    out.write(("\ufeff" + text.getvalue()).encode("utf-8"))
    count = 0
    async for chunk in chunks:
        text.seek(0)
        text.truncate()
        for need in chunk:
            writer.writerow([_safe(c) for c in _row(need, tz)])
        out.write(text.getvalue().encode("utf-8"))
        count += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return count


async def stream_xlsx(chunks: AsyncIterable[Sequence[ExportRow]], out: BinaryIO, tz: ZoneInfo,
                      progress: Callable[[int], None] | None = None) -> int:
    """Write the workbook of `needs_xlsx` in openpyxl's write-only mode; the number of rows.

    Rows go to a temporary file as they come instead of a sheet held in memory.
    """
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(label("animator.export_sheet"))
    # Write-only sheets freeze panes before the first row is written.
    sheet.freeze_panes = "A2"
    sheet.append(columns())
    count = 0
    async for chunk in chunks:
        for need in chunk:
            sheet.append([_safe(c) for c in _row(need, tz)])
        count += len(chunk)
        if progress is not None:
            progress(len(chunk))
    book.save(out)
    return count


def needs_xlsx(needs: Sequence[Need], tz: ZoneInfo) -> bytes:
    """An Excel workbook, one sheet, header row frozen."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = label("animator.export_sheet")
    sheet.append(columns())
    for row in needs_rows(needs, tz):
        # openpyxl stores strings as text; a leading "=" would still become a formula.
        sheet.append([_safe(c) for c in row])
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
