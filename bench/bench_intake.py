"""Benchmark: N simulated firms through the whole intake, against a trivial echo bot.

Both bots are the real python-telegram-bot `Application` with our `UpdatePoller`, polling
a local Bot API (`testing.botapi`) over loopback HTTP, measured one after the other in the
same run.

Default layout (two processes per bot, like production where Telegram is elsewhere):

* the *Telegram side*: the local Bot API double and the simulated firms, in a process of
  its own, pinned to another core when the machine has two or more;
* the *bot process*: the bot alone, pinned to one core. Its CPU time per update is read
  with `time.process_time()` in that process, over the window where the firms type.

`--same-process` keeps the older layout: everything in one process on one core (the bot
gets only part of it; the CPU column then includes the Bot API and the simulated users).

    python bench/bench_intake.py --firms 200
    python bench/bench_intake.py --firms 200 --profile /tmp/relais.prof   # cProfile, bot side

The echo bot is PTB's stock bot (httpx transport); `--echo-http aiohttp` (or `both`)
also measures it with Relais' own transport, `bot.http.AiohttpRequest`, for a stricter
ratio. The machine is shared: compare the ratios, and run twice when a figure surprises.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

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
from bot.http import AiohttpRequest
from bot.runtime import UpdatePoller, build_services, running_bot
from testing.botapi import LocalBotAPI, SimUser

SIRET = "73282932000074"
DESCRIPTION = "Nous cherchons deux soudeurs qualifiés pour notre atelier de Paray."
UPDATES_PER_FIRM = 10
TARGET_UPS = 300
TARGET_RATIO = 5.0
WARM_UP_FIRMS = 5

# The bots measured, by the name used on the command line and in the processes.
KINDS = {
    "echo": "echo bot (PTB stock, httpx)",
    "echo-aiohttp": "echo bot (aiohttp transport)",
    "relais": "Relais intake",
}


# --------------------------------------------------------------------------------------
# The Telegram side: simulated firms (they run where the Bot API double runs)
# --------------------------------------------------------------------------------------


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
    """One firm, /start to the reference: 10 updates (SIRET first, then name and commune)."""
    await rec.step(user, lambda: user.send_command("/start"), 2)
    await rec.step(user, lambda: user.press("J'accepte"))
    await rec.step(user, lambda: user.send_text(SIRET))
    await rec.step(user, lambda: user.send_text("Menuiserie Dupont"))
    await rec.step(user, lambda: user.send_text("Paray-le-Monial"))
    await rec.step(user, lambda: user.press("Recruter"))
    await rec.step(user, lambda: user.send_text(DESCRIPTION))
    await rec.step(user, lambda: user.press("Dans le mois"))
    await rec.step(user, lambda: user.press("Ici, sur Telegram"))
    await rec.step(user, lambda: user.press("Envoyer la demande"))
    if "TI-" not in user.last_text():  # the flow changed: this script must follow it
        raise RuntimeError(f"no reference at the end of the intake: {user.last_text()!r}")


async def echo_firm(user: SimUser, rec: Recorder) -> None:
    """The same number of updates against the echo bot."""
    await rec.step(user, lambda: user.send_text("/start"))
    for i in range(UPDATES_PER_FIRM - 1):
        await rec.step(user, lambda i=i: user.send_text(f"message {i}"))


async def drive(api: LocalBotAPI, kind: str, firms: int, offset: int) -> tuple[Recorder, float]:
    """All firms at once, each waiting for the bot's answer before its next step."""
    script = intake_firm if kind == "relais" else echo_firm
    rec = Recorder()
    users = [api.user(offset + i) for i in range(firms)]
    start = time.perf_counter()
    await asyncio.gather(*(script(u, rec) for u in users))
    return rec, time.perf_counter() - start


# --------------------------------------------------------------------------------------
# The bots
# --------------------------------------------------------------------------------------

# Called with the animators' user ids once the bot knows them, before it starts polling:
# the Telegram side marks them as having opened the bot, so need cards reach them.
BeforeStart = Callable[[list[int]], Awaitable[None]]


async def _echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None and update.effective_message.text
    await update.effective_message.reply_text(update.effective_message.text)


async def _echo_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.callback_query is not None
    await update.callback_query.answer()


