"""Territories (Territoires d'industrie) configured for this deployment, read from YAML."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError, field_validator
from stdnum.fr import siren as stdnum_siren

__all__ = [
    "Animator",
    "Territory",
    "TerritoryDirectory",
    "TerritoryError",
    "load_territories",
]


class TerritoryError(ValueError):
    """A territory file that cannot be loaded; the message names the file and the field."""


class Animator(BaseModel):
    """A chef de projet Territoire d'industrie, reachable on Telegram and by email."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=2, max_length=120)
    email: EmailStr
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


class Territory(BaseModel):
    """A Territoire d'industrie: its member EPCI and its animators."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,31}$")
    name: str = Field(min_length=2)
    epci: tuple[MemberEpci, ...] = Field(min_length=1)
    animators: tuple[Animator, ...] = Field(min_length=1)
    # Working days within which the animator promises the firm a first contact.
    response_days: int = Field(default=5, ge=1, le=30)
    telegram_group_id: int | None = None

    def covers_epci(self, siren: str | None) -> bool:
        """Whether the EPCI with this SIREN is a member of the territory."""
        return siren is not None and any(m.siren == siren for m in self.epci)


@dataclass(frozen=True)
class TerritoryDirectory:
    """All configured territories, indexed by member EPCI."""

    territories: tuple[Territory, ...]

    def for_epci(self, siren: str | None) -> Territory | None:
        """The territory whose members include this EPCI, if any."""
        if siren is None:
            return None
        for territory in self.territories:
            if territory.covers_epci(siren):
                return territory
        return None

    def get(self, territory_id: str) -> Territory | None:
        """The territory with this id, if configured."""
        return next((t for t in self.territories if t.id == territory_id), None)

    def animator_user_ids(self) -> set[int]:
        """Telegram user ids of every animator (they get the animator's commands)."""
        return {a.telegram_user_id for t in self.territories for a in t.animators
                if a.telegram_user_id is not None}


def _format_error(path: Path, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{path}: champ {where} : {err['msg']}")
    return "\n".join(parts)


def _files(directory: Path) -> Iterable[Path]:
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def load_territories(directory: Path) -> TerritoryDirectory:
    """Load every `*.yaml` territory in `directory`; raise TerritoryError naming file and field."""
    if not directory.is_dir():
        raise TerritoryError(f"{directory}: dossier des territoires introuvable")
    territories: list[Territory] = []
    owner: dict[str, str] = {}
    for path in _files(directory):
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise TerritoryError(f"{path}: YAML illisible : {exc}") from exc
        try:
            territory = Territory.model_validate(raw)
        except ValidationError as exc:
            raise TerritoryError(_format_error(path, exc)) from exc
        for member in territory.epci:
            if member.siren in owner:
                raise TerritoryError(
                    f"{path}: champ epci : l'EPCI {member.siren} appartient déjà à "
                    f"{owner[member.siren]}"
                )
            owner[member.siren] = territory.id
        if any(t.id == territory.id for t in territories):
            raise TerritoryError(f"{path}: champ id : identifiant en double {territory.id!r}")
        territories.append(territory)
    return TerritoryDirectory(tuple(territories))
