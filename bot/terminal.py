"""`relais chat`: the real bot and a local Bot API, driven from the terminal.

The Bot API double lives in the `testing` package (test doubles): it is imported here only,
when the command runs, so that nothing else in the product depends on it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

from bot.config import Settings
from storage.db import Database
from storage.models import PendingUpdate, ProcessedUpdate

if TYPE_CHECKING:
    from testing.botapi import BotMessage, SimUser

__all__ = ["chat_log_path", "last_update_id", "render_message", "run_terminal_chat"]

INTRO = (
    "Relais en mode terminal (aucun réseau, aucun jeton).\n"
    "Tapez votre réponse, ou le numéro d'un bouton. /aide pour l'aide, Ctrl-D pour quitter.\n"
)
LOG_NOTICE = "Le journal technique est écrit dans {path}.\n"
LOG_NAME = "relais-chat.log"


def chat_log_path(settings: Settings) -> Path:
    """Where `relais chat` writes its log: beside the SQLite database, else in ./data."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(str(url.database)).expanduser().parent / LOG_NAME
    return Path("data") / LOG_NAME


def render_message(message: BotMessage, *, edited: bool = False) -> str:
    """A bot message as a person reads it, with numbered buttons."""
    lines = [("(modifié) " if edited else "") + "Relais › " + message.plain.replace("\n", "\n  ")]
    labels = message.button_labels()
    if labels:
        lines.append("  " + "   ".join(f"[{i}] {label}" for i, label in enumerate(labels, 1)))
    return "\n".join(lines)


async def last_update_id(db: Database) -> int:
    """The highest Telegram update id this database has seen (0 when none)."""

    def work(session: Session) -> int:
        handled = session.exec(select(func.max(ProcessedUpdate.update_id))).one()
        received = session.exec(select(func.max(PendingUpdate.update_id))).one()
        return max(handled or 0, received or 0)

    return await db.run(work)


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


async def run_terminal_chat(settings: Settings, *, user_id: int, first_name: str,
                            log_path: Path | None = None) -> None:
    """Start a local Bot API and the real bot against it; relay stdin and stdout."""
    from bot.runtime import build_services, running_bot
    from testing.botapi import LocalBotAPI

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
    try:
        services = await build_services(chat_settings)
    except BaseException:
        await api.stop()
        raise
    # The double numbers updates from the same id at every start; on a database that
    # already handled those ids every message would look like a redelivery and get no answer.
    api.resume_after(await last_update_id(services.db))
    user = api.user(user_id, first_name)
    # The person has opened the chat: a reply the last run stored but did not send yet may
    # be delivered before the first message of this run.
    user.started = True

    def show(message: BotMessage, edited: bool) -> None:
        if message.chat_id == user.chat_id:
            print(render_message(message, edited=edited), flush=True)

    api.on_bot_message.append(show)
    print(INTRO + (LOG_NOTICE.format(path=log_path) if log_path else ""), flush=True)
    try:
        async with running_bot(services):
            # /start greets a newcomer, or says where a conversation left off and asks its
            # question again. The bot's answer is awaited before reading the next line, so
            # a number always refers to the buttons the person has seen (and piped input
            # works).
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
