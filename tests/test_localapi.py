"""The local Bot API double, driven by the real python-telegram-bot over loopback HTTP."""

from __future__ import annotations

import asyncio
import datetime as dtm
from collections.abc import AsyncIterator

import pytest
from telegram import (
    Bot,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyParameters,
    Update,
)
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes
from telegram.request import HTTPXRequest

from testing.botapi import (
    BotMessage,
    HtmlParseError,
    LocalBotAPI,
    SimUser,
    UploadedFile,
    parse_html,
    utf16_len,
)

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


@pytest.fixture
async def server() -> AsyncIterator[LocalBotAPI]:
    """A fresh double on a free loopback port."""
    async with LocalBotAPI() as api:
        yield api


@pytest.fixture
async def bot(server: LocalBotAPI) -> AsyncIterator[Bot]:
    """The real PTB Bot pointed at the double."""
    async with Bot(
        server.token, base_url=server.base_url, base_file_url=server.base_file_url
    ) as real_bot:
        yield real_bot


@pytest.fixture
async def camille(server: LocalBotAPI) -> SimUser:
    """A person who already opened the chat with /start."""
    user = server.user(1001, "Camille", username="camille")
    await user.send_command("start")
    return user


def keyboard(*labels: str) -> InlineKeyboardMarkup:
    """One row of callback buttons, data = label lowercased."""
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(x, callback_data=x.lower()) for x in labels]]
    )


def seconds(value: int | dtm.timedelta) -> float:
    """RetryAfter.retry_after is an int or a timedelta depending on PTB settings."""
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


# ---- end to end with a real Application ---------------------------------------------------


async def test_application_start_press_and_edit(server: LocalBotAPI) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await update.effective_message.reply_html(
            "Bonjour <b>Camille</b> ! On y va ?", reply_markup=keyboard("Oui", "Non")
        )

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert isinstance(query, CallbackQuery)
        await query.answer("C'est noté")
        await query.edit_message_text(f"Réponse : <i>{query.data}</i>", parse_mode="HTML")

    app = Application.builder().token(server.token).base_url(server.base_url).build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(pressed))
    user = server.user(2002, "Camille")
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=dtm.timedelta(seconds=1))
        try:
            [greeting] = await user.replies_after(user.send_command("start"))
            assert greeting.plain == "Bonjour Camille ! On y va ?"
            assert greeting.text == "Bonjour <b>Camille</b> ! On y va ?"
            assert greeting.button_labels() == ["Oui", "Non"]
            assert greeting.button_data() == ["oui", "non"]

            before = len(user.messages)
            await user.press("Oui")
            for _ in range(400):  # the handler answers the press, then edits
                if user.callback_answers and greeting.edits:
                    break
                await asyncio.sleep(0.05)
            assert len(user.messages) == before  # an edit, no new message
            assert greeting.edits == 1
            assert greeting.plain == "Réponse : oui"
            assert greeting.reply_markup is None  # editing without reply_markup removes it
            assert user.callback_answers == [
                {
                    "callback_query_id": user.callback_answers[0]["callback_query_id"],
                    "text": "C'est noté",
                }
            ]
        finally:
            await app.updater.stop()
            await app.stop()
    assert server.pending_updates() == 0  # PTB confirmed everything on stop
    assert [c.method for c in server.calls if c.method != "getUpdates"][:2] == [
        "getMe",
        "deleteWebhook",
    ]


async def test_application_sees_a_redelivered_update_twice(server: LocalBotAPI) -> None:
    seen: list[int] = []
    got_two = asyncio.Event()

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        seen.append(update.update_id)
        if len(seen) == 2:
            got_two.set()

    app = server.builder().build()
    app.add_handler(CommandHandler("start", start))
    user = server.user(2003)
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=dtm.timedelta(seconds=1))
        try:
            update_id = await user.send_command("start")
            for _ in range(100):
                if seen:
                    break
                await asyncio.sleep(0.01)
            server.redeliver(update_id)
            await asyncio.wait_for(got_two.wait(), 3)
        finally:
            await app.updater.stop()
            await app.stop()
    assert seen == [update_id, update_id]


# ---- the Bot object against the double -----------------------------------------------------


