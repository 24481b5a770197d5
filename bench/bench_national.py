"""Benchmark: Relais at national scale (181 territories, three years of needs).

The database comes from `bench/national_data.py` (SQLite cached under the temporary
folder; PostgreSQL made and dropped per size). The bot's services are built as
`relais run` builds them (`build_services`, 181 territory files, the clock set to the
data's `ANCHOR`), and each operation runs the way a person triggers it:

* ``/stats``, ``/demandes``, ``/radar`` by the busiest territory's animator, and
  ``/mesdemandes`` by a firm: one whole turn each (`TurnRunner.handle`, one transaction,
  replies written to the outbox);
* ``stats figures``: the figures alone (`DigestService.stats`), without text and charts;
* ``digest, one``: the weekly digests of the busiest territory (figures, charts, the
  animators' email and Telegram messages, the partners' digests), queued, by the weekly
  job's path for one territory (`DigestService.send_territory`);
* ``digests, all``: the weekly job itself (`ReminderScheduler.run_digests`: the 183
  territories), the week's claims forgotten before each run;
* the event loop's longest stall during the digests (`bench/ticker.py`), worst of all runs;
* ``..._cold``: the same with the chart cache emptied first (every chart drawn), as
  on the first weekly run; without the suffix, charts already drawn come from the cache;
* ``start-up`` and ``idle RSS``: a fresh interpreter building the services with the 183
  territory files (imports included), and its resident memory once built.

Every figure is the median of ``--rounds`` rounds, printed with its ratio to the baseline
of the same run (a trivial indexed query on the same database: one need by primary key,
in its own transaction) and its growth exponent between consecutive sizes (time ∝ size^k:
k = 0 does not grow with history, k = 1 grows with it linearly).

    python bench/bench_national.py --sizes 10000,100000 --db sqlite,pg [--rounds 3]
        [--only stats,digest] [--skip digests_all]

Other helpers add their operations to `OPERATIONS` (name → coroutine taking a `Context`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for entry in (ROOT, ROOT / "bench"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from national_data import (  # noqa: E402
    ANCHOR,
    FIRM_USER_BASE,
    NationalShape,
    iter_sizes,
    pg_database,
    sqlite_database,
    write_territory_files,
)
from sqlalchemy import delete, text  # noqa: E402
from sqlmodel import col  # noqa: E402
from ticker import Ticker  # noqa: E402

from bot.config import Settings  # noqa: E402
from bot.reminders import ReminderScheduler  # noqa: E402
from bot.runtime import Services, build_services  # noqa: E402
from bot.services.digests import week_period  # noqa: E402
from bot.services.insight import clear_chart_cache  # noqa: E402
from bot.services.types import Incoming  # noqa: E402
from knowledge.territories import Territory  # noqa: E402
from storage.models import DigestRun  # noqa: E402

__all__ = ["OPERATIONS", "Context", "main"]


@dataclass
class Context:
    """One database of one size, with the services built on it."""

    db_kind: str
    size: int
    url: str
    shape: NationalShape
    services: Services
    territory: Territory
    animator_id: int
    firm_id: int
    territories_dir: Path
    round: int = 0
    notes: dict[str, str] = field(default_factory=dict)
    # The event loop's longest stall during each operation that measures it, per round.
    stalls: dict[str, list[float]] = field(default_factory=dict)
    current: str = ""
    # With --watch: print where the loop was whenever it stalled longer than this.
    watch: float | None = None

    def ticker(self) -> Ticker:
        """A ticker for the loop's stalls (watching them with --watch)."""
        return Ticker(watch=self.watch)

    def stall(self, ticker: Ticker) -> None:
        """Record the loop's longest stall seen by one run of the current operation."""
        self.stalls.setdefault(self.current, []).append(ticker.longest)
        for stack in ticker.stacks:
            print(f"--- {self.current}: the loop stalled here\n{stack}", file=sys.stderr)


Operation = Callable[[Context], Awaitable[None]]


async def _baseline(ctx: Context) -> None:
    """One need by primary key, in its own transaction: the floor of any operation."""
    need_id = 1 + (ctx.round * 7919) % ctx.size

    def read(session: object) -> object:
        return session.execute(  # type: ignore[attr-defined]
            text("SELECT reference FROM need WHERE id = :id"), {"id": need_id}).scalar()

    await ctx.services.db.run(read)


