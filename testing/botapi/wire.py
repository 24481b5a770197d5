"""The Bot API's wire protocol: how requests are decoded and answers and errors encoded.

Requests are decoded the way PTB encodes them: form-encoded (multipart when files are
uploaded) where string values are sent raw and every other value is JSON-encoded; JSON
bodies and query strings are accepted too, like the real server. Answers use Telegram's
envelope ``{"ok": true, "result": ...}`` and errors use Telegram's descriptions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = ["ApiCall", "UploadedFile"]

JSONDict = dict[str, Any]


# Telegram's descriptions of the errors the double answers in more than one place.
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
CONFLICT_POLL = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
    "is running"
)
CONFLICT_WEBHOOK = (
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


class ApiError(Exception):
    """An error answer: HTTP status, Telegram description and optional parameters."""

    def __init__(self, status: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def bad_request(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


def json_response(status: int, payload: JSONDict) -> web.Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return web.Response(status=status, body=body, content_type="application/json")


def error_response(
    status: int, description: str, parameters: JSONDict | None = None
) -> web.Response:
    payload: JSONDict = {"ok": False, "error_code": status, "description": description}
    if parameters:
        payload["parameters"] = parameters
    return json_response(status, payload)


def _decode_value(name: str, raw: str) -> Any:
    """Decode one form value as PTB sends it: strings raw, everything else JSON."""
    if name in _STRING_PARAMS or not raw or raw[0] not in _JSON_FIRST_CHARS:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


async def read_params(request: web.Request) -> JSONDict:
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
            raise ApiError(413, "Request Entity Too Large") from None
        except ValueError:
            raise bad_request("can't parse JSON encoded request") from None
        if isinstance(body, dict):
            params.update(body)
        return params
    if content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return params
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "Request Entity Too Large") from None
    except ValueError:
        raise bad_request("can't parse request body") from None
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


def int_or_none(value: Any) -> int | None:
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


def int_param(params: JSONDict, name: str, default: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    number = int_or_none(value)
    if number is None:
        if isinstance(value, float):
            return int(value)
        raise bad_request(f'field "{name}" must be of type Integer')
    return number


def float_param(params: JSONDict, name: str, default: float) -> float:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise bad_request(f'field "{name}" must be of type Number') from None


@dataclass(slots=True)
class QueuedUpdate:
    """An update waiting for getUpdates (or for a webhook target to accept it)."""

    update_id: int
    update: JSONDict
    sticky: bool  # a redelivery that must be sent once even though its id was confirmed
