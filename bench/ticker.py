"""The event loop's longest stall while some work runs (a bench helper, not a test).

A task wakes every `period` seconds and records when it actually ran; the longest gap
between two wake-ups, minus the period, is the longest time the loop was held by
something else: a conversation would have waited that long for its turn.

    async with Ticker() as ticker:
        await some_pass()
    print(ticker.longest)   # seconds
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
import traceback
from types import TracebackType

__all__ = ["Ticker"]


class Ticker:
    """Measures the longest event-loop stall between entering and leaving."""

    def __init__(self, period: float = 0.001, *, watch: float | None = None) -> None:
        self.period = period
        self.longest = 0.0
        self.ticks = 0
        # With `watch` (seconds), a thread records where the loop's thread was whenever the
        # loop has not ticked for that long: what the stalls were made of.
        self.watch = watch
        self.stacks: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._last = time.perf_counter()
        self._watching = threading.Event()

    async def _run(self) -> None:
        self._last = time.perf_counter()
        while True:
            await asyncio.sleep(self.period)
            self._tick()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.longest = max(self.longest, now - self._last - self.period)
        self.ticks += 1
        self._last = now

    def _watch(self, loop_thread: int, threshold: float) -> None:
        seen = None
        while not self._watching.wait(threshold / 4):
            last = self._last
            if time.perf_counter() - last > threshold and last != seen:
                seen = last
                frame = sys._current_frames().get(loop_thread)
                if frame is not None:
                    self.stacks.append("".join(traceback.format_stack(frame)[-12:]))

    async def __aenter__(self) -> Ticker:
        if self.watch is not None:
            threading.Thread(target=self._watch, args=(threading.get_ident(), self.watch),
                             daemon=True).start()
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)  # the ticker starts before the work
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        # A stall that lasts until the work ends counts too.
        self._tick()
        self._watching.set()
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