async def _command(ctx: Context, user_id: int, name: str) -> None:
    await ctx.services.turns.handle(Incoming(chat_id=user_id, user_id=user_id, kind="command",
                                             value=name))


async def _stats_command(ctx: Context) -> None:
    await _command(ctx, ctx.animator_id, "stats")


async def _stats_figures(ctx: Context) -> None:
    digests = ctx.services.digests
    assert digests is not None
    await ctx.services.db.run(lambda s: digests.stats(
        s, ctx.territory, start=ANCHOR - timedelta(days=7), end=ANCHOR))


def _reset_week(ctx: Context, territory_id: str | None = None) -> Awaitable[None]:
    """Forget the week's claims (all territories, or one), so that the weekly job runs again.

    The job claims each territory's week in `digest_run`; a round after the first would
    otherwise find every week claimed and do nothing.
    """
    week, _start, _end = week_period(ANCHOR, ctx.services.settings.tz)
    kinds = None if territory_id is None else [f"territory:{territory_id}",
                                               f"partners:{territory_id}"]

    def forget(session: object) -> None:
        statement = delete(DigestRun).where(col(DigestRun.period) == week)
        if kinds is not None:
            statement = statement.where(col(DigestRun.kind).in_(kinds))
        session.execute(statement)  # type: ignore[attr-defined]

    return ctx.services.db.run(forget)


async def _digest_one(ctx: Context) -> None:
    """The weekly job's path for the busiest territory (`DigestService.send_territory`)."""
    digests = ctx.services.digests
    assert digests is not None
    await _reset_week(ctx, ctx.territory.id)
    async with ctx.ticker() as ticker:
        sent = await digests.send_territory(ctx.services.db, ctx.territory, now=ANCHOR)
    assert sent, "the busiest territory's digests were not queued"
    ctx.stall(ticker)


async def _digests_all(ctx: Context) -> None:
    """The weekly job as the scheduler runs it (`ReminderScheduler.run_digests`), with the
    event loop's longest stall measured meanwhile."""
    digests = ctx.services.digests
    assert digests is not None and ctx.services.meetings is not None
    await _reset_week(ctx)
    scheduler = ReminderScheduler(ctx.services.db, ctx.services.meetings,
                                  lambda: ANCHOR, digests=digests,
                                  tz=ctx.services.settings.tz)
    async with ctx.ticker() as ticker:
        sent = await scheduler.run_digests()
    assert sent >= len(ctx.services.territories.territories), sent
    ctx.stall(ticker)


async def _idle(ctx: Context) -> None:
    """Nothing for a second: the loop's stalls that come from the machine (other processes
    on the shared cores), the floor of the stalls measured during the digests."""
    async with ctx.ticker() as ticker:
        await asyncio.sleep(1.0)
    ctx.stall(ticker)


def _cold(op: Operation) -> Operation:
    """The operation with no chart drawn before it (the chart cache emptied first)."""
    async def run(ctx: Context) -> None:
        clear_chart_cache()
        await op(ctx)
    return run


async def _demandes(ctx: Context) -> None:
    await _command(ctx, ctx.animator_id, "demandes")


async def _mesdemandes(ctx: Context) -> None:
    await _command(ctx, ctx.firm_id, "mesdemandes")


async def _radar(ctx: Context) -> None:
    await _command(ctx, ctx.animator_id, "radar")


OPERATIONS: dict[str, tuple[str, Operation]] = {
    "baseline": ("baseline: one need by id", _baseline),
    "stats": ("/stats, one territory", _stats_command),
    "stats_figures": ("stats figures only", _stats_figures),
    "digest_one": ("weekly digest, one territory", _digest_one),
    "digests_all": ("weekly digests, all territories", _digests_all),
    "idle": ("idle second (stall floor)", _idle),
    "stats_cold": ("/stats, charts not cached", _cold(_stats_command)),
    "digest_one_cold": ("weekly digest, one, charts not cached", _cold(_digest_one)),
    "digests_all_cold": ("weekly digests, all, charts not cached", _cold(_digests_all)),
    "demandes": ("/demandes", _demandes),
    "mesdemandes": ("/mesdemandes", _mesdemandes),
    "radar": ("/radar", _radar),
}
# Operations fast enough to repeat within a round (the median of the repeats is kept).
REPEATS = {"baseline": 50, "mesdemandes": 5, "demandes": 5}
# Operations long enough to be their own warm-up.
NO_WARM_UP = {"digests_all", "digests_all_cold"}


