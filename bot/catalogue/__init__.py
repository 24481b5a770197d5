"""The French catalogue: every text a person reads, by audience, in one reviewable place.

Entries live in YAML files in one folder per audience (`firm/`, `animator/`, `partner/`,
`common/`; one file per feature, e.g. `firm/intake.yaml`), as `key: template`; keys are
unique within an audience. A template is French
text with a tiny markup that every channel can render:

- `**words**` bold, `__words__` italic;
- `{name}` a value filled in by the caller, always inserted as plain text (a person's text
  is never read as markup), without bidirectional controls (a value typed by someone must
  not reorder what another person reads: "Trojan Source"); a `Text` value keeps its own
  styles;
- a blank line starts a new paragraph; `{{` and `}}` are literal braces.

`t("firm.need_recorded", reference="TI-2026-0042")` gives a `Text`; `label("firm.btn_firm_yes")`
gives a button label. `examples.yaml` (and each file's `_examples`) holds realistic values
for every placeholder, used by the test that renders every entry through both renderers.
"""

from __future__ import annotations

import string
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from bot.messages import Paragraph, Span, Style, Text, without_bidi

__all__ = ["AUDIENCES", "CatalogueError", "entries", "examples", "label", "t", "template"]

AUDIENCES = ("common", "firm", "animator", "partner")
_DIR = Path(__file__).parent
_MARKERS = {"**": "bold", "__": "italic"}
_FORMATTER = string.Formatter()


class CatalogueError(KeyError):
    """An unknown key, or a value missing for a placeholder."""


@cache
def entries() -> dict[str, str]:
    """Every entry, as `audience.key` → template."""
    found: dict[str, str] = {}
    for audience in AUDIENCES:
        for path in sorted((_DIR / audience).glob("*.yaml")):
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            for key, value in data.items():
                if key == "_examples":
                    continue
                name = f"{audience}.{key}"
                if not isinstance(value, str):
                    raise CatalogueError(f"{audience}/{path.name}: {key} is not a text")
                if name in found:
                    raise CatalogueError(f"{audience}/{path.name}: {key} defined twice")
                found[name] = value.rstrip("\n")
    return found


@cache
def examples() -> dict[str, Any]:
    """Realistic values for every placeholder name (for tests and reviews).

    `examples.yaml` holds the common ones; a feature file may add its own under `_examples`.
    """
    found = dict(yaml.safe_load((_DIR / "examples.yaml").read_text(encoding="utf-8")) or {})
    for path in sorted(_DIR.glob("*/*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        found.update(data.get("_examples") or {})
    return found


def template(key: str) -> str:
    """The raw template of an entry."""
    try:
        return entries()[key]
    except KeyError:
        raise CatalogueError(f"no catalogue entry {key!r}") from None


def label(key: str) -> str:
    """A short text without markup or values: a button label, a status word."""
    return template(key)


def placeholders(key: str) -> set[str]:
    """The value names an entry needs."""
    return {name for _, name, _, _ in _FORMATTER.parse(template(key)) if name}


def t(key: str, /, **values: object) -> Text:
    """The entry filled in with `values`, as rich text."""
    return Text(tuple(_paragraph(part, values, key) for part in _parsed(key)))


@cache
def _parsed(key: str) -> tuple[tuple[tuple[Style, str], ...], ...]:
    """Paragraphs of (style, template piece), parsed once per entry."""
    paragraphs = []
    for raw in template(key).split("\n\n"):
        pieces: list[tuple[Style, str]] = []
        style: Style = "plain"
        rest = raw
        while rest:
            cut = min(
                ((rest.find(m), m) for m in _MARKERS if rest.find(m) >= 0),
                default=None,
            )
            if cut is None:
                pieces.append((style, rest))
                break
            index, marker = cut
            if index:
                pieces.append((style, rest[:index]))
            style = "plain" if style == _MARKERS[marker] else _MARKERS[marker]  # type: ignore[assignment]
            rest = rest[index + len(marker):]
        paragraphs.append(tuple(pieces))
    return tuple(paragraphs)


def _paragraph(pieces: tuple[tuple[Style, str], ...], values: dict[str, object],
               key: str) -> Paragraph:
    spans: list[Span] = []
    for style, piece in pieces:
        for literal, name, spec, conversion in _FORMATTER.parse(piece):
            if literal:
                spans.append(Span(literal, style))
            if name is None:
                continue
            if name not in values:
                raise CatalogueError(f"{key}: no value for {{{name}}}")
            value = values[name]
            if isinstance(value, Text):
                spans.extend(
                    Span(without_bidi(s.text), s.style, s.href) if s.style != "plain"
                    else Span(without_bidi(s.text), style)
                    for s in value.inline()
                )
            else:
                shown = _FORMATTER.format_field(
                    _FORMATTER.convert_field(value, conversion), spec or ""
                )
                spans.append(Span(without_bidi(shown), style))
    return Paragraph(tuple(_merge(spans)))


def _merge(spans: list[Span]) -> list[Span]:
    """Join neighbouring spans of one style (smaller payloads, simpler renderings)."""
    merged: list[Span] = []
    for span in spans:
        if not span.text:
            continue
        if merged and merged[-1].style == span.style and span.href is None \
                and merged[-1].href is None:
            merged[-1] = Span(merged[-1].text + span.text, span.style)
        else:
            merged.append(span)
    return merged
