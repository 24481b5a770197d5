"""Programme cards: Markdown files with a YAML front matter, loaded and checked.

A card is ``knowledge/cards/<id>.md``::

    ---
    id: vte
    title: Volontariat territorial en entreprise
    ...
    ---
    Markdown body.

Loading never fails as a whole: a broken card is reported as a :class:`CardProblem`
(``file:line: message``) and skipped, the other cards stay available.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from knowledge.taxonomy import PARTNER_KINDS, THEMES
from knowledge.text import fold

__all__ = [
    "CARDS_DIR",
    "Card",
    "CardError",
    "CardProblem",
    "CardSet",
    "check_cards",
    "load_card",
    "load_cards",
]

CARDS_DIR = Path(__file__).resolve().parent / "cards"

REQUIRED_FIELDS: tuple[str, ...] = (
    "id",
    "title",
    "themes",
    "summary",
    "for_whom",
    "what_you_get",
    "conditions",
    "how_to_apply",
    "contact",
    "keywords",
    "sources",
    "valid_as_of",
)
OPTIONAL_FIELDS: tuple[str, ...] = ("aliases", "ends", "successor", "uncertain")
KNOWN_FIELDS: frozenset[str] = frozenset(REQUIRED_FIELDS + OPTIONAL_FIELDS)
TEXT_FIELDS: tuple[str, ...] = ("title", "summary", "for_whom", "what_you_get", "how_to_apply")
LIST_FIELDS: tuple[str, ...] = (
    "aliases",
    "themes",
    "conditions",
    "contact",
    "keywords",
    "sources",
    "uncertain",
)
NON_EMPTY_LISTS: frozenset[str] = frozenset({"themes", "contact", "keywords", "sources"})

SUMMARY_MIN = 30
SUMMARY_MAX = 500
ID_PATTERN = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")
URL_PATTERN = re.compile(
    r"^https?://"
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"  # host with a dot and a TLD
    r"(?::\d{1,5})?"  # optional port
    r"(?:[/?#][^\s<>\"]*)?$",  # optional path, query, fragment; no spaces
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CardProblem:
    """A problem found in a card file, located by line (1-based)."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        """Render as ``file:line: message``, the format editors and CI understand."""
        return f"{self.path}:{self.line}: {self.message}"


class CardError(ValueError):
    """Raised by :func:`load_card` when a card cannot be used; carries every problem."""

    def __init__(self, problems: list[CardProblem]) -> None:
        """Keep the problems and build a readable message from them."""
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Card:
    """One programme card, as written by the editors."""

    id: str
    title: str
    aliases: tuple[str, ...]
    themes: tuple[str, ...]
    summary: str
    for_whom: str
    what_you_get: str
    conditions: tuple[str, ...]
    how_to_apply: str
    contact: tuple[str, ...]
    keywords: tuple[str, ...]
    sources: tuple[str, ...]
    valid_as_of: date
    ends: date | None = None
    successor: str | None = None
    uncertain: tuple[str, ...] = ()
    body: str = ""
    path: Path = field(default=Path(), compare=False)
    line_of: dict[str, int] = field(default_factory=dict, compare=False, repr=False, hash=False)

    def is_current(self, today: date) -> bool:
        """True while the programme runs: False once its ``ends`` date has passed."""
        return self.ends is None or today <= self.ends

    def line(self, name: str) -> int:
        """Line of a field in the file (1 when unknown), for error messages."""
        return self.line_of.get(name, 1)


@dataclass
class CardSet:
    """The usable cards of a folder and the problems of the ones that were skipped."""

    cards: list[Card] = field(default_factory=list)
    problems: list[CardProblem] = field(default_factory=list)

    def by_id(self) -> dict[str, Card]:
        """Index the cards by id."""
        return {card.id: card for card in self.cards}


# -- parsing --------------------------------------------------------------------------------


def _split_front_matter(text: str) -> tuple[str, str, int] | None:
    """Split a card into (front matter, body, line of the body); None without front matter."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            return "\n".join(lines[1:i]), "\n".join(lines[i + 1 :]), i + 2
    return None


