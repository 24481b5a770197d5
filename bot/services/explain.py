"""Routing decisions in words: why a partner receives a need, and the whole decision.

`knowledge.routing` decides and returns data (levels, zone codes, exclusion codes); the
sentences read by the chef de projet (the need's card and history, `relais route`) and by
the partner (its email) are made here, from the catalogue (`common/routing_explain.yaml`).
"""

from __future__ import annotations

from bot.catalogue import label, t
from bot.messages import Text, plain
from knowledge.geography import Commune
from knowledge.opco import load_opco_table
from knowledge.routing import Excluded, RoutedPartner, RoutingDecision
from knowledge.taxonomy import theme_noun

__all__ = ["decision_text", "partner_reason"]


def _theme(theme: str) -> str:
    """The theme as a common noun inside a sentence (« thème compétences et formation »)."""
    noun = theme_noun(theme)
    # Only the first letter: « Transition écologique » → « transition écologique ».
    return noun[:1].lower() + noun[1:]


def partner_reason(theme: str, routed: RoutedPartner) -> Text:
    """Why this partner receives the need: theme, zone, and the filters it declared.

    The partner's name is not in it: the card and the email name the partner already.
    """
    zone = t(f"common.explain_zone_{routed.level}", code=routed.zone).plain()
    parts = [t("common.explain_reason", theme=_theme(theme), zone=zone).plain()]
    filters = routed.partner.filters
    if filters.activity != "any":
        parts.append(label(f"common.explain_activity_{filters.activity}"))
    if filters.size_bands:
        parts.append(t("common.explain_size_bands",
                       bands=", ".join(filters.size_bands)).plain())
    return plain(", ".join(parts))


def _where(commune: Commune) -> str:
    """« Paray-le-Monial (71342), CC Le Grand Charolais (200071884) »."""
    if commune.epci_siren:
        return t("common.explain_where_epci", commune=commune.name, insee=commune.insee,
                 epci=commune.epci_name or "EPCI", siren=commune.epci_siren).plain()
    return t("common.explain_where", commune=commune.name, insee=commune.insee).plain()


def _refusal(excluded: Excluded) -> str:
    """Why a partner's filters refuse the firm, in words."""
    if excluded.why == "activity":
        return label(f"common.explain_activity_{excluded.routed.partner.filters.activity}")
    if excluded.why == "size_band":
        return t("common.explain_refused_size_band", band=excluded.value or "").plain()
    if excluded.why == "opco_unknown":
        return label("common.explain_refused_opco_unknown")
    key = excluded.value or ""
    return t("common.explain_refused_opco_other",
             opco=load_opco_table().names.get(key, key)).plain()


def _names(partners: tuple[RoutedPartner, ...] | list[RoutedPartner]) -> str:
    # Names may contain commas ("CC …, développement économique"): a semicolon separates them.
    return " ; ".join(r.partner.name for r in partners)


def _notes(decision: RoutingDecision) -> list[str]:
    """Partners set aside: superseded by a closer one of their kind, or refused by filters."""
    notes: list[str] = []
    # Refusals first: they depend on the firm, and a history note keeps 500 characters.
    if decision.excluded:
        items = [t("common.explain_excluded_item", partner=e.routed.partner.name,
                   why=_refusal(e)).plain() for e in decision.excluded]
        key = "explain_excluded_one" if len(items) == 1 else "explain_excluded"
        notes.append(t(f"common.{key}", items=" ; ".join(items)).plain())
    if decision.superseded:
        pairs = []
        for dropped in decision.superseded:
            kept = [r for r in decision.partners if r.partner.kind == dropped.partner.kind]
            pairs.append(t("common.explain_superseded_pair", dropped=dropped.partner.name,
                           kept=_names(kept)).plain())
        key = "explain_superseded_one" if len(pairs) == 1 else "explain_superseded"
        notes.append(t(f"common.{key}", pairs=" ; ".join(pairs)).plain())
    return notes


def decision_text(decision: RoutingDecision) -> Text:
    """The whole decision in one paragraph: the commune, who receives the need, who not."""
    commune = decision.commune
    where = _where(commune)
    territory = decision.territory
    if territory is None:
        if commune.epci_siren:
            return t("common.explain_no_territory", where=where, siren=commune.epci_siren)
        return t("common.explain_no_epci", where=where)
    head = {"where": where, "territory": territory.name, "territory_id": territory.id,
            "theme": _theme(decision.theme)}
    if decision.fallback:
        text = t("common.explain_fallback", **head,
                 animators=" ; ".join(a.name for a in territory.animators))
    elif len(decision.partners) == 1:
        text = t("common.explain_chosen_one", **head, partners=_names(decision.partners))
    else:
        text = t("common.explain_chosen", **head, count=len(decision.partners),
                 partners=_names(decision.partners))
    return plain(" ".join([text.plain(), *_notes(decision)]))
