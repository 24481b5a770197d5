"""Benchmark sending partner emails over SMTP (a script, not a test).

    python bench/bench_smtp.py [--emails 2000] [--json]

Builds N partner emails with `partner_need_email`, turns each draft into a message two
ways (the standard library's `to_email_message`, the baseline of the build; the email
worker's `to_outgoing`, bytes written directly), then sends them to a local aiosmtpd server
three times, in the same run:

- baseline: `aiosmtplib.send` per email, i.e. connect, EHLO, send, QUIT each time;
- reuse: one `bot.mail.MailSender`, i.e. one SMTP connection for every email
  (it opens a fresh one every `MAX_MESSAGES_PER_CONNECTION` messages), `EmailMessage`s
  (flattened by aiosmtplib as they are sent);
- reuse, direct: the same sender with `to_outgoing`'s bytes (what the worker sends).

The server runs in a child process (its own core when there are two) so that its work is
not counted as the sender's; the sender is pinned to one core. Both modes send the same
prebuilt messages, sequentially, and the server's count is checked after each mode.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiosmtplib  # noqa: E402
from aiosmtpd.smtp import SMTP, Envelope, Session  # noqa: E402
from aiosmtplib.email import flatten_message  # noqa: E402

from bot.mail import MailSender  # noqa: E402
from bot.services.emails import (  # noqa: E402
    EmailDraft,
    NeedView,
    partner_need_email,
    to_email_message,
    to_outgoing,
)
from bot.services.mime import OutgoingEmail  # noqa: E402
from testing.smtp import RecordingHandler, SmtpServer  # noqa: E402

MAIL_FROM = "Relais <relais@relais.example.org>"
LOCAL_HOSTNAME = "relais.bench"
TARGET = 100.0  # emails/s with one reused connection


class CountingHandler(RecordingHandler):
    """Accepts and counts messages without parsing them: the bench measures the sender."""

    accepted: int = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Count the message."""
        self.accepted += 1
        return "250 2.0.0 Message accepted"


def _pin(cpu_index: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[cpu_index % len(cpus)]})


def serve(pipe: Connection) -> None:
    """Child process: run the SMTP server, report its port, answer count requests."""
    _pin(1)

    async def run() -> None:
        handler = CountingHandler()
        async with SmtpServer(handler) as server:
            pipe.send(server.port)
            loop = asyncio.get_running_loop()
            while True:
                request = await loop.run_in_executor(None, pipe.recv)
                if request == "stop":
                    return
                pipe.send((handler.accepted, handler.connections))

    asyncio.run(run())


def build_drafts(count: int) -> list[EmailDraft]:
    """N distinct partner emails, as the routing service would build them."""
    created = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    drafts = []
    for n in range(count):
        view = NeedView(
            reference=f"TI-2026-{n + 1:04d}",
            theme_label="Recrutement",
            firm_name=f"Menuiserie {n} & fils",
            siret="73282932000074",
            commune_name="Paray-le-Monial",
            commune_insee="71342",
            epci_name="CC Le Grand Charolais",
            description=(
                "Nous cherchons deux soudeurs qualifiés pour notre atelier.\n"
                "Poste en CDI, dès janvier. Formation interne possible."
            ),
            urgency_label="Dans le mois",
            contact_method_label="Par téléphone",
            contact_value="06 12 34 56 78",
            created_at=created + timedelta(minutes=n),
            territory_name="Bourgogne Industrie",
        )
        draft = partner_need_email(
            need=view,
            partner_name="France Travail Paray",
            partner_email=f"partenaire{n % 50}@francetravail.example",
            reason="Partenaire « Recrutement » de la CC Le Grand Charolais.",
            ack_days=2,
            ack_deadline=date(2026, 12, 1),
            animator_name="Claire Martin",
            animator_email="claire.martin@example.org",
            mail_domain="relais.example.org",
        )
        drafts.append(draft)
    return drafts


def timed_cpu_ms(build: Callable[[], list[Any]]) -> tuple[list[Any], float]:
    """Run `build`; its result and the CPU milliseconds it took per item."""
    cpu_started = time.process_time()
    built = build()
    return built, (time.process_time() - cpu_started) / len(built) * 1000


def stdlib_bytes(messages: list[EmailMessage]) -> list[bytes]:
    """What aiosmtplib sends for each `EmailMessage` (it flattens it in `send_message`)."""
    return [flatten_message(message) for message in messages]


