"""Benchmark: the periodic passes and the export on the national database (issue 18, 3-4).

The database comes from `bench/national_data.py` (SQLite cached, measured on a copy;
PostgreSQL made and dropped per size). Before measuring, it is brought to what a deployed
database looks like:

* the upgrade's backfill (migration 0012_due_indexes): routings still waiting for their partner
  get `followup_at = routed_at`, as a database upgraded in production does;
* 90 days of raw data (delivered messages, handled update ids, raw emails, webhook
  updates), ten messages and twenty updates per need at the programme's pace, so that a
  retention pass run 30 days later has 30 days of backlog to purge.

Then, with the real services (`build_services`, 183 territory files, the clock at `ANCHOR`)
and a 1 ms ticker on the event loop (`bench/ticker.py`: the longest stall, i.e. how long
a conversation would have waited for its turn):

* ``followup, catch-up``: the first pass after the upgrade (every routing backfilled and
  every open need never asked to close-or-keep, once);
* ``followup, 5 min``: the pass every 5 minutes after that (median of `--rounds`);
* ``followup, midnight``: the pass just after midnight, when a day's deadlines fall due;
* ``retention, 30 days``: the daily pass after 30 days without one (the last completed
  one at the clock's start: leftovers are looked for in what was written since);
* ``export csv``: `relais export` of every need to a file, in a child process: seconds and
  peak RSS (memory must not grow with the number of needs).

Each figure comes with the baseline of the same run (one need by primary key, its own
transaction: the median of 50) and, between sizes, its growth exponent.

    python bench/bench_passes.py --sizes 10000,100000 --db sqlite,pg [--rounds 5]

Copied into a checkout of the code before this change (`git archive main`), it measures that
code the same way: the passes then run as one transaction each (`run_due`,
`retention_pass`), on the event loop on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for entry in (BENCH, ROOT):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from bench_national import _copy, _exponent, _remove, _seconds, _settings  # noqa: E402
from national_data import (  # noqa: E402
    ANCHOR,
    iter_sizes,
    pg_database,
    sqlite_database,
    write_territory_files,
)
from sqlalchemy import func, insert, text  # noqa: E402
from sqlmodel import Session, select  # noqa: E402
from ticker import Ticker  # noqa: E402

import bot.reminders as reminders  # noqa: E402
from bot.runtime import Services, build_services  # noqa: E402
from bot.services import privacy  # noqa: E402
from storage.models import InboundEmail, Need, Outbox, PendingUpdate, ProcessedUpdate  # noqa: E402

NEW = hasattr(reminders, "run_followup_slices")
# The retention pass looks for leftovers only in what was written since the last one.
SINCE = NEW and "since" in inspect.signature(reminders.run_retention_slices).parameters
# --watch: where the loop's thread was during stalls over 50 ms (printed on stderr).
WATCH: list[float] = []
RAW_DAYS, YEARS = 90, 3
CHUNK = 5_000


def log(line: str) -> None:
    """Progress on stderr."""
    print(line, file=sys.stderr, flush=True)


def backlog(session: Session, size: int) -> dict[str, int]:
    """90 days of raw data before ANCHOR, at the pace of `size` needs in three years."""
    days = 90
    per_day = size / (365 * YEARS)
    rows = {"outbox": int(per_day * 10 * days), "processed_update": int(per_day * 20 * days),
            "inbound_email": int(per_day * 0.5 * days), "pending_update": int(per_day * 2 * days)}
    span = timedelta(days=days).total_seconds()

    def at(i: int, n: int) -> Any:
        return ANCHOR - timedelta(seconds=span * (i + 0.5) / n)

    base = 9_000_000_000
    for start in range(0, rows["outbox"], CHUNK):
        n = rows["outbox"]
        session.execute(insert(Outbox), [
            {"channel": "telegram", "recipient": str(base + i), "kind": "send",
             "payload": {"messages": [{"text": "Votre demande a bien été transmise."}]},
             "created_at": at(i, n), "not_before": at(i, n), "attempts": 1,
             "delivered_at": at(i, n)} for i in range(start, min(start + CHUNK, n))])
    for start in range(0, rows["processed_update"], CHUNK):
        n = rows["processed_update"]
        session.execute(insert(ProcessedUpdate), [
            {"update_id": base + i, "processed_at": at(i, n)}
            for i in range(start, min(start + CHUNK, n))])
    for start in range(0, rows["inbound_email"], CHUNK):
        n = rows["inbound_email"]
        session.execute(insert(InboundEmail), [
            {"message_id": f"<bench-{i}@firm.example>", "from_addr": "contact@firm.example",
             "subject": "Re: demande", "raw": b"x" * 2000, "status": "processed",
             "received_at": at(i, n)} for i in range(start, min(start + CHUNK, n))])
    for start in range(0, rows["pending_update"], CHUNK):
        n = rows["pending_update"]
        session.execute(insert(PendingUpdate), [
            {"update_id": base + i, "chat_id": base + i, "payload": {"update_id": base + i},
             "received_at": at(i, n), "done_at": at(i, n)}
            for i in range(start, min(start + CHUNK, n))])
    if NEW:
        # What migration 0012_due_indexes does to an existing database.
        session.execute(text(
            "UPDATE need_routing SET followup_at = routed_at WHERE status = 'routed' "
            "AND (reminded_at IS NULL OR escalated_at IS NULL)"))
    return rows


async def baseline(services: Services, rounds: int = 50) -> float:
    """One need by primary key in its own transaction: the median of `rounds`."""
    samples = []
    for i in range(rounds):
        def read(session: Session, need_id: int = 1 + i * 7919 % 1000) -> object:
            return session.exec(select(Need.reference).where(Need.id == need_id)).first()

        started = time.perf_counter()
        await services.db.run(read)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


async def followup_pass(services: Services, now: Any) -> tuple[float, float, Any]:
    """One follow-up pass at `now`: (seconds, longest loop stall, counts)."""
    followup = services.followup
    assert followup is not None
    async with Ticker(watch=WATCH[0] if WATCH else None) as ticker:
        started = time.perf_counter()
        if NEW:
            counts = await reminders.run_followup_slices(services.db, followup, now=now)
        else:
            counts = await services.db.run(lambda s: followup.run_due(s, now=now))
        seconds = time.perf_counter() - started
    _stacks(ticker)
    return seconds, ticker.longest, counts


async def retention(services: Services, now: Any) -> tuple[float, float, dict[str, int]]:
    """The daily retention pass at `now`: (seconds, longest loop stall, counts)."""
    async with Ticker(watch=WATCH[0] if WATCH else None) as ticker:
        started = time.perf_counter()
        if SINCE:
            # The last completed pass ran at ANCHOR, 30 days before this one.
            done = await reminders.run_retention_slices(
                services.db, now=now, years=YEARS, raw_days=RAW_DAYS,
                since=ANCHOR - privacy.LEFTOVER_MARGIN)  # type: ignore[attr-defined]
        elif NEW:
            done = await reminders.run_retention_slices(services.db, now=now, years=YEARS,
                                                        raw_days=RAW_DAYS)
        else:
            done = await services.db.run(lambda s: privacy.retention_pass(
                s, now=now, years=YEARS, raw_days=RAW_DAYS))
        seconds = time.perf_counter() - started
    _stacks(ticker)
    return seconds, ticker.longest, done


def _stacks(ticker: Ticker) -> None:
    for stack in ticker.stacks:
        log("  stalled in:\n" + stack)


# Peak RSS from VmHWM: getrusage's ru_maxrss would start from the forking parent's.
_EXPORT = """
import re, runpy, sys, time
sys.argv = ["relais", "export", "--format", {fmt!r}, "-o", {out!r}]
started = time.perf_counter()
try:
    runpy.run_module("bot.cli", run_name="__main__")
