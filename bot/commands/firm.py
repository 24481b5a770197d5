"""``relais firm lookup SIRET``: what the public firm directory says about an establishment."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC

import typer

from bot.config import load_settings
from bot.directory import FirmDirectory, LookupOutcome, RechercheEntreprisesClient
from knowledge.firms import FirmRecord
from storage.db import Database

__all__ = ["firm_lookup_command", "format_record", "outcome_json"]

# Exit codes: 0 found, 1 not found (or masked), 2 invalid SIRET/configuration, 3 unavailable.
_EXIT = {"cache": 0, "api": 0, "stale": 0, "not_found": 1, "invalid": 2, "unavailable": 3}

_SOURCE_TEXT = {
    "cache": "cache local",
    "api": "annuaire des entreprises (interrogé à l'instant)",
    "stale": "cache local périmé (annuaire indisponible)",
}


def _yes_no(value: bool | None) -> str:
    return "inconnu" if value is None else ("oui" if value else "non")


def format_record(record: FirmRecord, status: str) -> str:
    """The record as French text for a person at a terminal."""
    dash = "—"
    lines = [
        f"Entreprise : {record.name or dash} (SIREN {record.siren})",
        f"Établissement : {record.siret or dash}"
        + (" (siège)" if record.is_head_office else " (établissement secondaire)"
           if record.is_head_office is False else ""),
        f"Commune : {record.commune_name or dash} — INSEE {record.commune_insee or dash}"
        f" — code postal {record.postcode or dash}",
        f"NAF : {record.naf or dash}" + (f" ({record.naf_label})" if record.naf_label else ""),
        f"Effectif de l'entreprise : {record.size_label or 'inconnu'}"
        + (f" (tranche {record.size_band})" if record.size_band else ""),
        f"Artisan (répertoire des métiers) : {_yes_no(record.artisan)}",
        f"Conventions collectives (IDCC) : {', '.join(record.idccs) or 'aucune connue'}",
        f"OPCO : {record.opco or 'inconnu, à demander'}",
    ]
    if not record.diffusible:
        lines.append("Diffusion partielle : certaines informations sont masquées.")
    fetched = record.fetched_at.astimezone(UTC)
    origin = _SOURCE_TEXT.get(status, status)
    lines.append(f"Source : {origin}, données du {fetched:%d/%m/%Y %H:%M} UTC")
    return "\n".join(lines)


def outcome_json(siret: str, outcome: LookupOutcome) -> dict[str, object]:
    """The outcome as plain JSON data (``--json``)."""
    return {
        "siret": siret,
        "status": outcome.status,
        "error": outcome.error,
        "record": outcome.record.to_json() if outcome.record else None,
    }


async def _lookup(siret: str, live: bool, database_url: str) -> LookupOutcome:
    db = Database(database_url)
    await db.create_all()
    client = RechercheEntreprisesClient()
    try:
        return await FirmDirectory(client, db).lookup_siret_outcome(siret, live=live)
    finally:
        await client.aclose()
        await db.dispose()


def firm_lookup_command(siret: str, as_json: bool, live: bool) -> int:
    """Look a SIRET up (cache first unless `live`) and print it; returns the exit code."""
    try:
        settings = load_settings()
    except ValueError as exc:
        typer.echo(f"relais firm : configuration invalide : {exc}", err=True)
        return 2
    outcome = asyncio.run(_lookup(siret, live, settings.database_url))
    code = _EXIT.get(outcome.status, 3)
    if as_json:
        typer.echo(json.dumps(outcome_json(siret, outcome), ensure_ascii=False, indent=2))
        return code
    if outcome.record is not None:
        typer.echo(format_record(outcome.record, outcome.status))
    elif outcome.status == "invalid":
        typer.echo(f"relais firm : SIRET invalide : {siret}", err=True)
    elif outcome.status == "not_found":
        typer.echo("Aucun établissement diffusible trouvé pour ce SIRET.")
    else:
        typer.echo(
            f"relais firm : annuaire des entreprises indisponible ({outcome.error})", err=True
        )
    return code
