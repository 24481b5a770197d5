"""Benchmark: one person floods 1,000 messages while 50 firms go through the intake.

Two runs side by side, interleaved over rounds: the firms alone ("calm"), then the same
firms while one more user sends 1,000 long questions as fast as the Bot API takes them
("flood"). Each firm waits for the bot's answer before its next step; the latency of a step
is from the firm's action to the bot's last reply to it. The question is fairness: does one
chat's backlog slow the others down? Issue #16's target: the firms' p99 under the flood
within 2x of their p99 without it.

Layout as in `bench_intake.py`: the bot alone in a process pinned to one core; the Bot API
double, the firms and the flooder in another process on another core (when there are two).
The bot is Relais as deployed (its default limits: 20 messages and 10 questions a minute
per person, 30 updates waiting per chat), on a fresh SQLite database per run.

    python bench/bench_abuse.py                        # 50 firms, 1,000 messages, 3 rounds
    python bench/bench_abuse.py --firms 50 --flood 1000 --rounds 5
    python bench/bench_abuse.py --no-limits    # per-chat queues alone, no per-person limit

The machine is shared: compare the two columns of one run, and run twice when a figure
surprises.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_intake import (
    Meter,
    Recorder,
    Split,
    Window,
    _pct,
    _pin,
    _recv,
    intake_firm,
    relais_bot,
)

from testing.botapi import LocalBotAPI, SimUser

TARGET_RATIO = 2.0
WARM_UP_FIRMS = 5
FLOODER_ID = 999_000_001
# A long question (about 600 characters), the costly kind for the knowledge base.
LONG_QUESTION = (
    "Bonjour, nous sommes une PME de mécanique de précision de 80 salariés et nous voulons "
    "moderniser notre atelier d'usinage : robotisation de deux cellules, formation des "
    "opérateurs à la programmation, numérisation du suivi de production, et peut-être un "
    "agrandissement du bâtiment sur une parcelle voisine qui est une ancienne friche. "
    "Nous cherchons aussi à recruter trois régleurs et un technicien de maintenance, et à "
    "réduire notre consommation d'énergie (compresseurs, chauffage des halls). Quelles "
    "aides existent pour tout cela, qui faut-il contacter, et dans quel ordre faire les "
    "démarches pour ne rien rater des appels à projets de la région ?"
)


# --------------------------------------------------------------------------------------
# The Telegram side: firms and the flooder
# --------------------------------------------------------------------------------------


@dataclass
class Flood:
    """What the flooder sent and got back."""

    sent: int = 0
    replies: int = 0
    notices: int = 0
    seconds: float = 0.0


async def flood(user: SimUser, count: int, report: Flood) -> None:
    """Send `count` long questions as fast as the Bot API double accepts them."""
    start = time.perf_counter()
    for index in range(count):
        await user.send_text(f"{LONG_QUESTION} ({index})")
        report.sent += 1
        if index % 20 == 19:
            await asyncio.sleep(0)  # let the double serve the bot meanwhile
    report.seconds = time.perf_counter() - start


async def drive(api: LocalBotAPI, firms: int, flood_count: int,
                offset: int) -> tuple[Recorder, float, Flood]:
    """All firms at once (and the flooder, if any), each waiting for its answers."""
    rec = Recorder()
    report = Flood()
    users = [api.user(offset + i) for i in range(firms)]
    flooder = api.user(FLOODER_ID, "Flot")
    start = time.perf_counter()
    tasks = [intake_firm(u, rec) for u in users]
    if flood_count:
        tasks.insert(0, flood(flooder, flood_count, report))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    report.replies = len(flooder.messages)
    report.notices = sum("beaucoup de" in m.plain for m in flooder.messages)
    return rec, elapsed, report


# --------------------------------------------------------------------------------------
# Two processes, driven by this one over pipes (as in bench_intake.py)
# --------------------------------------------------------------------------------------


def telegram_process(conn: Connection, core: int | None) -> None:
    """Entry point of the Telegram-side process: one local Bot API per run."""
    _pin(core)
    asyncio.run(_telegram_main(conn))


async def _telegram_main(conn: Connection) -> None:
    while True:
        command = await _recv(conn)
        if command[0] == "quit":
            return
        _, firms, flood_count, offset = command
        api = LocalBotAPI(record_calls=False)
        await api.start()
        conn.send(("url", api.base_url, api.token))
        _, animators = await _recv(conn)
        for user_id in animators:
            api.user(user_id).started = True
        conn.send(("ok",))
        await _recv(conn)  # ("go",)
        gc.collect()
        rec, elapsed, report = await drive(api, firms, flood_count, offset)
        conn.send(("done", rec.latencies, elapsed, report))
        await _recv(conn)  # ("close",)
        await api.stop()
        conn.send(("closed",))


# The per-person limits, turned off by --no-limits (read from the environment by Settings).
LIMITS = ("RELAIS_LIMIT_MESSAGES_PER_MINUTE", "RELAIS_LIMIT_QUESTIONS_PER_MINUTE",
          "RELAIS_LIMIT_NEEDS_PER_DAY")


def bot_process(conn: Connection, core: int | None, db_dir: str, limits: bool) -> None:
    """Entry point of the bot process: Relais, alone on its core, one run at a time."""
    _pin(core)
    if not limits:
        os.environ.update(dict.fromkeys(LIMITS, "0"))
    asyncio.run(_bot_main(conn, Path(db_dir)))


async def _bot_main(conn: Connection, db_dir: Path) -> None:
    while True:
        command = await _recv(conn)
        if command[0] == "quit":
            return
        _, base_url, token, offset = command

        async def before_start(animators: list[int]) -> None:
            conn.send(("animators", animators))
            await _recv(conn)

        meter = Meter()
        async with relais_bot(base_url, token, db_path=db_dir / f"abuse-{offset}.db",
                              before_start=before_start):
            conn.send(("ready",))
            meter.start()
            await _recv(conn)  # ("stop",)
            window = meter.stop()
        conn.send(("stats", window))


@dataclass
class Run:
    """One run's figures, as the firms saw them."""

    kind: str
    latencies: list[float]
    seconds: float
    flood: Flood
    bot: Window
    per_round: list[float] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return 1000 * statistics.median(self.latencies)

    @property
    def p99(self) -> float:
        return 1000 * _pct(self.latencies, 0.99)

    @property
    def worst(self) -> float:
        return 1000 * max(self.latencies)


