"""Benchmark: N simulated firms through the whole intake, against a trivial echo bot.

Both bots are the real python-telegram-bot `Application`, polling the same in-process
local Bot API over loopback HTTP, in the same run, pinned to one core. The figures that
count are the ratios: this machine is shared and noisy.

    python bench/bench_intake.py --firms 200
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from telegram import Update
from telegram.ext import (
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.config import Settings
from bot.localapi import LocalBotAPI, SimUser
from bot.runtime import UpdatePoller, build_services, running_bot

SIRET = "73282932000074"
DESCRIPTION = "Nous cherchons deux soudeurs qualifiés pour notre atelier de Paray."


class Recorder:
    """Latency of each update: from the user's action to the bot's last reply to it."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.updates = 0

    async def step(self, user: SimUser, action: Callable[[], Awaitable[int]],
                   replies: int = 1) -> None:
        """Do one action and wait for `replies` new messages."""
        before = len(user.messages)
        start = time.perf_counter()
        await action()
        await user.wait_for_messages(before + replies, timeout=60)
        self.latencies.append(time.perf_counter() - start)
        self.updates += 1


async def intake_firm(user: SimUser, rec: Recorder) -> None:
    """One firm, /start to the reference: 10 updates."""
    await rec.step(user, lambda: user.send_command("/start"), 2)
    await rec.step(user, lambda: user.press("J'accepte"))
    await rec.step(user, lambda: user.send_text("Menuiserie Dupont"))
    await rec.step(user, lambda: user.send_text(SIRET))
    await rec.step(user, lambda: user.send_text("Paray-le-Monial"))
    await rec.step(user, lambda: user.press("Recruter"))
    await rec.step(user, lambda: user.send_text(DESCRIPTION))
    await rec.step(user, lambda: user.press("Dans le mois"))
    await rec.step(user, lambda: user.press("Ici, sur Telegram"))
    await rec.step(user, lambda: user.press("Envoyer la demande"))


async def echo_firm(user: SimUser, rec: Recorder) -> None:
    """The same number of updates against the echo bot (text and button presses)."""
    await rec.step(user, lambda: user.send_text("/start"))
    for i in range(9):
        await rec.step(user, lambda i=i: user.send_text(f"message {i}"))


async def _echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None and update.effective_message.text
    await update.effective_message.reply_text(update.effective_message.text)


async def _echo_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.callback_query is not None
    await update.callback_query.answer()


async def run_echo(firms: int, offset: int) -> tuple[Recorder, float]:
    """The trivial echo bot, with the same poller and concurrency as Relais."""
    api = LocalBotAPI(record_calls=False)
    await api.start()
    app = (ApplicationBuilder().token(api.token).base_url(api.base_url).updater(None)
           .connection_pool_size(8).build())
    app.add_handler(MessageHandler(filters.TEXT, _echo))
    app.add_handler(CallbackQueryHandler(_echo_button))
    await app.initialize()
    await app.start()
    stop = asyncio.Event()
    poller = UpdatePoller(app, timeout=1, concurrency=64)
    task = asyncio.create_task(poller.run(stop))
    rec = Recorder()
    users = [api.user(offset + i) for i in range(firms)]
    start = time.perf_counter()
    await asyncio.gather(*(echo_firm(u, rec) for u in users))
    elapsed = time.perf_counter() - start
    stop.set()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await app.stop()
    await app.shutdown()
    await api.stop()
    return rec, elapsed


async def run_relais(firms: int, offset: int, db_dir: Path) -> tuple[Recorder, float]:
    """Relais itself: services, SQLite database, outbox, the whole intake."""
    api = LocalBotAPI(record_calls=False)
    await api.start()
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        TELEGRAM_BOT_TOKEN=api.token,
        TELEGRAM_API_URL=api.base_url,
        # A fresh database per run: each local API numbers its updates from 1 again.
        DATABASE_URL=f"sqlite+aiosqlite:///{db_dir}/bench-{offset}.db",
        RELAIS_POLLING_TIMEOUT=1,
        # Measures our own cost: Telegram's flood limits are not this benchmark's subject.
        RELAIS_RATE_LIMIT=False,
        # Needs are routed and the partners' emails written to the outbox (measured here);
        # sending them over SMTP is bench_smtp.py's subject.
        RELAIS_EMAIL_WORKER=False,
    )
    services = await build_services(settings)
    # The territory's animator has opened the bot, so the need cards are delivered too.
    for user_id in services.territories.animator_user_ids():
        api.user(user_id).started = True
    rec = Recorder()
    users = [api.user(offset + i) for i in range(firms)]
    async with running_bot(services):
        start = time.perf_counter()
        await asyncio.gather(*(intake_firm(u, rec) for u in users))
        elapsed = time.perf_counter() - start
    await services.db.dispose()
    await api.stop()
    return rec, elapsed


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(name: str, runner: Callable[[], Awaitable[tuple[Recorder, float]]]) -> dict:
    """Run one bot under tracemalloc-free timing, then report its figures."""
    gc.collect()
    cpu0 = time.process_time()
    rec, elapsed = await runner()
    cpu = time.process_time() - cpu0
    return {
        "name": name,
        "updates": rec.updates,
        "seconds": elapsed,
        "ups": rec.updates / elapsed,
        "cpu_per_update_ms": 1000 * cpu / rec.updates,
        "p50_ms": 1000 * statistics.median(rec.latencies),
        "p99_ms": 1000 * _pct(rec.latencies, 0.99),
    }


async def peak_memory(runner: Callable[[], Awaitable[tuple[Recorder, float]]]) -> float:
    """Peak Python memory (MiB) allocated during a run (a separate, slower run)."""
    tracemalloc.start()
    await runner()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


async def main(firms: int, memory: bool) -> None:
    """Run both bots and print the side-by-side table."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        # Warm-up (imports, geography, connection pools) so neither bot pays for it.
        await run_echo(5, 9_000_000)
        await run_relais(5, 9_100_000, tmp_path)
        echo = await measure("echo bot", lambda: run_echo(firms, 1_000_000))
        relais = await measure("Relais intake", lambda: run_relais(firms, 2_000_000, tmp_path))
        if memory:
            echo["peak_mib"] = await peak_memory(lambda: run_echo(firms, 3_000_000))
            relais["peak_mib"] = await peak_memory(
                lambda: run_relais(firms, 4_000_000, tmp_path))
    print(f"\n{firms} firms, 10 updates each, one core, SQLite, in-process local Bot API\n")
    print("| bot | updates | updates/s | CPU ms/update | p50 ms | p99 ms | peak MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in (echo, relais):
        print(f"| {row['name']} | {row['updates']} | {row['ups']:.0f} | "
              f"{row['cpu_per_update_ms']:.2f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
              f"{row.get('peak_mib', float('nan')):.1f} |")
    ratio = relais["cpu_per_update_ms"] / echo["cpu_per_update_ms"]
    print(f"\nper-update cost, Relais / echo: {ratio:.2f}x "
          f"(throughput ratio {echo['ups'] / relais['ups']:.2f}x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--firms", type=int, default=200)
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc runs")
    args = parser.parse_args()
    asyncio.run(main(args.firms, not args.no_memory))