@contextlib.asynccontextmanager
async def echo_bot(base_url: str, token: str, *, http: str,
                   before_start: BeforeStart) -> AsyncIterator[None]:
    """The trivial echo bot, with the same poller and concurrency as Relais."""
    builder = ApplicationBuilder().token(token).base_url(base_url).updater(None)
    if http == "aiohttp":
        builder = builder.request(AiohttpRequest(pool_size=8, pool_timeout=30)).get_updates_request(
            AiohttpRequest(pool_size=1, read_timeout=11))
    else:
        builder = builder.connection_pool_size(8)
    app = builder.build()
    app.add_handler(MessageHandler(filters.TEXT, _echo))
    app.add_handler(CallbackQueryHandler(_echo_button))
    await before_start([])
    await app.initialize()
    await app.start()
    stop = asyncio.Event()
    poller = UpdatePoller(app, timeout=1, concurrency=64)
    task = asyncio.create_task(poller.run(stop))
    try:
        yield
    finally:
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await app.stop()
        await app.shutdown()


@contextlib.asynccontextmanager
async def relais_bot(base_url: str, token: str, *, db_path: Path,
                     before_start: BeforeStart) -> AsyncIterator[None]:
    """Relais itself: services, SQLite database, outbox, the whole intake."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        TELEGRAM_BOT_TOKEN=token,
        TELEGRAM_API_URL=base_url,
        # A fresh database per run: each local API numbers its updates from 1 again.
        DATABASE_URL=f"sqlite+aiosqlite:///{db_path}",
        RELAIS_POLLING_TIMEOUT=1,
        # Measures our own cost: Telegram's flood limits are not this benchmark's subject.
        RELAIS_RATE_LIMIT=False,
        # Needs are routed and the partners' emails written to the outbox (measured here);
        # sending them over SMTP is bench_smtp.py's subject.
        RELAIS_EMAIL_WORKER=False,
        # The company directory is a public web API (network I/O, cached in the database):
        # not this benchmark's subject, and not reachable from every machine. The firm
        # types its name and commune, as it does when the directory does not answer.
        RELAIS_FIRM_LOOKUP=False,
    )
    services = await build_services(settings)
    await before_start(sorted(services.territories.animator_user_ids()))
    try:
        async with running_bot(services):
            yield
    finally:
        await services.db.dispose()


def open_bot(kind: str, base_url: str, token: str, *, db_path: Path,
             before_start: BeforeStart) -> contextlib.AbstractAsyncContextManager[None]:
    """The bot of this kind, started against `base_url`, stopped on exit."""
    if kind == "relais":
        return relais_bot(base_url, token, db_path=db_path, before_start=before_start)
    return echo_bot(base_url, token, http="aiohttp" if kind == "echo-aiohttp" else "httpx",
                    before_start=before_start)


# --------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------


@dataclass
class Window:
    """What the bot process measured while the firms were typing."""

    cpu: float = 0.0
    wall: float = 0.0
    peak_rss_mib: float = float("nan")
    rss_mib: float = float("nan")
    traced_peak_mib: float = float("nan")
    extra: dict[str, Any] = field(default_factory=dict)


class Meter:
    """CPU and wall time of this process between `start` and `stop`; optional cProfile."""

    def __init__(self, profile: str | None = None) -> None:
        self.profile = profile
        self._profiler: cProfile.Profile | None = None
        self._cpu0 = self._wall0 = 0.0

    def start(self) -> None:
        gc.collect()
        if self.profile:
            self._profiler = cProfile.Profile()
            self._profiler.enable()
        self._cpu0 = time.process_time()
        self._wall0 = time.perf_counter()

    def stop(self) -> Window:
        cpu = time.process_time() - self._cpu0
        wall = time.perf_counter() - self._wall0
        if self._profiler is not None and self.profile:
            self._profiler.disable()
            self._profiler.dump_stats(self.profile)
        return Window(cpu=cpu, wall=wall, peak_rss_mib=_peak_rss_mib(), rss_mib=_rss_mib())


def _peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_mib() -> float:
    try:
        import psutil
    except ImportError:
        return float("nan")
    return psutil.Process().memory_info().rss / 2**20


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Row:
    """One bot's figures."""

    kind: str
    updates: int
    seconds: float
    latencies: list[float]
    bot: Window
    telegram_cpu: float = float("nan")  # Telegram side's CPU s over the same window
    traced_peak_mib: float = float("nan")
    spread: list[float] = field(default_factory=list)  # updates/s of every round

    @property
    def name(self) -> str:
        return KINDS[self.kind]

    @property
    def ups(self) -> float:
        return self.updates / self.seconds

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.bot.cpu / self.updates

    @property
    def bot_busy(self) -> float:
        return self.bot.cpu / self.bot.wall if self.bot.wall else float("nan")

    @property
    def telegram_busy(self) -> float:
        return self.telegram_cpu / self.seconds