async def test_get_me_and_tokens(server: LocalBotAPI, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (123456, "relais_local_bot", True)
    intruder = Bot("999:WRONG", base_url=server.base_url)
    with pytest.raises(InvalidToken):
        await intruder.initialize()  # calls getMe
    await intruder.shutdown()
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("noSuchMethod")
    assert server.calls_of("getme")[0].ok
    assert server.calls[-1].status == 404


async def test_send_message_shapes_like_telegram(bot: Bot, camille: SimUser) -> None:
    sent = await bot.send_message(
        camille.chat_id,
        "\n<b>Hé</b> 😀 <i>x</i> &lt;script&gt; &amp; <a href='https://ex.org/?a=1&b=2'>lien</a>\n",
        parse_mode="HTML",
        reply_markup=keyboard("Oui"),
    )
    assert sent.text == "Hé 😀 x <script> & lien"
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [
        ("bold", 0, 2),
        ("italic", 6, 1),  # the emoji counts two UTF-16 units
        ("text_link", 19, 4),
    ]
    assert sent.entities[2].url == "https://ex.org/?a=1&b=2"
    assert sent.from_user is not None and sent.from_user.is_bot
    assert sent.chat.type == "private" and sent.chat.id == camille.chat_id
    message = camille.messages[-1]
    assert message.plain == "Hé 😀 x <script> & lien"
    assert message.message_id == sent.message_id == 2  # /start was message 1
    assert camille.last_text() == message.plain


async def test_escaped_script_is_accepted_raw_script_is_refused(bot: Bot, camille: SimUser) -> None:
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(camille.chat_id, "<script>alert(1)</script>", parse_mode="HTML")
    await bot.send_message(camille.chat_id, "&lt;script&gt;", parse_mode="HTML")
    assert camille.messages[-1].plain == "<script>"
    assert camille.messages[-1].text == "&lt;script&gt;"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("<div>x</div>", 'unsupported start tag "div"'),
        ("<b>x", 'find end tag corresponding to start tag "b"'),
        ("<b><i>x</b></i>", 'expected "</i>", found "</b>"'),
        ("x</b>", "unexpected end tag"),
        ("a < b", 'unsupported start tag ""'),
        ("Dupont & Fils", 'character "&"'),
        ("&nbsp;", 'unsupported html entity "&nbsp;"'),
        ("<span>x</span>", 'must have class "tg-spoiler"'),
        ("<a href=>x</a>", ""),
        ("<b", "unclosed start tag"),
    ],
)
async def test_malformed_html_is_refused(
    bot: Bot, camille: SimUser, text: str, fragment: str
) -> None:
    if not fragment:  # '<a href=>' is valid for Telegram: empty name token, link dropped
        sent = await bot.send_message(camille.chat_id, text, parse_mode="HTML")
        assert sent.text == "x"
        return
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities") as caught:
        await bot.send_message(camille.chat_id, text, parse_mode="HTML")
    assert fragment in str(caught.value).lower()


async def test_length_limits_count_utf16_after_parsing(bot: Bot, camille: SimUser) -> None:
    await bot.send_message(camille.chat_id, "a" * 4096)
    await bot.send_message(camille.chat_id, "<b>" + "a" * 4096 + "</b>", parse_mode="HTML")
    await bot.send_message(camille.chat_id, "😀" * 2048)
    for too_long in ("a" * 4097, "😀" * 2049):
        with pytest.raises(BadRequest, match=r"(?i)message is too long"):
            await bot.send_message(camille.chat_id, too_long)
    with pytest.raises(BadRequest, match=r"(?i)message caption is too long"):
        await bot.send_photo(camille.chat_id, PNG, caption="c" * 1025)
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(camille.chat_id, "")
    with pytest.raises(BadRequest, match=r"(?i)message must be non-empty"):
        await bot.send_message(camille.chat_id, " \n ")


async def test_keyboard_refusals(bot: Bot, camille: SimUser) -> None:
    chat = camille.chat_id
    await bot.send_message(
        chat,
        "ok",
        reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="d" * 64)]]),
    )
    for data in ("d" * 65, "é" * 33):  # 65 and 66 bytes
        with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
            await bot.send_message(
                chat,
                "no",
                reply_markup=InlineKeyboardMarkup(
                    [[InlineKeyboardButton("x", callback_data=data)]]
                ),
            )
    with pytest.raises(BadRequest, match=r"(?i)text buttons are not allowed"):
        await bot.send_message(
            chat,
            "no",
            reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="")]]),
        )
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_TEXT_INVALID"):
        await bot.send_message(
            chat,
            "no",
            reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("", callback_data="x")]]),
        )
    rows = [[InlineKeyboardButton(str(i), callback_data=str(i))] for i in range(101)]
    with pytest.raises(BadRequest, match=r"(?i)reply markup is too long"):
        await bot.send_message(chat, "no", reply_markup=InlineKeyboardMarkup(rows))
    assert len(camille.messages) == 1