def _settings(url: str, territories_dir: Path) -> Settings:
    return Settings(_env_file=None, **{  # type: ignore[arg-type]
        "TELEGRAM_BOT_TOKEN": "123456:bench", "DATABASE_URL": url,
        "TERRITORIES_DIR": str(territories_dir), "RELAIS_FIRM_LOOKUP": False,
        "RELAIS_RATE_LIMIT": False})


_STARTUP = """
import asyncio, json, os, sys, time
start = time.perf_counter()
sys.path.insert(0, {root!r})
import psutil
from bot.config import Settings
from bot.runtime import build_services

async def main():
    settings = Settings(_env_file=None, TELEGRAM_BOT_TOKEN="123456:bench",
                        DATABASE_URL={url!r}, TERRITORIES_DIR={tdir!r},
                        RELAIS_FIRM_LOOKUP=False)
    services = await build_services(settings)
    ready = time.perf_counter() - start
    print(json.dumps({{"seconds": ready, "territories": len(services.territories.territories),
                      "rss": psutil.Process().memory_info().rss}}))
    await services.db.dispose()

asyncio.run(main())
"""


def _startup(url: str, territories_dir: Path) -> dict[str, float]:
    """Start a fresh interpreter that builds the services; its time to ready and RSS."""
    code = _STARTUP.format(root=str(ROOT), url=url, tdir=str(territories_dir))
    wall = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - wall
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {"seconds": float(result["seconds"]), "wall": wall, "rss": float(result["rss"])}


async def _time(op: Operation, ctx: Context, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        await op(ctx)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def _measure(ctx: Context, names: list[str], rounds: int,
                   log: Callable[[str], None]) -> dict[str, float]:
    """Median over rounds of each operation; the operations interleave within a round."""
    samples: dict[str, list[float]] = {name: [] for name in names}
    # A warm-up call of each (imports, caches, the planner's statistics), but the long ones.
    for name in names:
        if name not in NO_WARM_UP:
            ctx.current = name
            await OPERATIONS[name][1](ctx)
    for round_ in range(rounds):
        ctx.round = round_
        for name in names:
            ctx.current = name
            seconds = await _time(OPERATIONS[name][1], ctx, REPEATS.get(name, 1))
            samples[name].append(seconds)
            log(f"  {ctx.db_kind} {ctx.size} round {round_ + 1}: {name} {seconds:.4f} s")
    result = {name: statistics.median(values) for name, values in samples.items()}
    # The worst stall of any run (the warm-up included): what a conversation waited.
    result.update({f"stall:{name}": max(stalls) for name, stalls in ctx.stalls.items()})
    return result


async def _run_size(db_kind: str, size: int, names: list[str], rounds: int,
                    territories_dir: Path, startup: bool,
                    log: Callable[[str], None], watch: float | None = None
                    ) -> dict[str, float]:
    async def with_url(url: str, shape: NationalShape) -> dict[str, float]:
        services = await build_services(_settings(url, territories_dir), clock=lambda: ANCHOR)
        # As `relais run` does once started: start-up's objects out of the collector's passes.
        gc.collect()
        gc.freeze()
        try:
            territory = services.territories.get(shape.busiest)
            assert territory is not None and territory.animators[0].telegram_user_id
            ctx = Context(db_kind=db_kind, size=size, url=url, shape=shape, services=services,
                          territory=territory,
                          animator_id=territory.animators[0].telegram_user_id,
                          firm_id=FIRM_USER_BASE + 1, territories_dir=territories_dir,
                          watch=watch)
            result = await _measure(ctx, names, rounds, log)
        finally:
            await services.db.dispose()
        if startup:
            runs = [_startup(url, territories_dir) for _ in range(rounds)]
            result["startup"] = statistics.median(r["seconds"] for r in runs)
            result["rss_mib"] = statistics.median(r["rss"] for r in runs) / 2**20
        return result

    if db_kind == "sqlite":
        path, shape = sqlite_database(size, log=log)
        # Measure on a copy: the operations queue outbox rows and claim digest periods.
        work = Path(tempfile.mkdtemp(prefix="relais-national-")) / "relais.db"
        await asyncio.to_thread(_copy, path, work)
        try:
            return await with_url(f"sqlite+aiosqlite:///{work}", shape)
        finally:
            await asyncio.to_thread(_remove, work)
    async with pg_database(size, log=log) as (url, shape):
        return await with_url(url, shape)


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _copy(source: Path, target: Path) -> None:
    import sqlite3

    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def _exponent(small: float, large: float, n_small: int, n_large: int) -> float:
    if small <= 0 or large <= 0:
        return float("nan")
    return math.log(large / small) / math.log(n_large / n_small)


def _table(results: dict[tuple[str, int], dict[str, float]], names: list[str],
           sizes: list[int], dbs: list[str]) -> str:
    """Markdown: one row per operation and database; seconds, × baseline, growth exponent."""
    header = ["operation", "db"] + [f"{size:,} needs" for size in sizes]
    if len(sizes) > 1:
        header.append("growth k")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    stalls = [f"stall:{n}" for n in names if any(f"stall:{n}" in r for r in results.values())]
    rows = names + stalls + [n for n in ("startup", "rss_mib") if any(
        n in r for r in results.values())]
    for name in rows:
        label = {"startup": "start-up, 181 territory files",
                 "rss_mib": "idle RSS (MiB)"}.get(name) or (
            f"longest loop stall: {OPERATIONS[name[6:]][0]}" if name.startswith("stall:")
            else OPERATIONS[name][0])
        for db in dbs:
            cells = [label, db]
            values = []
            for size in sizes:
                figures = results.get((db, size), {})
                value = figures.get(name)
                values.append(value)
                if value is None:
                    cells.append("—")
                elif name == "rss_mib":
                    cells.append(f"{value:.0f}")
                elif name.startswith("stall:"):
                    cells.append(_seconds(value))
                else:
                    base = figures.get("baseline")
                    ratio = f" (×{value / base:,.0f})" if base and name != "baseline" else ""
                    cells.append(f"{_seconds(value)}{ratio}")
            if len(sizes) > 1:
                ks = [_exponent(a, b, sizes[i], sizes[i + 1])
                      for i, (a, b) in enumerate(itertools.pairwise(values))
                      if a is not None and b is not None]
                cells.append(" → ".join(f"{k:.2f}" for k in ks) or "—")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _seconds(value: float) -> str:
    if value < 0.001:
        return f"{value * 1e6:.0f} µs"
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.2f} s"


