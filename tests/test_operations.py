"""Operations on a bad day: locked database, unreadable updates, outages, scrapes, bidi text.

Each test goes through the real Application and the Bot API double (or the webhook's ASGI
app), and waits for recorded events, never for the clock.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlmodel import Session, select
from telegram.ext import Application

from bot.catalogue import label, t
from bot.config import Settings
from bot.messages import BIDI_CONTROLS, Message
from bot.runtime import Services, build_services, run_forever, running_bot
from bot.webhook import SECRET_HEADER, WebhookServer
from handlers.render import telegram_html
from storage.models import DeadLetter, Outbox, ProcessedUpdate
from testing.botapi import LocalBotAPI
from testing.smtp import SmtpServer
from tests.conftest import WEBHOOK_SECRET as SECRET
from tests.conftest import FakeClock, make_settings, smtp_settings
from tests.helpers import press, say

TOKEN = "scrape-me-if-you-can"


async def until(predicate: Callable[[], bool], what: str, within: float = 15.0) -> None:
    """Wait until `predicate()` holds (looked at every 10 ms)."""
    for _ in range(int(within / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def rows(services: Services, model: type) -> list[Any]:
    def work(session: Session) -> list[Any]:
        return list(session.exec(select(model)))

    return await services.db.run(work)


@dataclass
class Bot:
    """The running bot, its application and its database file."""

    api: LocalBotAPI
    services: Services
    application: Application
    path: Path


@pytest.fixture
async def bot(api: LocalBotAPI, smtp: SmtpServer, tmp_path: Path, clock: FakeClock,
              request: pytest.FixtureRequest) -> AsyncIterator[Bot]:
    """The polling bot; a test may pass extra settings with `indirect` parametrisation."""
    path = tmp_path / "relais.db"
    extra = getattr(request, "param", {})
    settings = make_settings(api, path, **smtp_settings(smtp), **extra)
    services = await build_services(settings, clock=clock)
    async with running_bot(services) as (application, _stop, _task):
        yield Bot(api, services, application, path)
    await services.db.dispose()


# --- a locked SQLite database -------------------------------------------------------------------


def hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another connection (a backup, the CLI) taking SQLite's write lock and keeping it."""
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    return locker


@pytest.mark.parametrize("bot", [{"RELAIS_DB_BUSY_TIMEOUT": 30}], indirect=True)
async def test_a_turn_waits_for_the_lock_off_the_event_loop(bot: Bot) -> None:
    locker = hold_write_lock(bot.path)
    user = bot.api.user(7201)
    await user.send_command("/start")
    # This test runs on the event loop: seeing the turn wait means the loop does not.
    await until(lambda: getattr(bot.services.db, "waiting", 0) == 1, "a turn waiting")
    assert user.messages == []
    locker.execute("COMMIT")
    locker.close()
    welcome = await user.wait_for_messages(2)
    assert welcome[0].plain.startswith("Bonjour, je suis Relais")
    assert all(label("common.technical_error") not in m.plain for m in welcome)


@pytest.mark.parametrize("bot", [{"RELAIS_DB_BUSY_TIMEOUT": 0.05}], indirect=True)
async def test_a_turn_locked_out_is_put_off_then_handled_not_apologised_for(bot: Bot) -> None:
    poller = bot.application.bot_data["poller"]
    locker = hold_write_lock(bot.path)
    user = bot.api.user(7202)
    update_id = await user.send_command("/start")
    await until(lambda: getattr(poller, "postponed", 0) >= 1 or bool(user.messages),
                "the update put off")
    assert user.messages == []  # no "incident technique"
    locker.execute("COMMIT")
    locker.close()
    welcome = await user.wait_for_messages(2)
    assert welcome[0].plain.startswith("Bonjour, je suis Relais")
    assert all(label("common.technical_error") not in m.plain for m in welcome)
    assert [r.update_id for r in await rows(bot.services, ProcessedUpdate)] == [update_id]


