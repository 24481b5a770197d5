"""Benchmark what hostile email costs (a script, not a test).

    python bench/bench_hostile.py [--naive] [--json]

Three tables, each against a baseline measured in the same run:

1. Field extraction (`bot.services.extract.extract_fields`) on a real firm email (the
   baseline), on texts full of "à Xxxx-yyyy" candidate places (8.4 KB and 100 KB) and on
   inputs that used to make a regular expression backtrack (100 KB each): time and commune
   lookups. With `--naive`, the 8.4 KB text also goes through the old lookup (a fuzzy
   `Geography.resolve` per candidate, no cache, no budget): the ~14 s stall of issue 16.
2. MIME decoding (`handlers.mail.decode.parse_inbound`) of a normal email with an
   attachment (the baseline) and of crafted ones (5 MB of 50,000 one-byte parts, a 1.6 MB
   header block, 300,000 addresses, 4.5 MB of HTML), with the default limits; the part
   limit lifted on 5,000 parts shows what it saves.
3. The event loop while crafted mails are read: the longest gap between two ticks of a
   5 ms ticker when the reading runs in a worker thread (as `MailboxReader` does) and
   when it runs on the loop itself (the baseline: how it was).

Prints Markdown tables (or JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import string
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import bot.services.extract as extract  # noqa: E402
from bot.services.extract import Limits, extract_fields  # noqa: E402
from bot.services.replies import classify_reply  # noqa: E402
from handlers.mail.decode import parse_inbound  # noqa: E402
from handlers.mail.quotes import strip_quoted  # noqa: E402
from knowledge.geography import Commune, Geography, GeoResult, default_geography  # noqa: E402

FIRM_EMAIL = """Bonjour,

Je suis le gérant de la SARL Martin et Fils, située à Paray-le-Monial (71). Nous
cherchons deux soudeurs pour la rentrée, et nous aimerions aussi former un apprenti.
Nos clients sont à Digoin, au Creusot et à Montceau-les-Mines.

Adresse : 12 rue de la Gare, 71600 Paray-le-Monial
SIRET : 732 829 320 00074
Tél : 03 85 81 10 92

