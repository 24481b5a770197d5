"""Territories (Territoires d'industrie) configured for this deployment, read from YAML.

Each territory file lists the member EPCI, the animators and the partner directory: who
receives a confirmed need, for which themes, in which zone (communes, EPCI, départements,
régions of the territory; no zone = the whole territory) and for which firms (filters).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import yaml
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from stdnum.fr import siren as stdnum_siren

from knowledge.geography import Geography, default_geography
from knowledge.opco import load_opco_table
from knowledge.taxonomy import PARTNER_KINDS, THEME_KEYS

__all__ = [
    "SIZE_BANDS",
    "Animator",
    "MemberEpci",
    "Partner",
    "PartnerFilters",
    "PartnerZone",
    "Territory",
    "TerritoryDirectory",
    "TerritoryError",
    "load_territories",
]

# INSEE "tranche d'effectif salarié" codes, as SIRENE gives them for a firm
# (trancheEffectifsUniteLegale). "NN" (no declared headcount) is not a band: it is treated
# as unknown by routing, so it is not accepted in a filter either.
SIZE_BANDS: dict[str, str] = {
    "00": "0 salarié",
    "01": "1 ou 2 salariés",
    "02": "3 à 5 salariés",
    "03": "6 à 9 salariés",
    "11": "10 à 19 salariés",
    "12": "20 à 49 salariés",
    "21": "50 à 99 salariés",
    "22": "100 à 199 salariés",
    "31": "200 à 249 salariés",
    "32": "250 à 499 salariés",
    "41": "500 à 999 salariés",
    "42": "1 000 à 1 999 salariés",
    "51": "2 000 à 4 999 salariés",
    "52": "5 000 à 9 999 salariés",
    "53": "10 000 salariés et plus",
}

# libyaml's safe loader when PyYAML was built with it: ~10x faster on large directories.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_SLUG_MAX = 64


class TerritoryError(ValueError):
    """A territory file that cannot be loaded; the message names the file and the field."""


# -- field types -----------------------------------------------------------------------------


def _valid_email(value: str) -> str:
    """A syntactically valid address, normalised (no DNS lookup: files load offline)."""
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError:
        raise ValueError(f"adresse e-mail invalide {value!r}") from None


def _known_theme(value: str) -> str:
    if value not in THEME_KEYS:
        raise ValueError(f"thème inconnu {value!r} (thèmes : {', '.join(THEME_KEYS)})")
    return value


def _known_kind(value: str) -> str:
    if value not in PARTNER_KINDS:
        raise ValueError(
            f"type de partenaire inconnu {value!r} (types : {', '.join(PARTNER_KINDS)})"
        )
    return value


def _known_size_band(value: str) -> str:
    if value not in SIZE_BANDS:
        raise ValueError(
            f"tranche d'effectif inconnue {value!r} (codes INSEE : {', '.join(SIZE_BANDS)})"
        )
    return value


def _code(value: str) -> str:
    # Corsican codes are written 2A/2B in the geography; accept "2a" too.
    return value.strip().upper()


def _unique(values: tuple[str, ...], what: str) -> tuple[str, ...]:
    """Refuse a list that names the same value twice (almost always a copy-paste slip)."""
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} en double {value!r}")
        seen.add(value)
    return values


Email = Annotated[str, AfterValidator(_valid_email)]
ThemeKey = Annotated[str, AfterValidator(_known_theme)]
PartnerKind = Annotated[str, AfterValidator(_known_kind)]
SizeBand = Annotated[str, AfterValidator(_known_size_band)]
GeoCode = Annotated[str, AfterValidator(_code)]


# -- models ----------------------------------------------------------------------------------


class Animator(BaseModel):
    """A chef de projet Territoire d'industrie, reachable on Telegram and by email."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=2, max_length=120)
    email: Email
    telegram_user_id: int | None = None
    phone: str | None = None