async def send_reused(port: int, messages: list[Any]) -> None:
    """Every message through one MailSender."""
    async with MailSender(
        host="127.0.0.1", port=port, security="none", local_hostname=LOCAL_HOSTNAME
    ) as sender:
        for message in messages:
            await sender.send(message)


async def send_baseline(port: int, messages: list[EmailMessage]) -> None:
    """Every message on its own connection (aiosmtplib.send)."""
    for message in messages:
        await aiosmtplib.send(
            message, hostname="127.0.0.1", port=port, start_tls=False,
            local_hostname=LOCAL_HOSTNAME,
        )


def measure(
    name: str,
    send: Callable[[int, list[Any]], Coroutine[Any, Any, None]],
    port: int,
    messages: list[Any],
    pipe: Connection,
) -> dict[str, Any]:
    """Time one mode and check the server got every message."""
    pipe.send("count")
    accepted_before, connections_before = pipe.recv()
    started, cpu_started = time.perf_counter(), time.process_time()
    asyncio.run(send(port, messages))
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    pipe.send("count")
    accepted_after, connections_after = pipe.recv()
    accepted = accepted_after - accepted_before
    if accepted != len(messages):
        raise SystemExit(f"{name}: the server accepted {accepted} of {len(messages)} emails")
    return {
        "mode": name,
        "emails": len(messages),
        "connections": connections_after - connections_before,
        "seconds": seconds,
        "emails_per_s": len(messages) / seconds,
        "sender_cpu_ms": cpu / len(messages) * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    """Run both modes and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = parser.parse_args(argv)

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server = context.Process(target=serve, args=(child,), daemon=True)
    server.start()
    port = parent.recv()
    _pin(0)
    try:
        started = time.perf_counter()
        drafts, draft_ms = timed_cpu_ms(lambda: build_drafts(args.emails))
        build_seconds = time.perf_counter() - started
        messages, stdlib_ms = timed_cpu_ms(
            lambda: [to_email_message(d, mail_from=MAIL_FROM) for d in drafts])
        _, flatten_ms = timed_cpu_ms(lambda: stdlib_bytes(messages))
        direct, direct_ms = timed_cpu_ms(
            lambda: [to_outgoing(d, mail_from=MAIL_FROM) for d in drafts])
        assert all(isinstance(m, OutgoingEmail) for m in direct)
        build_cpu_ms = draft_ms + stdlib_ms
        # A few emails first, so that every mode runs warm (imports, TLS-less code paths).
        measure("warm-up", send_reused, port, messages[:20], parent)
        measure("warm-up", send_reused, port, direct[:20], parent)
        rows = [
            measure("baseline: aiosmtplib.send, one connection per email", send_baseline,
                    port, messages, parent),
            measure("MailSender, one reused connection", send_reused, port, messages, parent),
            measure("MailSender, one reused connection, bytes written directly",
                    send_reused, port, direct, parent),
        ]
    finally:
        parent.send("stop")
        server.join(timeout=5)

    if args.json:
        print(json.dumps({"build_seconds": build_seconds, "build_cpu_ms": build_cpu_ms,
                          "draft_cpu_ms": draft_ms, "stdlib_cpu_ms": stdlib_ms,
                          "flatten_cpu_ms": flatten_ms, "direct_cpu_ms": direct_ms,
                          "rows": rows}, indent=2))
        return 0
    print(f"{args.emails} partner email drafts built in {build_seconds:.2f} s "
          f"({draft_ms:.2f} ms CPU each: partner_need_email)")
    print()
    print("| draft → bytes on the wire | CPU ms/email | vs baseline |")
    print("|---|---:|---:|")
    stdlib_total = stdlib_ms + flatten_ms
    print(f"| baseline: to_email_message + aiosmtplib's flatten | {stdlib_total:.3f} | 1.00x |")
    print(f"| to_outgoing (bytes written directly) | {direct_ms:.3f} | "
          f"{direct_ms / stdlib_total:.2f}x |")
    print()
    print("| mode | emails | connections | seconds | emails/s | sender CPU ms/email |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['mode']} | {row['emails']} | {row['connections']} | "
              f"{row['seconds']:.2f} | {row['emails_per_s']:.0f} | {row['sender_cpu_ms']:.2f} |")
    reuse = rows[1]["emails_per_s"]
    print()
    print(f"Reuse vs baseline: x{reuse / rows[0]['emails_per_s']:.1f}; "
          f"target ≥ {TARGET:.0f} emails/s: {'met' if reuse >= TARGET else 'NOT met'}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
