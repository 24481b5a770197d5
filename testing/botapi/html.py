"""What Telegram checks in the bot's messages: HTML parse mode, entities, markup and limits.

``parse_html`` turns Telegram's HTML subset into plain text and Bot API entities (UTF-16
offsets) or refuses it with Telegram's wording; ``check_markup`` validates a reply markup
the way the real server does. The limits are the ones Telegram enforces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from testing.botapi.wire import JSONDict, bad_request

__all__ = [
    "MAX_CALLBACK_ANSWER_LENGTH",
    "MAX_CALLBACK_DATA_BYTES",
    "MAX_CAPTION_LENGTH",
    "MAX_INLINE_BUTTONS",
    "MAX_TEXT_LENGTH",
    "HtmlParseError",
    "check_markup",
    "parse_html",
    "utf16_len",
]

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_INLINE_BUTTONS = 100
MAX_CALLBACK_ANSWER_LENGTH = 200


INLINE_ACTION_FIELDS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_BOT_COMMAND_RE = re.compile(r"(?<![\w/<>])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/<>])")


# --------------------------------------------------------------------------------------
# Text measurement and Telegram's HTML parse mode
# --------------------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    """Return the length of ``text`` in UTF-16 code units, the unit Telegram counts in."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


class HtmlParseError(ValueError):
    """Raised for HTML that Telegram refuses with "can't parse entities"."""


_HTML_SPECIAL_RE = re.compile(r"[<&]")
_HTML_ENTITY_RE = re.compile(r"&(?:#x([0-9a-fA-F]+)|#([0-9]+)|([a-zA-Z]+))(;?)")
_HTML_NAME_TOKEN_RE = re.compile(r"[A-Za-z0-9.\-]*")
_HTML_SPACES = frozenset(" \t\n\r\f\v")
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_HTML_SIMPLE_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}


def _decode_html_entity(text: str, pos: int, *, strict: bool) -> tuple[str | None, int]:
    """Decode the character reference at ``text[pos]`` ('&'); return (char, end) or (None, pos)."""
    match = _HTML_ENTITY_RE.match(text, pos)
    if match is None:
        return None, pos
    hex_digits, dec_digits, name, semicolon = match.groups()
    if strict and not semicolon:
        return None, pos
    if name is not None:
        char = _HTML_NAMED.get(name)
        return (char, match.end()) if char is not None else (None, pos)
    digits = hex_digits if hex_digits is not None else dec_digits
    if len(digits) > 7:
        return None, pos
    code = int(digits, 16 if hex_digits is not None else 10)
    if code == 0 or code >= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None, pos
    return chr(code), match.end()


def _byte_offset(text: str, pos: int) -> int:
    """Return the UTF-8 byte offset of character index ``pos`` (Telegram reports bytes)."""
    return len(text[:pos].encode("utf-8", "surrogatepass"))


@dataclass(slots=True)
class _OpenTag:
    name: str
    argument: str
    offset: int
    chunk_index: int
    expandable: bool


