"""Benchmark: the intake of bench_intake.py on PostgreSQL, and with webhook instances.

Every configuration runs Relais as real child processes (`relais run` or `relais serve`),
with the Bot API double and the simulated firms in this process, over loopback HTTP. Each
firm goes through the whole intake (10 updates) and waits for each answer before the next
step, all firms at once. The configurations, measured in the same run and interleaved:

* ``polling-sqlite``: one `relais run`, SQLite (the foundation's layout; the baseline);
* ``polling-pg``: one `relais run`, PostgreSQL;
* ``webhook-pg-1``: one `relais serve`, PostgreSQL, updates pushed by the double;
* ``webhook-pg-2``: two `relais serve` on one PostgreSQL database, round robin.

The CPU column is the bot processes' own CPU time per update (psutil, over the window the
firms type); PostgreSQL's server processes are not in it. The machine is shared and has
two cores for everything (bot processes, PostgreSQL, the double and the firms): compare
the ratios to the baseline of the same run.

    python bench/bench_scaleout.py --firms 100 --rounds 2

PostgreSQL databases are made and dropped by `testing/pg.py` (`RELAIS_TEST_PG` to point
elsewhere).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_intake import Recorder, _pct, intake_firm

from bot.config import DEFAULT_TERRITORIES_DIR
from knowledge.geography import default_geography
from knowledge.territories import load_territories
from testing.botapi import LocalBotAPI
from testing.pg import fresh_database

PUBLIC_URL = "https://relais.example.org/telegram/hook"
SECRET = "bench-secret"
PROFILE_DIR: str | None = None
CONFIGS = {
    "polling-sqlite": "relais run, SQLite (baseline)",
    "polling-pg": "relais run, PostgreSQL",
    "webhook-pg-1": "relais serve ×1, PostgreSQL",
    "webhook-pg-2": "relais serve ×2, PostgreSQL",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Result:
    """One configuration's figures for one round."""

    config: str
    updates: int
    seconds: float
    latencies: list[float]
    cpu: float  # bot processes' CPU seconds over the window
    side_cpu: float  # this process (the double and the firms) over the same window

    @property
    def ups(self) -> float:
        """Updates per second."""
        return self.updates / self.seconds

    @property
    def cpu_ms(self) -> float:
        """Bot CPU milliseconds per update."""
        return 1000 * self.cpu / self.updates


async def _wait_ready(proc: asyncio.subprocess.Process, api: LocalBotAPI,
                      health: str | None) -> None:
    for _ in range(600):
        if proc.returncode is not None:
            raise RuntimeError("a bot process exited at start")
        if health is None:
            if api.calls_of("getUpdates"):
                return
        else:
            try:
                async with httpx.AsyncClient() as client:
                    # No SMTP server in this benchmark: only the database must answer.
                    if (await client.get(health)).json().get("database") == "ok":
                        return
            except httpx.HTTPError:
                pass
        await asyncio.sleep(0.1)
    raise RuntimeError("a bot process did not become ready")


def _cpu(procs: list[asyncio.subprocess.Process]) -> float:
    total = 0.0
    for proc in procs:
        times = psutil.Process(proc.pid).cpu_times()
        total += times.user + times.system
    return total


async def run_config(config: str, firms: int, workdir: Path) -> Result:
    """Start the configuration's processes, drive the firms, stop everything."""
    api = LocalBotAPI(record_calls=True)
    await api.start()
    territories = load_territories(DEFAULT_TERRITORIES_DIR, geography=default_geography())
    for animator in territories.animator_user_ids():
        api.user(animator).started = True
    procs: list[asyncio.subprocess.Process] = []
    try:
        async with _database(config, workdir) as url:
            env = {**os.environ, "TELEGRAM_BOT_TOKEN": api.token,
                   "TELEGRAM_API_URL": api.base_url, "DATABASE_URL": url,
                   "RELAIS_POLLING_TIMEOUT": "1", "RELAIS_RATE_LIMIT": "false",
                   "RELAIS_EMAIL_WORKER": "false", "RELAIS_FIRM_LOOKUP": "false",
                   "WEBHOOK_URL": PUBLIC_URL, "WEBHOOK_SECRET": SECRET,
                   # On a machine this loaded a reply may wait longer than the default
                   # lease between its turn and its delivery: the sweeper would send it
                   # again and a firm would answer the wrong question.
                   "RELAIS_OUTBOX_LEASE": "120"}
            count = 2 if config.endswith("-2") else 1
            targets = []
            for index in range(count):
                if config.startswith("polling"):
                    args = ["run"]
                    health = None
                else:
                    port = _free_port()
                    args = ["serve", "--host", "127.0.0.1", "--port", str(port)]
                    health = f"http://127.0.0.1:{port}/healthz"
                    targets.append(f"http://127.0.0.1:{port}/telegram/hook")
                # --profile DIR: each bot process writes a cProfile file there.
                prof = ([ "-m", "cProfile", "-o", f"{PROFILE_DIR}/{config}-{index}.prof"]
                        if PROFILE_DIR else [])
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, *prof, "-m", "bot.cli", *args, env=env,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=(workdir / f"{config}-{index}.log").open("ab"))
                procs.append(proc)
                # One at a time: the first one migrates the new database.
                await _wait_ready(proc, api, health)
            if targets:
                api.route_webhook(targets)
            # A few firms first, not measured: connections opened, caches warm.
            warm = Recorder()
            await asyncio.gather(*(intake_firm(api.user(900_000 + i), warm) for i in range(5)))
            rec = Recorder()
            cpu_before = _cpu(procs)
            side_before = time.process_time()
            start = time.perf_counter()
            await asyncio.gather(*(intake_firm(api.user(1_000 + i), rec) for i in range(firms)))
            seconds = time.perf_counter() - start
            cpu = _cpu(procs) - cpu_before
            side = time.process_time() - side_before
            return Result(config, rec.updates, seconds, rec.latencies, cpu, side)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
        await api.stop()


