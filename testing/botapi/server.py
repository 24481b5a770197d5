"""A local Telegram Bot API server that answers like Telegram.

``LocalBotAPI`` is an aiohttp web server running in the caller's event loop. The real
python-telegram-bot ``Application`` talks to it over HTTP exactly as it would talk to
``api.telegram.org``::

    async with LocalBotAPI() as api:
        app = ApplicationBuilder().token(api.token).base_url(api.base_url).build()
        camille = api.user(1001)
        await camille.send_command("start")

It serves the test suite, the benchmarks and ``relais chat`` (a terminal mode with no
network and no token). It queues updates for getUpdates (or a webhook), records every call,
and keeps each chat's messages; the people are in ``users``, the HTML and markup rules in
``html``, the wire format in ``wire`` and the injected faults and webhook delivery in
``faults``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from testing.botapi.faults import FaultInjection, WebhookDelivery, WebhookRouting
from testing.botapi.html import (
    MAX_CALLBACK_ANSWER_LENGTH,
    MAX_CAPTION_LENGTH,
    MAX_TEXT_LENGTH,
    HtmlParseError,
    check_markup,
    clean_entities,
    inline_markup,
    parse_html,
    trim,
    utf16_len,
)
from testing.botapi.users import BotMessage, SimUser, without_reply
from testing.botapi.wire import (
    CONFLICT_POLL,
    CONFLICT_WEBHOOK,
    NOT_MODIFIED,
    QUERY_TOO_OLD,
    ApiCall,
    ApiError,
    JSONDict,
    QueuedUpdate,
    UploadedFile,
    bad_request,
    error_response,
    float_param,
    int_or_none,
    int_param,
    json_response,
    read_params,
)

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

BotMessageHook = Callable[[BotMessage, bool], object]  # (message, edited)
CallbackAnswerHook = Callable[[SimUser, JSONDict], object]

MAX_UPLOAD_BYTES = 50 * 1024 * 1024


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
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")
_COMMAND_NAME_RE = re.compile(r"[a-z0-9_]{1,32}")
_TOKEN_SHAPE_RE = re.compile(r"\d+:[A-Za-z0-9_-]+")


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
class _Query:
    user: SimUser | None
    created: float
    answered: bool = False


_NEW_UPDATE = "update"
_CONFLICT = "conflict"
_CLOSING = "closing"


# --------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------


class LocalBotAPI(FaultInjection, WebhookRouting):
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
        self._pending: deque[QueuedUpdate] = deque()
        self._sticky = 0
        self._history: dict[int, JSONDict] = {}
        self._next_update_id = 100_000_001
        self._allowed_updates: frozenset[str] | None = None
        self._poll_waiter: asyncio.Future[str] | None = None
        self._init_faults()
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
        self._init_webhook_routing()
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
        await self._stop_webhook_routing()
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

    def _remove_pending(self, entry: QueuedUpdate) -> None:
        with contextlib.suppress(ValueError):
            self._pending.remove(entry)
        if entry.sticky:
            self._sticky = max(self._sticky - 1, 0)

    # ---- updates --------------------------------------------------------------------

    def resume_after(self, update_id: int) -> None:
        """Number the next updates above ``update_id`` (a bot that has handled that one).

        Telegram's update ids keep growing across restarts of a bot; a new double starts
        from the same id, which a database of an earlier run may already have handled.
        """
        self._next_update_id = max(self._next_update_id, update_id + 1)

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
        self._insert_pending(QueuedUpdate(update_id, update, True))
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
        self._insert_pending(QueuedUpdate(update_id, update, False))
        self._wake_poller(_NEW_UPDATE)
        return update_id

    def _insert_pending(self, entry: QueuedUpdate) -> None:
        pending = self._pending
        if not pending or pending[-1].update_id <= entry.update_id:
            pending.append(entry)
            return
        index = len(pending)
        while index > 0 and pending[index - 1].update_id > entry.update_id:
            index -= 1
        pending.insert(index, entry)

    def _wake_poller(self, reason: str) -> None:
        self._wake_webhook()
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
            return error_response(404, "Not Found")
        token, _, method = path[4:].partition("/")
        key = method.lower()
        entry = self._methods.get(key)
        call = ApiCall(entry[0] if entry is not None else method, {}, 0)
        if self.record_calls:
            self.calls.append(call)  # in arrival order; status 0 until answered
        try:
            call.params = await read_params(request)
            if token != self.token or self.logged_out:
                if _TOKEN_SHAPE_RE.fullmatch(token) is None:
                    raise ApiError(404, "Not Found")
                raise ApiError(401, "Unauthorized")
            await self._inject(key)
            if entry is None:
                raise ApiError(404, "Not Found")
            result = entry[1](call.params)
            if asyncio.iscoroutine(result):
                result = await result
        except ApiError as exc:
            call.status, call.description = exc.status, exc.description
            return error_response(exc.status, exc.description, exc.parameters)
        except ConnectionResetError:
            # The client hung up before its request was read (a bot stopping during a long
            # poll): there is nobody to answer, and it is not the double's failure.
            return error_response(400, "Bad Request: connection lost")
        except Exception as exc:  # a bug in the double, or parameters of a surprising type
            _LOGGER.exception("LocalBotAPI failed on %s", call.method)
            call.status = 500
            call.description = f"Internal Server Error: local Bot API failed: {exc!r}"
            return error_response(500, call.description)
        call.status, call.result = 200, result
        return json_response(200, {"ok": True, "result": result})

    def _serve_file(self, rest: str) -> web.Response:
        token, _, file_path = rest.partition("/")
        stored = self._file_paths.get(file_path) if token == self.token else None
        if stored is None:
            return error_response(404, "Not Found")
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
            raise ApiError(409, CONFLICT_WEBHOOK)
        offset = int_param(params, "offset", 0)
        limit = min(max(int_param(params, "limit", 100), 1), 100)
        timeout = max(float_param(params, "timeout", 0.0), 0.0)
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
                raise ApiError(409, CONFLICT_POLL)
            batch = self._collect(limit)
            if batch or reason != _NEW_UPDATE or loop.time() >= deadline:
                return batch

    def _set_allowed_updates(self, value: Any) -> None:
        if value is None or value == "":
            return
        if not isinstance(value, list):
            raise bad_request("can't parse allowed updates JSON array")
        self._allowed_updates = frozenset(str(v) for v in value) or None

    def _set_webhook(self, params: JSONDict) -> bool:
        url = params.get("url") or ""
        if not url:
            self.webhook = None
            return True
        if not isinstance(url, str) or not url.startswith("https://"):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
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
            raise bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise bad_request("BOT_COMMANDS_TOO_MUCH")
        cleaned: list[JSONDict] = []
        for item in commands:
            if not isinstance(item, dict):
                raise bad_request("can't parse BotCommand: expected an Object")
            for required in ("command", "description"):
                if required not in item:
                    raise bad_request(f"can't parse BotCommand: Can't find field \"{required}\"")
            command, description = item["command"], item["description"]
            if not isinstance(command, str) or not _COMMAND_NAME_RE.fullmatch(command):
                raise bad_request("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description.strip()) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
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
        self._menu_buttons[int_or_none(chat_id)] = button
        return True

    def _get_chat_menu_button(self, params: JSONDict) -> JSONDict:
        chat_id = int_or_none(params.get("chat_id"))
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
            raise bad_request("chat_id is empty")
        key = int_or_none(chat_id)
        user = self._users.get(key) if key is not None else None
        if user is None:
            raise bad_request("chat not found")
        if require_started:
            if not user.started:
                raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
            if user.blocked:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
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
                raise bad_request(f"can't parse entities: {exc}") from None
        elif lowered in ("markdown", "markdownv2"):
            plain, found = source, []
        elif lowered is None:
            plain, found = source, clean_entities(entities)
        else:
            raise bad_request("unsupported parse_mode")
        plain, found = trim(plain, found)
        if not plain and empty is not None:
            raise bad_request(empty)
        if utf16_len(plain) > limit:
            raise bad_request(too_long)
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
        original = user._lookup_raw(int_or_none(message_id) or 0)
        if original is None and not allow_missing:
            raise bad_request("message to be replied not found")
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
            raw["reply_to_message"] = without_reply(reply_to)
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
        markup = check_markup(params.get("reply_markup"))
        text = params.get("text")
        if text is None or text == "":
            raise bad_request("message text is empty")
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
        markup = check_markup(params.get("reply_markup"))
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
            raise bad_request(f"there is no {kind} in the request")
        if isinstance(value, UploadedFile):
            if not value.data:
                raise bad_request("file must be non-empty")
            if kind == "photo" and not _looks_like_image(value.data):
                raise bad_request("IMAGE_PROCESS_FAILED")
            return self._store_file(kind, value.filename, value.mime_type, value.data)
        if isinstance(value, str):
            known = self._files.get(value)
            if known is not None:
                return known
            if value.startswith(("http://", "https://")):
                name = value.rsplit("/", 1)[-1] or None
                return self._store_file(kind, name, None, b"")
        raise bad_request("wrong file identifier/HTTP URL specified")

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
            raise bad_request("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }

    def _send_chat_action(self, params: JSONDict) -> bool:
        action = params.get("action")
        if action not in _CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        user = self._chat(params)
        user.chat_actions.append(str(action))
        return True

    def _message_to_edit(self, params: JSONDict) -> tuple[SimUser, BotMessage]:
        if params.get("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        user = self._chat(params)
        message_id = int_or_none(params.get("message_id"))
        if message_id is None:
            raise bad_request("message identifier is not specified")
        message = user._bot_messages.get(message_id)
        if message is None or message.deleted:
            if message_id in user._user_messages:
                raise bad_request("message can't be edited")
            raise bad_request("message to edit not found")
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
        markup = check_markup(params.get("reply_markup"), inline_only=True)
        text = params.get("text")
        if text is None or text == "":
            raise bad_request("message text is empty")
        user, message = self._message_to_edit(params)
        if message.kind != "text":
            raise bad_request("there is no text in the message to edit")
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
            and markup == inline_markup(message.reply_markup)
        ):
            raise bad_request(NOT_MODIFIED)
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
        markup = check_markup(params.get("reply_markup"), inline_only=True)
        user, message = self._message_to_edit(params)
        if message.kind == "text":
            raise bad_request("there is no caption in the message to edit")
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
        markup = check_markup(params.get("reply_markup"), inline_only=True)
        user, message = self._message_to_edit(params)
        if markup == inline_markup(message.reply_markup):
            raise bad_request(NOT_MODIFIED)
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
        message_id = int_or_none(params.get("message_id"))
        if message_id is None:
            raise bad_request("message identifier is not specified")
        message = user._bot_messages.get(message_id)
        if message is not None and not message.deleted:
            message.deleted = True
            user._notify()
            return True
        if user._user_messages.pop(message_id, None) is not None:
            return True
        raise bad_request("message to delete not found")

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
            raise bad_request(QUERY_TOO_OLD)
        text = params.get("text")
        if isinstance(text, str) and len(text) > MAX_CALLBACK_ANSWER_LENGTH:
            raise bad_request("MESSAGE_TOO_LONG")
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


def _scope_key(scope: Any) -> str:
    if not isinstance(scope, dict):
        scope = {"type": "default"}
    return json.dumps(scope, sort_keys=True)


def _looks_like_image(data: bytes) -> bool:
    if data.startswith(_IMAGE_MAGIC):
        return True
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"
