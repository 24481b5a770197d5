"""Exports of a territory's needs (CSV for any spreadsheet, XLSX for Excel users)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from knowledge.taxonomy import theme_label
from storage.models import Need

__all__ = ["COLUMNS", "needs_csv", "needs_rows", "needs_xlsx"]

COLUMNS = ("référence", "statut", "thème", "urgence", "entreprise", "SIRET", "commune",
           "code INSEE", "EPCI", "SIREN EPCI", "territoire", "canal", "déposée le",
           "mise à jour le")


def needs_rows(needs: Sequence[Need], tz: ZoneInfo) -> list[list[str]]:
    """One row per need, in COLUMNS order; dates in people's time."""
    from bot import texts

    return [[
        n.reference, texts.STATUS_LABELS.get(n.status, n.status), theme_label(n.theme),
        texts.URGENCY_LABELS.get(n.urgency, n.urgency), n.firm_name or "", n.siret or "",
        n.commune_name or "", n.commune_insee or "", n.epci_name or "", n.epci_siren or "",
        n.territory_id or "", n.channel,
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
    writer.writerow(COLUMNS)
    for row in needs_rows(needs, tz):
        writer.writerow([_safe(c) for c in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def needs_xlsx(needs: Sequence[Need], tz: ZoneInfo) -> bytes:
    """An Excel workbook, one sheet, header row frozen."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Demandes"
    sheet.append(list(COLUMNS))
    for row in needs_rows(needs, tz):
        # openpyxl stores strings as text; a leading "=" would still become a formula.
        sheet.append([_safe(c) for c in row])
    sheet.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
