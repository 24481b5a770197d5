"""Every French text of the catalogue, filled with realistic values and rendered for both
channels, read as a reviewer would: French, vouvoiement, no doubled words, no "(s)", no
nested guillemets, Telegram's rules kept."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bot.catalogue import AUDIENCES, entries, examples, placeholders, t
from bot.messages import Message
from handlers.render import TEXT_LIMIT, email_body, telegram_html

ROOT = Path(__file__).resolve().parents[1]
KEYS = sorted(entries())

# English words that never belong in a French sentence (internal keys included).
ENGLISH = {
    "the", "and", "with", "from", "your", "you", "please", "error", "routed", "routing",
    "status", "need", "needs", "partner", "partners", "forbidden", "submitted", "pending",
    "acknowledged", "in_progress", "closed", "none", "null", "true", "false", "todo",
    "animator", "firm", "meeting", "reminder", "found", "failed", "delivered", "unknown",
}
# Second person singular: a business owner is addressed as "vous".
TUTOIEMENT = re.compile(r"\b(tu|toi|ton|tes|t'as|t'es)\b", re.IGNORECASE)
DOUBLED = re.compile(r"\b(\w[\w'-]*(?:\s+\w[\w'-]*){0,5})\s*[:,]?\s+\1\b", re.IGNORECASE)
WORD = re.compile(r"[A-Za-zÀ-ÿ_]+")


def _filled(key: str) -> str:
    values = examples()
    missing = placeholders(key) - set(values)
    assert not missing, f"{key}: no example value for {sorted(missing)} in examples.yaml"
    return t(key, **{name: values[name] for name in placeholders(key)}).plain()


class _TelegramHTML(HTMLParser):
    """Checks the subset Telegram accepts: b, i, code, a href; balanced."""

    ALLOWED = frozenset({"b", "i", "u", "s", "code", "pre", "a", "tg-spoiler", "blockquote"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.ALLOWED:
            self.errors.append(f"unsupported tag <{tag}>")
        if tag == "a" and not dict(attrs).get("href"):
            self.errors.append("link without href")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unbalanced </{tag}>")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.mark.parametrize("key", KEYS)
def test_every_entry_reads_as_french_to_a_person(key: str) -> None:
    text = _filled(key)
    assert text.strip(), f"{key} is empty"
    words = {w.lower() for w in WORD.findall(text)}
    assert not words & ENGLISH, f"{key}: English or internal words {sorted(words & ENGLISH)}"
    assert not TUTOIEMENT.search(text), f"{key}: tutoiement in {text!r}"
    assert "(s)" not in text, f"{key}: '(s)' in {text!r}"
    doubled = DOUBLED.search(text)
    assert doubled is None or doubled.group(1).isdigit(), f"{key}: doubled {doubled.group(0)!r}"
    depth = 0
    for char in text:
        if char == "«":
            depth += 1
            assert depth == 1, f"{key}: nested guillemets in {text!r}"
        elif char == "»":
            depth -= 1
    audience = key.split(".", 1)[0]
    if audience in {"firm", "partner"}:
        assert "animateur" not in text.lower(), f"{key}: say 'chef de projet' to a {audience}"
        assert "NOTRe" not in text, f"{key}: administrative jargon for a {audience}"


@pytest.mark.parametrize("key", KEYS)
def test_every_entry_renders_for_telegram_and_email(key: str) -> None:
    values = examples()
    text = t(key, **{name: values[name] for name in placeholders(key)})
    html = telegram_html(Message(text))
    parser = _TelegramHTML()
    parser.feed(html)
    parser.close()
    assert not parser.errors, f"{key}: {parser.errors} in {html!r}"
    assert not parser.stack, f"{key}: unclosed {parser.stack}"
    visible = "".join(parser.text)
    assert 0 < len(visible.encode("utf-16-le")) // 2 <= TEXT_LIMIT
    assert "**" not in visible and "__" not in visible, f"{key}: markup left in {visible!r}"
    body = email_body(text)
    assert body.text.strip() and not re.search(r"</?(b|i|p|br|a|code|ul|li)\b", body.text)
    assert body.html.startswith(("<p>", "<ul>", "<table>"))


def test_values_are_never_read_as_markup() -> None:
    hostile = "<b>**gras**</b> & {reference} __x__"
    html = telegram_html(Message(t("firm.need_recorded", reference=hostile)))
    assert "&lt;b&gt;**gras**&lt;/b&gt; &amp; {reference} __x__" in html
    assert email_body(t("firm.need_recorded", reference=hostile)).html.count("<b>") == 1


def test_a_long_text_is_cut_for_telegram_with_its_styles_kept() -> None:
    html = telegram_html(Message(t("firm.need_recorded", reference="x" * 5000)))
    parser = _TelegramHTML()
    parser.feed(html)
    assert not parser.errors and not parser.stack
    assert len("".join(parser.text)) == TEXT_LIMIT and html.endswith("…</b>")


def test_every_key_the_code_names_exists() -> None:
    """`t("…")` and `label("…")` with a literal key: the entry must exist."""
    known = set(entries())
    pattern = re.compile(r"""\b(?:t|label)\(\s*f?["']([a-z]+\.[a-z0-9_]+)["']""")
    missing = []
    for folder in ("bot", "handlers"):
        for path in (ROOT / folder).rglob("*.py"):
            for key in pattern.findall(path.read_text(encoding="utf-8")):
                if key not in known:
                    missing.append(f"{path.relative_to(ROOT)}: {key}")
    assert not missing, missing


def test_every_audience_has_its_folder() -> None:
    folder = ROOT / "bot" / "catalogue"
    for audience in AUDIENCES:
        assert (folder / audience).is_dir()
    assert {key.split(".", 1)[0] for key in entries()} <= set(AUDIENCES)