async def _main(args: argparse.Namespace) -> None:
    sizes = sorted(iter_sizes(args.sizes))
    dbs = [d.strip() for d in args.db.split(",") if d.strip()]
    names = list(OPERATIONS)
    if args.only:
        wanted = {n.strip() for n in args.only.split(",")}
        names = [n for n in names if n in wanted or n == "baseline"]
    if args.skip:
        skipped = {n.strip() for n in args.skip.split(",")}
        names = [n for n in names if n not in skipped]
    territories_dir = write_territory_files(Path(tempfile.mkdtemp(prefix="relais-ti-")))

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    results: dict[tuple[str, int], dict[str, float]] = {}
    for size in sizes:
        for db in dbs:
            log(f"{db}, {size} needs")
            results[(db, size)] = await _run_size(db, size, names, args.rounds,
                                                  territories_dir, not args.no_startup, log,
                                                  args.watch)
    print(f"\nMedians of {args.rounds} rounds; (×N) = N times the baseline of the same run; "
          "growth k: time ∝ needs^k between consecutive sizes.\n")
    print(_table(results, names, sizes, dbs))
    if args.json:
        dump = json.dumps({f"{db}:{size}": figures
                           for (db, size), figures in results.items()}, indent=1)
        await asyncio.to_thread(Path(args.json).write_text, dump, encoding="utf-8")


def main() -> None:
    """Command line: sizes, databases, rounds, which operations."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--db", default="sqlite,pg")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", help="comma-separated operation names (baseline kept)")
    parser.add_argument("--skip", help="comma-separated operation names to leave out")
    parser.add_argument("--no-startup", action="store_true", help="skip start-up and RSS")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--watch", type=float, metavar="SECONDS",
                        help="print where the event loop was when it stalled this long")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
