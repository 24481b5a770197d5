"""A local Telegram Bot API server that answers like Telegram.

``LocalBotAPI`` is an aiohttp web server running in the caller's event loop. The real
python-telegram-bot ``Application`` talks to it over HTTP exactly as it would talk to
``api.telegram.org``::

    async with LocalBotAPI() as api:
        app = ApplicationBuilder().token(api.token).base_url(api.base_url).build()
        camille = api.user(1001)
        await camille.send_command("start")

It serves the test suite, the benchmarks and ``relais chat`` (a terminal mode with no
network and no token). ``SimUser`` plays a person in a private chat: it sends messages,
presses inline buttons and sees what the bot sent, with edits applied.

Requests are decoded the way PTB encodes them: form-encoded (multipart when files are
uploaded) where string values are sent raw and every other value is JSON-encoded; JSON
bodies and query strings are accepted too, like the real server. Answers use Telegram's
envelope ``{"ok": true, "result": ...}`` and errors use Telegram's descriptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from telegram.ext import ApplicationBuilder

__all__ = [
    "ApiCall",
    "BotMessage",
    "HtmlParseError",
    "LocalBotAPI",
    "SimUser",
    "UploadedFile",
    "WebhookDelivery",
    "parse_html",
    "utf16_len",
]

_LOGGER = logging.getLogger(__name__)

JSONDict = dict[str, Any]
BotMessageHook = Callable[["BotMessage", bool], object]  # (message, edited)
CallbackAnswerHook = Callable[["SimUser", JSONDict], object]

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_INLINE_BUTTONS = 100
MAX_CALLBACK_ANSWER_LENGTH = 200
MAX_UPLOAD_BYTES = 50 * 1024 * 1024

_NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
_QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
_CONFLICT_POLL = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
    "is running"
)
_CONFLICT_WEBHOOK = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to "
    "delete the webhook first"
)

# Parameters whose value is a string for Telegram even when it looks like JSON ("123").
_STRING_PARAMS = frozenset(
    {
        "action",
        "address",
        "animation",
        "audio",
        "business_connection_id",
        "callback_query_id",
        "caption",
        "description",
        "document",
        "emoji",
        "explanation",
        "file_id",
        "first_name",
        "foursquare_id",
        "inline_message_id",
        "ip_address",
        "language_code",
        "last_name",
        "message_effect_id",
        "name",
        "parse_mode",
        "phone_number",
        "photo",
        "question",
        "secret_token",
        "short_description",
        "sticker",
        "text",
        "thumbnail",
        "title",
        "url",
        "vcard",
        "video",
        "video_note",
        "voice",
    }
)
_JSON_FIRST_CHARS = frozenset('{["-0123456789tfn')

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
# Update types Telegram does not send unless they are listed in allowed_updates.
_OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_INLINE_ACTION_FIELDS = (
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
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")
_BOT_COMMAND_RE = re.compile(r"(?<![\w/<>])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/<>])")
_COMMAND_NAME_RE = re.compile(r"[a-z0-9_]{1,32}")
_TOKEN_SHAPE_RE = re.compile(r"\d+:[A-Za-z0-9_-]+")


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


def _trim(text: str, entities: list[JSONDict]) -> tuple[str, list[JSONDict]]:
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


def _command_entities(text: str) -> list[JSONDict]:
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
# Public records
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
class UploadedFile:
    """A file received in a multipart request."""

    filename: str | None
    mime_type: str | None
    data: bytes

    def __repr__(self) -> str:
        return f"UploadedFile({self.filename!r}, {self.mime_type!r}, {len(self.data)} bytes)"


@dataclass(slots=True)
class ApiCall:
    """One request received by the server, with its decoded parameters and outcome.

    Calls are recorded in arrival order; ``status`` is 0 while the answer is pending
    (a long poll, an injected delay).
    """

    method: str
    params: JSONDict
    status: int
    description: str | None = None
    result: Any = None

    @property
    def ok(self) -> bool:
        """Whether Telegram would have answered ``ok: true``."""
        return self.status == 200


@dataclass(slots=True, eq=False)
class BotMessage:
    """A message the bot sent to a chat, in its current state (edits applied)."""

    message_id: int
    chat_id: int
    text: str
    plain: str
    parse_mode: str | None = None
    reply_markup: JSONDict | None = None
    edits: int = 0
    kind: str = "text"
    caption: str | None = None
    entities: list[JSONDict] = field(default_factory=list)
    deleted: bool = False
    file_id: str | None = None
    file_name: str | None = None
    mime_type: str | None = None
    data: bytes | None = None
    date: int = 0
    raw: JSONDict = field(default_factory=dict)

    def inline_keyboard(self) -> list[list[JSONDict]]:
        """Return the rows of the inline keyboard (empty when there is none)."""
        markup = self.reply_markup
        if markup is None:
            return []
        rows = markup.get("inline_keyboard")
        return rows if isinstance(rows, list) else []

    def button_labels(self) -> list[str]:
        """Return the labels of the inline buttons, row by row."""
        return [str(b.get("text", "")) for row in self.inline_keyboard() for b in row]

    def button_data(self) -> list[str]:
        """Return the callback_data of the inline buttons that have one."""
        return [
            b["callback_data"]
            for row in self.inline_keyboard()
            for b in row
            if "callback_data" in b
        ]

    def find_button(self, label: str) -> JSONDict | None:
        """Return the inline button with exactly this label, or None."""
        for row in self.inline_keyboard():
            for button in row:
                if button.get("text") == label:
                    return button
        return None


@dataclass(slots=True)
class _StoredFile:
    file_id: str
    file_unique_id: str
    kind: str
    file_name: str | None
    mime_type: str | None
    data: bytes
    file_path: str


@dataclass(slots=True)
class _Pending:
    update_id: int
    update: JSONDict
    sticky: bool  # a redelivery that must be sent once even though its id was confirmed


@dataclass(slots=True)
class _Fault:
    status: int
    description: str
    retry_after: int | None
    remaining: int


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One POST of an update to a webhook target, and the HTTP status (0: no answer)."""

    update_id: int
    target: int
    status: int
    at: float


_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


@dataclass(slots=True)
class _Delay:
    seconds: float
    remaining: int


@dataclass(slots=True)
class _Query:
    user: SimUser | None
    created: float
    answered: bool = False