class _HtmlParser:
    """Telegram's HTML subset: the documented tags, four named entities, numeric ones."""

    __slots__ = ("chunks", "entities", "n", "source", "stack", "strict", "u16")

    def __init__(self, source: str, strict: bool) -> None:
        self.source = source
        self.n = len(source)
        self.strict = strict
        self.chunks: list[str] = []
        self.entities: list[JSONDict] = []
        self.stack: list[_OpenTag] = []
        self.u16 = 0

    def error(self, message: str) -> HtmlParseError:
        return HtmlParseError(message)

    def emit(self, chunk: str) -> None:
        self.chunks.append(chunk)
        self.u16 += utf16_len(chunk)

    def run(self) -> tuple[str, list[JSONDict]]:
        source, n = self.source, self.n
        search = _HTML_SPECIAL_RE.search
        i = 0
        while i < n:
            match = search(source, i)
            j = match.start() if match is not None else n
            if j > i:
                self.emit(source[i:j])
            if match is None:
                break
            if source[j] == "&":
                i = self.entity(j)
            elif j + 1 < n and source[j + 1] == "/":
                i = self.end_tag(j)
            else:
                i = self.start_tag(j)
        if self.stack:
            raise self.error(
                f'Can\'t find end tag corresponding to start tag "{self.stack[-1].name}"'
            )
        return "".join(self.chunks), _finish_entities(self.entities)

    def entity(self, pos: int) -> int:
        char, end = _decode_html_entity(self.source, pos, strict=self.strict)
        if char is not None:
            self.emit(char)
            return end
        if self.strict:
            raise self.error(self.describe_bad_ampersand(pos))
        self.emit("&")
        return pos + 1

    def describe_bad_ampersand(self, pos: int) -> str:
        offset = _byte_offset(self.source, pos)
        match = _HTML_ENTITY_RE.match(self.source, pos)
        if match is None:
            return f'Character "&" at byte offset {offset} must be escaped as "&amp;"'
        if not match.group(4) and _decode_html_entity(self.source, pos, strict=False)[0]:
            return f'HTML entity "{match.group(0)}" at byte offset {offset} must end with ";"'
        return f'Unsupported HTML entity "{match.group(0)}" at byte offset {offset}'

    def start_tag(self, begin: int) -> int:
        source, n = self.source, self.n
        i = begin + 1
        while i < n and source[i] not in _HTML_SPACES and source[i] != ">":
            i += 1
        if i >= n:
            raise self.error(f"Unclosed start tag at byte offset {_byte_offset(source, begin)}")
        name = source[begin + 1 : i].lower()
        if name not in _HTML_TAGS:
            raise self.error(
                f'Unsupported start tag "{name}" at byte offset {_byte_offset(source, begin)}'
            )
        argument = ""
        expandable = False
        while True:
            while i < n and source[i] in _HTML_SPACES:
                i += 1
            if i >= n:
                raise self.error(f"Unclosed start tag at byte offset {_byte_offset(source, begin)}")
            if source[i] == ">":
                break
            attr_begin = i
            while i < n and source[i] not in _HTML_SPACES and source[i] not in "=>":
                i += 1
            attribute = source[attr_begin:i]
            if not attribute:
                raise self.error(
                    f'Empty attribute name in the tag "{name}" at byte offset '
                    f"{_byte_offset(source, begin)}"
                )
            while i < n and source[i] in _HTML_SPACES:
                i += 1
            if i >= n or source[i] != "=":
                if name == "blockquote" and attribute.lower() == "expandable":
                    expandable = True
                    continue
                raise self.error(
                    f'Expected equal sign in declaration of an attribute of the tag "{name}" '
                    f"at byte offset {_byte_offset(source, begin)}"
                )
            i += 1
            while i < n and source[i] in _HTML_SPACES:
                i += 1
            if i >= n:
                raise self.error(
                    f'Unclosed start tag "{name}" at byte offset {_byte_offset(source, begin)}'
                )
            if source[i] in "'\"":
                end = source.find(source[i], i + 1)
                raw = source[i + 1 : end if end >= 0 else n]
                value = _decode_attribute(raw)
                i = end + 1 if end >= 0 else n
            else:
                token = _HTML_NAME_TOKEN_RE.match(source, i)
                assert token is not None  # the pattern matches the empty string
                value = token.group(0).lower()
                i = token.end()
                if i < n and source[i] not in _HTML_SPACES and source[i] != ">":
                    raise self.error(
                        "Unexpected end of name token at byte offset "
                        f"{_byte_offset(source, token.start())}"
                    )
            if i >= n:
                raise self.error(f"Unclosed start tag at byte offset {_byte_offset(source, begin)}")
            if name == "a" and attribute == "href":
                argument = value
            elif name == "code" and attribute == "class" and value.startswith("language-"):
                argument = value[9:]
            elif name == "span" and attribute == "class" and value.startswith("tg-"):
                argument = value[3:]
            elif name == "tg-emoji" and attribute == "emoji-id":
                argument = value
        if name == "span" and argument != "spoiler":
            raise self.error(
                'Tag "span" must have class "tg-spoiler" at byte offset '
                f"{_byte_offset(source, begin)}"
            )
        self.stack.append(_OpenTag(name, argument, self.u16, len(self.chunks), expandable))
        return i + 1

    def end_tag(self, begin: int) -> int:
        source, n = self.source, self.n
        if not self.stack:
            raise self.error(f"Unexpected end tag at byte offset {_byte_offset(source, begin)}")
        i = begin + 2
        while i < n and source[i] not in _HTML_SPACES and source[i] != ">":
            i += 1
        end_name = source[begin + 2 : i].lower()
        while i < n and source[i] in _HTML_SPACES:
            i += 1
        if i >= n or source[i] != ">":
            raise self.error(f"Unclosed end tag at byte offset {_byte_offset(source, begin)}")
        tag = self.stack[-1]
        if end_name and end_name != tag.name:
            raise self.error(
                f"Unmatched end tag at byte offset {_byte_offset(source, begin)}, "
                f'expected "</{tag.name}>", found "</{end_name}>"'
            )
        self.stack.pop()
        if self.u16 > tag.offset:
            self.close(tag)
        return i + 1

    def close(self, tag: _OpenTag) -> None:
        offset, length = tag.offset, self.u16 - tag.offset
        entities = self.entities
        last = entities[-1] if entities else None
        same_span = last is not None and last["offset"] == offset and last["length"] == length
        name = tag.name
        simple = _HTML_SIMPLE_TYPES.get(name)
        if simple is not None:
            entities.append({"type": simple, "offset": offset, "length": length})
        elif name == "tg-emoji":
            if not tag.argument.isdigit() or int(tag.argument) == 0:
                raise self.error("Invalid custom emoji identifier specified")
            entities.append(
                {
                    "type": "custom_emoji",
                    "offset": offset,
                    "length": length,
                    "custom_emoji_id": tag.argument,
                }
            )
        elif name == "a":
            url = tag.argument or "".join(self.chunks[tag.chunk_index :])
            if url:
                entities.append(
                    {"type": "text_link", "offset": offset, "length": length, "url": url}
                )
        elif name == "pre":
            if same_span and last is not None and last["type"] == "code" and last.get("_lang"):
                last["type"] = "pre"
                last["language"] = last.pop("_lang")
            else:
                entities.append({"type": "pre", "offset": offset, "length": length})
        elif name == "code":
            if same_span and last is not None and last["type"] == "pre" and tag.argument:
                last["language"] = tag.argument
            else:
                entity: JSONDict = {"type": "code", "offset": offset, "length": length}
                if tag.argument:
                    entity["_lang"] = tag.argument
                entities.append(entity)
        else:  # blockquote
            kind = "expandable_blockquote" if tag.expandable else "blockquote"
            entities.append({"type": kind, "offset": offset, "length": length})