# --- updates that cannot be handled (polling) -------------------------------------------------


async def test_an_unreadable_update_is_set_aside_and_its_chat_goes_on(bot: Bot) -> None:
    user = bot.api.user(7203)
    bot.api.inject_update({"message": {"message_id": 1, "chat": {"id": 7203, "type": "private"},
                                       "from": {"id": 7203, "is_bot": False,
                                                "first_name": "Zoé"}}})  # no date
    assert (await say(user, "/aide"))[-1].plain.startswith("Aide")
    [dead] = await rows(bot.services, DeadLetter)
    assert (dead.source, dead.chat_id, dead.fields) == ("polling", 7203, "message")
    assert "not understood" in dead.reason and "Zoé" not in dead.reason


async def test_an_update_id_out_of_range_is_set_aside_not_apologised_for(bot: Bot) -> None:
    user = bot.api.user(7208)
    update_id = 2**70
    bot.api.inject_update({"update_id": update_id, "message": {
        "message_id": 1, "date": 1_800_000_000, "text": "/aide",
        "chat": {"id": 7208, "type": "private"},
        "from": {"id": 7208, "is_bot": False, "first_name": "Zoé"},
        "entities": [{"type": "bot_command", "offset": 0, "length": 5}]}})

    async def recorded() -> list[DeadLetter]:
        return await rows(bot.services, DeadLetter)

    for _ in range(1500):
        if await recorded():
            break
        await asyncio.sleep(0.01)
    [dead] = await recorded()
    assert (dead.update_id, dead.chat_id, dead.reason) == (str(update_id), 7208,
                                                           "id out of range")
    assert user.messages == []  # no "incident technique"


# --- webhook mode ---------------------------------------------------------------------------


async def post(client: httpx.AsyncClient, update: dict[str, Any]) -> int:
    response = await client.post("/telegram/hook", json=update, headers={SECRET_HEADER: SECRET})
    return response.status_code


async def test_an_update_id_out_of_range_is_set_aside_and_its_chat_goes_on(
    served: tuple[WebhookServer, httpx.AsyncClient], api: LocalBotAPI,
) -> None:
    server, client = served
    user = api.user(7204)
    normal = api._history[await user.send_command("/start")]
    forged = {**normal, "update_id": 2**70}
    assert await post(client, forged) == 200
    assert await post(client, normal) == 200
    await user.wait_for_messages(2)
    [dead] = await rows(server.services, DeadLetter)
    assert (dead.source, dead.update_id, dead.chat_id) == ("webhook", str(2**70), 7204)


async def test_an_unreadable_webhook_update_is_set_aside_and_its_chat_goes_on(
    served: tuple[WebhookServer, httpx.AsyncClient], api: LocalBotAPI,
) -> None:
    server, client = served
    user = api.user(7205)
    later = api._history[await user.send_command("/aide")]
    unreadable = {"update_id": later["update_id"] - 1,
                  "message": {"message_id": 1, "chat": {"id": 7205, "type": "private"}}}
    assert await post(client, unreadable) == 200
    assert await post(client, later) == 200
    [answer] = await user.wait_for_messages(1)
    assert answer.plain.startswith("Aide")
    [dead] = await rows(server.services, DeadLetter)
    assert (dead.update_id, dead.chat_id) == (str(unreadable["update_id"]), 7205)


async def test_liveness_passes_and_readiness_reports_a_mail_outage_without_failing(
    served: tuple[WebhookServer, httpx.AsyncClient], smtp: SmtpServer,
) -> None:
    server, client = served
    await smtp.stop()
    await server.refresh_once()
    live, ready = await client.get("/healthz"), await client.get("/readyz")
    assert (live.status_code, live.json()) == (200, {"database": "ok"})
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok" and ready.json()["smtp"].startswith("error")


async def test_a_scrape_runs_no_query(served: tuple[WebhookServer, httpx.AsyncClient]) -> None:
    server, client = served
    assert (await client.get("/metrics")).status_code == 200  # the figures are read
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    engine = server.services.db.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(20):
            assert (await client.get("/metrics")).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statements == []