Cordialement
Jean Martin
MECANIQUE MARTIN ET FILS
"""


class CountingGeography(Geography):
    """The shipped table, counting lookups (exact, by first words, or fuzzy)."""

    lookups = 0

    def resolve(self, text: str, **options: Any) -> GeoResult:
        """Count, then resolve."""
        self.lookups += 1
        return super().resolve(text, **options)

    def named(self, name: str) -> tuple[Commune, ...]:
        """Count, then look up."""
        self.lookups += 1
        return super().named(name)

    def starting_with(self, name: str) -> tuple[Commune, ...]:
        """Count, then look up."""
        self.lookups += 1
        return super().starting_with(name)


class _NaivePlaces(extract._Places):
    """The lookup before issue 16: a fuzzy resolve per candidate, no cache, no budget."""

    def candidate(self) -> bool:
        return True

    def named(self, key: str) -> tuple[Commune, ...]:
        self.lookups += 1
        return self.geo.resolve(key, limit=20).communes

    def starting_with(self, tokens: tuple[str, ...]) -> tuple[Commune, ...]:
        self.lookups += 1
        return self.geo.resolve(" ".join(tokens), limit=20).communes


def places_text(size: int, seed: int = 7) -> str:
    """`size` characters of "livré à Xxxx-yyyy puis Zzzz", every name different."""
    rng = random.Random(seed)

    def word() -> str:
        return rng.choice(string.ascii_uppercase) + "".join(rng.choices(string.ascii_lowercase,
                                                                        k=6))

    parts = ["Bonjour,\n"]
    while sum(map(len, parts)) < size:
        parts.append(f"livré à {word()}-{word().lower()} puis {word()} ")
    return "".join(parts)[:size]


BACKTRACKING: dict[str, str] = {
    "ampersands": "Abc " + "& " * 50_000 + "x",
    "digits": "0" * 100_000,
    "tabs": "\t" * 100_000,
    "spaces in a signature": "Cordialement\nABC" + " " * 100_000 + "SAS",
    "one long word": "a" * 100_000,
    "phone numbers": "03 85 81 10 92 " * 7_000,
    "postcodes on one line": "x 71600 " * 12_500,
    "(71) marks": "Abc (71) " * 11_000,
}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def extraction_rows(naive: bool) -> list[dict[str, Any]]:
    geo = CountingGeography.load()
    cases = [("firm email (baseline)", FIRM_EMAIL), ("à Xxxx-yyyy, 8.4 KB", places_text(8_400)),
             ("à Xxxx-yyyy, 100 KB", places_text(100_000)),
             *((f"{name}, 100 KB", text) for name, text in BACKTRACKING.items())]
    rows = []
    for name, text in cases:
        geo.lookups = 0
        seconds, _ = timed(lambda text=text: extract_fields(text, geography=geo))
        rows.append({"case": name, "chars": len(text), "ms": seconds * 1000,
                     "lookups": geo.lookups})
    if naive:
        original = extract._Places
        extract._Places = _NaivePlaces  # type: ignore[misc]
        try:
            geo.lookups = 0
            text = places_text(8_400)
            unlimited = Limits(max_lookups=10**9, max_places=10**9)
            seconds, _ = timed(lambda: extract_fields(text, geography=geo, limits=unlimited))
        finally:
            extract._Places = original  # type: ignore[misc]
        rows.append({"case": "à Xxxx-yyyy, 8.4 KB, old lookup", "chars": len(text),
                     "ms": seconds * 1000, "lookups": geo.lookups})
    return rows


def _headers(extra: str = "") -> bytes:
    return ("From: Paul Dupont <contact@menuiserie-dupont.fr>\r\n"
            "To: relais@relais.example.org\r\nSubject: Soudeurs\r\n"
            "Message-ID: <bench@menuiserie-dupont.fr>\r\nMIME-Version: 1.0\r\n" + extra).encode()


def many_parts(count: int) -> bytes:
    """A message of `count` one-byte text parts, about 100 bytes each (5 MB for 50,000)."""
    part = (b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 7bit\r\nX-Pad: 0123456789\r\n\r\nx\r\n")
    return (_headers('Content-Type: multipart/mixed; boundary="b"\r\n\r\n')
            + part * count + b"--b--\r\n")


def normal_mail() -> bytes:
    from email.message import EmailMessage

    mail = EmailMessage()
    mail["From"], mail["To"] = "contact@menuiserie-dupont.fr", "relais@relais.example.org"
    mail["Subject"] = "Recherche de soudeurs"
    mail.set_content(FIRM_EMAIL)
    mail.add_attachment(b"%PDF-1.4 " + b"x" * 200_000, maintype="application",
                        subtype="pdf", filename="fiche-poste.pdf")
    return mail.as_bytes()


def crafted_mails() -> dict[str, bytes]:
    return {
        "50,000 one-byte parts": many_parts(50_000),
        "1.6 MB header block": _headers() + b"X-A: b\r\n" * 200_000 + b"\r\nbody\r\n",
        "300,000 addresses in To": _headers().replace(
            b"To: relais@relais.example.org", b"To: " + b"a@b.c, " * 300_000) + b"\r\nx",
        "4.5 MB of HTML": _headers("Content-Type: text/html\r\n\r\n") + b"<b>x</b> " * 500_000,
    }


def mime_rows() -> list[dict[str, Any]]:
    rows = []
    cases = [("email with a 200 KB PDF (baseline)", normal_mail(), {}),
             *((name, raw, {}) for name, raw in crafted_mails().items()),
             ("5,000 one-byte parts, part limit lifted", many_parts(5_000),
              {"max_parts": 10**9}),
             ("5,000 one-byte parts, default limit", many_parts(5_000), {})]
    for name, raw, options in cases:
        seconds, mail = timed(lambda raw=raw, options=options: parse_inbound(raw, **options))
        rows.append({"case": name, "bytes": len(raw), "ms": seconds * 1000,
                     "text chars": len(mail.text), "truncated": mail.truncated})
    return rows


def read_mail(raw: bytes) -> None:
    """What the mailbox reader does with a message before its transaction."""
    mail = parse_inbound(raw, max_bytes=10 * 1024 * 1024)
    text = strip_quoted(mail.text)
    extract_fields(text)
    classify_reply(text)


async def _longest_gap(work: Callable[[], Any]) -> tuple[float, float]:
    """Run `work` while a 5 ms ticker runs; the longest gap between ticks, and the total."""
    ticks: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    start = time.perf_counter()
    await work()
    total = time.perf_counter() - start
    done.set()
    await task
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    return max(gaps), total


def loop_rows() -> list[dict[str, Any]]:
    default_geography()  # loaded once, outside the measure
    mails = [*crafted_mails().values(), places_text(8_400).encode(), many_parts(5_000)]
    mails = [m if m.startswith(b"From:") else _headers("\r\n") + m for m in mails]
    worker = ThreadPoolExecutor(max_workers=1)

    async def in_thread() -> None:
        loop = asyncio.get_running_loop()
        for raw in mails:
            await loop.run_in_executor(worker, read_mail, raw)

    async def on_loop() -> None:
        for raw in mails:
            read_mail(raw)
            await asyncio.sleep(0)

    rows = []
    for name, work in (("on the event loop (baseline)", on_loop),
                       ("in a worker thread", in_thread)):
        gap, total = asyncio.run(_longest_gap(work))
        rows.append({"mails read": name, "count": len(mails), "total ms": total * 1000,
                     "longest loop stall ms": gap * 1000})
    worker.shutdown()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = [f"{v:.1f}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the three measures and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--naive", action="store_true",
                        help="also replay the old lookup on the 8.4 KB text (~10 s)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    results = {"extraction": extraction_rows(args.naive), "mime": mime_rows(),
               "event loop": loop_rows()}
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for title, rows in results.items():
        print(f"\n### {title}\n\n{table(rows)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
