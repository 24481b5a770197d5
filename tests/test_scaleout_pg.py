"""Three real `relais serve` processes on one PostgreSQL database, one killed mid-stream.

The Bot API double plays Telegram and the load balancer: it POSTs each update to one
instance (round robin) and sends it again elsewhere when an instance does not answer. Firms
go through the intake at the same time, needs are routed (partner emails on a real SMTP
server), meeting reminders fall due. Then instance 0 is killed with SIGKILL while it holds
claimed updates in the middle of their transaction (the test holds those conversations'
row locks, so the kill lands at a known point); instances 1 and 2 must finish its work.

Checked at the end: every firm has exactly one need; every question was asked once and
every update handled once; every outbox row went out once (Telegram messages counted per
chat, emails by their stable Message-ID); every reminder sent once on each channel.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.config import DEFAULT_TERRITORIES_DIR
from bot.webhook import chat_of
from knowledge.geography import default_geography
from knowledge.territories import load_territories
from storage.db import Database
from storage.models import (
    Meeting,
    MeetingAttendee,
    Need,
    Outbox,
    PendingUpdate,
    ProcessedUpdate,
    Reminder,
)
from testing.botapi import LocalBotAPI, SimUser
from testing.pg import fresh_database
from testing.smtp import SmtpServer
from tests.helpers import DESCRIPTION, VALID_SIRET, press, say

# Real PostgreSQL (127.0.0.1:5432): `-m "not pg"` leaves these out.
pytestmark = pytest.mark.pg

SECRET = "multi-instance-secret"
PUBLIC_URL = "https://relais.example.org/telegram/hook"
FIRMS = 18
VICTIMS = (1, 3, 5, 7)  # firms whose next answer is handled by the instance that dies
FIRST_CHAT = 70_001
LEASE_SECONDS = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    """One `relais serve` child process."""

    def __init__(self, index: int, env: dict[str, str], log: Path) -> None:
        self.index = index
        self.port = _free_port()
        self.env = env
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def target(self) -> str:
        """Where the load balancer sends this instance's share of the updates."""
        return f"http://127.0.0.1:{self.port}/telegram/hook"

    async def start(self) -> None:
        """Start the process; return once /healthz answers 200."""
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1",
                "--port", str(self.port), env=self.env, stdout=out, stderr=out)
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                if self.proc.returncode is not None:
                    raise AssertionError(f"instance {self.index} exited:\n{self.tail()}")
                try:
                    response = await client.get(f"http://127.0.0.1:{self.port}/healthz")
                    if response.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"instance {self.index} not healthy:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM (uvicorn's graceful shutdown), then wait."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    def tail(self) -> str:
        """The end of the process's log (for a failing assertion)."""
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


@pytest.fixture
async def database() -> AsyncIterator[str]:
    async with fresh_database() as url:
        yield url


async def _until(predicate: Callable[[], object], what: str,
                 timeout: float = 30.0) -> None:  # noqa: ASYNC109 - a plain poll, not I/O
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def _answer(user: SimUser, action: Callable[[], object], expect: str) -> None:
    """Do something and wait for a reply containing `expect` (whichever instance answers)."""
    before = len(user.messages)
    await action()  # type: ignore[misc]
    await _until(lambda: any(expect in m.plain for m in user.messages[before:]),
                 f"{expect!r} for chat {user.user_id}")


async def _first_half(user: SimUser, index: int) -> None:
    """Consent, SIRET, name, commune, theme."""
    replies = await say(user, "/start")
    if "J'accepte" in replies[-1].button_labels():
        await press(user, "J'accepte")
    await _answer(user, lambda: user.send_text(VALID_SIRET), "nom de votre entreprise")
    await _answer(user, lambda: user.send_text(f"Atelier numéro {index}"), "commune")
    await _answer(user, lambda: user.send_text("Paray-le-Monial"), "besoin principal")
    await _answer(user, lambda: user.press("Recruter"), "Décrivez")