async def test_metrics_give_the_age_of_the_oldest_waiting_message(
    served: tuple[WebhookServer, httpx.AsyncClient], clock: FakeClock,
) -> None:
    server, client = served

    def waiting(session: Session) -> None:
        session.add(Outbox(channel="email", recipient="ft@example.org", kind="email",
                           payload={}, created_at=clock(),
                           not_before=clock() + timedelta(hours=1)))  # not due in this test

    await server.services.db.run(waiting)
    await server.refresh_once()
    clock.advance(seconds=90)
    metrics = (await client.get("/metrics")).text
    assert "relais_outbox_oldest_seconds 90.0\n" in metrics
    assert "relais_metrics_age_seconds 90.0\n" in metrics


@pytest.mark.parametrize("served", [{"METRICS_TOKEN": TOKEN}], indirect=True)
async def test_metrics_need_the_token_when_one_is_set(
    served: tuple[WebhookServer, httpx.AsyncClient],
) -> None:
    _server, client = served
    assert (await client.get("/metrics")).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await client.get("/metrics", headers=wrong)).status_code == 401
    right = {"Authorization": f"Bearer {TOKEN}"}
    scrape = await client.get("/metrics", headers=right)
    assert scrape.status_code == 200 and "relais_outbox_depth" in scrape.text
    assert (await client.get("/healthz")).status_code == 200  # health needs no token


# --- the Bot API unreachable at start ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_run_waits_for_the_bot_api_instead_of_exiting(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture,
) -> None:
    api = LocalBotAPI()
    port = free_port()
    settings = Settings(_env_file=None, TELEGRAM_BOT_TOKEN=api.token,  # type: ignore[call-arg]
                        TELEGRAM_API_URL=f"http://127.0.0.1:{port}/bot",
                        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'relais.db'}",
                        RELAIS_POLLING_TIMEOUT=1, RELAIS_RATE_LIMIT=False,
                        RELAIS_FIRM_LOOKUP=False, RELAIS_EMAIL_WORKER=False)
    services = await build_services(settings, clock=clock)
    stop = asyncio.Event()
    caplog.set_level(logging.WARNING, logger="bot.runtime")
    running = asyncio.create_task(run_forever(services, stop))
    try:
        await until(lambda: running.done() or any(
            "Bot API unreachable" in r.getMessage() for r in caplog.records), "a retry logged")
        assert not running.done()
        await api.start(port=port)
        user = api.user(7206)
        assert (await say(user, "/aide"))[-1].plain.startswith("Aide")
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
        await api.stop()
        await services.db.dispose()


# --- bidirectional controls never reach another person ------------------------------------------


def test_catalogue_values_lose_their_bidi_controls() -> None:
    question = "Qui paie\u202e ?etêuqne'l\u202c la \u2066formation\u2069 ?"
    shown = telegram_html(Message(t("animator.question_forwarded", question=question)))
    assert not set(BIDI_CONTROLS) & set(shown)
    assert "la formation ?" in shown
    nested = t("animator.question_forwarded", question=t("firm.need_recorded",
                                                          reference="TI-\u202e2026-0042"))
    assert "\u202e" not in nested.plain()


async def test_a_forwarded_question_reaches_the_animator_without_bidi_controls(bot: Bot) -> None:
    animator = bot.api.user(900000001, "Claire")
    await animator.send_text("bonjour")  # the animator has opened the bot
    await animator.wait_for_messages(1)
    user = bot.api.user(7207)
    await say(user, "quelle est la recette de la \u202eblanquette\u202c de veau")
    before = len(animator.messages)
    await press(user, "Transmettre ma question")
    forwarded = (await animator.wait_for_messages(before + 1))[-1]
    assert "blanquette de veau" in forwarded.plain
    assert not set(BIDI_CONTROLS) & set(forwarded.text + forwarded.plain)
