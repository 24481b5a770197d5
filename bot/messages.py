"""Channel-neutral messages: what a service says, before any channel gives it a form.

A service returns `Message`s made of blocks (paragraphs of styled spans, bullet lists,
label/value facts) and button rows; renderers in `handlers/render.py` turn them into
Telegram HTML or an email's text and HTML parts. No block holds markup: a person's text
is a plain span, so it can never be read as HTML or as a template.

The French texts live in the catalogue (`bot/catalogue/`); `Text` is what a catalogue
entry gives once its values are filled in.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from typing import Any, Literal

__all__ = [
    "BIDI_CONTROLS",
    "Attachment",
    "Block",
    "Bullets",
    "Button",
    "Edit",
    "Facts",
    "Message",
    "Paragraph",
    "Span",
    "Text",
    "lines",
    "plain",
    "without_bidi",
]

Style = Literal["plain", "bold", "italic", "code", "link"]

# Bidirectional embedding, override and isolate controls and the invisible direction marks:
# a value typed by one person must not reorder what another reads ("Trojan Source").
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_NO_BIDI = dict.fromkeys(map(ord, BIDI_CONTROLS))


def without_bidi(text: str) -> str:
    """`text` without its bidirectional controls."""
    return text.translate(_NO_BIDI)


@dataclass(frozen=True, slots=True)
class Span:
    """A run of text with one style; `href` only for links."""

    text: str
    style: Style = "plain"
    href: str | None = None


@dataclass(frozen=True, slots=True)
class Paragraph:
    """Spans read as one paragraph; a span may hold line breaks."""

    spans: tuple[Span, ...]


@dataclass(frozen=True, slots=True)
class Bullets:
    """A list whose items are runs of spans."""

    items: tuple[tuple[Span, ...], ...]


@dataclass(frozen=True, slots=True)
class Facts:
    """Label / value rows (a need's summary, a firm's facts)."""

    rows: tuple[tuple[str, tuple[Span, ...]], ...]


Block = Paragraph | Bullets | Facts


@dataclass(frozen=True, slots=True)
class Text:
    """Blocks of text without buttons: a catalogue entry filled in, or several joined."""

    blocks: tuple[Block, ...] = ()

    def __add__(self, other: Text) -> Text:
        """Join two texts; the second starts a new paragraph."""
        return Text(self.blocks + other.blocks)

    def __bool__(self) -> bool:
        return bool(self.blocks)

    def plain(self) -> str:
        """The text without styles (logs, tests, email subjects)."""
        return "\n\n".join(_block_plain(block) for block in self.blocks)

    def inline(self) -> tuple[Span, ...]:
        """The spans of a one-paragraph text, to insert into another entry."""
        spans: list[Span] = []
        for index, block in enumerate(self.blocks):
            if index:
                spans.append(Span("\n"))
            if isinstance(block, Paragraph):
                spans.extend(block.spans)
            else:
                spans.append(Span(_block_plain(block)))
        return tuple(spans)


def lines(*texts: Text) -> Text:
    """Texts as the lines of one paragraph (where `+` would start a new paragraph)."""
    spans: list[Span] = []
    for index, text in enumerate(t for t in texts if t):
        if index:
            spans.append(Span("\n"))
        spans.extend(text.inline())
    return Text((Paragraph(tuple(spans)),)) if spans else Text()


def plain(value: object) -> Text:
    """A person's or a record's text as one plain paragraph (never read as markup)."""
    return Text((Paragraph((Span(str(value)),)),))


@dataclass(frozen=True, slots=True)
class Button:
    """An inline button: what the person reads and the short data it sends back."""

    label: str
    data: str


@dataclass(frozen=True, slots=True)
class Edit:
    """Replace a message already sent in the chat (a pressed button marked as chosen).

    `original` is the sent message as the channel gave it back (Telegram's own HTML of
    that message), kept verbatim above the new text; it never comes from a person.
    """

    message_id: int
    original: str | None = None


@dataclass(frozen=True, slots=True)
class Attachment:
    """A photo or a document a person sent, passed on as the channel knows it.

    On Telegram `file_id` lets the bot send the same file again without downloading it;
    `name` and `size` describe it where the file itself cannot follow (an email). A file
    that came by email has no Telegram id: its bytes (`data`) are uploaded instead.
    """

    kind: Literal["photo", "document"]
    file_id: str
    name: str = ""
    size: int = 0
    mime: str = ""
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """A message for a person, on whatever channel reaches them."""

    text: Text
    buttons: tuple[tuple[Button, ...], ...] = ()
    edit: Edit | None = None
    # A PNG sent as a photo, `text` being its caption (1,024 characters at most).
    photo: bytes | None = None
    # A person's photo or document relayed to another (`text` is then its caption).
    attachment: Attachment | None = None
    # An outbox row queued by a version before channel-neutral messages holds Telegram
    # HTML: read back as such, so an upgrade loses nothing in flight. Nothing writes it.
    legacy_html: str | None = None

    def with_buttons(self, buttons: tuple[tuple[Button, ...], ...]) -> Message:
        """The same message with other buttons."""
        return replace(self, buttons=buttons)

    @property
    def edit_message_id(self) -> int | None:
        """The message this one replaces, if it is an edit."""
        return self.edit.message_id if self.edit is not None else None

    def plain(self) -> str:
        """The text without styles."""
        return self.text.plain() if self.legacy_html is None else self.legacy_html

    def to_payload(self) -> dict[str, Any]:
        """Serialise for the outbox (JSON)."""
        payload: dict[str, Any] = {"blocks": [_block_json(b) for b in self.text.blocks]}
        if self.photo is not None:
            payload["photo"] = base64.b64encode(self.photo).decode("ascii")
        if self.buttons:
            payload["buttons"] = [[[b.label, b.data] for b in row] for row in self.buttons]
        if self.edit is not None:
            payload["edit"] = [self.edit.message_id, self.edit.original]
        if self.attachment is not None:
            a = self.attachment
            payload["attachment"] = [a.kind, a.file_id, a.name, a.size, a.mime]
            if a.data is not None:
                payload["attachment_data"] = base64.b64encode(a.data).decode("ascii")
        if self.legacy_html is not None:
            payload["text"] = self.legacy_html
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Message:
        """Rebuild from an outbox payload."""
        rows = tuple(
            tuple(Button(label, data) for label, data in row) for row in payload.get("buttons", ())
        )
        photo = payload.get("photo")
        edit = payload.get("edit")
        upload = payload.get("attachment_data")
        if edit is None and payload.get("edit_message_id") is not None:
            edit = [payload["edit_message_id"], None]
        return cls(
            Text(tuple(_block_from_json(b) for b in payload.get("blocks", ()))),
            rows,
            Edit(edit[0], edit[1]) if edit else None,
            base64.b64decode(photo) if photo else None,
            Attachment(*payload["attachment"], data=base64.b64decode(upload) if upload else None)
            if payload.get("attachment") else None,
            payload.get("text"),
        )


def _spans_plain(spans: tuple[Span, ...]) -> str:
    return "".join(span.text for span in spans)


def _block_plain(block: Block) -> str:
    if isinstance(block, Paragraph):
        return _spans_plain(block.spans)
    if isinstance(block, Bullets):
        return "\n".join(f"• {_spans_plain(item)}" for item in block.items)
    return "\n".join(f"{label} : {_spans_plain(value)}" for label, value in block.rows)


def _spans_json(spans: tuple[Span, ...]) -> list[list[str]]:
    out: list[list[str]] = []
    for span in spans:
        if span.style == "plain":
            out.append([span.text])
        elif span.href is None:
            out.append([span.text, span.style])
        else:
            out.append([span.text, span.style, span.href])
    return out


def _spans_from_json(items: list[list[str]]) -> tuple[Span, ...]:
    return tuple(Span(item[0], *item[1:]) for item in items)  # type: ignore[arg-type]


def _block_json(block: Block) -> dict[str, Any]:
    if isinstance(block, Paragraph):
        return {"p": _spans_json(block.spans)}
    if isinstance(block, Bullets):
        return {"ul": [_spans_json(item) for item in block.items]}
    return {"facts": [[label, _spans_json(value)] for label, value in block.rows]}


def _block_from_json(data: dict[str, Any]) -> Block:
    if "p" in data:
        return Paragraph(_spans_from_json(data["p"]))
    if "ul" in data:
        return Bullets(tuple(_spans_from_json(item) for item in data["ul"]))
    return Facts(tuple((label, _spans_from_json(value)) for label, value in data["facts"]))
