"""Small helpers that play a business owner in a test."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from sqlmodel import Session, select

from storage.db import Database
from storage.models import Need
from testing.botapi import BotMessage, SimUser

VALID_SIRET = "73282932000074"
DESCRIPTION = "Nous cherchons deux soudeurs qualifiés pour notre atelier de Paray."


async def _replies(user: SimUser, action: Awaitable[int]) -> list[BotMessage]:
    """Run the action; return the bot's new messages once the bot is done with it.

    Quiet for a moment is not done: on a busy machine the second message of a reply can
    come later than that. A polling bot confirms an update (getUpdates' offset past it)
    only once its handlers ran and sent their replies, so that is waited for too.
    """
    start = len(user.messages)
    update_id: int | None = None

    async def act() -> int:
        nonlocal update_id
        update_id = await action
        return update_id

    await user.replies_after(act())
    api = user.api
    if api.webhook is None and api.record_calls and update_id is not None:
        for _ in range(400):
            if any(int(c.params.get("offset") or 0) > update_id
                   for c in reversed(api.calls_of("getUpdates"))):
                break
            await asyncio.sleep(0.05)
    return list(user.messages[start:])


async def say(user: SimUser, text: str) -> list[BotMessage]:
    """Type text (or a /command) and return the bot's new messages."""
    if text.startswith("/"):
        command, _, args = text.partition(" ")
        return await _replies(user, user.send_command(command, args))
    return await _replies(user, user.send_text(text))


async def press(user: SimUser, label: str) -> list[BotMessage]:
    """Press a button by its label and return the bot's new messages."""
    return await _replies(user, user.press(label))


async def reach_summary(
    user: SimUser,
    *,
    name: str = "Menuiserie Dupont",
    location: str = "Paray-le-Monial",
    theme: str = "Recruter",
) -> list[BotMessage]:
    """Walk the whole intake with valid answers, up to the summary."""
    replies = await say(user, "/start")
    if "J'accepte" in replies[-1].button_labels():
        await press(user, "J'accepte")
    await say(user, VALID_SIRET)
    await say(user, name)
    if "Continuer quand même" in (await say(user, location))[-1].button_labels():
        await press(user, "Continuer quand même")  # a commune no territory covers
    await press(user, theme)
    await say(user, DESCRIPTION)
    await press(user, "Dans le mois")
    return await press(user, "Ici, sur Telegram")


async def all_needs(db: Database) -> list[Need]:
    """Every stored need, oldest first."""

    def work(session: Session) -> list[Need]:
        return list(session.exec(select(Need).order_by(Need.id)).all())

    return await db.run(work)
