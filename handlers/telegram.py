"""Telegram adapter: turns updates into service calls and deliveries into Bot API calls.

No business rule lives here: each handler builds an `Incoming`, asks the service, answers
the button press, and delivers the outbox rows the service wrote.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING

from telegram import (
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    MessageEntity,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.catalogue import label
from bot.messages import Attachment
from bot.messages import Message as OutMessage
from bot.services.types import Delivery, Incoming
from handlers.ports import ChatPort
from handlers.render import telegram_html
from storage.db import DatabaseBusy

if TYPE_CHECKING:
    from telegram import Bot

__all__ = ["deliver", "install_handlers", "register_commands", "take_postponed"]

log = logging.getLogger(__name__)

# The command menu: every person's commands, then the chefs de projet's (their own scope).
FIRM_COMMANDS = ("start", "mesdemandes", "mesrdv", "annuler", "aide", "supprimer")
ANIMATOR_COMMANDS = ("demandes", "rdv", "stats", "radar", "demande", "recharger")

# New messages in private chats, from a person. An edited message is not a new answer (the
# bot does not even subscribe to edits: runtime.ALLOWED_UPDATES), and a message without a
# sender cannot be attributed to anyone.
PRIVATE = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE & filters.USER


# bot_data key: ids of updates put off because the database was busy (see `take_postponed`).
_POSTPONED = "postponed_updates"


def _services(context: ContextTypes.DEFAULT_TYPE) -> ChatPort:
    return context.application.bot_data["services"]


def take_postponed(application: Application, update_id: int) -> bool:
    """Whether this update was put off rather than handled (forgotten once asked).

    Whoever fed the update to the application (the poller, the webhook) then leaves it
    unconfirmed, so that it comes back and is handled later, in its chat's order.
    """
    postponed: set[int] = application.bot_data.get(_POSTPONED, set())
    if update_id in postponed:
        postponed.discard(update_id)
        return True
    return False


def _media_kind(message: Message) -> str:
    for kind in ("sticker", "photo", "voice", "video", "document", "location", "contact"):
        if getattr(message, kind, None):
            return kind
    if message.audio or message.video_note or message.animation:
        return "voice" if message.audio or message.video_note else "video"
    return "other"


async def on_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A /command in a private chat: start, aide, annuler, mesdemandes, supprimer, or unknown."""
    message = update.effective_message
    assert message is not None and message.text is not None and update.effective_user
    name, args = _command_parts(message)
    await _dispatch(update, context, Incoming(
        chat_id=message.chat_id, user_id=update.effective_user.id, kind="command",
        value=name, args=_without_nul(args), update_id=update.update_id,
        first_name=update.effective_user.first_name,
    ))


def _command_parts(message: Message) -> tuple[str, str]:
    """The command's name (lower case, without '/' or '@bot') and its arguments.

    The name is what Telegram marked as the bot_command at offset 0, so "/rdv\nTI-…" or
    "/start\tx" are /rdv and /start with arguments, as Telegram's clients show them.
    """
    text = message.text or ""
    command = next((message.parse_entity(e) for e in message.entities
                    if e.type == MessageEntity.BOT_COMMAND and e.offset == 0), None)
    if command is None:
        command = text.split(maxsplit=1)[0] if text.strip() else text
    args = text[len(command):] if text.startswith(command) else ""
    return command.removeprefix("/").split("@", 1)[0].lower(), args.strip()


def _without_nul(text: str) -> str:
    """Typed text without U+0000, which PostgreSQL cannot store in a text column."""
    return text.replace("\x00", "") if "\x00" in text else text


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Typed text: the answer to the pending question (or a question for the assistant)."""
    message = update.effective_message
    assert message is not None and message.text is not None and update.effective_user
    await _dispatch(update, context, Incoming(
        chat_id=message.chat_id, user_id=update.effective_user.id, kind="text",
        value=_without_nul(message.text), update_id=update.update_id,
        first_name=update.effective_user.first_name, reply_to_text=_replied_text(message),
    ))


async def on_media(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A sticker, photo, document, voice note…: the service decides (relay, or explain)."""
    message = update.effective_message
    assert message is not None and update.effective_user
    await _dispatch(update, context, Incoming(
        chat_id=message.chat_id, user_id=update.effective_user.id, kind="media",
        value=_media_kind(message), update_id=update.update_id,
        attachment=_attachment(message), caption=_without_nul(message.caption or ""),
        reply_to_text=_replied_text(message),
    ))