class Pair:
    """The two processes, kept for every run."""

    # Waiting for a process's answer and closing both: as in bench_intake (same fields).
    _expect = Split._expect
    close = Split.close

    def __init__(self, db_dir: Path, bot_core: int | None, telegram_core: int | None, *,
                 limits: bool) -> None:
        ctx = mp.get_context("spawn")
        self.tg, tg_child = ctx.Pipe()
        self.bot, bot_child = ctx.Pipe()
        self.tg_proc = ctx.Process(target=telegram_process, args=(tg_child, telegram_core),
                                   name="telegram-side", daemon=True)
        self.bot_proc = ctx.Process(target=bot_process, args=(bot_child, bot_core,
                                                              str(db_dir), limits),
                                    name="bot", daemon=True)
        self.tg_proc.start()
        self.bot_proc.start()

    def run(self, kind: str, firms: int, flood_count: int, offset: int) -> Run:
        """One run on a fresh Bot API and database."""
        self.tg.send(("serve", firms, flood_count, offset))
        _, base_url, token = self._expect(self.tg, "url")
        self.bot.send(("run", base_url, token, offset))
        _, animators = self._expect(self.bot, "animators")
        self.tg.send(("started", animators))
        self._expect(self.tg, "ok")
        self.bot.send(("proceed",))
        self._expect(self.bot, "ready")
        self.tg.send(("go",))
        _, latencies, elapsed, report = self._expect(self.tg, "done")
        self.bot.send(("stop",))
        _, window = self._expect(self.bot, "stats")
        self.tg.send(("close",))
        self._expect(self.tg, "closed")
        return Run(kind, latencies, elapsed, report, window)