class MemberEpci(BaseModel):
    """One intercommunalité (EPCI) of the territory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    siren: str
    name: str = Field(min_length=2)

    @field_validator("siren")
    @classmethod
    def _valid_siren(cls, value: str) -> str:
        value = str(value).strip()
        if not stdnum_siren.is_valid(value):
            raise ValueError(f"SIREN invalide : {value!r}")
        return value


class PartnerZone(BaseModel):
    """Where a partner acts: the union of its communes, EPCI, départements and régions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    communes: tuple[GeoCode, ...] = ()  # INSEE codes
    epci: tuple[GeoCode, ...] = ()  # SIREN
    departements: tuple[GeoCode, ...] = ()
    regions: tuple[GeoCode, ...] = ()  # INSEE region codes, e.g. "27"

    @model_validator(mode="after")
    def _not_empty(self) -> PartnerZone:
        if not (self.communes or self.epci or self.departements or self.regions):
            raise ValueError("zone vide : omettez « zone » pour couvrir tout le territoire")
        return self


class PartnerFilters(BaseModel):
    """Which firms a partner serves; a filter only excludes a firm whose facts are known."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # INSEE headcount band codes accepted (SIZE_BANDS); empty = every size.
    size_bands: tuple[SizeBand, ...] = ()
    # "artisan": firms registered in the crafts register only (CMA); "industrial": the others.
    activity: Literal["artisan", "industrial", "any"] = "any"

    @field_validator("size_bands")
    @classmethod
    def _distinct_bands(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _unique(value, "tranche")


class Partner(BaseModel):
    """A partner organisation that receives needs of some themes, in a zone, by email."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str = Field(min_length=2, max_length=120)
    kind: PartnerKind
    email: Email
    themes: tuple[ThemeKey, ...] = Field(min_length=1)
    zone: PartnerZone | None = None  # None: the whole territory
    filters: PartnerFilters = PartnerFilters()
    # Working days within which the partner promises to acknowledge a need.
    ack_days: int = Field(default=2, ge=1, le=30)
    # For kind "opco": which OPCO this is (a key of knowledge/data/idcc_opco.yaml), so that
    # a firm whose agreements are known only reaches its own training fund.
    opco: str | None = None

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if len(value) > _SLUG_MAX or not _SLUG.match(value):
            raise ValueError(
                f"identifiant invalide {value!r} : minuscules, chiffres et tirets, "
                f"{_SLUG_MAX} caractères au plus (ex. ft-paray-le-monial)"
            )
        return value

    @field_validator("themes")
    @classmethod
    def _distinct_themes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _unique(value, "thème")

    @field_validator("opco")
    @classmethod
    def _known_opco(cls, value: str | None) -> str | None:
        if value is None:
            return None
        names = load_opco_table().names
        if value not in names:
            raise ValueError(
                f"OPCO inconnu {value!r} : choisir parmi {', '.join(sorted(names))}"
            )
        return value

    @model_validator(mode="after")
    def _opco_only_for_opco(self) -> Partner:
        if self.opco is not None and self.kind != "opco":
            raise ValueError("le champ opco ne vaut que pour un partenaire de type opco")
        return self


class Territory(BaseModel):
    """A Territoire d'industrie: its member EPCI, its animators and its partners."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,31}$")
    name: str = Field(min_length=2)
    epci: tuple[MemberEpci, ...] = Field(min_length=1)
    animators: tuple[Animator, ...] = Field(min_length=1)
    # Working days within which the animator promises the firm a first contact.
    response_days: int = Field(default=5, ge=1, le=30)
    telegram_group_id: int | None = None
    partners: tuple[Partner, ...] = ()

    def covers_epci(self, siren: str | None) -> bool:
        """Whether the EPCI with this SIREN is a member of the territory."""
        return siren is not None and any(m.siren == siren for m in self.epci)


@dataclass(frozen=True)
class TerritoryDirectory:
    """All configured territories, indexed by member EPCI and by partner id."""

    territories: tuple[Territory, ...]
    _by_epci: dict[str, Territory] = field(init=False, repr=False, compare=False)
    _by_id: dict[str, Territory] = field(init=False, repr=False, compare=False)
    _partners: dict[str, Partner] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Build the lookup tables once (the dataclass is frozen, hence object.__setattr__)."""
        by_epci: dict[str, Territory] = {}
        for territory in self.territories:
            for member in territory.epci:
                # First territory wins, as the former linear scan did.
                by_epci.setdefault(member.siren, territory)
        by_id: dict[str, Territory] = {}
        partners: dict[str, Partner] = {}
        for territory in self.territories:
            by_id.setdefault(territory.id, territory)
            for partner in territory.partners:
                partners.setdefault(partner.id, partner)
        object.__setattr__(self, "_by_epci", by_epci)
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_partners", partners)

    def for_epci(self, siren: str | None) -> Territory | None:
        """The territory whose members include this EPCI, if any."""
        if siren is None:
            return None
        return self._by_epci.get(siren)

    def get(self, territory_id: str) -> Territory | None:
        """The territory with this id, if configured."""
        return self._by_id.get(territory_id)

    def partner(self, partner_id: str) -> Partner | None:
        """The partner with this id (ids are unique across all territories), if configured."""
        return self._partners.get(partner_id)

    def animator_user_ids(self) -> set[int]:
        """Telegram user ids of every animator in the files.

        Accounts bound by invitation are stored, not configured: the bot asks
        `bot.services.animators`, which adds them.
        """
        return {a.telegram_user_id for t in self.territories for a in t.animators
                if a.telegram_user_id is not None}

    def animated_by(self, user_id: int) -> list[Territory]:
        """The territories where this Telegram user is an animator in the files.

        The bot's access checks use `bot.services.animators`, which adds invitations.
        """
        return [t for t in self.territories
                if any(a.telegram_user_id == user_id for a in t.animators)]


