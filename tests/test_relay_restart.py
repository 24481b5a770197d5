"""The relay survives kill -9: a real `relais run` process is killed between every two steps
of an exchange between a firm and its chef de projet; every message arrives, once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlmodel import col, select

from storage.db import Database
from storage.models import NeedMessage, Outbox
from testing.botapi import LocalBotAPI, SimUser
from tests.helpers import DESCRIPTION, VALID_SIRET
from tests.test_restart import BotProcess

ANIMATOR_ID = 900000001


async def _expect(user: SimUser, fragment: str, *, within: float = 30) -> None:
    """Wait until a bot message in this chat contains `fragment`."""
    for _ in range(int(within / 0.05)):
        if any(fragment in m.plain for m in user.messages):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {fragment!r} in {[m.plain[:60] for m in user.messages]}")


async def _step(bot: BotProcess, db_path: Path, action: Callable[[], Awaitable[object]],
                user: SimUser, fragment: str, *, in_flight: bool) -> None:
    """Do something, kill the bot at a chosen point, restart, and see the answer.

    `in_flight`: killed while the first message of the answer is being sent (the double
    holds that request and never carries it out); otherwise killed once the answer is
    delivered and recorded as such. Never after a fixed delay.
    """
    api = bot.api
    if in_flight:
        api.delay_next("sendMessage", 3600.0)
        sends = len(api.calls_of("sendMessage"))
        await action()
        for _ in range(600):
            if len(api.calls_of("sendMessage")) > sends:
                break
            await asyncio.sleep(0.05)
        assert len(api.calls_of("sendMessage")) > sends, "the answer never left"
    else:
        await action()
        await _expect(user, fragment)
        await _drained(db_path)
    await bot.kill()
    await bot.start()
    await _expect(user, fragment)


async def _drained(db_path: Path) -> None:
    """Wait until every Telegram row is delivered (so no duplicate can still come).

    No mail server runs here: the partners' emails wait, and are not this test's subject.
    """
    db = Database(f"sqlite+aiosqlite:///{db_path}")
    try:
        for _ in range(600):
            pending = await db.run(lambda s: [
                (r.id, r.recipient, r.kind, r.attempts, r.not_before, r.claimed_until,
                 str(r.payload)[:80]) for r in s.exec(
                    select(Outbox).where(Outbox.channel == "telegram",
                                         col(Outbox.delivered_at).is_(None),
                                         col(Outbox.failed_at).is_(None))).all()])
            if not pending:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"outbox not drained: {pending}")
    finally:
        await db.dispose()


@pytest.mark.slow
async def test_relay_survives_kill_dash_nine_between_every_two_steps(
    api: LocalBotAPI, tmp_path: Path,
) -> None:
    db_path = tmp_path / "relais.db"
    bot = BotProcess(api, db_path)
    firm = api.user(4343, "Dominique")
    animator = api.user(ANIMATOR_ID, "Claire")
    await bot.start()
    try:
        await animator.replies_after(animator.send_command("/aide"))
        # The need, without kills (the intake has its own restart test).
        await firm.replies_after(firm.send_command("/start"))
        for action in (lambda: firm.press("J'accepte"), lambda: firm.send_text(VALID_SIRET),
                       lambda: firm.send_text("Scierie du Charolais"),
                       lambda: firm.send_text("Paray le Monial"), lambda: firm.press("Recruter"),
                       lambda: firm.send_text(DESCRIPTION), lambda: firm.press("Cette semaine"),
                       lambda: firm.press("Ici, sur Telegram"),
                       lambda: firm.press("Envoyer la demande")):
            await firm.replies_after(action())
        await _expect(animator, "Nouvelle demande TI-2026-0001")

        for in_flight in (True, False):
            round_ = "avant" if in_flight else "après"
            await _step(bot, db_path, lambda: animator.press("Écrire à l'entreprise"), animator,
                        "Votre message pour", in_flight=in_flight)
            await _step(bot, db_path, lambda r=round_: animator.send_text(f"Question {r}"),
                        firm, f"Question {round_}", in_flight=in_flight)
            await _step(bot, db_path, lambda: firm.press("Répondre"), firm,
                        "Votre réponse au chef de projet", in_flight=in_flight)
            await _step(bot, db_path, lambda r=round_: firm.send_text(f"Réponse {r}"),
                        animator, f"Réponse {round_}", in_flight=in_flight)
            # The prompts are asked again next round: forget them.
            for user in (firm, animator):
                user.messages[:] = [m for m in user.messages if "/annuler pour renoncer"
                                    not in m.plain]
    finally:
        await _drained(db_path)
        await bot.stop()

    # Each relayed message reached the other person exactly once, with the reference.
    for user, texts in ((firm, ("Question avant", "Question après")),
                        (animator, ("Réponse avant", "Réponse après"))):
        for text in texts:
            got = [m.plain for m in user.messages if text in m.plain]
            assert len(got) == 1, (text, got)
            assert "TI-2026-0001" in got[0]
    db = Database(f"sqlite+aiosqlite:///{db_path}")
    try:
        kinds = await db.run(lambda s: [(m.author_kind, m.text)
                                        for m in s.exec(select(NeedMessage))])
    finally:
        await db.dispose()
    assert sorted(kinds) == sorted([("animator", "Question avant"), ("firm", "Réponse avant"),
                                    ("animator", "Question après"), ("firm", "Réponse après")])