def measure(firms: int, flood_count: int, rounds: int, *,
            limits: bool = True) -> tuple[Run, Run, str]:
    """Calm and flood runs, interleaved; each kind's median-p99 round is reported."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    bot_core = cores[0] if cores else None
    telegram_core = cores[1] if len(cores) > 1 else bot_core
    _pin(telegram_core)
    layout = (f"bot process alone on core {bot_core}; Bot API double, firms and flooder on "
              f"core {telegram_core}" if len(cores) > 1 else
              "ONE core: bot and Telegram side share it")
    runs: dict[str, list[Run]] = {"calm": [], "flood": []}
    with tempfile.TemporaryDirectory() as tmp:
        pair = Pair(Path(tmp), bot_core, telegram_core, limits=limits)
        try:
            pair.run("calm", WARM_UP_FIRMS, 0, 9_000_000)
            for round_ in range(rounds):
                for index, (kind, count) in enumerate((("calm", 0), ("flood", flood_count))):
                    offset = 1_000_000 * (index + 1) + 10_000 * round_
                    runs[kind].append(pair.run(kind, firms, count, offset))
        finally:
            pair.close()
    calm, flooded = (_median(runs[kind]) for kind in ("calm", "flood"))
    return calm, flooded, layout


def _median(runs: list[Run]) -> Run:
    ordered = sorted(runs, key=lambda r: r.p99)
    row = ordered[(len(ordered) - 1) // 2]
    row.per_round = [r.p99 for r in runs]
    return row


def report(calm: Run, flooded: Run, firms: int, flood_count: int, rounds: int,
           layout: str, *, limits: bool = True) -> None:
    """The side-by-side table and the verdict."""
    print(f"\n{firms} firms x 10 updates through the intake; flood: one user, "
          f"{flood_count} long questions; SQLite, local Bot API over loopback HTTP")
    print(f"layout: {layout}")
    print("per-person limits: " + ("the defaults (20 messages, 10 questions a minute)"
                                    if limits else "OFF (per-chat queues alone)"))
    print(f"{rounds} rounds, interleaved; each column is its median-p99 round\n")
    print("| | without the flood | with the flood |")
    print("|---|---:|---:|")
    rows = [
        ("firms' steps measured", f"{len(calm.latencies)}", f"{len(flooded.latencies)}"),
        ("firms' p50 ms", f"{calm.p50:.1f}", f"{flooded.p50:.1f}"),
        ("firms' p99 ms", f"{calm.p99:.1f}", f"{flooded.p99:.1f}"),
        ("firms' slowest step ms", f"{calm.worst:.1f}", f"{flooded.worst:.1f}"),
        ("wall time s", f"{calm.seconds:.2f}", f"{flooded.seconds:.2f}"),
        ("bot CPU s", f"{calm.bot.cpu:.2f}", f"{flooded.bot.cpu:.2f}"),
        ("flood: messages sent", "—", f"{flooded.flood.sent}"),
        ("flood: bot's replies (of which notices)", "—",
         f"{flooded.flood.replies} ({flooded.flood.notices})"),
    ]
    for name, left, right in rows:
        print(f"| {name} | {left} | {right} |")
    print()
    print("p99 per round, without: " + ", ".join(f"{v:.1f}" for v in calm.per_round)
          + " ms; with: " + ", ".join(f"{v:.1f}" for v in flooded.per_round) + " ms")
    ratio = flooded.p99 / calm.p99 if calm.p99 else float("nan")
    verdict = "OK" if ratio <= TARGET_RATIO else "NOT MET"
    print(f"\nissue #16: firms' p99 with the flood <= {TARGET_RATIO:.0f}x without: "
          f"{ratio:.2f}x {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--firms", type=int, default=50)
    parser.add_argument("--flood", type=int, default=1000, help="messages the flooder sends")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-limits", action="store_true",
                        help="turn the per-person limits off: the per-chat queues alone")
    args = parser.parse_args()
    limits = not args.no_limits
    calm, flooded, layout = measure(args.firms, args.flood, max(args.rounds, 1),
                                    limits=limits)
    report(calm, flooded, args.firms, args.flood, max(args.rounds, 1), layout, limits=limits)


if __name__ == "__main__":
    main()