# -- loading ---------------------------------------------------------------------------------


def _field_path(loc: Iterable[int | str]) -> str:
    """Pydantic location as written in YAML terms: ``partners[2].zone.communes[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(racine du fichier)"


def _french_message(err: ErrorDetails) -> str:
    """The French wording of one pydantic error (pydantic's own English text otherwise)."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind == "missing":
        return "champ obligatoire manquant"
    if kind == "extra_forbidden":
        return "champ inconnu"
    if kind == "string_type":
        return "texte attendu (écrivez les codes entre guillemets, ex. \"71342\")"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "nombre entier attendu"
    if kind == "greater_than_equal":
        return f"doit être supérieur ou égal à {ctx.get('ge')}"
    if kind == "less_than_equal":
        return f"doit être inférieur ou égal à {ctx.get('le')}"
    if kind == "string_too_short":
        return f"trop court (au moins {ctx.get('min_length')} caractères)"
    if kind == "string_too_long":
        return f"trop long (au plus {ctx.get('max_length')} caractères)"
    if kind == "too_short":
        return f"liste trop courte (au moins {ctx.get('min_length')} élément)"
    if kind == "string_pattern_mismatch":
        return f"format invalide (attendu : {ctx.get('pattern')})"
    if kind == "literal_error":
        return f"valeur invalide {err['input']!r} (valeurs possibles : {ctx.get('expected')})"
    if kind in ("tuple_type", "list_type"):
        return "liste attendue"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "objet attendu (clé: valeur)"
    return str(err["msg"])


def _format_error(path: Path, exc: ValidationError) -> str:
    return "\n".join(
        f"{path}: {_field_path(err['loc'])} : {_french_message(err)}" for err in exc.errors()
    )


def _files(directory: Path) -> Iterable[Path]:
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


@dataclass(frozen=True)
class _GeoCodes:
    """Every EPCI, département and région code present in a geography."""

    epci: frozenset[str]
    departements: frozenset[str]
    regions: frozenset[str]


_GEO_CODES: weakref.WeakKeyDictionary[Geography, _GeoCodes] = weakref.WeakKeyDictionary()


def _geo_codes(geography: Geography) -> _GeoCodes:
    """The code sets of a geography, computed once per instance."""
    codes = _GEO_CODES.get(geography)
    if codes is None:
        # Geography offers lookups but no iteration over its rows; its row list is the only
        # source of which département and région codes exist.
        rows = geography._communes
        codes = _GeoCodes(
            epci=frozenset(c.epci_siren for c in rows if c.epci_siren),
            departements=frozenset(c.departement for c in rows),
            regions=frozenset(c.region for c in rows),
        )
        _GEO_CODES[geography] = codes
    return codes


def _member_problems(path: Path, territory: Territory, geography: Geography) -> list[str]:
    """Member EPCI the geography does not know: their communes would reach no territory.

    EPCI merge (the 2023 list of Territoires d'industrie names some that no longer exist:
    CA du Val de Fensch and CA Portes de France-Thionville are one since), and a firm of a
    commune whose current EPCI is not listed would be told it is in no territory.
    """
    codes = _geo_codes(geography)
    return [f"{path}: epci[{i}] : l'EPCI {m.siren} ({m.name}) est inconnu de la table des "
            "communes (fusionné ou dissous ?) : ses communes ne seraient rattachées à aucun "
            "territoire. Indiquez l'EPCI actuel (`relais route --commune <nom> --theme "
            "autre` le donne)."
            for i, m in enumerate(territory.epci) if m.siren not in codes.epci]


def _zone_problems(path: Path, territory: Territory, geography: Geography) -> list[str]:
    """Zone codes unknown to the geography, or outside the territory (never routed to)."""
    codes = _geo_codes(geography)
    members = {m.siren for m in territory.epci}
    member_communes = [c for siren in members for c in geography.communes_of_epci(siren)]
    territory_deps = {c.departement for c in member_communes}
    territory_regions = {c.region for c in member_communes}
    problems: list[str] = []
    for i, partner in enumerate(territory.partners):
        zone = partner.zone
        if zone is None:
            continue
        where = f"partners[{i}].zone"
        for j, insee in enumerate(zone.communes):
            commune = geography.by_insee(insee)
            if commune is None:
                problems.append(f"{path}: {where}.communes[{j}] : commune inconnue {insee}")
            elif commune.epci_siren not in members:
                problems.append(
                    f"{path}: {where}.communes[{j}] : la commune {insee} ({commune.name}) est "
                    f"hors du territoire (son EPCI {commune.epci_siren} n'en est pas membre)"
                )
        for j, siren in enumerate(zone.epci):
            if siren not in codes.epci:
                problems.append(f"{path}: {where}.epci[{j}] : EPCI inconnu {siren}")
            elif siren not in members:
                problems.append(
                    f"{path}: {where}.epci[{j}] : l'EPCI {siren} ({geography.epci_name(siren)}) "
                    "n'est pas membre du territoire"
                )
        for j, dep in enumerate(zone.departements):
            if dep not in codes.departements:
                problems.append(f"{path}: {where}.departements[{j}] : département inconnu {dep}")
            elif dep not in territory_deps:
                problems.append(
                    f"{path}: {where}.departements[{j}] : aucune commune du territoire "
                    f"dans le département {dep}"
                )
        for j, region in enumerate(zone.regions):
            if region not in codes.regions:
                problems.append(f"{path}: {where}.regions[{j}] : région inconnue {region}")
            elif region not in territory_regions:
                problems.append(
                    f"{path}: {where}.regions[{j}] : aucune commune du territoire "
                    f"dans la région {region}"
                )
    return problems


def load_territories(
    directory: Path, geography: Geography | None = None
) -> TerritoryDirectory:
    """Load every `*.yaml` territory in `directory`; raise TerritoryError naming file and field."""
    if not directory.is_dir():
        raise TerritoryError(f"{directory}: dossier des territoires introuvable")
    territories: list[Territory] = []
    owner: dict[str, str] = {}
    partner_files: dict[str, Path] = {}
    for path in _files(directory):
        try:
            raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
        except yaml.YAMLError as exc:
            raise TerritoryError(f"{path}: YAML illisible : {exc}") from exc
        try:
            territory = Territory.model_validate(raw)
        except ValidationError as exc:
            raise TerritoryError(_format_error(path, exc)) from exc
        for member in territory.epci:
            if member.siren in owner:
                raise TerritoryError(
                    f"{path}: epci : l'EPCI {member.siren} appartient déjà à "
                    f"{owner[member.siren]}"
                )
            owner[member.siren] = territory.id
        if any(t.id == territory.id for t in territories):
            raise TerritoryError(f"{path}: id : identifiant en double {territory.id!r}")
        for i, partner in enumerate(territory.partners):
            first = partner_files.get(partner.id)
            if first is not None:
                raise TerritoryError(
                    f"{path}: partners[{i}].id : identifiant de partenaire en double "
                    f"{partner.id!r} (déjà défini dans {first})"
                )
            partner_files[partner.id] = path
        if geography is None:
            geography = default_geography()  # once per process, cached
        problems = _member_problems(path, territory, geography)
        if any(p.zone is not None for p in territory.partners):
            problems += _zone_problems(path, territory, geography)
        if problems:
            raise TerritoryError("\n".join(problems))
        territories.append(territory)
    return TerritoryDirectory(tuple(territories))
