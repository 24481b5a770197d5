"""Renderers: a channel-neutral `Message` in the form each channel accepts.

Telegram takes a small HTML subset (`<b>`, `<i>`, `<code>`, `<a href>`), at most 4,096
characters of text after entity parsing (1,024 for a photo's caption); an email has a
plain-text part and an HTML part. Spans are escaped here, once, so no text from a person
can become markup on either channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from bot.messages import Bullets, Facts, Message, Paragraph, Span, Text

__all__ = [
    "CAPTION_LIMIT",
    "TEXT_LIMIT",
    "EmailBody",
    "email_body",
    "telegram_html",
    "telegram_text",
]

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
_ELLIPSIS = "…"
_TAGS = {"bold": "b", "italic": "i", "code": "code"}


@dataclass(frozen=True, slots=True)
class EmailBody:
    """The two parts of an email body."""

    text: str
    html: str


def _span_html(span: Span) -> str:
    body = escape(span.text, quote=False)
    if span.style == "link" and span.href:
        return f'<a href="{escape(span.href, quote=True)}">{body}</a>'
    tag = _TAGS.get(span.style)
    return f"<{tag}>{body}</{tag}>" if tag else body


def _spans_html(spans: tuple[Span, ...]) -> str:
    return "".join(_span_html(s) for s in spans)


def _visible(spans: tuple[Span, ...]) -> int:
    # Telegram counts the text after entity parsing, in UTF-16 code units.
    return sum(len(s.text.encode("utf-16-le")) // 2 for s in spans)


def _cut(spans: tuple[Span, ...], budget: int) -> tuple[Span, ...]:
    """The first `budget` UTF-16 units of the spans, styles kept, with an ellipsis."""
    out: list[Span] = []
    left = budget - 1
    for span in spans:
        units = len(span.text.encode("utf-16-le")) // 2
        if units <= left:
            out.append(span)
            left -= units
            continue
        text = span.text.encode("utf-16-le")[: max(left, 0) * 2].decode("utf-16-le", "ignore")
        out.append(Span(text + _ELLIPSIS, span.style, span.href))
        return tuple(out)
    return tuple(out)


def _block_lines(block: Paragraph | Bullets | Facts) -> list[tuple[Span, ...]]:
    """A block as lines of spans (Telegram has no block elements)."""
    if isinstance(block, Paragraph):
        return [block.spans]
    if isinstance(block, Bullets):
        return [(Span("• "), *item) for item in block.items]
    return [(Span(label, "bold"), Span(" : "), *value) for label, value in block.rows]


def telegram_text(text: Text, *, limit: int = TEXT_LIMIT) -> str:
    """Telegram HTML for a text, cut (styles kept) to fit `limit` visible characters."""
    spans: list[Span] = []
    for index, block in enumerate(text.blocks):
        if index:
            spans.append(Span("\n\n"))
        for number, line in enumerate(_block_lines(block)):
            if number:
                spans.append(Span("\n"))
            spans.extend(line)
    flat = tuple(spans)
    if _visible(flat) > limit:
        flat = _cut(flat, limit)
    return _spans_html(flat)


def telegram_html(message: Message) -> str:
    """The HTML text (or caption) Telegram receives for a message."""
    if message.legacy_html is not None:
        return message.legacy_html[:CAPTION_LIMIT] if message.photo else message.legacy_html
    media = message.photo is not None or message.attachment is not None
    limit = CAPTION_LIMIT if media else TEXT_LIMIT
    body = telegram_text(message.text, limit=limit)
    if message.edit is not None and message.edit.original:
        # A pressed button: the question stays, the choice is marked below it.
        return f"{message.edit.original}\n\n{body}"
    return body


def email_body(text: Text) -> EmailBody:
    """The plain-text and HTML parts of an email for a text."""
    plain_parts: list[str] = []
    html_parts: list[str] = []
    for block in text.blocks:
        if isinstance(block, Paragraph):
            plain_parts.append("".join(_span_plain(s) for s in block.spans))
            html_parts.append("<p>" + _spans_html(block.spans).replace("\n", "<br>\n") + "</p>")
        elif isinstance(block, Bullets):
            plain_parts.append("\n".join(
                "- " + "".join(_span_plain(s) for s in item) for item in block.items))
            html_parts.append("<ul>" + "".join(
                f"<li>{_spans_html(item)}</li>" for item in block.items) + "</ul>")
        else:
            plain_parts.append("\n".join(
                f"{label} : " + "".join(_span_plain(s) for s in value)
                for label, value in block.rows))
            html_parts.append("<table>" + "".join(
                f"<tr><th align=\"left\">{escape(label, quote=False)}</th>"
                f"<td>{_spans_html(value)}</td></tr>" for label, value in block.rows)
                + "</table>")
    return EmailBody("\n\n".join(plain_parts) + "\n", "\n".join(html_parts))


def _span_plain(span: Span) -> str:
    if span.style == "link" and span.href and span.href != span.text:
        return f"{span.text} <{span.href}>"
    return span.text
