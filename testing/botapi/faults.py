"""Faults the double injects, and webhook delivery through a simulated load balancer.

``FaultInjection`` makes the next calls of a method fail (429 with ``retry_after``, 5xx,
any Telegram error) or answer late. ``WebhookRouting`` POSTs updates to the instances behind
a webhook URL as Telegram does, and retries on errors and refused connections. Both are
mixed into ``LocalBotAPI``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import aiohttp

from testing.botapi.wire import CONFLICT_POLL, ApiError, JSONDict, QueuedUpdate

__all__ = ["FaultInjection", "WebhookDelivery", "WebhookRouting"]


@dataclass(slots=True)
class _Fault:
    status: int
    description: str
    retry_after: int | None
    remaining: int


@dataclass(slots=True)
class _Delay:
    seconds: float
    remaining: int


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One POST of an update to a webhook target, and the HTTP status (0: no answer)."""

    update_id: int
    target: int
    status: int
    at: float


_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


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
        409: CONFLICT_POLL,
        500: "Internal Server Error",
        502: "Bad Gateway",
    }
    if status in known:
        return known[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Error {status}"


class FaultInjection:
    """Errors and delays for the next calls of a method (mixed into ``LocalBotAPI``)."""

    def _init_faults(self) -> None:
        self._faults: dict[str, deque[_Fault]] = {}
        self._delays: dict[str, deque[_Delay]] = {}

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

    async def _inject(self, key: str) -> None:
        """Apply the next delay, then raise the next fault, planned for method ``key``."""
        if self._delays:
            delay = _take(self._delays, key)
            if delay is not None:
                await asyncio.sleep(delay.seconds)
        if self._faults:
            fault = _take(self._faults, key)
            if fault is not None:
                retry = fault.retry_after
                parameters = {"retry_after": retry} if retry is not None else None
                raise ApiError(fault.status, fault.description, parameters)


class WebhookRouting:
    """Webhook delivery to the instances behind a load balancer (mixed into ``LocalBotAPI``)."""

    if TYPE_CHECKING:  # provided by LocalBotAPI
        webhook: JSONDict | None
        _pending: deque[QueuedUpdate]

        def _is_allowed(self, update: JSONDict) -> bool: ...

        def _remove_pending(self, entry: QueuedUpdate) -> None: ...

    def _init_webhook_routing(self) -> None:
        # Webhook delivery (see `route_webhook`): where the public URL's traffic goes.
        self.webhook_deliveries: list[WebhookDelivery] = []
        self._hook_targets: list[str] = []
        self._hook_choose: Callable[[JSONDict], int | None] | None = None
        self._hook_wake: asyncio.Event | None = None
        self._hook_task: asyncio.Task[None] | None = None
        self._hook_in_flight: set[int] = set()
        self._hook_next = 0

    def _wake_webhook(self) -> None:
        if self._hook_wake is not None:
            self._hook_wake.set()

    async def _stop_webhook_routing(self) -> None:
        task, self._hook_task = self._hook_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

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

    async def _hook_post(self, http: aiohttp.ClientSession, entry: QueuedUpdate) -> None:
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
