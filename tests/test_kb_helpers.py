"""Helpers shared by the knowledge-base tests: write small programme cards to a folder."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from knowledge.cards import CARDS_DIR

BASE_FIELDS: dict[str, Any] = {
    "title": "Aide test au recrutement de soudeurs",
    "aliases": ["ATRS"],
    "themes": ["recrutement"],
    "summary": "Une aide fictive pour recruter des soudeurs dans les usines du territoire.",
    "for_whom": "Les PME industrielles qui recrutent.",
    "what_you_get": "Une prime fictive.",
    "conditions": ["Être une PME", "Recruter en CDI"],
    "how_to_apply": "Contactez France Travail.",
    "contact": ["france_travail"],
    "keywords": ["trouver des soudeurs", "pénurie de soudeurs"],
    "sources": ["https://example.org/aide"],
    "valid_as_of": "2026-01-15",
}


def card_text(card_id: str, body: str = "Corps de la fiche.", **fields: Any) -> str:
    """A card file's text: the base fields, overridden by ``fields`` (None removes one)."""
    data: dict[str, Any] = {"id": card_id, **BASE_FIELDS}
    for key, value in fields.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    front = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    return f"---\n{front}---\n\n{body}\n"


def write_card(folder: Path, card_id: str, body: str = "Corps de la fiche.", **fields: Any) -> Path:
    """Write ``<folder>/<card_id>.md`` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{card_id}.md"
    path.write_text(card_text(card_id, body, **fields), encoding="utf-8")
    return path


def line_of(path: Path, prefix: str) -> int:
    """1-based number of the first line of a file that starts with ``prefix``."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith(prefix):
            return number
    raise AssertionError(f"{prefix!r} not found in {path}")


def copy_shipped_cards(target: Path) -> Path:
    """Copy the shipped cards into ``target`` (for reload tests) and return it."""
    shutil.copytree(CARDS_DIR, target)
    return target
