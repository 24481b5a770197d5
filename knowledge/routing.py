"""Routing: which partners of the territory receive a confirmed need, and why.

Pure and deterministic: the same directory, geography and question always give the same
decision. The rules, in order:

1. the commune's EPCI gives the territory (none: fallback, nobody to send to);
2. candidates are the territory's partners that handle the theme, whose zone contains the
   commune (its commune list, EPCI, département or région; no zone = the whole territory)
   and whose filters accept the firm — a filter excludes a firm only when the fact it tests
   is known and contradicts it;
3. for each partner kind, only the partners at the most specific matching zone level stay
   (commune > EPCI > département > région > territoire), so a local agency takes the need
   instead of its departmental direction while other kinds still receive it;
4. the result is ordered by level, then kind, then id; no partner left means fallback to
   the territory's animators.

A decision is data: which partner matched at which zone, which were set aside and why (as
codes). The sentences people read are made from it by `bot/services/explain.py`.

All zone lookups are precomputed by :class:`Router` so :meth:`Router.route` only touches
the few partners indexed under the commune, its EPCI, its département and its région.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from knowledge.geography import Commune, Geography
from knowledge.taxonomy import THEME_KEYS
from knowledge.territories import (
    SIZE_BANDS,
    Animator,
    Partner,
    Territory,
    TerritoryDirectory,
)

__all__ = [
    "LEVELS",
    "Excluded",
    "Exclusion",
    "FirmFacts",
    "Level",
    "RoutedPartner",
    "Router",
    "RoutingDecision",
    "RoutingError",
]

Level = Literal["commune", "epci", "departement", "region", "territoire"]
# Most specific first: the position in this tuple is the level's rank.
LEVELS: tuple[Level, ...] = ("commune", "epci", "departement", "region", "territoire")

# The communes whose arrondissements municipaux the geography knows: a partner whose zone
# names the commune also covers each of its arrondissements.
_PLM_ARRONDISSEMENTS: dict[str, tuple[str, ...]] = {
    "75056": tuple(str(code) for code in range(75101, 75121)),
    "69123": tuple(str(code) for code in range(69381, 69390)),
    "13055": tuple(str(code) for code in range(13201, 13217)),
}

# Why a partner's filters refuse a firm: its activity (artisan or not), its headcount band,
# or its OPCO (undetermined by its agreements, or another one).
Exclusion = Literal["activity", "size_band", "opco_unknown", "opco_other"]


class RoutingError(ValueError):
    """A routing question that cannot be asked: unknown theme or unknown commune."""


@dataclass(frozen=True, slots=True)
class FirmFacts:
    """What is known of the firm; None (or empty) means unknown and never excludes a partner.

    ``size_band`` is an INSEE headcount band code (``SIZE_BANDS``; "NN" counts as unknown),
    ``artisan`` whether the firm is in the crafts register, ``idcc`` its collective
    agreements and ``opco`` the key of the OPCO they give (`knowledge/opco.py`), None when
    the agreements are unknown, unmapped or point at several OPCO.
    """

    size_band: str | None = None
    artisan: bool | None = None
    naf: str | None = None
    idcc: tuple[str, ...] = ()
    opco: str | None = None


@dataclass(frozen=True, slots=True)
class RoutedPartner:
    """A partner for a need, the zone level that matched and the code matched at that level.

    ``zone`` is the commune's INSEE code, the EPCI's SIREN, the département or région code,
    or the territory's id for a partner without a zone.
    """

    partner: Partner
    level: Level
    zone: str


@dataclass(frozen=True, slots=True)
class Excluded:
    """A partner whose filters refuse the firm; ``value`` is the firm's band or OPCO key."""

    routed: RoutedPartner
    why: Exclusion
    value: str | None = None


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """Who receives a need: partners, or (fallback) the territory's animators; and why."""

    territory: Territory | None
    partners: tuple[RoutedPartner, ...]
    fallback: bool
    commune: Commune
    theme: str
    # Partners that matched but lost to a partner of the same kind at a more specific level.
    superseded: tuple[RoutedPartner, ...] = ()
    excluded: tuple[Excluded, ...] = ()

    @property
    def animators(self) -> tuple[Animator, ...]:
        """The animators who receive the need on fallback (none when no territory covers it)."""
        if self.fallback and self.territory is not None:
            return self.territory.animators
        return ()


@dataclass(frozen=True, slots=True)
class _Entry:
    """A partner indexed under one zone key, with its decision row precomputed."""

    routed: RoutedPartner
    kind: str
    partner_id: str
    activity: str
    size_bands: frozenset[str] | None  # None: every size
    opco: str | None  # for an OPCO partner: which OPCO it is (None: not declared)


@dataclass(frozen=True, slots=True)
class _ThemeIndex:
    """One territory's partners for one theme, by zone key at each level."""

    communes: dict[str, tuple[_Entry, ...]]
    epci: dict[str, tuple[_Entry, ...]]
    departements: dict[str, tuple[_Entry, ...]]
    regions: dict[str, tuple[_Entry, ...]]
    whole: tuple[_Entry, ...]


_NONE: tuple[_Entry, ...] = ()
_THEMES = frozenset(THEME_KEYS)


