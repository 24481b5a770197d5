"""The long poll: fetch updates, give each chat its own queue, confirm what is handled.

Telegram forgets an update once getUpdates is called with a higher offset. PTB's own
Updater moves the offset as soon as a batch is fetched, so a `kill -9` while handling
loses it; waiting for a whole batch before fetching the next one (as this poller once did)
makes every chat wait for the slowest chat of the batch: one person's 400 long questions
delayed everybody else's `/aide` by half a minute.

Here the poll keeps going while updates are handled:

* each chat has its own ordered queue and worker, so a chat's backlog only delays that
  chat; at most `concurrency` updates (of different chats) run at once;
* the offset sent to Telegram is the lowest update not yet handled: a crash loses nothing
  (handlers are idempotent by update id, so what was handled above it and comes again is
  ignored by the turn);
* an update put off because the database was locked (`handlers.telegram.take_postponed`)
  stays at the head of its chat's queue and is tried again after a pause (1 s, doubling up
  to 30 s): its chat's next updates wait behind it, the other chats go on;
* an update the library cannot read, or whose id (or chat id) is out of range, is set
  aside (`bot.updates.dead_letter`) and confirmed: its chat goes on;
* while something is being handled, getUpdates answers at once with the updates not yet
  confirmed: the poller skips those it already has (handled or not, without parsing them
  again), and asks again once everything in flight is done (as when it waited for a
  batch), or after `pace` (0.1 s) when a chat has a backlog, or after `patience` (0.5 s)
  when a turn is slow, whichever comes first. It long-polls only when nothing is in
  flight;
* memory is bounded: Telegram sends at most 100 updates above the offset, and a chat with
  `queue_limit` updates waiting has its next ones dropped (confirmed unread) — a person
  cannot type that fast; a flood can, and the turn's per-minute limit has already told
  them (`bot.services.limits`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from telegram import Update
from telegram.error import InvalidToken, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import Application

from bot.updates import chat_of, dead_letter, in_range
from handlers.telegram import take_postponed

__all__ = ["ALLOWED_UPDATES", "UpdatePoller"]

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ["message", "callback_query"]
# Telegram's largest batch.
BATCH = 100
# Pause before an update put off (database busy) is tried again: doubles up to the cap.
RETRY_FIRST = 1.0
RETRY_CAP = 30.0


class UpdatePoller:
    """Long-polls getUpdates; per-chat queues; confirms an update only once handled."""

    def __init__(self, application: Application, *, timeout: int, concurrency: int,
                 queue_limit: int = 30, pace: float = 0.1, patience: float = 0.5) -> None:
        self.application = application
        self.timeout = timeout
        self.semaphore = asyncio.Semaphore(concurrency)
        self.queue_limit = queue_limit
        # Longest wait between two looks while a chat has a backlog, and while anything
        # else is being handled: new updates are picked up at the latest then.
        self.pace = pace
        self.patience = patience
        # Every update below it is handled: the offset of the next call.
        self.offset: int | None = None
        self.handled = 0
        self.dropped = 0
        self.postponed = 0
        self.dead = 0
        self.polls = 0
        # Update ids fetched and not yet confirmed to Telegram: handled (True) or not.
        self._known: dict[int, bool] = {}
        self._queues: dict[int, deque[Update]] = {}
        self._workers: dict[int, asyncio.Task[None]] = {}
        # Chats whose head update was put off and waits for its retry (not a backlog).
        self._resting: set[int] = set()
        # Ids of updates set aside and recorded (they may be fetched again until confirmed).
        self._set_aside: set[str] = set()
        # Set while no update is waiting or being handled.
        self._idle = asyncio.Event()
        self._idle.set()

    # --- the poll -----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and dispatch updates until `stop` is set (or the task is cancelled)."""
        backoff = 1.0
        try:
            while not stop.is_set():
                busy = self._in_flight()
                sent = self.offset
                self.polls += 1
                try:
                    fetched = await self._fetch(sent, 0 if busy else self.timeout)
                except InvalidToken:
                    raise
                except RetryAfter as exc:
                    await _sleep_or_stop(stop, _as_seconds(exc.retry_after))
                    continue
                except (NetworkError, TimedOut, TelegramError) as exc:
                    log.warning("getUpdates failed (%s); retrying in %.0f s", exc, backoff)
                    await _sleep_or_stop(stop, backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                backoff = 1.0
                await self._take(fetched, sent)
                if self._in_flight():
                    # As long as something is being handled, getUpdates would answer at
                    # once with the same updates: wait for them all to be done (as when
                    # waiting for a batch), but not longer than `pace` when a chat has a
                    # backlog (a flood goes on in its own queue while the others' next
                    # updates are fetched), nor than `patience` otherwise (a slow turn).
                    # Under an even load, batches end before: nothing is fetched twice.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._idle.wait(), self.pace
                                               if self._backlog() else self.patience)
        finally:
            workers = list(self._workers.values())
            for worker in workers:
                worker.cancel()
            for worker in workers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await worker

    async def _fetch(self, offset: int | None,
                     wait: int) -> list[tuple[object, dict[str, Any], Update | None]]:
        """The updates from `offset` on not in hand yet, waiting up to `wait` s (long poll).

        Each as (update id, raw payload, update), None for an update the library cannot
        parse. Raw, then parsed here: the updates already in hand (being handled, and sent
        again until confirmed) are not parsed again, which costs more than the rest of the
        call.
        """
        params: dict[str, object] = {"timeout": wait, "limit": BATCH,
                                     "allowed_updates": ALLOWED_UPDATES}
        if offset is not None:
            params["offset"] = offset
        # What Bot.get_updates calls, minus its parsing of every update. (The public
        # do_api_request does the same but warns at each call, and turns InvalidToken into
        # EndPointNotFound, which would make a revoked token retried forever.)
        raw = await self.application.bot._post(
            "getUpdates", params, read_timeout=wait + 10)
        fetched: list[tuple[object, dict[str, Any], Update | None]] = []
        for payload in raw if isinstance(raw, list) else []:
            if not isinstance(payload, dict):
                continue
            update_id = payload.get("update_id")
            if (isinstance(update_id, int) and update_id in self._known
                    and (offset is None or update_id >= offset)):
                # Being handled, or handled and not yet confirmed. (Below the offset, it is
                # Telegram delivering a confirmed update again: for the turn to recognise.)
                continue
            try:
                update = Update.de_json(payload, self.application.bot)
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                # A field the library does not expect: this update only is set aside.
                log.debug("update %s not understood: %s", str(update_id)[:40], exc)
                update = None
            fetched.append((update_id, payload, update))
        return fetched

    async def _take(self, fetched: list[tuple[object, dict[str, Any], Update | None]],
                    sent: int | None) -> None:
        """Queue the updates not seen yet; set aside those that cannot be handled."""
        if sent is not None:
            # Below what that call confirmed: Telegram will never send these again (an id
            # below it coming back is a duplicate delivery, for the turn to recognise).
            for update_id in [u for u, done in self._known.items() if done and u < sent]:
                del self._known[update_id]
        for update_id, payload, update in fetched:
            if isinstance(update_id, int) and update_id in self._known:
                continue
            reason = None
            if update is None:
                reason = "not understood"
            elif not in_range(update.update_id):
                reason = "id out of range"
            else:
                chat = update.effective_chat
                if chat is not None and not in_range(chat.id):
                    reason = "id out of range"
            if reason is not None:
                # One update that cannot be handled must not stop its chat (and again at
                # every restart, since the offset would never move past it): recorded and
                # confirmed, i.e. skipped.
                if isinstance(update_id, int):
                    self._known[update_id] = True
                await self._dead_letter(update_id, payload, reason)
                continue
            assert update is not None
            self._queue(update)
        self.offset = self._boundary()

    async def _dead_letter(self, update_id: object, payload: dict[str, Any],
                           reason: str) -> None:
        """Record an update set aside (once, though it may be fetched again)."""
        key = str(update_id)
        if key in self._set_aside:
            return
        self._set_aside.add(key)
        self.dead += 1
        services = self.application.bot_data.get("services")
        if services is None:  # a bare Application (benchmarks): nowhere to record it
            log.error("update %s set aside: %s", key[:40], reason)
            return
        chat_id = chat_of(payload)
        now = services.clock()
        try:
            await services.db.run(lambda session: dead_letter(
                session, source="polling", update_id=update_id, chat_id=chat_id,
                payload=payload, reason=reason, now=now))
        except Exception:  # skipped all the same: the record is for people, not for order
            log.exception("update %s set aside but not recorded", key[:40])

    def _queue(self, update: Update) -> None:
        chat = update.effective_chat or update.effective_user
        key = chat.id if chat is not None else 0
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            self._idle.clear()
            self._workers[key] = asyncio.create_task(self._work(key, queue),
                                                     name=f"chat-{key}")
        elif len(queue) >= self.queue_limit:
            # A flood: nobody types that fast. Dropped unread, and confirmed.
            self._known[update.update_id] = True
            self.dropped += 1
            if self.dropped % 100 == 1:
                log.warning("chat %s floods: update %s dropped (%d so far)", key,
                            update.update_id, self.dropped)
            return
        self._known[update.update_id] = False
        queue.append(update)

    # --- the workers --------------------------------------------------------------------
    async def _work(self, key: int, queue: deque[Update]) -> None:
        """Handle one chat's updates in order, then end (a new one starts a new worker)."""
        retry = RETRY_FIRST
        try:
            while queue:
                update = queue[0]
                async with self.semaphore:
                    try:
                        await self.application.process_update(update)
                    except Exception:
                        # PTB reports handler errors itself; anything else must not leave
                        # the chat stuck behind this update.
                        log.exception("update %s could not be processed", update.update_id)
                if take_postponed(self.application, update.update_id):
                    # The database was locked: not handled, not confirmed. Tried again
                    # after a pause that leaves time to whoever holds the lock; this
                    # chat's next updates wait for it, the other chats go on.
                    self.postponed += 1
                    log.warning("update %s put off (database busy); again in %.0f s",
                                update.update_id, retry)
                    self._resting.add(key)
                    try:
                        await asyncio.sleep(retry)
                    finally:
                        self._resting.discard(key)
                    retry = min(retry * 2, RETRY_CAP)
                    continue
                retry = RETRY_FIRST
                queue.popleft()
                self._known[update.update_id] = True
                self.handled += 1
                self.offset = self._boundary()
        finally:
            if self._queues.get(key) is queue:
                del self._queues[key]
                del self._workers[key]
            if not self._queues:
                self._idle.set()

    # --- bookkeeping --------------------------------------------------------------------
    def _in_flight(self) -> bool:
        return bool(self._queues)

    def _backlog(self) -> bool:
        """Whether a chat has updates waiting behind the one being handled.

        A chat resting after a put-off update does not count: looking again sooner would
        not move it on.
        """
        return any(len(queue) > 1 for key, queue in self._queues.items()
                   if key not in self._resting)

    def _boundary(self) -> int | None:
        """The lowest update not handled yet, else just above the highest one fetched."""
        if not self._known:
            return self.offset
        waiting = [u for u, done in self._known.items() if not done]
        return min(waiting) if waiting else max(self._known) + 1


def _as_seconds(value: object) -> float:
    total = getattr(value, "total_seconds", None)
    return float(total()) if callable(total) else float(value)  # type: ignore[arg-type]


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