class _ApiError(Exception):
    """An error answer: HTTP status, Telegram description and optional parameters."""

    def __init__(self, status: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def _bad(description: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {description}")


_NEW_UPDATE = "update"
_CONFLICT = "conflict"
_CLOSING = "closing"


# --------------------------------------------------------------------------------------
# The simulated person
# --------------------------------------------------------------------------------------


class SimUser:
    """A person chatting with the bot in a private chat (chat id == user id)."""

    def __init__(
        self,
        api: LocalBotAPI,
        user_id: int,
        first_name: str,
        *,
        username: str | None,
        language_code: str | None,
    ) -> None:
        self.api = api
        self.user_id = user_id
        self.chat_id = user_id
        self.first_name = first_name
        self.username = username
        self.language_code = language_code
        self.messages: list[BotMessage] = []
        self.callback_answers: list[JSONDict] = []
        self.chat_actions: list[str] = []
        self.reply_keyboard: JSONDict | None = None
        self.started = False
        self.blocked = False
        self._bot_messages: dict[int, BotMessage] = {}
        self._user_messages: dict[int, JSONDict] = {}
        self._next_message_id = 1
        self._cursor = 0
        self._changed = asyncio.Event()
        self._last_activity = 0.0
        self._activity = 0
        user: JSONDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        chat: JSONDict = {"id": user_id, "first_name": first_name}
        if username:
            user["username"] = username
            chat["username"] = username
        if language_code:
            user["language_code"] = language_code
        chat["type"] = "private"
        self.user_json = user
        self.chat_json = chat
        self.chat_instance = str((user_id * 2654435761 + api.bot_id) % (1 << 62))

    def __repr__(self) -> str:
        return f"SimUser({self.user_id}, {self.first_name!r})"

    # ---- actions --------------------------------------------------------------------

    def _take_message_id(self) -> int:
        message_id = self._next_message_id
        self._next_message_id += 1
        return message_id

    def _send(self, content: JSONDict, reply_to: int | None = None) -> int:
        self.started = True
        self.blocked = False
        message: JSONDict = {
            "message_id": self._take_message_id(),
            "from": self.user_json,
            "chat": self.chat_json,
            "date": int(time.time()),
        }
        if reply_to is not None:
            original = self._lookup_raw(reply_to)
            if original is None:
                raise LookupError(f"no message {reply_to} in chat {self.chat_id}")
            message["reply_to_message"] = _without_reply(original)
        message.update(content)
        self._user_messages[message["message_id"]] = message
        self._cursor = len(self.messages)
        return self.api._push_update({"message": message})

    def _lookup_raw(self, message_id: int) -> JSONDict | None:
        bot_message = self._bot_messages.get(message_id)
        if bot_message is not None and not bot_message.deleted:
            return bot_message.raw
        return self._user_messages.get(message_id)

    async def send_text(self, text: str, *, reply_to: int | None = None) -> int:
        """Send a text message (commands in it get bot_command entities); return update_id."""
        content: JSONDict = {"text": text}
        entities = _command_entities(text)
        if entities:
            content["entities"] = entities
        return self._send(content, reply_to)

    async def send_command(self, command: str, args: str = "") -> int:
        """Send '/command args' with a bot_command entity at offset 0; return update_id."""
        command = command if command.startswith("/") else f"/{command}"
        text = f"{command} {args}" if args else command
        entity = {"type": "bot_command", "offset": 0, "length": utf16_len(command)}
        return self._send({"text": text, "entities": [entity]})

    async def send_sticker(self, emoji: str = "👍") -> int:
        """Send a sticker; return update_id."""
        stored = self.api._store_file("sticker", None, "image/webp", b"RIFF0000WEBP")
        sticker = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
            "file_size": len(stored.data),
        }
        return self._send({"sticker": sticker})

    async def send_photo(self, *, caption: str | None = None, data: bytes | None = None) -> int:
        """Send a photo (optionally with a caption); return update_id."""
        content: JSONDict = {"photo": self.api._photo_sizes(data or _TINY_PNG, None)}
        if caption:
            content["caption"] = caption
        return self._send(content)

    async def send_voice(self, *, duration: int = 3) -> int:
        """Send a voice note; return update_id."""
        stored = self.api._store_file("voice", None, "audio/ogg", b"OggS" + bytes(60))
        voice = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "duration": duration,
            "mime_type": "audio/ogg",
            "file_size": len(stored.data),
        }
        return self._send({"voice": voice})

    async def send_document(
        self,
        file_name: str = "document.pdf",
        *,
        data: bytes = b"%PDF-1.4\n%local test document\n",
        mime_type: str = "application/pdf",
        caption: str | None = None,
    ) -> int:
        """Send a document; return update_id."""
        stored = self.api._store_file("document", file_name, mime_type, data)
        content: JSONDict = {"document": self.api._document_json(stored)}
        if caption:
            content["caption"] = caption
        return self._send(content)

    async def send_location(self, latitude: float = 45.764, longitude: float = 4.8357) -> int:
        """Send a location; return update_id."""
        return self._send({"location": {"latitude": latitude, "longitude": longitude}})

    async def send_contact(
        self, phone: str, first_name: str | None = None, *, own: bool = True
    ) -> int:
        """Send a contact (by default the user's own, as 'share my number' does)."""
        contact: JSONDict = {"phone_number": phone, "first_name": first_name or self.first_name}
        if own:
            contact["user_id"] = self.user_id
        return self._send({"contact": contact})

    async def press(self, label: str, *, message_id: int | None = None) -> int:
        """Press the inline button with this label (or unique prefix); return update_id."""
        message, button = self._find_button(label, message_id)
        if "callback_data" not in button:
            kinds = [k for k in _INLINE_ACTION_FIELDS if k in button]
            raise ValueError(f"button {button.get('text')!r} is not a callback button ({kinds})")
        query_id = self.api._new_query(self)
        query: JSONDict = {
            "id": query_id,
            "from": self.user_json,
            "message": dict(message.raw),
            "chat_instance": self.chat_instance,
            "data": button["callback_data"],
        }
        self.started = True
        self._cursor = len(self.messages)
        return self.api._push_update({"callback_query": query})

    async def press_data(self, data: str, *, message_id: int | None = None) -> int:
        """Send a callback query with arbitrary data, as a forged or stale client would."""
        candidates = [m for m in reversed(self.messages) if not m.deleted]
        if message_id is not None:
            candidates = [m for m in candidates if m.message_id == message_id]
        if not candidates:
            raise LookupError(f"no bot message to attach a callback to in chat {self.chat_id}")
        query: JSONDict = {
            "id": self.api._new_query(self),
            "from": self.user_json,
            "message": dict(candidates[0].raw),
            "chat_instance": self.chat_instance,
            "data": data,
        }
        self.started = True
        self._cursor = len(self.messages)
        return self.api._push_update({"callback_query": query})

    def _find_button(self, label: str, message_id: int | None) -> tuple[BotMessage, JSONDict]:
        if message_id is not None:
            found = self._bot_messages.get(message_id)
            if found is None or found.deleted:
                raise LookupError(f"no bot message {message_id} in chat {self.chat_id}")
            candidates = [found]
        else:
            candidates = [m for m in reversed(self.messages) if not m.deleted]
        for message in candidates:
            button = message.find_button(label)
            if button is not None:
                return message, button
        for message in candidates:
            matches = [
                b
                for row in message.inline_keyboard()
                for b in row
                if str(b.get("text", "")).startswith(label)
            ]
            if len(matches) == 1:
                return message, matches[0]
            if len(matches) > 1:
                labels = [b.get("text") for b in matches]
                raise LookupError(f"button prefix {label!r} is ambiguous: {labels}")
        available = self.buttons(candidates[0] if message_id is not None else None)
        raise LookupError(f"no inline button {label!r}; available: {available}")

    def block(self) -> None:
        """Block the bot: its sends now fail with 403 like Telegram."""
        self.blocked = True

    def unblock(self) -> None:
        """Unblock the bot."""
        self.blocked = False

    # ---- what the person sees -------------------------------------------------------

    def buttons(self, message: BotMessage | None = None) -> list[str]:
        """Labels of the inline buttons of ``message`` or of the newest message with some."""
        if message is not None:
            return message.button_labels()
        for candidate in reversed(self.messages):
            if not candidate.deleted and candidate.inline_keyboard():
                return candidate.button_labels()
        return []

    def last_text(self) -> str:
        """The plain text (what a person reads) of the newest visible bot message, or ''."""
        for message in reversed(self.messages):
            if not message.deleted:
                return message.plain
        return ""

    def texts(self) -> list[str]:
        """Plain texts of all visible bot messages, oldest first."""
        return [m.plain for m in self.messages if not m.deleted]

    async def wait_for_messages(
        self,
        count: int,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - the documented API takes a timeout
    ) -> list[BotMessage]:
        """Wait until the bot has sent at least ``count`` messages to this chat; return all."""
        await self._wait_until(lambda: len(self.messages) >= count, timeout, f"{count} messages")
        return list(self.messages)

    async def next_reply(
        self,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - the documented API takes a timeout
    ) -> BotMessage:
        """Wait for the next message sent after the last user action or next_reply call."""
        await self._wait_until(lambda: len(self.messages) > self._cursor, timeout, "a reply")
        message = self.messages[self._cursor]
        self._cursor += 1
        return message

    async def replies_after(
        self,
        action: Awaitable[int],
        *,
        settle: float = 0.15,
        timeout: float = 5.0,  # noqa: ASYNC109 - the documented API takes a timeout
        min_messages: int = 1,
    ) -> list[BotMessage]:
        """Run ``action``, wait until the bot is quiet for ``settle`` s; return new messages.

        Quiet means no message sent, edited or deleted and no callback answered in this
        chat. Waiting starts counting once ``min_messages`` new messages arrived (use 0 for
        actions that may only edit); it stops at ``timeout`` with whatever arrived.
        """
        start = len(self.messages)
        await action
        activity0 = self._activity
        acted_at = time.monotonic()
        deadline = acted_at + timeout
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            enough = len(self.messages) - start >= min_messages
            last = self._last_activity if self._activity != activity0 else acted_at
            if enough and now - last >= settle:
                break
            wait = deadline - now
            if enough:
                wait = min(wait, settle - (now - last))
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), max(wait, 0.0))
        return self.messages[start:]

    async def _wait_until(self, predicate: Callable[[], bool], seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [m.plain[:80] for m in self.messages]
                raise TimeoutError(f"timed out waiting for {what} in chat {self.chat_id}; {seen}")
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def _notify(self) -> None:
        self._activity += 1
        self._last_activity = time.monotonic()
        changed = self._changed
        self._changed = asyncio.Event()
        changed.set()


# A valid 1x1 PNG, used as the default photo a SimUser sends.
_TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


# --------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------


class LocalBotAPI:
    """A local Bot API server: PTB connects with ``base_url(api.base_url)``.

    Hooks: each callable in ``on_bot_message`` is called as ``hook(message, edited)`` when
    the bot sends (edited=False) or edits (edited=True) a message; each callable in
    ``on_callback_answer`` as ``hook(user, payload)`` when the bot answers a press.
    """

    def __init__(
        self,
        *,
        token: str = "123456:LOCAL-TEST-TOKEN",
        bot_username: str = "relais_local_bot",
        bot_id: int = 123456,
        bot_first_name: str = "Relais",
        record_calls: bool = True,
        strict_html: bool = True,
        callback_query_ttl: float = 900.0,
    ) -> None:
        self.token = token
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        self.record_calls = record_calls
        self.strict_html = strict_html
        self.callback_query_ttl = callback_query_ttl
        self.calls: list[ApiCall] = []
        self.on_bot_message: list[BotMessageHook] = []
        self.on_callback_answer: list[CallbackAnswerHook] = []
        self.webhook: JSONDict | None = None
        self.logged_out = False
        self.closed_count = 0
        self.bot_json: JSONDict = {
            "id": bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
        }
        self._users: dict[int, SimUser] = {}
        self._pending: deque[_Pending] = deque()
        self._sticky = 0
        self._history: dict[int, JSONDict] = {}
        self._next_update_id = 100_000_001
        self._allowed_updates: frozenset[str] | None = None
        self._poll_waiter: asyncio.Future[str] | None = None
        self._faults: dict[str, deque[_Fault]] = {}
        self._delays: dict[str, deque[_Delay]] = {}
        self._queries: dict[str, _Query] = {}
        self._next_query = 0
        self._files: dict[str, _StoredFile] = {}
        self._file_paths: dict[str, _StoredFile] = {}
        self._next_file = 0
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        self._profile: dict[tuple[str, str], str] = {}
        self._menu_buttons: dict[int | None, JSONDict] = {}
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._closing = False
        # Webhook delivery (see `route_webhook`): where the public URL's traffic goes.
        self.webhook_deliveries: list[WebhookDelivery] = []
        self._hook_targets: list[str] = []
        self._hook_choose: Callable[[JSONDict], int | None] | None = None
        self._hook_wake: asyncio.Event | None = None
        self._hook_task: asyncio.Task[None] | None = None
        self._hook_in_flight: set[int] = set()
        self._hook_next = 0
        self._methods: dict[str, tuple[str, Callable[[JSONDict], Any]]] = {}
        for name, handler in self._method_table().items():
            self._methods[name.lower()] = (name, handler)

    # ---- lifecycle ------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Start serving on host:port (port 0 picks a free port); sets ``url``."""
        if self._runner is not None:
            raise RuntimeError("LocalBotAPI is already started")
        self._closing = False
        app = web.Application(client_max_size=MAX_UPLOAD_BYTES + 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1] if runner.addresses else port
        self._runner = runner
        self._url = f"http://{host}:{bound_port}"

    async def stop(self) -> None:
        """Wake pending long polls and stop serving."""
        self._closing = True
        self._wake_poller(_CLOSING)
        task, self._hook_task = self._hook_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> LocalBotAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """Base address, e.g. 'http://127.0.0.1:PORT'."""
        if self._url is None:
            raise RuntimeError("LocalBotAPI is not started")
        return self._url

    @property
    def base_url(self) -> str:
        """Value for PTB's base_url (PTB appends the token and the method)."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """Value for PTB's base_file_url."""
        return f"{self.url}/file/bot"

    def builder(self) -> ApplicationBuilder:
        """An ApplicationBuilder already pointed at this server with the right token."""
        from telegram.ext import ApplicationBuilder

        return (
            ApplicationBuilder()
            .token(self.token)
            .base_url(self.base_url)
            .base_file_url(self.base_file_url)
        )

    # ---- people ---------------------------------------------------------------------

    def user(
        self,
        user_id: int,
        first_name: str = "Camille",
        *,
        username: str | None = None,
        language_code: str = "fr",
    ) -> SimUser:
        """Return the SimUser for this id, creating it (a private chat, chat id == user id).

        Like on Telegram, the bot can write to the chat only once the person wrote first.
        """
        existing = self._users.get(user_id)
        if existing is not None:
            return existing
        sim = SimUser(
            self, user_id, first_name, username=username, language_code=language_code or None
        )
        self._users[user_id] = sim
        return sim

    @property
    def users(self) -> list[SimUser]:
        """All SimUsers created so far."""
        return list(self._users.values())

    # ---- assertions helpers ---------------------------------------------------------

    def calls_of(self, method: str) -> list[ApiCall]:
        """Recorded calls of one method (case-insensitive, like Telegram's method names)."""
        wanted = method.lower()
        return [c for c in self.calls if c.method.lower() == wanted]

    @property
    def commands(self) -> list[JSONDict]:
        """The commands set for the default scope and no language."""
        return self._commands.get((_scope_key(None), ""), [])

    def commands_for(
        self, scope: JSONDict | None = None, language_code: str = ""
    ) -> list[JSONDict]:
        """The commands set for a given scope and language."""
        return self._commands.get((_scope_key(scope), language_code), [])

    # ---- fault injection ------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        status: int = 429,
        retry_after: int | None = 1,
        description: str | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` ('*' = any) fail without side effects."""
        if description is None:
            description = _default_description(status, retry_after)
        fault = _Fault(status, description, retry_after if status == 429 else None, times)
        self._faults.setdefault(method.lower(), deque()).append(fault)

    def delay_next(self, method: str, seconds: float, *, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` ('*' = any) answer ``seconds`` late."""
        self._delays.setdefault(method.lower(), deque()).append(_Delay(seconds, times))

    # ---- webhook delivery -----------------------------------------------------------

    def route_webhook(self, targets: list[str], *,
                      choose: Callable[[JSONDict], int | None] | None = None) -> None:
        """Deliver updates by POST to ``targets`` while a webhook is set, as Telegram would.

        The registered webhook URL is public HTTPS; ``targets`` are the plain-HTTP addresses
        behind it (a load balancer's backends, round robin). Like Telegram, an update leaves
        the queue only on a 2xx answer; on an error or a refused connection it is sent
        again, to the next target, after a short backoff. ``choose(update)`` may pin an
        update to one target (its index), e.g. to send a chat to one instance. The secret
        token given to setWebhook goes in ``X-Telegram-Bot-Api-Secret-Token``.
        """
        self._hook_targets = list(targets)
        self._hook_choose = choose
        if self._hook_task is None:
            self._hook_wake = asyncio.Event()
            self._hook_task = asyncio.get_running_loop().create_task(self._hook_loop())
        assert self._hook_wake is not None
        self._hook_wake.set()

    async def _hook_loop(self) -> None:
        assert self._hook_wake is not None
        tasks: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
            while True:
                await self._hook_wake.wait()
                self._hook_wake.clear()
                if self.webhook is None or not self._hook_targets:
                    continue
                limit = int(self.webhook.get("max_connections") or 40)
                for entry in list(self._pending):
                    if len(self._hook_in_flight) >= limit:
                        break
                    if entry.update_id in self._hook_in_flight:
                        continue
                    if not self._is_allowed(entry.update):
                        self._remove_pending(entry)
                        continue
                    self._hook_in_flight.add(entry.update_id)
                    task = asyncio.create_task(self._hook_post(http, entry))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)

    async def _hook_post(self, http: aiohttp.ClientSession, entry: _Pending) -> None:
        attempt = 0
        try:
            while self.webhook is not None and self._hook_targets:
                targets = self._hook_targets
                pinned = self._hook_choose(entry.update) if self._hook_choose else None
                if pinned is None:
                    index = self._hook_next % len(targets)
                    self._hook_next += 1
                else:
                    index = pinned % len(targets)
                headers = {"Content-Type": "application/json"}
                secret = self.webhook.get("secret_token")
                if secret:
                    headers[_SECRET_HEADER] = str(secret)
                try:
                    async with http.post(targets[index], data=json.dumps(entry.update),
                                         headers=headers) as response:
                        status = response.status
                        await response.read()
                except (OSError, TimeoutError, aiohttp.ClientError):
                    status = 0  # refused, reset or no answer: Telegram tries again
                self.webhook_deliveries.append(
                    WebhookDelivery(entry.update_id, index, status, time.monotonic()))
                if 200 <= status < 300:
                    self._remove_pending(entry)
                    return
                attempt += 1
                await asyncio.sleep(min(0.05 * attempt, 1.0))
        finally:
            self._hook_in_flight.discard(entry.update_id)
            if self._hook_wake is not None and self._pending:
                self._hook_wake.set()

    def _remove_pending(self, entry: _Pending) -> None:
        with contextlib.suppress(ValueError):
            self._pending.remove(entry)
        if entry.sticky:
            self._sticky = max(self._sticky - 1, 0)

    # ---- updates --------------------------------------------------------------------

    def pending_updates(self) -> int:
        """Number of updates not yet confirmed by getUpdates' offset."""
        return len(self._pending)

    def inject_update(self, update: JSONDict) -> int:
        """Queue a raw update (an update_id is assigned if missing); return its update_id."""
        update = dict(update)
        for kind in ("message", "edited_message", "callback_query"):
            payload = update.get(kind)
            sender = payload.get("from") if isinstance(payload, dict) else None
            user = self._users.get(sender.get("id")) if isinstance(sender, dict) else None
            if user is not None:
                user.started = True
        query = update.get("callback_query")
        if isinstance(query, dict) and "id" in query and str(query["id"]) not in self._queries:
            owner = self._users.get(query.get("from", {}).get("id", 0))
            self._queries[str(query["id"])] = _Query(owner, time.monotonic())
        return self._push_update(update)

    def redeliver(self, update_id: int) -> None:
        """Queue an already-sent update again with the same update_id (duplicate delivery)."""
        update = self._history.get(update_id)
        if update is None:
            raise KeyError(f"unknown update_id {update_id}")
        self._insert_pending(_Pending(update_id, update, True))
        self._sticky += 1
        self._wake_poller(_NEW_UPDATE)

    def _push_update(self, update: JSONDict) -> int:
        update_id = update.get("update_id")
        if update_id is None:
            update_id = self._next_update_id
            self._next_update_id += 1
            update = {"update_id": update_id, **update}
        elif update_id >= self._next_update_id:
            self._next_update_id = update_id + 1
        self._history[update_id] = update
        self._insert_pending(_Pending(update_id, update, False))
        self._wake_poller(_NEW_UPDATE)
        return update_id

    def _insert_pending(self, entry: _Pending) -> None:
        pending = self._pending
        if not pending or pending[-1].update_id <= entry.update_id:
            pending.append(entry)
            return
        index = len(pending)
        while index > 0 and pending[index - 1].update_id > entry.update_id:
            index -= 1
        pending.insert(index, entry)

    def _wake_poller(self, reason: str) -> None:
        if self._hook_wake is not None:
            self._hook_wake.set()
        waiter = self._poll_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(reason)

    def _is_allowed(self, update: JSONDict) -> bool:
        kind = next((k for k in update if k != "update_id"), "")
        allowed = self._allowed_updates
        if allowed is None:
            return kind not in _OPT_IN_UPDATES
        return kind in allowed

    def _confirm(self, offset: int) -> None:
        pending = self._pending
        if offset < 0:
            excess = len(pending) + offset
            if excess > 0:
                self._pending = deque(e for i, e in enumerate(pending) if i >= excess or e.sticky)
                self._sticky = sum(e.sticky for e in self._pending)
            return
        while pending and pending[0].update_id < offset and not pending[0].sticky:
            pending.popleft()
        if pending and pending[0].sticky and pending[0].update_id < offset:
            self._pending = deque(e for e in pending if e.update_id >= offset or e.sticky)

    def _collect(self, limit: int) -> list[JSONDict]:
        batch: list[JSONDict] = []
        refused = False
        for entry in self._pending:
            if not self._is_allowed(entry.update):
                refused = True
                continue
            if len(batch) >= limit:
                break
            batch.append(entry.update)
            if entry.sticky:
                entry.sticky = False
                self._sticky -= 1
        if refused:
            self._pending = deque(e for e in self._pending if self._is_allowed(e.update))
            self._sticky = sum(e.sticky for e in self._pending)
        return batch

    # ---- HTTP -----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/file/bot"):
            return self._serve_file(path[len("/file/bot") :])
        if not path.startswith("/bot"):
            return _error_response(404, "Not Found")
        token, _, method = path[4:].partition("/")
        key = method.lower()
        entry = self._methods.get(key)
        call = ApiCall(entry[0] if entry is not None else method, {}, 0)
        if self.record_calls:
            self.calls.append(call)  # in arrival order; status 0 until answered
        try:
            call.params = await _read_params(request)
            if token != self.token or self.logged_out:
                if _TOKEN_SHAPE_RE.fullmatch(token) is None:
                    raise _ApiError(404, "Not Found")
                raise _ApiError(401, "Unauthorized")
            if self._delays:
                delay = _take(self._delays, key)
                if delay is not None:
                    await asyncio.sleep(delay.seconds)
            if self._faults:
                fault = _take(self._faults, key)
                if fault is not None:
                    retry = fault.retry_after
                    parameters = {"retry_after": retry} if retry is not None else None
                    raise _ApiError(fault.status, fault.description, parameters)
            if entry is None:
                raise _ApiError(404, "Not Found")
            result = entry[1](call.params)
            if asyncio.iscoroutine(result):
                result = await result
        except _ApiError as exc:
            call.status, call.description = exc.status, exc.description
            return _error_response(exc.status, exc.description, exc.parameters)
        except ConnectionResetError:
            # The client hung up before its request was read (a bot stopping during a long
            # poll): there is nobody to answer, and it is not the double's failure.
            return _error_response(400, "Bad Request: connection lost")
        except Exception as exc:  # a bug in the double, or parameters of a surprising type
            _LOGGER.exception("LocalBotAPI failed on %s", call.method)
            call.status = 500
            call.description = f"Internal Server Error: local Bot API failed: {exc!r}"
            return _error_response(500, call.description)
        call.status, call.result = 200, result
        return _json_response(200, {"ok": True, "result": result})

    def _serve_file(self, rest: str) -> web.Response:
        token, _, file_path = rest.partition("/")
        stored = self._file_paths.get(file_path) if token == self.token else None
        if stored is None:
            return _error_response(404, "Not Found")
        return web.Response(
            body=stored.data, content_type=stored.mime_type or "application/octet-stream"
        )

    # ---- method table ---------------------------------------------------------------

    def _method_table(self) -> dict[str, Callable[[JSONDict], Any]]:
        return {
            "getMe": self._get_me,
            "logOut": self._log_out,
            "close": self._close,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "setMyName": lambda p: self._set_profile("name", p),
            "getMyName": lambda p: {"name": self._get_profile("name", p) or self.bot_first_name},
            "setMyDescription": lambda p: self._set_profile("description", p),
            "getMyDescription": lambda p: {"description": self._get_profile("description", p)},
            "setMyShortDescription": lambda p: self._set_profile("short_description", p),
            "getMyShortDescription": lambda p: {
                "short_description": self._get_profile("short_description", p)
            },
            "setChatMenuButton": self._set_chat_menu_button,
            "getChatMenuButton": self._get_chat_menu_button,
            "getChat": self._get_chat,
            "sendMessage": self._send_message,
            "sendPhoto": lambda p: self._send_media(p, "photo"),
            "sendDocument": lambda p: self._send_media(p, "document"),
            "sendChatAction": self._send_chat_action,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "getFile": self._get_file,
        }

    # ---- bot & polling methods ------------------------------------------------------

    def _get_me(self, params: JSONDict) -> JSONDict:
        return {
            **self.bot_json,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _log_out(self, params: JSONDict) -> bool:
        self.logged_out = True
        return True

    def _close(self, params: JSONDict) -> bool:
        self.closed_count += 1
        return True

    async def _get_updates(self, params: JSONDict) -> list[JSONDict]:
        if self.webhook is not None:
            raise _ApiError(409, _CONFLICT_WEBHOOK)
        offset = _int_param(params, "offset", 0)
        limit = min(max(_int_param(params, "limit", 100), 1), 100)
        timeout = max(_float_param(params, "timeout", 0.0), 0.0)
        self._set_allowed_updates(params.get("allowed_updates"))
        if offset:
            self._confirm(offset)
        self._wake_poller(_CONFLICT)
        self._poll_waiter = None
        batch = self._collect(limit)
        if batch or timeout <= 0 or self._closing:
            return batch
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            waiter: asyncio.Future[str] = loop.create_future()
            self._poll_waiter = waiter
            try:
                reason = await asyncio.wait_for(waiter, max(deadline - loop.time(), 0.0))
            except TimeoutError:
                reason = "timeout"
            finally:
                if self._poll_waiter is waiter:
                    self._poll_waiter = None
            if reason == _CONFLICT:
                raise _ApiError(409, _CONFLICT_POLL)
            batch = self._collect(limit)
            if batch or reason != _NEW_UPDATE or loop.time() >= deadline:
                return batch

    def _set_allowed_updates(self, value: Any) -> None:
        if value is None or value == "":
            return
        if not isinstance(value, list):
            raise _bad("can't parse allowed updates JSON array")
        self._allowed_updates = frozenset(str(v) for v in value) or None

    def _set_webhook(self, params: JSONDict) -> bool:
        url = params.get("url") or ""
        if not url:
            self.webhook = None
            return True
        if not isinstance(url, str) or not url.startswith("https://"):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        self._set_allowed_updates(params.get("allowed_updates"))
        if params.get("drop_pending_updates") is True:
            self._drop_pending()
        self.webhook = {
            key: params[key]
            for key in ("url", "max_connections", "secret_token", "ip_address")
            if key in params
        }
        return True

    def _delete_webhook(self, params: JSONDict) -> bool:
        self.webhook = None
        if params.get("drop_pending_updates") is True:
            self._drop_pending()
        return True

    def _drop_pending(self) -> None:
        self._pending.clear()
        self._sticky = 0

    def _get_webhook_info(self, params: JSONDict) -> JSONDict:
        info: JSONDict = {
            "url": (self.webhook or {}).get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if self.webhook is not None:
            info["max_connections"] = self.webhook.get("max_connections", 40)
            if self._allowed_updates is not None:
                info["allowed_updates"] = sorted(self._allowed_updates)
        return info

    # ---- commands & profile ---------------------------------------------------------

    def _set_my_commands(self, params: JSONDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        if len(commands) > 100:
            raise _bad("BOT_COMMANDS_TOO_MUCH")
        cleaned: list[JSONDict] = []
        for item in commands:
            if not isinstance(item, dict):
                raise _bad("can't parse BotCommand: expected an Object")
            for required in ("command", "description"):
                if required not in item:
                    raise _bad(f"can't parse BotCommand: Can't find field \"{required}\"")
            command, description = item["command"], item["description"]
            if not isinstance(command, str) or not _COMMAND_NAME_RE.fullmatch(command):
                raise _bad("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
            cleaned.append({"command": command, "description": description})
        key = (_scope_key(params.get("scope")), str(params.get("language_code") or ""))
        if cleaned:
            self._commands[key] = cleaned
        else:
            self._commands.pop(key, None)
        return True

    def _get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        key = (_scope_key(params.get("scope")), str(params.get("language_code") or ""))
        return self._commands.get(key, [])

    def _delete_my_commands(self, params: JSONDict) -> bool:
        key = (_scope_key(params.get("scope")), str(params.get("language_code") or ""))
        self._commands.pop(key, None)
        return True

    def _set_profile(self, name: str, params: JSONDict) -> bool:
        self._profile[(name, str(params.get("language_code") or ""))] = str(params.get(name) or "")
        return True

    def _get_profile(self, name: str, params: JSONDict) -> str:
        return self._profile.get((name, str(params.get("language_code") or "")), "")

    def _set_chat_menu_button(self, params: JSONDict) -> bool:
        chat_id = params.get("chat_id")
        button = params.get("menu_button") or {"type": "default"}
        self._menu_buttons[_int_or_none(chat_id)] = button
        return True

    def _get_chat_menu_button(self, params: JSONDict) -> JSONDict:
        chat_id = _int_or_none(params.get("chat_id"))
        return (
            self._menu_buttons.get(chat_id) or self._menu_buttons.get(None) or {"type": "commands"}
        )

    def _get_chat(self, params: JSONDict) -> JSONDict:
        user = self._chat(params, require_started=False)
        return {
            **user.chat_json,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
            },
        }

    # ---- messages -------------------------------------------------------------------

    def _chat(self, params: JSONDict, *, require_started: bool = True) -> SimUser:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad("chat_id is empty")
        key = _int_or_none(chat_id)
        user = self._users.get(key) if key is not None else None
        if user is None:
            raise _bad("chat not found")
        if require_started:
            if not user.started:
                raise _ApiError(403, "Forbidden: bot can't initiate conversation with a user")
            if user.blocked:
                raise _ApiError(403, "Forbidden: bot was blocked by the user")
        return user

    def _format(
        self,
        source: str,
        parse_mode: Any,
        entities: Any,
        *,
        limit: int,
        too_long: str,
        empty: str | None,
    ) -> tuple[str, list[JSONDict], str | None]:
        if "\r" in source:
            source = source.replace("\r", "")
        mode = parse_mode if isinstance(parse_mode, str) and parse_mode else None
        lowered = mode.lower() if mode else None
        if lowered == "html":
            try:
                plain, found = parse_html(source, strict=self.strict_html)
            except HtmlParseError as exc:
                raise _bad(f"can't parse entities: {exc}") from None
        elif lowered in ("markdown", "markdownv2"):
            plain, found = source, []
        elif lowered is None:
            plain, found = source, _clean_entities(entities)
        else:
            raise _bad("unsupported parse_mode")
        plain, found = _trim(plain, found)
        if not plain and empty is not None:
            raise _bad(empty)
        if utf16_len(plain) > limit:
            raise _bad(too_long)
        return plain, found, mode

    def _reply_target(self, user: SimUser, params: JSONDict) -> JSONDict | None:
        reply = params.get("reply_parameters")
        message_id: Any = None
        allow_missing = bool(params.get("allow_sending_without_reply"))
        if isinstance(reply, dict):
            message_id = reply.get("message_id")
            allow_missing = allow_missing or bool(reply.get("allow_sending_without_reply"))
        elif params.get("reply_to_message_id") is not None:
            message_id = params.get("reply_to_message_id")
        if message_id is None:
            return None
        original = user._lookup_raw(_int_or_none(message_id) or 0)
        if original is None and not allow_missing:
            raise _bad("message to be replied not found")
        return original

    def _new_bot_message(
        self,
        user: SimUser,
        *,
        kind: str,
        source: str,
        plain: str,
        entities: list[JSONDict],
        parse_mode: str | None,
        markup: JSONDict | None,
        reply_to: JSONDict | None,
        content: JSONDict,
        stored: _StoredFile | None = None,
    ) -> BotMessage:
        now = int(time.time())
        message_id = user._take_message_id()
        raw: JSONDict = {
            "message_id": message_id,
            "from": self.bot_json,
            "chat": user.chat_json,
            "date": now,
        }
        if reply_to is not None:
            raw["reply_to_message"] = _without_reply(reply_to)
        raw.update(content)
        if kind == "text":
            raw["text"] = plain
            if entities:
                raw["entities"] = entities
        elif plain:
            raw["caption"] = plain
            if entities:
                raw["caption_entities"] = entities
        if markup is not None and "inline_keyboard" in markup:
            raw["reply_markup"] = markup
        message = BotMessage(
            message_id=message_id,
            chat_id=user.chat_id,
            text=source if kind == "text" or plain else "",
            plain=plain,
            parse_mode=parse_mode,
            reply_markup=markup,
            kind=kind,
            caption=(source if plain else None) if kind != "text" else None,
            entities=entities,
            date=now,
            raw=raw,
        )
        if stored is not None:
            message.file_id = stored.file_id
            message.file_name = stored.file_name
            message.mime_type = stored.mime_type
            message.data = stored.data
        if markup is not None:
            if "keyboard" in markup:
                user.reply_keyboard = markup
            elif markup.get("remove_keyboard"):
                user.reply_keyboard = None
        user._bot_messages[message_id] = message
        user.messages.append(message)
        user._notify()
        self._emit(message, edited=False)
        return message

    def _emit(self, message: BotMessage, *, edited: bool) -> None:
        for hook in self.on_bot_message:
            try:
                hook(message, edited)
            except Exception:
                _LOGGER.exception("on_bot_message hook failed")

    def _send_message(self, params: JSONDict) -> JSONDict:
        markup = _check_markup(params.get("reply_markup"))
        text = params.get("text")
        if text is None or text == "":
            raise _bad("message text is empty")
        source = text if isinstance(text, str) else json.dumps(text)
        user = self._chat(params)
        plain, entities, mode = self._format(
            source,
            params.get("parse_mode"),
            params.get("entities"),
            limit=MAX_TEXT_LENGTH,
            too_long="message is too long",
            empty="message must be non-empty",
        )
        reply_to = self._reply_target(user, params)
        message = self._new_bot_message(
            user,
            kind="text",
            source=source,
            plain=plain,
            entities=entities,
            parse_mode=mode,
            markup=markup,
            reply_to=reply_to,
            content={},
        )
        return message.raw

    def _send_media(self, params: JSONDict, kind: str) -> JSONDict:
        markup = _check_markup(params.get("reply_markup"))
        user = self._chat(params)
        stored = self._input_file(params.get(kind), kind)
        caption = params.get("caption")
        source = caption if isinstance(caption, str) else ("" if caption is None else str(caption))
        plain, entities, mode = "", [], None
        if source:
            plain, entities, mode = self._format(
                source,
                params.get("parse_mode"),
                params.get("caption_entities"),
                limit=MAX_CAPTION_LENGTH,
                too_long="message caption is too long",
                empty=None,
            )
        reply_to = self._reply_target(user, params)
        if kind == "photo":
            content: JSONDict = {"photo": self._photo_sizes(stored.data, stored)}
        else:
            content = {"document": self._document_json(stored)}
        message = self._new_bot_message(
            user,
            kind=kind,
            source=source,
            plain=plain,
            entities=entities,
            parse_mode=mode,
            markup=markup,
            reply_to=reply_to,
            content=content,
            stored=stored,
        )
        return message.raw

    def _input_file(self, value: Any, kind: str) -> _StoredFile:
        if value is None or value == "":
            raise _bad(f"there is no {kind} in the request")
        if isinstance(value, UploadedFile):
            if not value.data:
                raise _bad("file must be non-empty")
            if kind == "photo" and not _looks_like_image(value.data):
                raise _bad("IMAGE_PROCESS_FAILED")
            return self._store_file(kind, value.filename, value.mime_type, value.data)
        if isinstance(value, str):
            known = self._files.get(value)
            if known is not None:
                return known
            if value.startswith(("http://", "https://")):
                name = value.rsplit("/", 1)[-1] or None
                return self._store_file(kind, name, None, b"")
        raise _bad("wrong file identifier/HTTP URL specified")

    def _store_file(
        self, kind: str, file_name: str | None, mime_type: str | None, data: bytes
    ) -> _StoredFile:
        self._next_file += 1
        number = self._next_file
        extension = ""
        if file_name and "." in file_name:
            extension = "." + file_name.rsplit(".", 1)[-1]
        elif kind == "photo":
            extension = ".jpg"
        stored = _StoredFile(
            file_id=f"LOCAL-{kind}-{number:08d}",
            file_unique_id=f"U{number:08d}",
            kind=kind,
            file_name=file_name,
            mime_type=mime_type,
            data=data,
            file_path=f"{kind}s/file_{number}{extension}",
        )
        self._files[stored.file_id] = stored
        self._file_paths[stored.file_path] = stored
        return stored

    def _photo_sizes(self, data: bytes, stored: _StoredFile | None) -> list[JSONDict]:
        full = stored or self._store_file("photo", None, "image/jpeg", data)
        thumb = self._store_file("photo", None, full.mime_type, data)
        return [
            {
                "file_id": thumb.file_id,
                "file_unique_id": thumb.file_unique_id,
                "file_size": len(data),
                "width": 90,
                "height": 68,
            },
            {
                "file_id": full.file_id,
                "file_unique_id": full.file_unique_id,
                "file_size": len(data),
                "width": 800,
                "height": 600,
            },
        ]

    @staticmethod
    def _document_json(stored: _StoredFile) -> JSONDict:
        document: JSONDict = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
        }
        if stored.file_name:
            document["file_name"] = stored.file_name
        if stored.mime_type:
            document["mime_type"] = stored.mime_type
        return document

    def _get_file(self, params: JSONDict) -> JSONDict:
        stored = self._files.get(str(params.get("file_id") or ""))
        if stored is None:
            raise _bad("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }

    def _send_chat_action(self, params: JSONDict) -> bool:
        action = params.get("action")
        if action not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        user = self._chat(params)
        user.chat_actions.append(str(action))
        return True

    def _message_to_edit(self, params: JSONDict) -> tuple[SimUser, BotMessage]:
        if params.get("inline_message_id"):
            raise _bad("MESSAGE_ID_INVALID")
        user = self._chat(params)
        message_id = _int_or_none(params.get("message_id"))
        if message_id is None:
            raise _bad("message identifier is not specified")
        message = user._bot_messages.get(message_id)
        if message is None or message.deleted:
            if message_id in user._user_messages:
                raise _bad("message can't be edited")
            raise _bad("message to edit not found")
        return user, message

    def _apply_edit(
        self,
        user: SimUser,
        message: BotMessage,
        *,
        source: str,
        plain: str,
        entities: list[JSONDict],
        parse_mode: str | None,
        markup: JSONDict | None,
    ) -> JSONDict:
        raw = dict(message.raw)
        text_key, entities_key = (
            ("text", "entities") if message.kind == "text" else ("caption", "caption_entities")
        )
        if plain or message.kind == "text":
            raw[text_key] = plain
        else:
            raw.pop(text_key, None)
        if entities:
            raw[entities_key] = entities
        else:
            raw.pop(entities_key, None)
        if markup is not None:
            raw["reply_markup"] = markup
        else:
            raw.pop("reply_markup", None)
        raw["edit_date"] = int(time.time())
        message.raw = raw
        message.text = source
        message.plain = plain
        message.entities = entities
        message.parse_mode = parse_mode
        message.reply_markup = markup
        if message.kind != "text":
            message.caption = source or None
        message.edits += 1
        user._notify()
        self._emit(message, edited=True)
        return raw

    def _edit_message_text(self, params: JSONDict) -> JSONDict:
        markup = _check_markup(params.get("reply_markup"), inline_only=True)
        text = params.get("text")
        if text is None or text == "":
            raise _bad("message text is empty")
        user, message = self._message_to_edit(params)
        if message.kind != "text":
            raise _bad("there is no text in the message to edit")
        source = text if isinstance(text, str) else json.dumps(text)
        plain, entities, mode = self._format(
            source,
            params.get("parse_mode"),
            params.get("entities"),
            limit=MAX_TEXT_LENGTH,
            too_long="message is too long",
            empty="message must be non-empty",
        )
        return self._finish_edit(user, message, source, plain, entities, mode, markup)

    def _finish_edit(
        self,
        user: SimUser,
        message: BotMessage,
        source: str,
        plain: str,
        entities: list[JSONDict],
        mode: str | None,
        markup: JSONDict | None,
    ) -> JSONDict:
        """Refuse an edit that changes nothing (as Telegram does), else apply it."""
        if (
            plain == message.plain
            and entities == message.entities
            and markup == _inline_markup(message.reply_markup)
        ):
            raise _bad(_NOT_MODIFIED)
        return self._apply_edit(
            user,
            message,
            source=source,
            plain=plain,
            entities=entities,
            parse_mode=mode,
            markup=markup,
        )

    def _edit_message_caption(self, params: JSONDict) -> JSONDict:
        markup = _check_markup(params.get("reply_markup"), inline_only=True)
        user, message = self._message_to_edit(params)
        if message.kind == "text":
            raise _bad("there is no caption in the message to edit")
        caption = params.get("caption")
        source = caption if isinstance(caption, str) else ("" if caption is None else str(caption))
        plain, entities, mode = "", [], None
        if source:
            plain, entities, mode = self._format(
                source,
                params.get("parse_mode"),
                params.get("caption_entities"),
                limit=MAX_CAPTION_LENGTH,
                too_long="message caption is too long",
                empty=None,
            )
        return self._finish_edit(user, message, source, plain, entities, mode, markup)

    def _edit_message_reply_markup(self, params: JSONDict) -> JSONDict:
        markup = _check_markup(params.get("reply_markup"), inline_only=True)
        user, message = self._message_to_edit(params)
        if markup == _inline_markup(message.reply_markup):
            raise _bad(_NOT_MODIFIED)
        return self._apply_edit(
            user,
            message,
            source=message.text,
            plain=message.plain,
            entities=message.entities,
            parse_mode=message.parse_mode,
            markup=markup,
        )

    def _delete_message(self, params: JSONDict) -> bool:
        user = self._chat(params, require_started=False)
        message_id = _int_or_none(params.get("message_id"))
        if message_id is None:
            raise _bad("message identifier is not specified")
        message = user._bot_messages.get(message_id)
        if message is not None and not message.deleted:
            message.deleted = True
            user._notify()
            return True
        if user._user_messages.pop(message_id, None) is not None:
            return True
        raise _bad("message to delete not found")

    # ---- callback queries -----------------------------------------------------------

    def _new_query(self, user: SimUser) -> str:
        self._next_query += 1
        query_id = str(4_000_000_000_000_000_000 + self.bot_id * 1_000_000 + self._next_query)
        self._queries[query_id] = _Query(user, time.monotonic())
        return query_id

    def _answer_callback_query(self, params: JSONDict) -> bool:
        query_id = params.get("callback_query_id")
        query = self._queries.get(str(query_id)) if query_id is not None else None
        if (
            query is None
            or query.answered
            or time.monotonic() - query.created > self.callback_query_ttl
        ):
            raise _bad(_QUERY_TOO_OLD)
        text = params.get("text")
        if isinstance(text, str) and len(text) > MAX_CALLBACK_ANSWER_LENGTH:
            raise _bad("MESSAGE_TOO_LONG")
        query.answered = True
        payload = {
            key: params[key]
            for key in ("callback_query_id", "text", "show_alert", "url", "cache_time")
            if key in params
        }
        user = query.user
        if user is not None:
            user.callback_answers.append(payload)
            user._notify()
            for hook in self.on_callback_answer:
                try:
                    hook(user, payload)
                except Exception:
                    _LOGGER.exception("on_callback_answer hook failed")
        return True


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _take(table: dict[str, deque[Any]], key: str) -> Any:
    """Consume one use of the first rule for ``key`` (or '*'); return it or None."""
    for name in (key, "*"):
        rules = table.get(name)
        if rules:
            rule = rules[0]
            rule.remaining -= 1
            if rule.remaining <= 0:
                rules.popleft()
            if not rules:
                del table[name]
            return rule
    return None


def _default_description(status: int, retry_after: int | None) -> str:
    if status == 429:
        return f"Too Many Requests: retry after {retry_after if retry_after is not None else 1}"
    known = {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden: bot was blocked by the user",
        404: "Not Found",
        409: _CONFLICT_POLL,
        500: "Internal Server Error",
        502: "Bad Gateway",
    }
    if status in known:
        return known[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Error {status}"


def _json_response(status: int, payload: JSONDict) -> web.Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return web.Response(status=status, body=body, content_type="application/json")


def _error_response(
    status: int, description: str, parameters: JSONDict | None = None
) -> web.Response:
    payload: JSONDict = {"ok": False, "error_code": status, "description": description}
    if parameters:
        payload["parameters"] = parameters
    return _json_response(status, payload)


def _decode_value(name: str, raw: str) -> Any:
    """Decode one form value as PTB sends it: strings raw, everything else JSON."""
    if name in _STRING_PARAMS or not raw or raw[0] not in _JSON_FIRST_CHARS:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


async def _read_params(request: web.Request) -> JSONDict:
    """Decode query string and body (form, multipart or JSON) into one parameter dict."""
    params: JSONDict = {}
    for key, value in request.query.items():
        params[key] = _decode_value(key, value)
    if not request.body_exists:
        return params
    content_type = request.content_type
    if content_type == "application/json":
        try:
            body = await request.json()
        except web.HTTPRequestEntityTooLarge:
            raise _ApiError(413, "Request Entity Too Large") from None
        except ValueError:
            raise _bad("can't parse JSON encoded request") from None
        if isinstance(body, dict):
            params.update(body)
        return params
    if content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return params
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise _ApiError(413, "Request Entity Too Large") from None
    except ValueError:
        raise _bad("can't parse request body") from None
    files: dict[str, UploadedFile] = {}
    for key, value in form.items():
        if isinstance(value, web.FileField):
            files[key] = UploadedFile(value.filename, value.content_type, value.file.read())
        else:
            params[key] = _decode_value(key, str(value))
    if files:
        for key, value in list(params.items()):
            if isinstance(value, str) and value.startswith("attach://"):
                attached = files.get(value[len("attach://") :])
                if attached is not None:
                    params[key] = attached
        for key, uploaded in files.items():
            params.setdefault(key, uploaded)
    return params


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _int_param(params: JSONDict, name: str, default: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    number = _int_or_none(value)
    if number is None:
        if isinstance(value, float):
            return int(value)
        raise _bad(f'field "{name}" must be of type Integer')
    return number


def _float_param(params: JSONDict, name: str, default: float) -> float:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _bad(f'field "{name}" must be of type Number') from None


def _scope_key(scope: Any) -> str:
    if not isinstance(scope, dict):
        scope = {"type": "default"}
    return json.dumps(scope, sort_keys=True)


def _clean_entities(value: Any) -> list[JSONDict]:
    if not isinstance(value, list):
        return []
    return [
        dict(e)
        for e in value
        if isinstance(e, dict) and {"type", "offset", "length"} <= e.keys() and e["length"] > 0
    ]


def _looks_like_image(data: bytes) -> bool:
    if data.startswith(_IMAGE_MAGIC):
        return True
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def _without_reply(message: JSONDict) -> JSONDict:
    """A message as embedded in reply_to_message (Telegram does not nest replies)."""
    if "reply_to_message" not in message:
        return message
    return {k: v for k, v in message.items() if k != "reply_to_message"}


def _inline_markup(markup: JSONDict | None) -> JSONDict | None:
    return markup if markup is not None and "inline_keyboard" in markup else None


def _check_markup(value: Any, *, inline_only: bool = False) -> JSONDict | None:
    """Validate reply_markup like Telegram; return it as a dict (or None when absent)."""
    if value is None or value == "":
        return None
    if not isinstance(value, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in value:
        _check_inline_keyboard(value["inline_keyboard"])
        return value
    if inline_only:
        raise _bad("inline keyboard expected")
    if "keyboard" in value:
        rows = value["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise _bad('field "keyboard" of the ReplyKeyboardMarkup must be an Array of Arrays')
        for row in rows:
            for button in row:
                label = button.get("text") if isinstance(button, dict) else button
                if not isinstance(label, str) or not label:
                    raise _bad('can\'t parse keyboard button: Field "text" must be of type String')
        return value
    if value.get("remove_keyboard") is True or value.get("force_reply") is True:
        return value
    raise _bad("can't parse reply keyboard markup JSON object")


def _check_inline_keyboard(rows: Any) -> None:
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise _bad(
            'field "inline_keyboard" of the InlineKeyboardMarkup should be an Array of Arrays'
        )
    count = 0
    for row in rows:
        for button in row:
            count += 1
            _check_inline_button(button)
    if count > MAX_INLINE_BUTTONS:
        raise _bad("reply markup is too long")


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict):
        raise _bad("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
    if "text" not in button:
        raise _bad("can't parse inline keyboard button: Can't find field \"text\"")
    text = button["text"]
    if not isinstance(text, str):
        raise _bad('can\'t parse inline keyboard button: Field "text" must be of type String')
    if not text.strip():
        raise _bad("BUTTON_TEXT_INVALID")
    actions = [k for k in _INLINE_ACTION_FIELDS if k in button and button[k] not in ("", None)]
    if not actions:
        raise _bad(
            "can't parse InlineKeyboardButton: Text buttons are not allowed in the inline keyboard"
        )
    data = button.get("callback_data")
    if data not in (None, ""):
        if not isinstance(data, str):
            raise _bad(
                'can\'t parse inline keyboard button: Field "callback_data" must be of type String'
            )
        if len(data.encode("utf-8")) > MAX_CALLBACK_DATA_BYTES:
            raise _bad("BUTTON_DATA_INVALID")
    url = button.get("url")
    if url not in (None, "") and (not isinstance(url, str) or not _looks_like_url(url)):
        raise _bad(f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL")


def _looks_like_url(url: str) -> bool:
    if any(c.isspace() for c in url):
        return False
    if url.startswith("tg://"):
        return True
    host = url.split("://", 1)[-1].split("/", 1)[0]
    return "." in host or host.startswith("localhost")