def _entry(partner: Partner, level: Level, code: str) -> _Entry:
    bands = partner.filters.size_bands
    return _Entry(
        routed=RoutedPartner(partner, level, code),
        kind=partner.kind,
        partner_id=partner.id,
        activity=partner.filters.activity,
        size_bands=frozenset(bands) if bands else None,
        opco=partner.opco,
    )


def _sorted(entries: dict[str, _Entry]) -> tuple[_Entry, ...]:
    # Sorted once here so that a decision is already in (level, kind, id) order.
    return tuple(sorted(entries.values(), key=lambda e: (e.kind, e.partner_id)))


def _theme_index(territory: Territory, theme: str) -> _ThemeIndex:
    """Index the territory's partners for one theme by zone key."""
    keyed: dict[Level, dict[str, dict[str, _Entry]]] = {
        level: defaultdict(dict) for level in LEVELS
    }
    whole: dict[str, _Entry] = {}
    for partner in territory.partners:
        if theme not in partner.themes:
            continue
        zone = partner.zone
        if zone is None:
            whole[partner.id] = _entry(partner, "territoire", territory.id)
            continue
        for insee in zone.communes:
            entry = _entry(partner, "commune", insee)
            for code in (insee, *_PLM_ARRONDISSEMENTS.get(insee, ())):
                keyed["commune"][code].setdefault(partner.id, entry)
        by_level: tuple[tuple[Level, tuple[str, ...]], ...] = (
            ("epci", zone.epci),
            ("departement", zone.departements),
            ("region", zone.regions),
        )
        for level, codes in by_level:
            for code in codes:
                keyed[level][code][partner.id] = _entry(partner, level, code)

    def tables(level: Level) -> dict[str, tuple[_Entry, ...]]:
        return {code: _sorted(entries) for code, entries in keyed[level].items()}

    return _ThemeIndex(
        communes=tables("commune"),
        epci=tables("epci"),
        departements=tables("departement"),
        regions=tables("region"),
        whole=_sorted(whole),
    )


def _exclusion(entry: _Entry, firm: FirmFacts) -> Excluded | None:
    """Why the firm's known facts contradict the partner's filters, or None if accepted."""
    if entry.activity != "any" and firm.artisan is not None:
        if firm.artisan != (entry.activity == "artisan"):
            return Excluded(entry.routed, "activity")
    bands = entry.size_bands
    if bands is not None and firm.size_band in SIZE_BANDS and firm.size_band not in bands:
        return Excluded(entry.routed, "size_band", firm.size_band)
    if entry.kind == "opco" and entry.opco is not None and firm.idcc:
        # The firm's agreements are known: only its own OPCO may take the need. When they
        # give no single OPCO, no declared OPCO is sent to and the animator decides.
        if firm.opco is None:
            return Excluded(entry.routed, "opco_unknown")
        if firm.opco != entry.opco:
            return Excluded(entry.routed, "opco_other", firm.opco)
    return None


class Router:
    """Routes needs to partners using indexes built once from the directory."""

    def __init__(self, directory: TerritoryDirectory, geography: Geography) -> None:
        """Index every territory's partners by theme and zone key."""
        self._geography = geography
        self._territory_by_epci: dict[str, Territory] = {}
        self._index: dict[str, dict[str, _ThemeIndex]] = {}
        for territory in directory.territories:
            for member in territory.epci:
                self._territory_by_epci.setdefault(member.siren, territory)
            self._index[territory.id] = {
                theme: _theme_index(territory, theme) for theme in THEME_KEYS
            }

    def route(
        self, *, theme: str, commune_insee: str, firm: FirmFacts | None = None
    ) -> RoutingDecision:
        """The partners (or, on fallback, the animators) that receive a need, and why."""
        if theme not in _THEMES:
            raise RoutingError(f"thème inconnu {theme!r}")
        commune = self._geography.by_insee(commune_insee)
        if commune is None:
            raise RoutingError(f"commune inconnue {commune_insee!r}")
        epci = commune.epci_siren or ""
        territory = self._territory_by_epci.get(epci)
        if territory is None:
            return RoutingDecision(territory=None, partners=(), fallback=True,
                                   commune=commune, theme=theme)
        index = self._index[territory.id][theme]
        levels = (
            index.communes.get(commune.insee, _NONE),
            index.epci.get(epci, _NONE),
            index.departements.get(commune.departement, _NONE),
            index.regions.get(commune.region, _NONE),
            index.whole,
        )
        chosen: list[RoutedPartner] = []
        kind_rank: dict[str, int] = {}
        seen: set[str] = set()
        superseded: list[RoutedPartner] = []
        excluded: list[Excluded] = []
        for rank, entries in enumerate(levels):
            for entry in entries:
                if entry.partner_id in seen:
                    continue  # already met at a more specific level of its own zone
                seen.add(entry.partner_id)
                if firm is not None:
                    refused = _exclusion(entry, firm)
                    if refused is not None:
                        excluded.append(refused)
                        continue
                best = kind_rank.setdefault(entry.kind, rank)
                if best == rank:
                    chosen.append(entry.routed)
                else:
                    superseded.append(entry.routed)
        return RoutingDecision(
            territory=territory,
            partners=tuple(chosen),
            fallback=not chosen,
            commune=commune,
            theme=theme,
            superseded=tuple(superseded),
            excluded=tuple(excluded),
        )
