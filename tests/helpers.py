"""Small helpers that play a business owner in a test."""

from __future__ import annotations

from sqlmodel import Session, select

from storage.db import Database
from storage.models import Need
from testing.botapi import BotMessage, SimUser

VALID_SIRET = "73282932000074"
DESCRIPTION = "Nous cherchons deux soudeurs qualifiés pour notre atelier de Paray."


async def say(user: SimUser, text: str) -> list[BotMessage]:
    """Type text (or a /command) and return the bot's new messages."""
    if text.startswith("/"):
        command, _, args = text.partition(" ")
        return await user.replies_after(user.send_command(command, args))
    return await user.replies_after(user.send_text(text))


async def press(user: SimUser, label: str) -> list[BotMessage]:
    """Press a button by its label and return the bot's new messages."""
    return await user.replies_after(user.press(label))


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
