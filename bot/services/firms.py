"""The firm's public facts in the intake: what is stored with a need and how it is shown.

The lookup itself (`bot.directory.FirmDirectory`) is asynchronous and happens before the
intake's transaction; this module only turns its records into the JSON kept in the
conversation and on the need, into routing facts, and into French lines for people.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.catalogue import label, t
from knowledge.firms import FirmRecord
from knowledge.opco import load_opco_table
from knowledge.routing import FirmFacts

__all__ = ["facts_line", "routing_facts", "stored_facts"]


def stored_facts(record: FirmRecord) -> dict[str, Any]:
    """The facts kept with a need: activity, size, crafts register, branch, OPCO, source."""
    table = load_opco_table()
    return {
        "siren": record.siren,
        "siret": record.siret,
        "name": record.name,
        "naf": record.naf,
        "naf_label": record.naf_label,
        "size_band": record.size_band,
        "size_label": record.size_label,
        "artisan": record.artisan,
        "idccs": list(record.idccs),
        "opco": record.opco,
        "opco_key": table.key_for_name(record.opco),
        "idcc_unmapped": list(table.unmapped(record.idccs)),
        "is_head_office": record.is_head_office,
        "closed": record.etat_administratif == "F",
        "source": record.source,
        "fetched_at": record.fetched_at.isoformat(),
    }


def routing_facts(firm: dict[str, Any] | None) -> FirmFacts:
    """What the router may use; an empty FirmFacts (nothing known) without a lookup."""
    if not firm:
        return FirmFacts()
    return FirmFacts(
        size_band=firm.get("size_band"),
        artisan=firm.get("artisan"),
        naf=firm.get("naf"),
        idcc=tuple(firm.get("idccs") or ()),
        opco=firm.get("opco_key"),
    )


def activity_text(firm: dict[str, Any]) -> str:
    """'fonderie de fonte (24.51Z)', or the code alone, or '' (plain text)."""
    label, naf = firm.get("naf_label"), firm.get("naf")
    if label and naf:
        return f"{label[:1].lower()}{label[1:]} ({naf})"
    return naf or ""


def facts_line(firm: dict[str, Any] | None, *, tz: ZoneInfo) -> str | None:
    """The firm's public facts in one line of plain text (a card, an email)."""
    if not firm:
        return None
    parts: list[str] = []
    activity = activity_text(firm)
    if activity:
        parts.append(activity)
    if firm.get("size_label"):
        parts.append(firm["size_label"])
    if firm.get("artisan") is True:
        parts.append(label("common.firm_artisan"))
    elif firm.get("artisan") is False:
        parts.append(label("common.firm_not_artisan"))
    idccs = ", ".join(firm.get("idccs") or ())
    if firm.get("opco"):
        parts.append(t("common.firm_opco", opco=firm["opco"], idcc=idccs or "—").plain())
    elif idccs:
        parts.append(t("common.firm_opco_unknown", idcc=idccs).plain())
    if firm.get("closed"):
        parts.append(label("common.firm_closed"))
    fetched = datetime.fromisoformat(firm["fetched_at"]).astimezone(tz)
    parts.append(t("common.firm_source", source=firm.get("source") or "",
                   date=fetched.strftime("%d/%m/%Y")).plain())
    return " · ".join(parts)