def _as_date(value: Any) -> date | None:
    """Turn a YAML value into a date, or None when it is not one."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def _is_text_list(value: Any) -> bool:
    """True for a list whose items are all non-empty strings."""
    return isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)


def _parse(path: Path) -> tuple[Card | None, list[CardProblem]]:
    """Parse and check one card on its own (cross-card checks are done by the caller)."""
    problems: list[CardProblem] = []

    def report(line: int, message: str) -> None:
        problems.append(CardProblem(path, line, message))

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        report(1, f"fichier illisible : {exc}")
        return None, problems
    split = _split_front_matter(text)
    if split is None:
        report(1, "en-tête YAML absent : la fiche doit commencer par « --- » et le refermer")
        return None, problems
    front, body, _body_line = split
    offset = 2  # the front matter starts on the second line of the file
    try:
        root = yaml.compose(front, Loader=yaml.SafeLoader)
        data = yaml.safe_load(front)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + offset if mark is not None else 1
        report(line, f"YAML invalide : {exc.problem or exc}")
        return None, problems
    except yaml.YAMLError as exc:
        report(1, f"YAML invalide : {exc}")
        return None, problems
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        report(offset, "l'en-tête YAML doit être une suite de champs « nom: valeur »")
        return None, problems

    line_of: dict[str, int] = {}
    for key_node, value_node in root.value:
        key = str(key_node.value)
        line = key_node.start_mark.line + offset
        if key in line_of:
            report(line, f"champ « {key} » en double (déjà ligne {line_of[key]})")
        line_of.setdefault(key, line)
        if isinstance(value_node, yaml.SequenceNode):
            for i, item in enumerate(value_node.value):
                line_of[f"{key}.{i}"] = item.start_mark.line + offset

    def at(name: str) -> int:
        return line_of.get(name, 1)

    for key in data:
        if str(key) not in KNOWN_FIELDS:
            report(at(str(key)), f"champ inconnu « {key} »")
    for name in REQUIRED_FIELDS:
        if name not in data or data[name] is None or data[name] == "":
            report(at(name) if name in data else 1, f"champ obligatoire « {name} » manquant")

    # text fields
    for name in TEXT_FIELDS:
        value = data.get(name)
        if value is not None and not (isinstance(value, str) and value.strip()):
            report(at(name), f"« {name} » doit être un texte non vide")
    # list fields
    for name in LIST_FIELDS:
        value = data.get(name)
        if value is None:
            continue
        if not _is_text_list(value):
            report(at(name), f"« {name} » doit être une liste de textes")
        elif name in NON_EMPTY_LISTS and not value:
            report(at(name), f"« {name} » ne doit pas être vide")

    card_id = data.get("id")
    if card_id is not None:
        if not isinstance(card_id, str) or not ID_PATTERN.match(card_id):
            report(at("id"), f"identifiant invalide « {card_id} » (minuscules, chiffres et _)")
        elif card_id != path.stem:
            report(
                at("id"),
                f"l'identifiant « {card_id} » ne correspond pas au nom du fichier « {path.name} »",
            )
    successor = data.get("successor")
    if successor is not None and not (isinstance(successor, str) and ID_PATTERN.match(successor)):
        report(at("successor"), f"successeur invalide « {successor} » (identifiant de fiche)")
    elif successor is not None and successor == card_id:
        report(at("successor"), "une fiche ne peut pas être son propre successeur")

    summary = data.get("summary")
    if isinstance(summary, str) and summary.strip():
        size = len(summary.strip())
        if size < SUMMARY_MIN:
            report(at("summary"), f"résumé trop court ({size} caractères, minimum {SUMMARY_MIN})")
        elif size > SUMMARY_MAX:
            report(at("summary"), f"résumé trop long ({size} caractères, maximum {SUMMARY_MAX})")

    for i, theme in enumerate(data.get("themes") or []):
        if isinstance(theme, str) and theme not in THEMES:
            report(
                at(f"themes.{i}"),
                f"thème inconnu « {theme} » (connus : {', '.join(THEMES)})",
            )
    for i, kind in enumerate(data.get("contact") or []):
        if isinstance(kind, str) and kind not in PARTNER_KINDS:
            report(
                at(f"contact.{i}"),
                f"type de contact inconnu « {kind} » (connus : {', '.join(PARTNER_KINDS)})",
            )
    sources = data.get("sources")
    if isinstance(sources, list):
        for i, url in enumerate(sources):
            if isinstance(url, str) and not URL_PATTERN.match(url.strip()):
                report(at(f"sources.{i}"), f"URL invalide « {url} »")

    valid_as_of = _as_date(data.get("valid_as_of"))
    if data.get("valid_as_of") is not None and valid_as_of is None:
        report(
            at("valid_as_of"),
            f"date invalide « {data.get('valid_as_of')} » pour « valid_as_of » (AAAA-MM-JJ)",
        )
    ends = _as_date(data.get("ends"))
    if data.get("ends") is not None and ends is None:
        report(at("ends"), f"date invalide « {data.get('ends')} » pour « ends » (AAAA-MM-JJ)")
    # ``valid_as_of`` is the day the card was checked: an ``ends`` before it is normal for an
    # archived programme (the card then says it has ended). What is checked is plausibility.
    if valid_as_of is not None and valid_as_of.year < 2000:
        report(at("valid_as_of"), f"date « valid_as_of » invraisemblable ({valid_as_of})")
    if valid_as_of is not None and valid_as_of > date.today() + timedelta(days=1):
        report(
            at("valid_as_of"),
            f"la date « valid_as_of » ({valid_as_of.isoformat()}) est dans le futur",
        )
    if ends is not None and valid_as_of is not None and ends.year < 2000:
        report(at("ends"), f"date de fin « ends » invraisemblable ({ends})")
    if successor and data.get("ends") is None:
        report(
            at("successor"),
            "« successor » sans date de fin « ends » : indiquez quand le dispositif a pris fin",
        )

    if not body.strip():
        report(_body_line if _body_line <= len(text.splitlines()) else 1, "corps Markdown vide")

    if problems:
        return None, problems

    def texts(name: str) -> tuple[str, ...]:
        return tuple(v.strip() for v in data.get(name) or [])

    assert valid_as_of is not None  # checked above: required and valid
    card = Card(
        id=str(card_id),
        title=str(data["title"]).strip(),
        aliases=texts("aliases"),
        themes=texts("themes"),
        summary=str(data["summary"]).strip(),
        for_whom=str(data["for_whom"]).strip(),
        what_you_get=str(data["what_you_get"]).strip(),
        conditions=texts("conditions"),
        how_to_apply=str(data["how_to_apply"]).strip(),
        contact=texts("contact"),
        keywords=texts("keywords"),
        sources=tuple(s.strip() for s in data.get("sources") or []),
        valid_as_of=valid_as_of,
        ends=ends,
        successor=successor,
        uncertain=texts("uncertain"),
        body=body.strip(),
        path=path,
        line_of=line_of,
    )
    return card, []


def load_card(path: Path) -> Card:
    """Load one card file; raise :class:`CardError` (with every problem) when it is broken."""
    card, problems = _parse(Path(path))
    if card is None:
        raise CardError(problems)
    return card


# -- whole folder -----------------------------------------------------------------------


def _name_key(text: str) -> str:
    """Compare names ignoring case, accents, punctuation and spacing."""
    return " ".join(re.split(r"[^a-z0-9]+", fold(text))).strip()


def _cross_check(cards: Iterable[Card]) -> tuple[list[Card], list[CardProblem]]:
    """Check what involves several cards: unique ids and names, existing successors."""
    problems: list[CardProblem] = []
    kept: list[Card] = []
    seen_ids: dict[str, Card] = {}
    for card in cards:
        other = seen_ids.get(card.id)
        if other is not None:
            problems.append(
                CardProblem(
                    card.path,
                    card.line("id"),
                    f"identifiant « {card.id} » déjà utilisé par {other.path}:{other.line('id')}",
                )
            )
            continue
        seen_ids[card.id] = card
        kept.append(card)

    # names: id, title and aliases must designate a single card
    owner: dict[str, tuple[Card, str]] = {}
    for card in kept:
        names: list[tuple[str, str, int]] = [
            (card.id.replace("_", " "), "id", card.line("id")),
            (card.title, "title", card.line("title")),
        ]
        names += [(a, "alias", card.line(f"aliases.{i}")) for i, a in enumerate(card.aliases)]
        own: set[str] = set()
        for name, kind, line in names:
            key = _name_key(name)
            if not key:
                continue
            if key in own:  # a spelling variant of one of the card's own names: harmless
                continue
            own.add(key)
            taken = owner.get(key)
            if taken is not None and taken[0].id != card.id:
                first, _first_kind = taken
                what = {"id": "l'identifiant", "title": "le titre", "alias": "l'alias"}[kind]
                problems.append(
                    CardProblem(
                        card.path,
                        line,
                        f"{what} « {name} » est déjà un nom de la fiche « {first.id} » "
                        f"({first.path}) : chaque nom doit désigner une seule fiche",
                    )
                )
                continue
            owner[key] = (card, kind)

    ids = {card.id for card in kept}
    for card in kept:
        if card.successor is not None and card.successor not in ids:
            problems.append(
                CardProblem(
                    card.path,
                    card.line("successor"),
                    f"successeur « {card.successor} » introuvable parmi les fiches",
                )
            )
    return kept, problems


def load_cards(directory: Path | None = None) -> CardSet:
    """Load every ``*.md`` card of a folder: good cards are kept, broken ones reported."""
    folder = Path(directory) if directory is not None else CARDS_DIR
    problems: list[CardProblem] = []
    parsed: list[Card] = []
    if not folder.is_dir():
        return CardSet([], [CardProblem(folder, 1, "dossier de fiches introuvable")])
    for path in sorted(folder.glob("*.md")):
        if path.name.startswith(("_", ".")) or path.name.lower() == "readme.md":
            continue
        card, card_problems = _parse(path)
        problems.extend(card_problems)
        if card is not None:
            parsed.append(card)
    kept, cross = _cross_check(parsed)
    problems.extend(cross)
    problems.sort(key=lambda p: (str(p.path), p.line))
    return CardSet(kept, problems)


def check_cards(directory: Path | None = None) -> list[CardProblem]:
    """Every problem of a card folder, sorted by file and line (empty when all is well)."""
    return load_cards(directory).problems