async def test_chats_that_cannot_be_reached(server: LocalBotAPI, bot: Bot) -> None:
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(424242, "hello")
    silent = server.user(3003)
    with pytest.raises(Forbidden, match=r"(?i)can't initiate conversation"):
        await bot.send_message(silent.chat_id, "hello")
    await silent.send_text("bonjour")
    silent.block()
    with pytest.raises(Forbidden, match=r"(?i)blocked by the user"):
        await bot.send_message(silent.chat_id, "hello")


async def test_edits_follow_telegram(bot: Bot, camille: SimUser) -> None:
    chat = camille.chat_id
    sent = await bot.send_message(chat, "<b>v1</b>", parse_mode="HTML", reply_markup=keyboard("A"))
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text(
            "<b>v1</b>", chat, sent.message_id, parse_mode="HTML", reply_markup=keyboard("A")
        )
    # Same text but different formatting is a modification.
    await bot.edit_message_text("v1", chat, sent.message_id, reply_markup=keyboard("A"))
    await bot.edit_message_reply_markup(chat, sent.message_id, reply_markup=keyboard("B"))
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_reply_markup(chat, sent.message_id, reply_markup=keyboard("B"))
    edited = await bot.edit_message_text("v2", chat, sent.message_id)
    assert isinstance(edited, type(sent)) and edited.edit_date is not None
    message = camille.messages[-1]
    assert (message.plain, message.edits, message.reply_markup) == ("v2", 3, None)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", chat, 999)
    with pytest.raises(BadRequest, match=r"(?i)message can't be edited"):
        await bot.edit_message_text("x", chat, 1)  # the user's /start
    assert await bot.delete_message(chat, sent.message_id)
    assert message.deleted and camille.last_text() == ""
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(chat, sent.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("v3", chat, sent.message_id)


async def test_callback_answers(server: LocalBotAPI, bot: Bot, camille: SimUser) -> None:
    sent = await bot.send_message(
        camille.chat_id, "Choisir", reply_markup=keyboard("Recruter", "Rénover")
    )
    with pytest.raises(LookupError, match="Recruter"):
        await camille.press("Exporter")
    with pytest.raises(LookupError, match="ambiguous"):
        await camille.press("R")
    update_id = await camille.press("Rénov")  # unique prefix
    [update] = [u for u in await bot.get_updates() if u.update_id == update_id]
    query = update.callback_query
    assert query is not None and query.data == "rénover"
    assert query.message is not None and query.message.message_id == sent.message_id
    assert query.chat_instance and query.from_user.id == camille.user_id
    assert await query.answer("Vu", show_alert=True)
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await query.answer()
    with pytest.raises(BadRequest, match=r"(?i)query ID is invalid"):
        await bot.answer_callback_query("123")
    assert camille.callback_answers[0]["text"] == "Vu"
    assert camille.callback_answers[0]["show_alert"] is True
    server.callback_query_ttl = 0.0
    await camille.press("Recruter")
    stale = (await bot.get_updates(offset=update_id + 1))[0].callback_query
    assert stale is not None
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await stale.answer()


# ---- fault injection -----------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_429_surfaces_as_retry_after(server: LocalBotAPI, bot: Bot, camille: SimUser) -> None:
    server.fail_next("sendMessage", retry_after=7, times=2)
    for _ in range(2):
        with pytest.raises(RetryAfter) as caught:
            await bot.send_message(camille.chat_id, "x")
        assert seconds(caught.value.retry_after) == 7
    await bot.send_message(camille.chat_id, "enfin")
    assert [m.plain for m in camille.messages] == ["enfin"]  # failures had no effect
    calls = server.calls_of("sendMessage")
    assert [c.status for c in calls] == [429, 429, 200]
    assert calls[0].description == "Too Many Requests: retry after 7"


async def test_5xx_and_slow_answers(server: LocalBotAPI, camille: SimUser) -> None:
    request = HTTPXRequest(read_timeout=0.1)
    async with Bot(server.token, base_url=server.base_url, request=request) as slow:
        server.fail_next("*", status=502)
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await slow.send_message(camille.chat_id, "x")
        server.delay_next("sendMessage", 0.4)
        with pytest.raises(TimedOut):
            await slow.send_message(camille.chat_id, "late")
        await camille.wait_for_messages(1, timeout=2)
    # Like Telegram, a request the client gave up on may still have been carried out.
    assert camille.last_text() == "late"


# ---- getUpdates ------------------------------------------------------------------------------


async def test_get_updates_offset_semantics(server: LocalBotAPI, bot: Bot) -> None:
    user = server.user(4004)
    ids = [await user.send_text(f"m{i}") for i in range(5)]
    assert ids == sorted(ids) and server.pending_updates() == 5
    first = await bot.get_updates(limit=2)
    assert [u.update_id for u in first] == ids[:2]
    again = await bot.get_updates()  # nothing confirmed: Telegram sends them again
    assert [u.update_id for u in again] == ids
    assert [u.update_id for u in await bot.get_updates(offset=ids[2])] == ids[2:]
    assert server.pending_updates() == 3
    assert [u.update_id for u in await bot.get_updates(offset=ids[0])] == ids[2:]  # gone
    assert [u.update_id for u in await bot.get_updates(offset=-1)] == ids[-1:]
    assert await bot.get_updates(offset=ids[-1] + 1) == ()
    assert server.pending_updates() == 0


async def test_long_poll_returns_as_soon_as_an_update_arrives(
    server: LocalBotAPI, bot: Bot
) -> None:
    user = server.user(4005)

    async def later() -> int:
        await asyncio.sleep(0.05)
        in_flight = server.calls[-1]
        assert (in_flight.method, in_flight.status) == ("getUpdates", 0)  # recorded on arrival
        return await user.send_text("hop")

    # A poll of 60 s that ends within 20 s ended because of the update, not its timeout
    # (a bound on the wait, far from both; not a measure of speed).
    updates, update_id = await asyncio.wait_for(
        asyncio.gather(bot.get_updates(timeout=60), later()), timeout=20)
    assert [u.update_id for u in updates] == [update_id]
    # With nothing to send, the poll ends at its timeout, empty.
    assert await asyncio.wait_for(
        bot.get_updates(offset=update_id + 1, timeout=0.5), timeout=20) == ()


async def test_redelivery_and_allowed_updates(server: LocalBotAPI, bot: Bot) -> None:
    user = server.user(4006)
    first = await user.send_text("un")
    second = await user.send_text("deux")
    assert [u.update_id for u in await bot.get_updates(offset=second + 1)] == []
    server.redeliver(first)
    assert server.pending_updates() == 1
    [dup] = await bot.get_updates(offset=second + 1)  # sent again despite the offset
    assert dup.update_id == first and dup.message is not None and dup.message.text == "un"
    assert await bot.get_updates(offset=first + 1) == ()  # confirmed this time
    third = await user.send_text("trois")
    server.redeliver(third)  # a duplicate of a still unconfirmed update
    assert [u.update_id for u in await bot.get_updates()] == [third, third]
    await bot.get_updates(offset=third + 1)

    await user.send_text("ignored")
    injected = server.inject_update(
        {"callback_query": {"id": "77", "from": user.user_json, "chat_instance": "1", "data": "x"}}
    )
    updates = await bot.get_updates(allowed_updates=["callback_query"])
    assert [u.update_id for u in updates] == [injected]
    assert await bot.answer_callback_query("77")
    with pytest.raises(KeyError):
        server.redeliver(10**9)


async def test_concurrent_polls_and_webhooks_conflict(server: LocalBotAPI, bot: Bot) -> None:
    async with Bot(server.token, base_url=server.base_url) as other_instance:
        long_poll = asyncio.create_task(other_instance.get_updates(timeout=5))
        await asyncio.sleep(0.05)
        assert await bot.get_updates() == ()
        with pytest.raises(Conflict, match="terminated by other getUpdates"):
            await long_poll
    assert await bot.set_webhook("https://example.org/hook")
    assert (await bot.get_webhook_info()).url == "https://example.org/hook"
    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates()
    assert await bot.delete_webhook()
    assert await bot.get_updates() == ()


async def test_webhook_delivery_retries_elsewhere_until_a_2xx(server: LocalBotAPI,
                                                               bot: Bot) -> None:
    """Like Telegram: secret header sent, a failing target skipped, the update kept till 200."""
    from aiohttp import web

    seen: list[tuple[str, str, int]] = []

    async def failing(request: web.Request) -> web.Response:
        seen.append(("failing", request.headers.get("X-Telegram-Bot-Api-Secret-Token", ""),
                     (await request.json())["update_id"]))
        return web.Response(status=502)

    async def working(request: web.Request) -> web.Response:
        seen.append(("working", request.headers.get("X-Telegram-Bot-Api-Secret-Token", ""),
                     (await request.json())["update_id"]))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/failing", failing)
    app.router.add_post("/working", working)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        assert await bot.set_webhook("https://example.org/hook", secret_token="s3cret")
        server.route_webhook([f"http://127.0.0.1:{port}/failing",
                              f"http://127.0.0.1:{port}/working",
                              "http://127.0.0.1:1/refused"])
        update_id = await server.user(5).send_text("bonjour")
        for _ in range(1000):  # until the double records the 2xx: the update left its queue
            if any(d.status == 200 for d in server.webhook_deliveries):
                break
            await asyncio.sleep(0.02)
        assert [where for where, _, _ in seen] == ["failing", "working"]
        assert {(secret, uid) for _, secret, uid in seen} == {("s3cret", update_id)}
        assert [d.status for d in server.webhook_deliveries] == [502, 200]
        assert (await bot.get_webhook_info()).pending_update_count == 0
    finally:
        await runner.cleanup()


async def test_stop_wakes_a_pending_long_poll() -> None:
    server = LocalBotAPI()
    await server.start()
    async with Bot(server.token, base_url=server.base_url) as real_bot:
        poll = asyncio.create_task(real_bot.get_updates(timeout=60))
        for _ in range(2000):  # until the poll is held by the double
            if any(c.method == "getUpdates" and c.status == 0 for c in server.calls):
                break
            await asyncio.sleep(0.01)
        # Both within 20 s of a 60 s poll: stopping answered it (a bound, not a measure).
        await asyncio.wait_for(server.stop(), timeout=20)
        assert await asyncio.wait_for(poll, timeout=20) == ()


# ---- files, commands, hooks --------------------------------------------------------------------


async def test_documents_and_photos(server: LocalBotAPI, bot: Bot, camille: SimUser) -> None:
    sent = await bot.send_document(
        camille.chat_id,
        b"siret;nom\n1;ACME\n",
        filename="export.csv",
        caption="<b>Export</b> du jour",
        parse_mode="HTML",
    )
    assert sent.document is not None and sent.document.file_name == "export.csv"
    assert sent.caption == "Export du jour"
    message = camille.messages[-1]
    assert (message.kind, message.file_name, message.data) == (
        "document",
        "export.csv",
        b"siret;nom\n1;ACME\n",
    )
    assert message.caption == "<b>Export</b> du jour" and message.plain == "Export du jour"
    uploaded = server.calls_of("sendDocument")[0].params["document"]
    assert isinstance(uploaded, UploadedFile) and uploaded.mime_type == "text/csv"
    photo = await bot.send_photo(camille.chat_id, PNG)
    assert photo.photo and camille.messages[-1].kind == "photo"
    again = await bot.send_photo(camille.chat_id, photo.photo[-1].file_id)  # reuse by file_id
    assert again.photo[-1].file_id == photo.photo[-1].file_id
    with pytest.raises(BadRequest, match=r"(?i)IMAGE_PROCESS_FAILED"):
        await bot.send_photo(camille.chat_id, b"not an image")
    with pytest.raises(BadRequest, match=r"(?i)wrong file identifier"):
        await bot.send_document(camille.chat_id, "nope")

    update_id = await camille.send_document("devis.pdf", data=b"%PDF-1.4 devis")
    [update] = [u for u in await bot.get_updates() if u.update_id == update_id]
    assert update.message is not None and update.message.document is not None
    file = await bot.get_file(update.message.document.file_id)
    assert bytes(await file.download_as_bytearray()) == b"%PDF-1.4 devis"


async def test_commands_and_chat_actions(server: LocalBotAPI, bot: Bot, camille: SimUser) -> None:
    assert await bot.set_my_commands([("start", "Démarrer"), ("aide", "Aide")])
    assert [c.command for c in await bot.get_my_commands()] == ["start", "aide"]
    assert server.commands == [
        {"command": "start", "description": "Démarrer"},
        {"command": "aide", "description": "Aide"},
    ]
    for bad in ("Start", "/start", "é"):
        with pytest.raises(BadRequest, match=r"(?i)BOT_COMMAND_INVALID"):
            await bot.set_my_commands([(bad, "x")])
    assert await bot.delete_my_commands()
    assert server.commands == []
    assert await bot.send_chat_action(camille.chat_id, "typing")
    with pytest.raises(BadRequest, match=r"(?i)wrong parameter action"):
        await bot.send_chat_action(camille.chat_id, "dancing")
    assert camille.chat_actions == ["typing"]


async def test_hooks_waits_and_user_messages(server: LocalBotAPI, bot: Bot) -> None:
    seen: list[tuple[str, bool]] = []
    server.on_bot_message.append(lambda message, edited: seen.append((message.plain, edited)))
    user = server.user(5005, "Dominique", username="dom")
    update_id = await user.send_text("voir /aide ou /start@relais_local_bot")
    [update] = await bot.get_updates()
    assert update.update_id == update_id and update.message is not None
    assert [(e.type, e.offset) for e in update.message.entities] == [
        ("bot_command", 5),
        ("bot_command", 14),
    ]
    assert update.message.from_user is not None
    assert update.message.from_user.language_code == "fr"
    with pytest.raises(TimeoutError):
        await user.next_reply(timeout=0.05)
    sent = await bot.send_message(user.chat_id, "un", reply_parameters=ReplyParameters(1))
    assert sent.reply_to_message is not None and sent.reply_to_message.text.startswith("voir")
    await bot.edit_message_text("un bis", user.chat_id, sent.message_id)
    await bot.send_message(user.chat_id, "deux")
    assert (await user.next_reply()).plain == "un bis"
    assert (await user.next_reply()).plain == "deux"
    assert [m.plain for m in await user.wait_for_messages(2)] == ["un bis", "deux"]
    assert seen == [("un", False), ("un bis", True), ("deux", False)]
    for action in (
        user.send_sticker(),
        user.send_photo(caption="vue"),
        user.send_voice(),
        user.send_location(),
        user.send_contact("+33612345678"),
    ):
        await action
    kinds = [
        next(
            k for k in ("sticker", "photo", "voice", "location", "contact") if getattr(u.message, k)
        )
        for u in await bot.get_updates(offset=update_id + 1)
    ]
    assert kinds == ["sticker", "photo", "voice", "location", "contact"]


async def test_replies_after_waits_for_the_bot_to_go_quiet(
    server: LocalBotAPI, bot: Bot, camille: SimUser
) -> None:
    async def answer_in_two_parts() -> None:
        await bot.get_updates()
        await asyncio.sleep(0.05)
        await bot.send_message(camille.chat_id, "un")
        await asyncio.sleep(0.05)
        await bot.send_message(camille.chat_id, "deux")

    responder = asyncio.create_task(answer_in_two_parts())
    replies = await camille.replies_after(camille.send_text("question"), settle=0.15)
    await responder
    assert [m.plain for m in replies] == ["un", "deux"]
    assert isinstance(replies[0], BotMessage)


# ---- the HTML parser on its own ------------------------------------------------------------------


def test_parse_html_entities_and_offsets() -> None:
    text, entities = parse_html(
        '<pre><code class="language-python">x = 1</code></pre>'
        "<blockquote expandable>long</blockquote><tg-spoiler>s</tg-spoiler>"
        '<span class="tg-spoiler">t</span><tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>'
        '<a href="tg://user?id=1">u</a>&#128512;&#x41;<u><s>z</s></u>'
    )
    assert text == "x = 1longst👍u😀Az"
    assert entities == [
        {"type": "pre", "offset": 0, "length": 5, "language": "python"},
        {"type": "expandable_blockquote", "offset": 5, "length": 4},
        {"type": "spoiler", "offset": 9, "length": 1},
        {"type": "spoiler", "offset": 10, "length": 1},
        {
            "type": "custom_emoji",
            "offset": 11,
            "length": 2,
            "custom_emoji_id": "5368324170671202286",
        },
        {"type": "text_link", "offset": 13, "length": 1, "url": "tg://user?id=1"},
        {"type": "underline", "offset": 17, "length": 1},
        {"type": "strikethrough", "offset": 17, "length": 1},
    ]
    assert utf16_len(text) == 18
    # Entities inside code are dropped, like Telegram does.
    assert parse_html("<code><b>x</b></code>") == (
        "x",
        [{"type": "code", "offset": 0, "length": 1}],
    )


def test_parse_html_strict_and_lenient_ampersands() -> None:
    with pytest.raises(HtmlParseError):
        parse_html("R&D")
    with pytest.raises(HtmlParseError, match='must end with ";"'):
        parse_html("&amp")
    assert parse_html("R&D &amp &copy;", strict=False) == ("R&D & &copy;", [])
    assert parse_html("a > b &quot;c&quot;") == ('a > b "c"', [])
