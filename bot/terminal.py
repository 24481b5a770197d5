"""`relais chat`: the real bot and a local Bot API, driven from the terminal."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from contextlib import suppress

from bot.config import Settings
from testing.botapi import BotMessage, LocalBotAPI, SimUser

__all__ = ["render_message", "run_terminal_chat"]

INTRO = (
    "Relais en mode terminal (aucun réseau, aucun jeton).\n"
    "Tapez votre réponse, ou le numéro d'un bouton. /aide pour l'aide, Ctrl-D pour quitter.\n"
)


def render_message(message: BotMessage, *, edited: bool = False) -> str:
    """A bot message as a person reads it, with numbered buttons."""
    lines = [("(modifié) " if edited else "") + "Relais › " + message.plain.replace("\n", "\n  ")]
    labels = message.button_labels()
    if labels:
        lines.append("  " + "   ".join(f"[{i}] {label}" for i, label in enumerate(labels, 1)))
    return "\n".join(lines)


async def _read_line() -> str | None:
    line = await asyncio.to_thread(sys.stdin.readline)
    return line if line else None


def _action(user: SimUser, line: str) -> Awaitable[int] | None:
    """What typing this line does: press a numbered button, send a command, or text."""
    text = line.strip()
    if not text:
        return None
    if text.isdigit():
        keyboards = [m for m in user.messages if m.button_labels()]
        if keyboards:
            labels = keyboards[-1].button_labels()
            index = int(text) - 1
            if 0 <= index < len(labels):
                return user.press(labels[index], message_id=keyboards[-1].message_id)
    if text.startswith("/"):
        command, _, args = text.partition(" ")
        return user.send_command(command, args)
    return user.send_text(text)


async def run_terminal_chat(settings: Settings, *, user_id: int, first_name: str) -> None:
    """Start a local Bot API and the real bot against it; relay stdin and stdout."""
    from bot.runtime import build_services, running_bot

    api = LocalBotAPI()
    await api.start()
    chat_settings = settings.model_copy(
        update={"telegram_bot_token": api.token, "telegram_api_url": api.base_url,
                "polling_timeout": 1,
                # The try-out needs no network: the company directory is only asked when
                # RELAIS_FIRM_LOOKUP is set explicitly.
                "firm_lookup": settings.firm_lookup
                and "firm_lookup" in settings.model_fields_set}
    )
    services = await build_services(chat_settings)
    user = api.user(user_id, first_name)

    def show(message: BotMessage, edited: bool) -> None:
        if message.chat_id == user.chat_id:
            print(render_message(message, edited=edited), flush=True)

    api.on_bot_message.append(show)
    print(INTRO, flush=True)
    try:
        async with running_bot(services):
            # Wait for the bot's answer before reading the next line, so that a number
            # always refers to the buttons the person has seen (and piped input works).
            await user.replies_after(user.send_command("/start"), timeout=15)
            while True:
                line = await _read_line()
                if line is None:
                    break
                action = _action(user, line)
                if action is not None:
                    with suppress(TimeoutError):
                        await user.replies_after(action, timeout=15)
    finally:
        await services.db.dispose()
        await api.stop()
        print("\nAu revoir.", flush=True)