def _decode_attribute(raw: str) -> str:
    """Decode character references inside a quoted attribute value (always lenient)."""
    if "&" not in raw:
        return raw
    parts: list[str] = []
    i = 0
    while True:
        j = raw.find("&", i)
        if j < 0:
            parts.append(raw[i:])
            return "".join(parts)
        parts.append(raw[i:j])
        char, end = _decode_html_entity(raw, j, strict=False)
        if char is None:
            parts.append("&")
            i = j + 1
        else:
            parts.append(char)
            i = end


# Telegram's tie-break when entities share offset and length (lower first).
_ENTITY_PRIORITY = {
    "expandable_blockquote": 0,
    "blockquote": 0,
    "pre": 11,
    "code": 20,
    "text_link": 49,
    "bold": 90,
    "italic": 91,
    "underline": 92,
    "strikethrough": 93,
    "spoiler": 94,
    "custom_emoji": 99,
}


def _finish_entities(entities: list[JSONDict]) -> list[JSONDict]:
    """Sort entities like Telegram and drop those nested in code/pre (which can't hold any)."""
    for entity in entities:
        entity.pop("_lang", None)
    if len(entities) < 2:
        return entities
    entities.sort(key=lambda e: (e["offset"], -e["length"], _ENTITY_PRIORITY.get(e["type"], 50)))
    blocks = [e for e in entities if e["type"] in ("code", "pre")]
    if not blocks:
        return entities
    kept: list[JSONDict] = []
    for entity in entities:
        start, end = entity["offset"], entity["offset"] + entity["length"]
        inside = any(
            block is not entity
            and block["offset"] <= start
            and end <= block["offset"] + block["length"]
            for block in blocks
        )
        if not inside:
            kept.append(entity)
    return kept


def parse_html(source: str, *, strict: bool = True) -> tuple[str, list[JSONDict]]:
    """Parse Telegram HTML into (plain text, Bot API entities with UTF-16 offsets).

    ``strict`` follows the documented rule that every '&' outside a tag must start an
    entity ending with ';' (the real server is lenient and keeps a bare '&' as text).
    Raises ``HtmlParseError`` with Telegram's wording for what Telegram refuses.
    """
    if "<" not in source and "&" not in source:
        return source, []
    return _HtmlParser(source, strict).run()