async def _second_half(user: SimUser, *, described: bool = False) -> None:
    """Description, urgency, contact channel, send."""
    if not described:
        await _answer(user, lambda: user.send_text(DESCRIPTION), "Pour quand")
    await _answer(user, lambda: user.press("Dans le mois"), "recontacté")
    await _answer(user, lambda: user.press("Ici, sur Telegram"), "Récapitulatif")
    await _answer(user, lambda: user.press("Envoyer la demande"), "TI-2026-")


def _seed_reminders(offset_minutes: int, now: datetime) -> Callable[[Session], int]:
    """A confirmed meeting per need (once), and one reminder of each due now."""

    def work(session: Session) -> int:
        count = 0
        for need in session.exec(select(Need).order_by(col(Need.id))).all():
            meeting = session.exec(select(Meeting).where(Meeting.need_id == need.id)).first()
            if meeting is None:
                start = now + timedelta(hours=3)
                meeting = Meeting(uid=f"rdv-{need.id}@relais.example.org", need_id=need.id or 0,
                                  territory_id=need.territory_id, start_at=start,
                                  end_at=start + timedelta(hours=1), status="confirmed",
                                  organizer_name="Animatrice", firm_chat_id=need.telegram_chat_id,
                                  place="Atelier", created_at=now, updated_at=now)
                session.add(meeting)
                session.flush()
                session.add(MeetingAttendee(meeting_id=meeting.id or 0, kind="partner",
                                            name="Partenaire emploi",
                                            email=f"partenaire-{need.id}@example.org"))
            session.add(Reminder(meeting_id=meeting.id or 0, offset_minutes=offset_minutes,
                                 due_at=now))
            count += 1
        return count

    return work


def _outbox_idle(session: Session) -> bool:
    waiting = session.exec(select(func.count()).select_from(Outbox).where(
        col(Outbox.delivered_at).is_(None), col(Outbox.failed_at).is_(None))).one()
    reminders = session.exec(select(func.count()).select_from(Reminder).where(
        Reminder.status == "pending")).one()
    return waiting == 0 and reminders == 0