# --------------------------------------------------------------------------------------
# Two processes: the Telegram side and the bot, driven by this one over pipes
# --------------------------------------------------------------------------------------


async def _recv(conn: Connection) -> Any:
    """Receive from a pipe without blocking the event loop (and without a thread)."""
    if not conn.poll():
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        fd = conn.fileno()
        loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            loop.remove_reader(fd)
    return conn.recv()


def _pin(core: int | None) -> None:
    if core is not None:
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setaffinity(0, {core})


def telegram_process(conn: Connection, core: int | None) -> None:
    """Entry point of the Telegram-side process: one local Bot API per run."""
    _pin(core)
    asyncio.run(_telegram_main(conn))


async def _telegram_main(conn: Connection) -> None:
    while True:
        command = await _recv(conn)
        if command[0] == "quit":
            return
        _, kind, firms, offset = command
        api = LocalBotAPI(record_calls=False)
        await api.start()
        conn.send(("url", api.base_url, api.token))
        _, animators = await _recv(conn)  # ("started", ids)
        for user_id in animators:
            api.user(user_id).started = True
        conn.send(("ok",))
        await _recv(conn)  # ("go",)
        gc.collect()
        cpu0 = time.process_time()
        rec, elapsed = await drive(api, kind, firms, offset)
        cpu = time.process_time() - cpu0
        conn.send(("done", rec.updates, elapsed, rec.latencies, cpu))
        await _recv(conn)  # ("close",): the bot has stopped
        await api.stop()
        conn.send(("closed",))


def bot_process(conn: Connection, core: int | None, kind: str, db_dir: str) -> None:
    """Entry point of the bot process: one bot of one kind per run, alone on its core."""
    _pin(core)
    asyncio.run(_bot_main(conn, kind, Path(db_dir)))


async def _bot_main(conn: Connection, kind: str, db_dir: Path) -> None:
    while True:
        command = await _recv(conn)
        if command[0] == "quit":
            return
        _, base_url, token, offset, memory, profile = command

        async def before_start(animators: list[int]) -> None:
            conn.send(("animators", animators))
            await _recv(conn)  # ("proceed",)

        if memory:
            tracemalloc.start()
        meter = Meter(profile)
        async with open_bot(kind, base_url, token, db_path=db_dir / f"bench-{offset}.db",
                            before_start=before_start):
            conn.send(("ready",))
            meter.start()
            await _recv(conn)  # ("stop",): every firm has its answers
            window = meter.stop()
        if memory:
            window.traced_peak_mib = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        conn.send(("stats", window))


class Split:
    """One bot kind measured across two processes; this process only relays messages."""

    def __init__(self, kind: str, db_dir: Path, bot_core: int | None,
                 telegram_core: int | None) -> None:
        ctx = mp.get_context("spawn")
        self.kind = kind
        self.tg, tg_child = ctx.Pipe()
        self.bot, bot_child = ctx.Pipe()
        self.tg_proc = ctx.Process(target=telegram_process, args=(tg_child, telegram_core),
                                   name="telegram-side", daemon=True)
        self.bot_proc = ctx.Process(target=bot_process,
                                    args=(bot_child, bot_core, kind, str(db_dir)),
                                    name=f"bot-{kind}", daemon=True)
        self.tg_proc.start()
        self.bot_proc.start()

    def _expect(self, conn: Connection, tag: str, timeout: float = 600) -> tuple[Any, ...]:
        deadline = time.monotonic() + timeout
        while not conn.poll(1):
            if not (self.tg_proc.is_alive() and self.bot_proc.is_alive()):
                raise RuntimeError(f"a benchmark process died while waiting for {tag!r}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {tag!r} after {timeout:.0f} s")
        message = conn.recv()
        if message[0] != tag:
            raise RuntimeError(f"expected {tag!r}, got {message!r}")
        return message

    def run(self, firms: int, offset: int, *, memory: bool = False,
            profile: str | None = None) -> Row:
        """One run: fresh Bot API and database, `firms` firms, figures of both sides."""
        self.tg.send(("serve", self.kind, firms, offset))
        _, base_url, token = self._expect(self.tg, "url")
        self.bot.send(("run", base_url, token, offset, memory, profile))
        _, animators = self._expect(self.bot, "animators")
        self.tg.send(("started", animators))
        self._expect(self.tg, "ok")
        self.bot.send(("proceed",))
        self._expect(self.bot, "ready")
        self.tg.send(("go",))
        _, updates, elapsed, latencies, tg_cpu = self._expect(self.tg, "done")
        self.bot.send(("stop",))
        _, window = self._expect(self.bot, "stats")
        self.tg.send(("close",))
        self._expect(self.tg, "closed")
        return Row(self.kind, updates, elapsed, latencies, window, telegram_cpu=tg_cpu,
                   traced_peak_mib=window.traced_peak_mib)

    def close(self) -> None:
        for conn in (self.tg, self.bot):
            with contextlib.suppress(OSError, BrokenPipeError):
                conn.send(("quit",))
        for proc in (self.tg_proc, self.bot_proc):
            proc.join(10)
            if proc.is_alive():
                proc.kill()


