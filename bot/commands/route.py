"""``relais route``: show who would receive a need, without sending anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from bot.config import load_settings
from bot.services.explain import decision_text, partner_reason
from knowledge.geography import Commune, Geography, default_geography
from knowledge.routing import FirmFacts, Router, RoutingDecision
from knowledge.taxonomy import PARTNER_KINDS, THEME_KEYS, theme_label
from knowledge.territories import SIZE_BANDS, TerritoryError, load_territories

__all__ = ["decision_json", "format_decision", "route_command"]

_LEVEL_TEXT = {
    "commune": "commune",
    "epci": "intercommunalité",
    "departement": "département",
    "region": "région",
    "territoire": "tout le territoire",
}


def _error(message: str) -> None:
    typer.echo(f"relais route : {message}", err=True)


def _commune_json(commune: Commune) -> dict[str, Any]:
    return {
        "insee": commune.insee,
        "name": commune.name,
        "postcodes": list(commune.postcodes),
        "departement": commune.departement,
        "region": commune.region,
        "epci_siren": commune.epci_siren,
        "epci_name": commune.epci_name,
    }


def decision_json(commune: Commune, theme: str, decision: RoutingDecision) -> dict[str, Any]:
    """The decision as plain JSON data (``relais route --json``)."""
    territory = decision.territory
    return {
        "commune": _commune_json(commune),
        "theme": theme,
        "territory": {"id": territory.id, "name": territory.name} if territory else None,
        "fallback": decision.fallback,
        "partners": [
            {
                "id": routed.partner.id,
                "name": routed.partner.name,
                "kind": routed.partner.kind,
                "email": routed.partner.email,
                "level": routed.level,
                "reason": partner_reason(theme, routed).plain(),
                "ack_days": routed.partner.ack_days,
            }
            for routed in decision.partners
        ],
        "animators": [{"name": a.name, "email": a.email} for a in decision.animators],
        "explanation": decision_text(decision).plain(),
    }


def format_decision(commune: Commune, theme: str, decision: RoutingDecision) -> str:
    """The decision as French text for a person at a terminal."""
    lines = [f"Commune : {commune.label()} — INSEE {commune.insee}"]
    if commune.epci_siren:
        lines.append(f"Intercommunalité : {commune.epci_name} ({commune.epci_siren})")
    lines.append(f"Thème : {theme_label(theme)} ({theme})")
    territory = decision.territory
    if territory is None:
        lines.append("Territoire : aucun Territoire d'industrie configuré ne couvre cette commune")
        lines.append("Destinataires : personne (ni partenaire ni chef de projet)")
    else:
        lines.append(f"Territoire : {territory.name} ({territory.id})")
        if decision.fallback:
            lines.append("Aucun partenaire pour ce besoin : la demande va au chef de projet")
            lines.extend(f"  - {a.name} <{a.email}>" for a in decision.animators)
        else:
            lines.append("Partenaires destinataires :")
            for routed in decision.partners:
                partner = routed.partner
                lines.append(
                    f"  - {partner.name} <{partner.email}> — "
                    f"{PARTNER_KINDS.get(partner.kind, partner.kind)}, "
                    f"niveau {_LEVEL_TEXT[routed.level]}, "
                    f"accusé de réception sous {partner.ack_days} jours ouvrés"
                )
                lines.append(f"    {partner_reason(theme, routed).plain()}")
    lines.append(f"Explication : {decision_text(decision).plain()}")
    lines.append("(Simulation : rien n'a été envoyé.)")
    return "\n".join(lines)


def _candidates_text(query: str, communes: tuple[Commune, ...]) -> str:
    lines = [f"plusieurs communes correspondent à « {query} », précisez le code INSEE :"]
    lines.extend(
        f"  {c.insee}  {c.label()}  {c.epci_name or 'sans intercommunalité'}" for c in communes
    )
    return "\n".join(lines)


def route_command(
    commune: str,
    theme: str,
    as_json: bool,
    size_band: str | None,
    artisan: bool | None,
    *,
    directory: Path | None = None,
    geography: Geography | None = None,
) -> int:
    """Print the routing decision for a commune and a theme; return the exit code."""
    if theme not in THEME_KEYS:
        _error(f"thème inconnu « {theme} » (thèmes : {', '.join(THEME_KEYS)})")
        return 2
    if size_band is not None and size_band != "NN" and size_band not in SIZE_BANDS:
        _error(
            f"tranche d'effectif inconnue « {size_band} » "
            f"(codes INSEE : {', '.join(SIZE_BANDS)})"
        )
        return 2
    geo = default_geography() if geography is None else geography
    if directory is None:
        # Same TERRITORIES_DIR (environment or .env) as the running bot.
        directory = load_settings().territories_dir
    try:
        territories = load_territories(directory, geo)
    except TerritoryError as exc:
        _error(f"territoires : {exc}")
        return 1

    found = geo.resolve(commune)
    if found.status == "not_found":
        _error(f"commune introuvable « {commune} » (code INSEE, code postal ou nom)")
        return 2
    if found.status == "ambiguous":
        if as_json:
            typer.echo(json.dumps(
                {
                    "error": "ambiguous",
                    "query": commune,
                    "candidates": [_commune_json(c) for c in found.communes],
                },
                ensure_ascii=False,
                indent=2,
            ))
        _error(_candidates_text(commune, found.communes))
        return 2

    place = found.communes[0]
    firm = FirmFacts(size_band=size_band, artisan=artisan)
    decision = Router(territories, geo).route(theme=theme, commune_insee=place.insee, firm=firm)
    if as_json:
        typer.echo(json.dumps(decision_json(place, theme, decision), ensure_ascii=False, indent=2))
    else:
        typer.echo(format_decision(place, theme, decision))
    return 0