@pytest.mark.slow
async def test_three_instances_one_killed_nothing_lost_nothing_twice(
        api: LocalBotAPI, smtp: SmtpServer, database: str, tmp_path: Path) -> None:
    """The multi-instance run described in the module docstring."""
    territories = load_territories(DEFAULT_TERRITORIES_DIR, geography=default_geography())
    for animator_id in territories.animator_user_ids():
        api.user(animator_id).started = True
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": api.token,
        "TELEGRAM_API_URL": api.base_url,
        "DATABASE_URL": database,
        "WEBHOOK_URL": PUBLIC_URL,
        "WEBHOOK_SECRET": SECRET,
        "RELAIS_UPDATE_LEASE": str(LEASE_SECONDS),
        # Long enough that a row being sent on a loaded machine is not taken for abandoned
        # and sent again by another instance (real clock here); short enough that rows
        # the killed instance held are taken over well within the waits below.
        "RELAIS_OUTBOX_LEASE": "8",
        "RELAIS_RATE_LIMIT": "false",
        "RELAIS_FIRM_LOOKUP": "false",
        "REMINDER_TICK": "0.3",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        "SMTP_SECURITY": "none",
        "MAIL_FROM": "Relais Bourgogne <relais@relais.example.org>",
        "RELAIS_EMAIL_POLL": "0.1",
        "RELAIS_LOG_JSON": "true",
    }
    instances = [ServeProcess(i, env, tmp_path / f"instance-{i}.log") for i in range(3)]
    db = Database(database)
    victims = {FIRST_CHAT + i for i in VICTIMS}
    pinned: dict[str, bool] = {"on": False}
    spread = iter(range(1_000_000))

    def choose(update: dict[str, object]) -> int | None:
        # While the kill is prepared: the victims' updates to instance 0, the rest to 1 and 2.
        if not pinned["on"]:
            return None
        return 0 if chat_of(update) in victims else 1 + next(spread) % 2

    try:
        # All three start together on an empty database: one migrates, the others wait.
        await asyncio.gather(*(instance.start() for instance in instances))
        assert api.webhook is not None and api.webhook["url"] == PUBLIC_URL
        api.route_webhook([instance.target for instance in instances], choose=choose)
        users = [api.user(FIRST_CHAT + i, f"Firme{i}") for i in range(FIRMS)]

        # Phase 1: every firm answers the first questions; the even ones send their need.
        async def phase_one(i: int) -> None:
            await _first_half(users[i], i)
            if i % 2 == 0:
                await _second_half(users[i])

        await asyncio.gather(*(phase_one(i) for i in range(FIRMS)))
        served = Counter(d.target for d in api.webhook_deliveries if d.status == 200)
        assert set(served) == {0, 1, 2}, served  # the load was spread over all three
        now = datetime.now(UTC)
        first_batch = await db.run(_seed_reminders(24 * 60, now))
        assert first_batch == FIRMS // 2
        await _until(lambda: db.run(_outbox_idle), "reminders and outbox drained")

        # The kill: the victims' next answers go to instance 0, which claims them and
        # blocks inside their transactions.
        holder = await asyncpg.connect(database.replace("postgresql+asyncpg", "postgresql"))
        hold = holder.transaction()
        await hold.start()
        # Row locks on their conversations: instance 0 stores and claims the updates,
        # computes the turns, and waits to write them (nothing committed, nothing sent).
        await holder.execute("SELECT chat_id FROM conversation WHERE chat_id = ANY($1::bigint[])"
                             " FOR UPDATE", sorted(victims))
        pinned["on"] = True
        victim_update_ids = {await api.user(chat).send_text(DESCRIPTION)
                             for chat in sorted(victims)}
        others = [asyncio.create_task(_second_half(users[i])) for i in range(1, FIRMS, 2)
                  if FIRST_CHAT + i not in victims]

        def claimed_by_instance_0(session: Session) -> int:
            return session.exec(select(func.count()).select_from(PendingUpdate).where(
                col(PendingUpdate.chat_id).in_(victims), col(PendingUpdate.done_at).is_(None),
                col(PendingUpdate.claimed_until).is_not(None))).one()

        await _until(lambda: db.run(lambda s: claimed_by_instance_0(s) == len(victims)),
                     "instance 0 holding the victims' updates")
        killed_at = time.monotonic()
        instances[0].kill()
        await instances[0].proc.wait()  # type: ignore[union-attr]
        await hold.rollback()
        await holder.close()
        pinned["on"] = False  # round robin again: instance 0 refuses, Telegram retries

        # Instances 1 and 2 take the victims' updates over once the lease is past.
        victim_users = [api.user(chat) for chat in sorted(victims)]
        await _until(lambda: all(any("Pour quand" in m.plain for m in u.messages)
                                 for u in victim_users),
                     "the victims' answers handled by the survivors", timeout=45)
        await asyncio.gather(*(_second_half(u, described=True) for u in victim_users), *others)
        second_batch = await db.run(_seed_reminders(120, datetime.now(UTC)))
        assert second_batch == FIRMS
        await _until(lambda: db.run(_outbox_idle), "everything delivered", timeout=45)
        # No pause for late duplicates: the counts below are taken once every instance
        # has exited, when nothing more can arrive.
    except BaseException:
        for instance in instances:
            print(f"--- instance {instance.index} ---\n{instance.tail()}")
        raise
    finally:
        # Instance 0 too, should the test have failed before killing it.
        await asyncio.gather(*(instance.stop() for instance in instances))

    assert instances[0].proc is not None and instances[0].proc.returncode == -signal.SIGKILL
    # The survivors stopped on SIGTERM through their own shutdown (exit code 0), not by
    # the signal's default action.
    assert [instance.proc.returncode for instance in instances[1:]] == [0, 0]  # type: ignore[union-attr]
    # The victims' answers were posted to instance 0 and to nobody else before the kill
    # (instance 0 stored and claimed them: checked before the kill). A 200 that instance 0
    # had not yet written when it died makes Telegram post the update again elsewhere: it
    # is stored once and waits for the lease like the others.
    to_zero = {d.update_id for d in api.webhook_deliveries
               if d.target == 0 and d.update_id in victim_update_ids}
    assert to_zero == victim_update_ids
    assert all(d.target == 0 for d in api.webhook_deliveries
               if d.update_id in victim_update_ids and d.at < killed_at)
    assert any(d.target == 0 and d.status == 0 for d in api.webhook_deliveries)

    def facts(session: Session) -> dict[str, object]:
        needs = session.exec(select(Need).order_by(col(Need.id))).all()
        outbox = session.exec(select(Outbox)).all()
        return {
            "needs": [(n.telegram_chat_id, n.firm_name, n.reference) for n in needs],
            "undone": session.exec(select(func.count()).select_from(PendingUpdate).where(
                col(PendingUpdate.done_at).is_(None))).one(),
            "stored": session.exec(select(func.count()).select_from(PendingUpdate)).one(),
            "processed": session.exec(select(func.count()).select_from(ProcessedUpdate)).one(),
            "telegram_rows": Counter(o.recipient for o in outbox
                                     if o.channel == "telegram" and o.kind == "send"),
            "email_rows": sum(o.channel == "email" for o in outbox),
            "failed": [o.last_error for o in outbox if o.failed_at is not None],
            "reminders": Counter(r.status for r in session.exec(select(Reminder)).all()),
        }

    got = await db.run(facts)
    await db.dispose()

    # Every firm has exactly one need, with its own name and a distinct reference.
    assert sorted(chat for chat, _, _ in got["needs"]) == [FIRST_CHAT + i for i in range(FIRMS)]
    assert {name for _, name, _ in got["needs"]} == {f"Atelier numéro {i}" for i in range(FIRMS)}
    assert len({ref for _, _, ref in got["needs"]}) == FIRMS
    # Every update stored was handled (once: the replies below). A webhook turn tells a
    # redelivery by its stored update's done mark, committed with it: no processed_update.
    assert got["undone"] == 0 and got["stored"] > 0
    assert got["processed"] == 0
    assert got["failed"] == []
    assert got["reminders"] == Counter({"sent": FIRMS // 2 + FIRMS})

    # Every Telegram outbox row went out once: each chat got as many messages as rows.
    for recipient, rows in got["telegram_rows"].items():
        sent = [m for m in api.user(int(recipient)).messages if m.kind != "deleted"]
        assert len(sent) == rows, (recipient, rows, [m.plain[:50] for m in sent])
    for i, user in enumerate(api.user(FIRST_CHAT + i) for i in range(FIRMS)):
        plain = [m.plain for m in user.messages]
        for fragment in ("nom de votre entreprise", "Dans quelle commune", "Décrivez",
                         "Pour quand", "Récapitulatif"):
            assert sum(fragment in text for text in plain) == 1, (i, fragment, plain)
        assert sum("Rappel" in text for text in plain) == (2 if i % 2 == 0 else 1), (i, plain)

    # Every email went out once: stable Message-IDs, one per outbox row.
    ids = Counter(str(m.message["Message-ID"]) for m in smtp.messages)
    assert [mid for mid, n in ids.items() if n > 1] == []
    assert len(smtp.messages) == got["email_rows"]
    reminder_mails = [m for m in smtp.messages
                      if "partenaire-" in ",".join(m.rcpt_tos)]
    assert len(reminder_mails) == FIRMS // 2 + FIRMS
