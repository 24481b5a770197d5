"""The people of the double: ``SimUser`` plays a person in a private chat with the bot.

A ``SimUser`` sends text, commands, media, contacts and locations, presses inline buttons
by label, and sees what the bot sent (``BotMessage``, edits applied). Helpers wait for the
bot's replies without a fixed sleep: until it has been quiet for a moment, or until a
number of messages arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from testing.botapi.html import INLINE_ACTION_FIELDS, command_entities, utf16_len
from testing.botapi.wire import JSONDict


class Host(Protocol):
    """What a simulated person needs of the Bot API double (`LocalBotAPI`)."""

    bot_id: int

    def _push_update(self, update: JSONDict) -> int: ...

    def _store_file(self, kind: str, file_name: str | None, mime_type: str | None,
                    data: bytes) -> Any: ...

    def _photo_sizes(self, data: bytes, stored: Any) -> list[JSONDict]: ...

    def _document_json(self, stored: Any) -> JSONDict: ...

    def _new_query(self, user: SimUser) -> str: ...

__all__ = ["BotMessage", "SimUser"]


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


# --------------------------------------------------------------------------------------
# The simulated person
# --------------------------------------------------------------------------------------


class SimUser:
    """A person chatting with the bot in a private chat (chat id == user id)."""

    def __init__(
        self,
        api: Host,
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
            message["reply_to_message"] = without_reply(original)
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
        entities = command_entities(text)
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
            kinds = [k for k in INLINE_ACTION_FIELDS if k in button]
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


def without_reply(message: JSONDict) -> JSONDict:
    """A message as embedded in reply_to_message (Telegram does not nest replies)."""
    if "reply_to_message" not in message:
        return message
    return {k: v for k, v in message.items() if k != "reply_to_message"}
