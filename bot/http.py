"""An aiohttp transport for python-telegram-bot.

PTB's default transport is httpx. In our benchmark httpx's client and connection pool
took more CPU per Bot API call than the rest of the bot together (pool scans on every
request); aiohttp does the same job for a fraction of it. PTB supports replacing the
transport through `BaseRequest`, which is all this module does.

Per request, the parts of aiohttp's work that never change for the Bot API are done
once: the parsed URL of each method, the timeout objects, no cookie jar (Telegram sets
no cookies). Parameters go as one JSON body (`application/json`, which the Bot API
accepts for every method but file uploads) encoded by the C JSON encoder, instead of a
form that aiohttp would url-encode value by value; uploads still go as multipart forms.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from multidict import CIMultiDict
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData
from yarl import URL

__all__ = ["AiohttpRequest"]

# Bot API URLs are the base URL, the token and one of ~100 method names: a handful per bot.
_MAX_CACHED_URLS = 512
_JSON_HEADERS = CIMultiDict({"Content-Type": "application/json"})
# ASCII output: the C encoder's fastest path, and lone surrogates cannot break encoding.
_encode_json = json.JSONEncoder(separators=(",", ":")).encode


class AiohttpRequest(BaseRequest):
    """A `BaseRequest` backed by one `aiohttp.ClientSession` with a bounded pool."""

    def __init__(
        self,
        *,
        pool_size: int = 8,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        connect_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
    ) -> None:
        self._pool_size = pool_size
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}
        self._timeouts: dict[tuple[Any, Any, Any], aiohttp.ClientTimeout] = {}

    @property
    def read_timeout(self) -> float | None:
        """Default read timeout (PTB adds the long-poll timeout for getUpdates)."""
        return self._read_timeout

    async def initialize(self) -> None:
        """Open the session (idempotent)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                headers={"User-Agent": self.USER_AGENT},
                # The Bot API sets no cookies: skip the jar's per-request filtering.
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def shutdown(self) -> None:
        """Close the session and its connections."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _url(self, url: str) -> URL:
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) >= _MAX_CACHED_URLS:
                self._urls.clear()
            parsed = self._urls[url] = URL(url)
        return parsed

    def _timeout(self, read: Any, connect: Any, pool: Any) -> aiohttp.ClientTimeout:
        key = (read, connect, pool)
        timeout = self._timeouts.get(key)
        if timeout is None:
            if len(self._timeouts) >= _MAX_CACHED_URLS:
                self._timeouts.clear()
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None,
                connect=(pool or 0) + (connect or 0) if pool or connect else None,
                sock_connect=connect,
                sock_read=read,
            )
        return timeout

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Send one Bot API request; map aiohttp failures to PTB's errors."""
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        read = self._read_timeout if isinstance(read_timeout, DefaultValue) else read_timeout
        connect = (
            self._connect_timeout if isinstance(connect_timeout, DefaultValue) else connect_timeout
        )
        pool = self._pool_timeout if isinstance(pool_timeout, DefaultValue) else pool_timeout
        body: aiohttp.FormData | bytes | None = None
        headers: CIMultiDict[str] | None = None
        if request_data is not None:
            if request_data.contains_files:
                form = aiohttp.FormData()
                for name, value in request_data.json_parameters.items():
                    form.add_field(name, value)
                for name, part in request_data.multipart_data.items():
                    filename, content, *rest = part
                    mimetype = rest[0] if rest else None
                    form.add_field(name, content, filename=filename, content_type=mimetype)
                body = form
            else:
                # The values are JSON already (PTB turned objects, dates and enums into
                # dicts, numbers and strings): one encoder pass for the whole body.
                body = _encode_json(request_data.parameters).encode("ascii")
                headers = _JSON_HEADERS
        try:
            async with session.request(method, self._url(url), data=body, headers=headers,
                                       timeout=self._timeout(read, connect, pool)) as resp:
                return resp.status, await resp.read()
        except TimeoutError as err:
            raise TimedOut from err
        except aiohttp.ClientError as err:
            raise NetworkError(f"aiohttp.{err.__class__.__name__}: {err}") from err