_TRIM_CHARS = " \t\n"


def trim(text: str, entities: list[JSONDict]) -> tuple[str, list[JSONDict]]:
    """Strip leading/trailing whitespace as Telegram does, clipping entities to the result."""
    left = text.lstrip(_TRIM_CHARS)
    result = left.rstrip(_TRIM_CHARS)
    lead = len(text) - len(left)
    if not lead and len(result) == len(text):
        return text, entities
    total = utf16_len(result)
    clipped: list[JSONDict] = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, total)
        if end > start:
            clipped.append({**entity, "offset": start, "length": end - start})
    return result, clipped


def command_entities(text: str) -> list[JSONDict]:
    """Find bot_command entities the way Telegram marks them in incoming messages."""
    if "/" not in text:
        return []
    found: list[JSONDict] = []
    for match in _BOT_COMMAND_RE.finditer(text):
        found.append(
            {
                "type": "bot_command",
                "offset": utf16_len(text[: match.start()]),
                "length": utf16_len(match.group(0)),
            }
        )
    return found


# --------------------------------------------------------------------------------------
# Entities and reply markup
# --------------------------------------------------------------------------------------


def clean_entities(value: Any) -> list[JSONDict]:
    if not isinstance(value, list):
        return []
    return [
        dict(e)
        for e in value
        if isinstance(e, dict) and {"type", "offset", "length"} <= e.keys() and e["length"] > 0
    ]


def inline_markup(markup: JSONDict | None) -> JSONDict | None:
    return markup if markup is not None and "inline_keyboard" in markup else None


def check_markup(value: Any, *, inline_only: bool = False) -> JSONDict | None:
    """Validate reply_markup like Telegram; return it as a dict (or None when absent)."""
    if value is None or value == "":
        return None
    if not isinstance(value, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in value:
        _check_inline_keyboard(value["inline_keyboard"])
        return value
    if inline_only:
        raise bad_request("inline keyboard expected")
    if "keyboard" in value:
        rows = value["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise bad_request(
                'field "keyboard" of the ReplyKeyboardMarkup must be an Array of Arrays'
            )
        for row in rows:
            for button in row:
                label = button.get("text") if isinstance(button, dict) else button
                if not isinstance(label, str) or not label:
                    raise bad_request(
                        'can\'t parse keyboard button: Field "text" must be of type String'
                    )
        return value
    if value.get("remove_keyboard") is True or value.get("force_reply") is True:
        return value
    raise bad_request("can't parse reply keyboard markup JSON object")


def _check_inline_keyboard(rows: Any) -> None:
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise bad_request(
            'field "inline_keyboard" of the InlineKeyboardMarkup should be an Array of Arrays'
        )
    count = 0
    for row in rows:
        for button in row:
            count += 1
            _check_inline_button(button)
    if count > MAX_INLINE_BUTTONS:
        raise bad_request("reply markup is too long")


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict):
        raise bad_request(
            "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
        )
    if "text" not in button:
        raise bad_request("can't parse inline keyboard button: Can't find field \"text\"")
    text = button["text"]
    if not isinstance(text, str):
        raise bad_request(
            'can\'t parse inline keyboard button: Field "text" must be of type String'
        )
    if not text.strip():
        raise bad_request("BUTTON_TEXT_INVALID")
    actions = [k for k in INLINE_ACTION_FIELDS if k in button and button[k] not in ("", None)]
    if not actions:
        raise bad_request(
            "can't parse InlineKeyboardButton: Text buttons are not allowed in the inline keyboard"
        )
    data = button.get("callback_data")
    if data not in (None, ""):
        if not isinstance(data, str):
            raise bad_request(
                'can\'t parse inline keyboard button: Field "callback_data" must be of type String'
            )
        if len(data.encode("utf-8")) > MAX_CALLBACK_DATA_BYTES:
            raise bad_request("BUTTON_DATA_INVALID")
    url = button.get("url")
    if url not in (None, "") and (not isinstance(url, str) or not _looks_like_url(url)):
        raise bad_request(f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL")


def _looks_like_url(url: str) -> bool:
    if any(c.isspace() for c in url):
        return False
    if url.startswith("tg://"):
        return True
    host = url.split("://", 1)[-1].split("/", 1)[0]
    return "." in host or host.startswith("localhost")