def _attachment(message: Message) -> Attachment | None:
    """The photo (largest size) or document of a message, by Telegram file id."""
    if message.photo:
        best = message.photo[-1]
        return Attachment("photo", best.file_id, "photo.jpg", best.file_size or 0, "image/jpeg")
    if message.document:
        doc = message.document
        return Attachment("document", doc.file_id, (doc.file_name or "document")[:120],
                          doc.file_size or 0, doc.mime_type or "")
    return None


def _replied_text(message: Message) -> str | None:
    """The text of the message this one replies to (the bot's, for a relayed message)."""
    replied = message.reply_to_message
    if replied is None:
        return None
    return (replied.text or replied.caption or "")[:4096]


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An inline button press: the service records the choice and asks the next question."""
    query = update.callback_query
    assert query is not None and update.effective_user
    source = query.message if isinstance(query.message, Message) else None
    chat_id = source.chat_id if source else update.effective_user.id
    await _dispatch(update, context, Incoming(
        chat_id=chat_id, user_id=update.effective_user.id, kind="button",
        value=query.data or "", update_id=update.update_id,
        message_id=source.message_id if source else None,
        origin_html=source.text_html if source and source.text else None,
    ))


async def _dispatch(update: Update, context: ContextTypes.DEFAULT_TYPE, event: Incoming) -> None:
    services = _services(context)
    # One chat at a time, in order; other chats proceed concurrently.
    async with services.chat_lock(event.chat_id):
        try:
            result = await services.handle(event)
        except DatabaseBusy as exc:
            # Nothing was committed: no apology, the update is handled again later.
            log.warning("update %s put off: %s", update.update_id, exc)
            context.application.bot_data.setdefault(_POSTPONED, set()).add(update.update_id)
            return
        except Exception:
            log.exception("service failed for update %s", update.update_id)
            await _apologise(update, context)
            raise
        if update.callback_query is not None and not result.duplicate:
            try:
                await update.callback_query.answer(result.toast)
            except TelegramError as exc:  # an old query: the press still counts
                log.info("answerCallbackQuery refused: %s", exc)
        await deliver(context.bot, services, result.deliveries)


async def _apologise(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    chat = update.effective_chat
    if chat is None:
        return
    try:
        await context.bot.send_message(chat.id, label("common.technical_error"))
    except TelegramError:
        log.warning("could not apologise to chat %s", chat.id)


def _markup(message: OutMessage) -> InlineKeyboardMarkup | None:
    if not message.buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b.label, callback_data=b.data) for b in row]
         for row in message.buttons]
    )


def _markup_json(message: OutMessage) -> dict[str, object] | None:
    """The inline keyboard as Bot API JSON (for calls made without PTB's objects)."""
    if not message.buttons:
        return None
    return {"inline_keyboard": [[{"text": b.label, "callback_data": b.data} for b in row]
                                for row in message.buttons]}


# Texts and edits never read the Message that Telegram sends back, which
# `Bot.send_message` and `Bot.edit_message_text` turn into PTB objects: 0.15-0.25 ms of
# CPU per call, about a tenth of an update's cost. `do_api_request` without a return type
# skips that. Bot API method names are case-insensitive; the lower-case spelling also
# keeps PTB from warning that `Bot.sendMessage` exists (it warns for its own names).
_SEND, _EDIT = "sendmessage", "editmessagetext"


async def _send_one(bot: Bot, delivery: Delivery) -> None:
    message = delivery.message
    chat_id = int(delivery.recipient)
    text = telegram_html(message)
    if message.attachment is not None:
        # A person's file relayed by its Telegram id: nothing is downloaded or uploaded.
        # A file that came by email has no id: its bytes are uploaded.
        a = message.attachment
        send = bot.send_photo if a.kind == "photo" else bot.send_document
        file = InputFile(a.data, filename=a.name or None) if a.data is not None else a.file_id
        await send(chat_id, file, caption=text or None,  # type: ignore[operator]
                   parse_mode=ParseMode.HTML, reply_markup=_markup(message))
        return
    if message.photo is not None and message.edit_message_id is None:
        await bot.send_photo(chat_id, photo=message.photo, caption=text or None,
                             parse_mode=ParseMode.HTML, reply_markup=_markup(message))
        return
    params: dict[str, object] = {
        "chat_id": chat_id,
        "text": text,
        "parse_mode": ParseMode.HTML,
        "reply_markup": _markup_json(message),
    }
    if message.edit_message_id is not None:
        params["message_id"] = message.edit_message_id
        try:
            await bot.do_api_request(_EDIT, api_kwargs=params)
        except BadRequest as exc:
            # Already in that state (a redelivery after a crash): nothing left to do.
            if "not modified" not in exc.message.lower():
                raise
        return
    await bot.do_api_request(_SEND, api_kwargs=params)


async def deliver(bot: Bot, services: ChatPort, deliveries: Sequence[Delivery]) -> None:
    """Deliver outbox rows in order; stop at the first transient failure so order holds.

    Each row is marked delivered as soon as Telegram accepted it (the marking runs while the
    next one is sent); this returns once every marking is committed, so the chat's next turn
    finds no message of its own still pending.
    """
    marks: list[Awaitable[None]] = []
    try:
        for index, delivery in enumerate(deliveries):
            try:
                await _send_one(bot, delivery)
            except RetryAfter as exc:
                await _fail(services, delivery, deliveries[index + 1 :], str(exc),
                            retry_after=_seconds(exc.retry_after))
                break
            except (BadRequest, Forbidden) as exc:
                # Telegram will refuse this one forever (blocked bot, bad chat): move on.
                log.error("outbox %s refused by Telegram: %s", delivery.outbox_id, exc)
                await services.keep_refused(delivery, str(exc))  # an animator's: kept, emailed
                await services.delivery_failed(delivery.outbox_id, str(exc), permanent=True)
                # A message the firm will never read: the animators must know (a refused
                # edit of an old button message is not worth telling).
                if isinstance(exc, Forbidden) or delivery.message.edit_message_id is None:
                    await services.report_undeliverable(int(delivery.recipient), str(exc))
                continue
            except (NetworkError, TelegramError) as exc:
                await _fail(services, delivery, deliveries[index + 1 :], str(exc))
                break
            marks.append(services.mark_delivered([delivery.outbox_id]))
    finally:
        if marks:
            for outcome in await asyncio.gather(*marks, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    # The lease keeps other deliverers away until it ends; then the message
                    # goes once more (the one case of a duplicate).
                    log.error("outbox rows not marked delivered: %r", outcome)


def _seconds(value: object) -> float:
    total = getattr(value, "total_seconds", None)
    return float(total()) if callable(total) else float(value)  # type: ignore[arg-type]


async def _fail(
    services: ChatPort,
    delivery: Delivery,
    rest: Sequence[Delivery],
    error: str,
    *,
    retry_after: float | None = None,
) -> None:
    log.warning("outbox %s not delivered, will retry: %s", delivery.outbox_id, error)
    await services.delivery_failed(delivery.outbox_id, error, retry_after=retry_after)
    await services.release([d.outbox_id for d in rest])


async def register_commands(application: Application) -> None:
    """Publish the command menu shown by Telegram clients (setMyCommands)."""
    everyone = [BotCommand(name, label(f"common.command_{name}")) for name in FIRM_COMMANDS]
    await application.bot.set_my_commands(everyone)
    services: ChatPort = application.bot_data["services"]
    extra = [BotCommand(n, label(f"common.command_{n}")) for n in ANIMATOR_COMMANDS]
    for user_id in sorted(await services.animator_chat_ids()):
        try:
            await application.bot.set_my_commands(
                everyone + extra, scope=BotCommandScopeChat(user_id)
            )
        except TelegramError as exc:  # the animator has not opened the bot yet
            log.info("no command menu for animator %s: %s", user_id, exc)


def install_handlers(application: Application) -> None:
    """Register one handler per kind of update the bot understands (private chats)."""
    known = [*FIRM_COMMANDS, *ANIMATOR_COMMANDS]
    application.add_handler(CommandHandler(known, on_command, filters=PRIVATE))
    application.add_handler(MessageHandler(PRIVATE & filters.COMMAND, on_command))
    application.add_handler(MessageHandler(PRIVATE & filters.TEXT & ~filters.COMMAND, on_text))
    application.add_handler(CallbackQueryHandler(on_button))
    application.add_handler(
        MessageHandler(PRIVATE & ~filters.TEXT & ~filters.StatusUpdate.ALL, on_media)
    )
