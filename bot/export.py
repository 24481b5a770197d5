"""Exports of a territory's needs (CSV for any spreadsheet, XLSX for Excel users)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from bot.catalogue import label
from bot.catalogue.labels import channel_label, status_label, urgency_label
from knowledge.taxonomy import theme_label
from storage.models import Need

__all__ = ["COLUMNS", "columns", "needs_csv", "needs_rows", "needs_xlsx"]

# The columns, in order: their headers are `animator.export_col_<name>` in the catalogue.
COLUMNS = ("reference", "status", "theme", "urgency", "firm", "siret", "commune", "insee",
           "epci", "epci_siren", "territory", "channel", "created", "updated")


def columns() -> list[str]:
    """The header row, in French."""
    return [label(f"animator.export_col_{name}") for name in COLUMNS]


def needs_rows(needs: Sequence[Need], tz: ZoneInfo) -> list[list[str]]:
    """One row per need, in COLUMNS order; dates in people's time."""
    return [[
        n.reference, status_label(n.status), theme_label(n.theme),
        urgency_label(n.urgency), n.firm_name or "", n.siret or "",
        n.commune_name or "", n.commune_insee or "", n.epci_name or "", n.epci_siren or "",
        n.territory_id or "", channel_label(n.channel),
        n.created_at.astimezone(tz).strftime("%d/%m/%Y %H:%M"),
        n.updated_at.astimezone(tz).strftime("%d/%m/%Y %H:%M"),
    ] for n in needs]


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