except SystemExit:
    pass
finally:
    with open("/proc/self/status") as status:
        peak = re.search(r"VmHWM:\\s+(\\d+)", status.read()).group(1)
    print("BENCH", time.perf_counter() - started, peak, file=sys.stderr)
"""


def export(url: str, fmt: str = "csv") -> tuple[float, float]:
    """`relais export` of every need in a child process: (seconds, peak RSS in MiB)."""
    out = Path(tempfile.mkdtemp(prefix="relais-export-")) / f"needs.{fmt}"
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT),
           "TELEGRAM_BOT_TOKEN": "123456:bench"}
    done = subprocess.run([sys.executable, "-c", _EXPORT.format(fmt=fmt, out=str(out))],
                          capture_output=True, text=True, env=env, check=False, cwd=ROOT)
    line = [li for li in done.stderr.splitlines() if li.startswith("BENCH")]
    if done.returncode or not line:
        raise RuntimeError(done.stderr[-2000:])
    out.unlink(missing_ok=True)
    _, seconds, rss_kib = line[-1].split()
    return float(seconds), int(rss_kib) / 1024


async def measure(url: str, size: int, territories: Path, rounds: int,
                  exports: bool) -> dict[str, float]:
    """Every figure on one database."""
    services = await build_services(_settings(url, territories), clock=lambda: ANCHOR)
    figures: dict[str, float] = {}
    try:
        added = await services.db.run(lambda s: backlog(s, size))
        log(f"  backlog: {added}")
        await services.db.run(lambda s: s.execute(text("ANALYZE")))
        figures["baseline"] = await baseline(services)
        seconds, stall, counts = await followup_pass(services, ANCHOR)
        figures["followup_catchup"], figures["followup_catchup_stall"] = seconds, stall
        log(f"  follow-up catch-up {seconds:.3f} s, stall {stall * 1000:.1f} ms: {counts}")
        samples, stalls = [], []
        for i in range(rounds):
            seconds, stall, counts = await followup_pass(
                services, ANCHOR + timedelta(minutes=5 * (i + 1)))
            samples.append(seconds)
            stalls.append(stall)
        figures["followup_5min"] = statistics.median(samples)
        figures["followup_5min_stall"] = max(stalls)
        log(f"  follow-up every 5 min {figures['followup_5min']:.4f} s: {counts}")
        midnight = (ANCHOR + timedelta(days=1)).replace(hour=23, minute=5)  # 00:05 Paris
        seconds, stall, counts = await followup_pass(services, midnight)
        figures["followup_midnight"], figures["followup_midnight_stall"] = seconds, stall
        log(f"  follow-up at midnight {seconds:.3f} s, stall {stall * 1000:.1f} ms: {counts}")
        seconds, stall, done = await retention(services, ANCHOR + timedelta(days=30))
        figures["retention"], figures["retention_stall"] = seconds, stall
        log(f"  retention, 30 days of backlog {seconds:.3f} s, stall {stall * 1000:.1f} ms: "
            f"{done}")
        figures["needs"] = float(await services.db.run(
            lambda s: s.exec(select(func.count()).select_from(Need)).one()))
    finally:
        await services.db.dispose()
    if exports:
        seconds, rss = await asyncio.to_thread(export, url)
        figures["export_csv"], figures["export_csv_rss"] = seconds, rss
        log(f"  export csv {seconds:.2f} s, peak RSS {rss:.0f} MiB")
    return figures


async def run_size(db: str, size: int, territories: Path, rounds: int,
                   exports: bool) -> dict[str, float]:
    """One size on one database (a copy of the cached SQLite file, or a fresh PostgreSQL)."""
    if db == "sqlite":
        path, _shape = sqlite_database(size, log=log)
        work = Path(tempfile.mkdtemp(prefix="relais-passes-")) / "relais.db"
        await asyncio.to_thread(_copy, path, work)
        try:
            return await measure(f"sqlite+aiosqlite:///{work}", size, territories, rounds,
                                 exports)
        finally:
            await asyncio.to_thread(_remove, work)
    async with pg_database(size, log=log) as (url, _shape):
        return await measure(url, size, territories, rounds, exports)


ROWS: list[tuple[str, str]] = [
    ("baseline", "baseline: one need by id"),
    ("followup_catchup", "follow-up, first pass after the upgrade"),
    ("followup_5min", "follow-up, every 5 min"),
    ("followup_midnight", "follow-up, just after midnight"),
    ("retention", "retention, 30 days of backlog"),
    ("export_csv", "relais export (CSV), every need"),
]


def table(results: dict[tuple[str, int], dict[str, float]], sizes: list[int],
          dbs: list[str]) -> str:
    """Markdown: seconds (× baseline) [longest loop stall], growth exponent."""
    header = ["operation", "db", *[f"{s:,} needs" for s in sizes], "growth k"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, label in ROWS:
        for db in dbs:
            cells, values = [label, db], []
            for size in sizes:
                figures = results.get((db, size), {})
                value = figures.get(key)
                values.append(value)
                if value is None:
                    cells.append("—")
                    continue
                cell = _seconds(value)
                if key != "baseline" and figures.get("baseline"):
                    cell += f" (×{value / figures['baseline']:,.0f})"
                if f"{key}_stall" in figures:
                    cell += f" [stall {figures[f'{key}_stall'] * 1000:.0f} ms]"
                if f"{key}_rss" in figures:
                    cell += f" [peak RSS {figures[f'{key}_rss']:.0f} MiB]"
                cells.append(cell)
            ks = [_exponent(a, b, sizes[i], sizes[i + 1])
                  for i, (a, b) in enumerate(itertools.pairwise(values))
                  if a is not None and b is not None]
            cells.append(" → ".join(f"{k:.2f}" for k in ks) or "—")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> None:
    """Every size on every database, then the table."""
    if args.watch:
        WATCH.append(0.05)
    sizes = sorted(iter_sizes(args.sizes))
    dbs = [d.strip() for d in args.db.split(",") if d.strip()]
    territories = write_territory_files(Path(tempfile.mkdtemp(prefix="relais-ti-")))
    results: dict[tuple[str, int], dict[str, float]] = {}
    log(f"code: {ROOT} ({'sliced passes' if NEW else 'passes before issue 18'})")
    if args.export_only:
        for size in sizes:
            path, _shape = sqlite_database(size, log=log)
            for fmt in ("csv", "xlsx"):
                seconds, rss = await asyncio.to_thread(export, f"sqlite+aiosqlite:///{path}",
                                                       fmt)
                print(f"export {fmt}, {size:,} needs (sqlite): {seconds:.2f} s, "
                      f"peak RSS {rss:.0f} MiB", flush=True)
        return
    for size in sizes:
        for db in dbs:
            log(f"{db}, {size} needs")
            results[(db, size)] = await run_size(db, size, territories, args.rounds,
                                                 not args.no_export)
    print(f"\n{'After' if NEW else 'Before'} (code in {ROOT}); [stall] = the event loop's "
          "longest stall during the pass (1 ms ticker); (×N) = N times the baseline of the "
          "same run; growth k: time ∝ needs^k.\n")
    print(table(results, sizes, dbs))
    if args.json:
        dump = json.dumps({f"{db}:{size}": f for (db, size), f in results.items()}, indent=1)
        await asyncio.to_thread(Path(args.json).write_text, dump, encoding="utf-8")


def main(argv: list[str] | None = None, run: Callable[..., Any] = asyncio.run) -> None:
    """Command line: sizes, databases, rounds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--db", default="sqlite,pg")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-export", action="store_true")
    parser.add_argument("--export-only", action="store_true",
                        help="only the export (CSV and XLSX), on the cached SQLite files")
    parser.add_argument("--json")
    parser.add_argument("--watch", action="store_true",
                        help="print where the event loop was during stalls over 50 ms")
    run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
