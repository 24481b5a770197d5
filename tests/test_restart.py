"""Restart safety: a real `relais run` process killed with SIGKILL at several steps.

Each kill happens at a chosen point, reached by waiting for it (the outbox recorded as
delivered, or the reply's request held by the Bot API double), never after a fixed delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from storage.db import Database
from testing.botapi import LocalBotAPI, SimUser
from tests.helpers import DESCRIPTION, VALID_SIRET, all_needs

# Real time here (a child process): long enough that a live process always marks its own
# deliveries first, short enough that a reply left behind by a kill goes out soon.
LEASE_SECONDS = 3


class BotProcess:
    """`relais run` in a child process, pointed at the test's local Bot API."""

    def __init__(self, api: LocalBotAPI, db_path: Path) -> None:
        self.env = {
            **os.environ,
            "TELEGRAM_BOT_TOKEN": api.token,
            "TELEGRAM_API_URL": api.base_url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{db_path}",
            "RELAIS_POLLING_TIMEOUT": "1",
            "RELAIS_OUTBOX_LEASE": str(LEASE_SECONDS),
            "RELAIS_RATE_LIMIT": "false",
            "RELAIS_FIRM_LOOKUP": "false",
        }
        self.api = api
        self.db_path = db_path
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        """Start the process and wait until it polls for updates."""
        polls_before = len(self.api.calls_of("getUpdates"))
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "run",
            env=self.env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        self.starts += 1
        for _ in range(400):
            if len(self.api.calls_of("getUpdates")) > polls_before:
                return
            if self.proc.returncode is not None:
                err = await self.proc.stderr.read() if self.proc.stderr else b""
                raise AssertionError(f"bot exited: {err.decode()}")
            await asyncio.sleep(0.05)
        raise AssertionError("bot did not start polling")

    def _outbox(self, chat_id: int) -> tuple[int, int]:
        """(messages written for the chat, Telegram rows not yet delivered and recorded).

        Emails are left out: this process has no SMTP server.
        """
        with contextlib.closing(sqlite3.connect(self.db_path, timeout=10)) as conn:
            [(total,)] = conn.execute(
                "SELECT count(*) FROM outbox WHERE channel = 'telegram' AND kind = 'send'"
                " AND recipient = ?", (str(chat_id),)).fetchall()
            [(unfinished,)] = conn.execute(
                "SELECT count(*) FROM outbox WHERE channel = 'telegram'"
                " AND delivered_at IS NULL AND failed_at IS NULL").fetchall()
        return int(total), int(unfinished)

    async def drained(self, chat_id: int) -> int:
        """Wait until every Telegram row is delivered or given up; return the chat's messages."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            total, unfinished = await asyncio.to_thread(self._outbox, chat_id)
            if unfinished == 0:
                return total
            if loop.time() > deadline:
                raise AssertionError(f"{unfinished} outbox rows still undelivered")
            await asyncio.sleep(0.05)

    async def kill(self) -> None:
        """SIGKILL: no clean shutdown, no flush, nothing."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        """Terminate politely (end of test)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()


async def answer(user: SimUser, action, expect: str, bot: BotProcess) -> None:
    """Do something, then check the single reply the bot sends has `expect` in it.

    Once the outbox is drained nothing more can come: every row is recorded as delivered
    and the update is recorded as handled (in the reply's transaction).
    """
    before = len(user.messages)
    await action
    await user.wait_for_messages(before + 1, timeout=20)
    sent = await bot.drained(user.chat_id)
    new = list(user.messages[before:])
    assert len(new) == 1, [m.plain for m in new]
    assert expect in new[0].plain, new[0].plain
    assert sent == len(user.messages), "each outbox row reached the chat exactly once"


@pytest.mark.slow
async def test_kill_dash_nine_at_every_step_loses_nothing(api: LocalBotAPI, tmp_path: Path) -> None:
    db_path = tmp_path / "relais.db"
    bot = BotProcess(api, db_path)
    user = api.user(4242, "Dominique")
    await bot.start()
    try:
        before = len(user.messages)
        await user.send_command("/start")
        await user.wait_for_messages(before + 2, timeout=20)
        await bot.drained(user.chat_id)
        await bot.kill()
        await bot.start()

        await answer(user, user.press("J'accepte"), "SIRET", bot)
        await bot.kill()
        await bot.start()
        await answer(user, user.send_text(VALID_SIRET), "nom de votre entreprise", bot)
        await bot.kill()
        await bot.start()
        await answer(user, user.send_text("Scierie du Charolais"), "commune", bot)

        # Kill while the reply is being delivered: the state is committed, the reply is in
        # the outbox, the update is not yet confirmed. After the restart the update comes
        # again (and is ignored) and, once the dead process's lease is over, the outbox
        # delivers the reply, once. The double holds the request and never carries it out
        # (it only ends when the double stops): the kill lands exactly while it is pending.
        api.delay_next("sendMessage", 3600.0)
        sends = len(api.calls_of("sendMessage"))
        before = len(user.messages)
        await user.send_text("Paray le Monial")
        for _ in range(400):
            if len(api.calls_of("sendMessage")) > sends:
                break
            await asyncio.sleep(0.05)
        assert len(api.calls_of("sendMessage")) == sends + 1, "the reply never left"
        assert len(user.messages) == before
        await bot.kill()
        await bot.start()
        await user.wait_for_messages(before + 1, timeout=20)
        sent = await bot.drained(user.chat_id)
        assert sent == len(user.messages)
        theme_questions = [m for m in user.messages if "besoin principal" in m.plain]
        assert len(theme_questions) == 1, [m.plain for m in user.messages]

        await answer(user, user.press("Recruter"), "Décrivez", bot)
        await bot.kill()
        await bot.start()
        await answer(user, user.send_text(DESCRIPTION), "Pour quand", bot)
        await answer(user, user.press("Cette semaine"), "recontacté", bot)
        await bot.kill()
        await bot.start()
        await answer(user, user.press("Ici, sur Telegram"), "Récapitulatif", bot)
        await bot.kill()
        await bot.start()
        await answer(user, user.press("Envoyer la demande"), "TI-2026-0001", bot)
    finally:
        await bot.stop()

    db = Database(f"sqlite+aiosqlite:///{db_path}")
    [need] = await all_needs(db)
    await db.dispose()
    assert need.firm_name == "Scierie du Charolais"
    assert need.siret == VALID_SIRET
    assert need.commune_insee == "71342"
    assert need.theme == "recrutement" and need.urgency == "week"
    assert need.description == DESCRIPTION
    assert bot.starts == 8
    # Every question was asked exactly once.
    questions = [m.plain for m in user.messages]
    for fragment in ("nom de votre entreprise", "numéro SIRET", "Dans quelle commune", "Décrivez"):
        assert sum(fragment in q for q in questions) == 1, (fragment, questions)