@asynccontextmanager
async def _database(config: str, workdir: Path) -> AsyncIterator[str]:
    if config.endswith("sqlite"):
        yield f"sqlite+aiosqlite:///{workdir / f'{config}-{uuid.uuid4().hex[:6]}.db'}"
        return
    async with fresh_database() as url:
        yield url


def report(results: dict[str, list[Result]], firms: int, rounds: int) -> None:
    """Print the table: median round per configuration, ratios to the baseline."""
    print(f"\nIntake, {firms} firms × 10 updates, median of {rounds} round(s)\n")
    header = (f"{'configuration':34} {'updates/s':>10} {'vs base':>8} {'p50 ms':>8} "
              f"{'p99 ms':>8} {'bot CPU ms/upd':>15} {'Telegram side':>14} {'rounds (up/s)':>18}")
    print(header)
    print("-" * len(header))
    def median_of(rows: list[Result]) -> Result:
        return sorted(rows, key=lambda r: r.ups)[(len(rows) - 1) // 2]

    base = median_of(results["polling-sqlite"]).ups
    for config, rows in results.items():
        median = median_of(rows)
        spread = ", ".join(f"{r.ups:.0f}" for r in rows)
        print(f"{CONFIGS[config]:34} {median.ups:10.0f} {median.ups / base:7.2f}x "
              f"{1000 * _pct(median.latencies, 0.5):8.0f} "
              f"{1000 * _pct(median.latencies, 0.99):8.0f} {median.cpu_ms:15.2f} "
              f"{1000 * median.side_cpu / median.updates:14.2f} {spread:>18}")
    if "polling-pg" in results:
        # Issue #18: webhook on PostgreSQL at least as fast as polling on PostgreSQL. Rounds
        # are interleaved, so each webhook round is compared with the polling round beside it.
        polling = results["polling-pg"]
        for config in ("webhook-pg-1", "webhook-pg-2"):
            if config not in results:
                continue
            pairs = [w.ups / p.ups for w, p in zip(results[config], polling, strict=False)]
            cpu = median_of(results[config]).cpu_ms / median_of(polling).cpu_ms
            print(f"{CONFIGS[config]} vs polling on PostgreSQL: "
                  f"{median_of(results[config]).ups / median_of(polling).ups:.2f}x throughput "
                  f"(medians; per round {', '.join(f'{r:.2f}x' for r in pairs)}), "
                  f"{cpu:.2f}x bot CPU per update")


async def main_async(firms: int, rounds: int, only: list[str]) -> None:
    """Run every configuration `rounds` times, interleaved."""
    results: dict[str, list[Result]] = {config: [] for config in only}
    with tempfile.TemporaryDirectory(prefix="relais-bench-") as tmp:
        for _ in range(rounds):
            for config in only:
                result = await run_config(config, firms, Path(tmp))
                results[config].append(result)
                print(f"  {config}: {result.ups:.0f} updates/s, "
                      f"p99 {1000 * _pct(result.latencies, 0.99):.0f} ms", flush=True)
    report(results, firms, rounds)


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--firms", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", nargs="*", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--profile", metavar="DIR", help="cProfile each bot process into DIR")
    args = parser.parse_args()
    global PROFILE_DIR
    PROFILE_DIR = args.profile
    only = args.only if "polling-sqlite" in args.only else ["polling-sqlite", *args.only]
    asyncio.run(main_async(args.firms, args.rounds, only))


if __name__ == "__main__":
    main()