def measure_split(kinds: list[str], firms: int, rounds: int, memory: bool,
                  profile: str | None) -> tuple[list[Row], str]:
    """Each bot kind in a bot process of its own; rounds interleave the kinds."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    bot_core = cores[0] if cores else None
    telegram_core = cores[1] if len(cores) > 1 else bot_core
    # This process only relays a few messages per run: keep it off the bot's core.
    _pin(telegram_core)
    if len(cores) > 1:
        layout = (f"bot process alone on core {bot_core}; Bot API double + simulated firms "
                  f"in another process on core {telegram_core}")
    else:
        layout = ("ONE core available: bot process and Telegram-side process share it "
                  "(the bot figures include contention)")
    runs: dict[str, list[Row]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        splits = {kind: Split(kind, Path(tmp), bot_core, telegram_core) for kind in kinds}
        try:
            for index, kind in enumerate(kinds):
                # Warm-up (imports, geography, connection pools) so no bot pays for it.
                splits[kind].run(WARM_UP_FIRMS, 1_000_000 * (10 * index + 9))
            for round_ in range(rounds):
                for index, kind in enumerate(kinds):
                    offset = 1_000_000 * (10 * index + 1) + 10_000 * round_
                    wanted = profile if kind == "relais" and round_ == 0 else None
                    runs[kind].append(splits[kind].run(firms, offset, profile=wanted))
            rows = [_median_run(runs[kind]) for kind in kinds]
            if memory:
                for index, row in enumerate(rows):
                    row.traced_peak_mib = splits[row.kind].run(
                        firms, 1_000_000 * (10 * index + 5), memory=True).traced_peak_mib
        finally:
            for split in splits.values():
                split.close()
    return rows, layout


def _median_run(runs: list[Row]) -> Row:
    """The run with the median throughput (all its figures), with the spread noted."""
    ordered = sorted(runs, key=lambda r: r.ups)
    row = ordered[(len(ordered) - 1) // 2]
    row.spread = [r.ups for r in runs]
    return row


# --------------------------------------------------------------------------------------
# One process (the older layout)
# --------------------------------------------------------------------------------------


async def _same_process_run(kind: str, firms: int, offset: int, db_dir: Path,
                            profile: str | None = None) -> Row:
    api = LocalBotAPI(record_calls=False)
    await api.start()

    async def before_start(animators: list[int]) -> None:
        for user_id in animators:
            api.user(user_id).started = True

    meter = Meter(profile)
    try:
        async with open_bot(kind, api.base_url, api.token, db_path=db_dir / f"bench-{offset}.db",
                            before_start=before_start):
            meter.start()
            rec, elapsed = await drive(api, kind, firms, offset)
            window = meter.stop()
    finally:
        await api.stop()
    return Row(kind, rec.updates, elapsed, rec.latencies, window)


async def _same_process(kinds: list[str], firms: int, rounds: int, memory: bool,
                        profile: str | None) -> list[Row]:
    runs: dict[str, list[Row]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        for index, kind in enumerate(kinds):
            await _same_process_run(kind, WARM_UP_FIRMS, 1_000_000 * (10 * index + 9), tmp_path)
        for round_ in range(rounds):
            for index, kind in enumerate(kinds):
                offset = 1_000_000 * (10 * index + 1) + 10_000 * round_
                wanted = profile if kind == "relais" and round_ == 0 else None
                runs[kind].append(await _same_process_run(kind, firms, offset, tmp_path, wanted))
        rows = [_median_run(runs[kind]) for kind in kinds]
        if memory:
            for index, row in enumerate(rows):
                tracemalloc.start()
                await _same_process_run(row.kind, firms, 1_000_000 * (10 * index + 5), tmp_path)
                row.traced_peak_mib = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()
    return rows


def measure_same_process(kinds: list[str], firms: int, rounds: int, memory: bool,
                         profile: str | None) -> tuple[list[Row], str]:
    """Everything in this process, pinned to one core."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    rows = asyncio.run(_same_process(kinds, firms, rounds, memory, profile))
    return rows, ("one process on one core: bot, Bot API double and simulated firms share it "
                  "(the CPU columns include all three)")


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def report(rows: list[Row], firms: int, rounds: int, layout: str, split: bool) -> None:
    """Print the side-by-side table, the ratios and the issue's targets."""
    print(f"\n{firms} firms x {UPDATES_PER_FIRM} updates, SQLite, local Bot API over loopback "
          f"HTTP\nlayout: {layout}")
    if rounds > 1:
        print(f"{rounds} rounds, kinds interleaved; each row is its median-throughput round")
    print()
    who = "bot" if split else "process"
    head = (f"| bot | updates | updates/s | {who} CPU ms/update | {who} core busy | p50 ms "
            f"| p99 ms | peak RSS MiB | tracemalloc peak MiB |")
    if split:
        head += " Telegram side busy |"
    print(head)
    print("|---|" + "---:|" * (head.count("|") - 2))
    for row in rows:
        line = (f"| {row.name} | {row.updates} | {row.ups:.0f} | {row.cpu_ms:.2f} | "
                f"{100 * row.bot_busy:.0f}% | {1000 * statistics.median(row.latencies):.1f} | "
                f"{1000 * _pct(row.latencies, 0.99):.1f} | {row.bot.peak_rss_mib:.1f} | "
                f"{row.traced_peak_mib:.1f} |")
        if split:
            line += f" {100 * row.telegram_busy:.0f}% |"
        print(line)
    if rounds > 1:
        print()
        for row in rows:
            print(f"{row.name}: updates/s per round "
                  + ", ".join(f"{ups:.0f}" for ups in row.spread))
    relais = next((r for r in rows if r.kind == "relais"), None)
    echoes = [r for r in rows if r.kind != "relais"]
    print()
    for row in rows:
        print(f"{row.name}: one-core CPU capacity {1000 / row.cpu_ms:.0f} updates/s "
              f"(1000 / CPU ms per update)")
    if relais is None:
        return
    for echo in echoes:
        print(f"per-update CPU, Relais / {echo.name}: {relais.cpu_ms / echo.cpu_ms:.2f}x "
              f"(throughput ratio {echo.ups / relais.ups:.2f}x)")
    verdict = f"issue #2: >= {TARGET_UPS} updates/s: {relais.ups:.0f} " + (
        "OK" if relais.ups >= TARGET_UPS else "NOT MET")
    if echoes:
        ratio = relais.cpu_ms / echoes[0].cpu_ms
        verdict += (f"; per-update cost <= {TARGET_RATIO:.0f}x the echo bot's "
                    f"({echoes[0].name}): {ratio:.2f}x "
                    + ("OK" if ratio <= TARGET_RATIO else "NOT MET"))
    print(f"\n{verdict}")
    print(f"({who} core busy = {who} CPU / wall time while the firms type; near 100% means "
          f"that core is the limit)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--firms", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3,
                        help="measured runs per bot, interleaved; the median one is reported")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc runs")
    parser.add_argument("--same-process", action="store_true",
                        help="older layout: Bot API double, firms and bot in one process")
    parser.add_argument("--echo-http", choices=["httpx", "aiohttp", "both"], default="both",
                        help="the echo bot's transport (default: both, two echo rows)")
    parser.add_argument("--only", choices=["echo", "relais"],
                        help="measure one bot only (e.g. with --profile)")
    parser.add_argument("--profile", metavar="FILE",
                        help="cProfile the Relais bot during its first measured run, to FILE")
    args = parser.parse_args()
    echoes = {"httpx": ["echo"], "aiohttp": ["echo-aiohttp"],
              "both": ["echo", "echo-aiohttp"]}[args.echo_http]
    kinds = {"echo": echoes, "relais": ["relais"], None: [*echoes, "relais"]}[args.only]
    measure = measure_same_process if args.same_process else measure_split
    rows, layout = measure(kinds, args.firms, max(args.rounds, 1), not args.no_memory,
                           args.profile)
    report(rows, args.firms, max(args.rounds, 1), layout, split=not args.same_process)


if __name__ == "__main__":
    main()
