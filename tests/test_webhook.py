"""Webhook mode: the secret check, stored-then-handled updates, health and metrics."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlmodel import Session, select

from bot.webhook import MAX_UPDATE_BYTES, SECRET_HEADER, WebhookServer, chat_of
from storage.models import PendingUpdate
from testing.botapi import LocalBotAPI
from testing.clock import FakeClock
from testing.smtp import SmtpServer
from tests.conftest import WEBHOOK_SECRET as SECRET
from tests.conftest import outbox_drained


async def post(client: httpx.AsyncClient, update: dict, secret: str | None = SECRET) -> int:
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    response = await client.post("/telegram/hook", json=update, headers=headers)
    return response.status_code


async def stored(server: WebhookServer) -> list[PendingUpdate]:
    def work(session: Session) -> list[PendingUpdate]:
        return list(session.exec(select(PendingUpdate)))

    return await server.services.db.run(work)


async def test_wrong_or_missing_secret_is_refused_and_nothing_processed(
    served: tuple[WebhookServer, httpx.AsyncClient], api: LocalBotAPI
) -> None:
    server, client = served
    assert api.webhook is not None and api.webhook["secret_token"] == SECRET
    user = api.user(8001)
    update_id = await user.send_command("/start")
    update = api._history[update_id]
    assert await post(client, update, secret=None) == 403
    assert await post(client, update, secret="nope") == 403
    await server.drain()  # nothing was accepted, so nothing is being handled
    await outbox_drained(server.services.db)
    assert await stored(server) == [] and user.messages == []
    assert await post(client, {"no": "update"}) == 400
    # Even with the secret, an oversized body is refused before it is parsed or stored.
    huge = {**update, "padding": "x" * MAX_UPDATE_BYTES}
    assert await post(client, huge) == 413
    await server.drain()
    assert await stored(server) == [] and user.messages == []


@pytest.mark.slow
async def test_an_update_is_stored_answered_and_handled_once(
    served: tuple[WebhookServer, httpx.AsyncClient], api: LocalBotAPI
) -> None:
    server, client = served
    user = api.user(8002)
    update = api._history[await user.send_command("/start")]
    assert await post(client, update) == 200
    assert await post(client, update) == 200  # Telegram retries: stored once
    await user.wait_for_messages(2)
    await server.drain()
    await outbox_drained(server.services.db)  # every reply delivered and recorded
    assert len(user.messages) == 2  # welcome + privacy notice, once
    [row] = await stored(server)
    assert row.done_at is not None and server.handled == 1


async def test_an_update_done_already_is_a_duplicate_for_its_turn(
    served: tuple[WebhookServer, httpx.AsyncClient], api: LocalBotAPI
) -> None:
    """Handled again after its turn committed (a lease run out): the done mark says so."""
    server, client = served
    user = api.user(8004)
    update = api._history[await user.send_command("/start")]
    assert await post(client, update) == 200
    await user.wait_for_messages(2)
    await server.drain()
    await outbox_drained(server.services.db)
    # As an instance whose lease ran out would: the same update through a turn again.
    await server._run((update["update_id"], 8004, update))
    await outbox_drained(server.services.db)
    assert len(user.messages) == 2  # nothing more: the turn saw it done
    [row] = await stored(server)
    assert row.done_at is not None and row.payload == {}


async def test_an_update_left_by_a_dead_instance_is_taken_over(
    served: tuple[WebhookServer, httpx.AsyncClient], api: LocalBotAPI, clock: FakeClock
) -> None:
    server, _client = served
    user = api.user(8003)
    update = api._history[await user.send_command("/start")]

    def orphan(session: Session) -> None:
        # Stored and claimed by an instance that died before handling it.
        session.add(PendingUpdate(update_id=update["update_id"], payload=update,
                                  received_at=clock(), claimed_until=clock()))

    await server.services.db.run(orphan)
    clock.advance(seconds=5)
    stop = asyncio.Event()
    sweeper = asyncio.create_task(server.sweep(stop, interval=0.1))
    try:
        await user.wait_for_messages(2)
    finally:
        stop.set()
        await sweeper
    [row] = await stored(server)
    assert row.done_at is not None


async def test_liveness_readiness_and_metrics(served: tuple[WebhookServer, httpx.AsyncClient],
                                             api: LocalBotAPI, smtp: SmtpServer) -> None:
    server, client = served
    health = await client.get("/healthz")
    assert health.status_code == 200 and health.json() == {"database": "ok"}
    await server.refresh_once()
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"database": "ok", "bot": "ok", "smtp": "ok"}
    user = api.user(8004)
    await post(client, api._history[await user.send_command("/start")])
    await user.wait_for_messages(2)
    await server.drain()
    metrics = (await client.get("/metrics")).text
    assert "relais_updates_handled_total 1\n" in metrics
    assert "# TYPE relais_outbox_depth gauge" in metrics
    assert "relais_reminders_pending 0\n" in metrics
    # A mail outage is reported, and neither liveness nor readiness fails for it.
    await smtp.stop()
    await server.refresh_once()
    down = await client.get("/readyz")
    assert down.status_code == 200 and down.json()["smtp"].startswith("error")
    assert (await client.get("/healthz")).status_code == 200
    assert timedelta(seconds=1) == server.lease


async def test_one_chat_is_handled_in_update_order_across_instances(
    served: tuple[WebhookServer, httpx.AsyncClient], api: LocalBotAPI, clock: FakeClock
) -> None:
    """A later update waits for the earlier one of its chat; finishing one runs the next."""
    server, _client = served
    user = api.user(8005)
    first = api._history[await user.send_command("/start")]
    second = api._history[await user.send_command("/aide")]
    other = api._history[await api.user(8006).send_command("/start")]

    def arrive(session: Session) -> None:
        # Both stored (by two instances), the first one held by an instance still working.
        session.add(PendingUpdate(update_id=first["update_id"], chat_id=8005, payload=first,
                                  received_at=clock(), claimed_until=clock() + timedelta(hours=1)))
        session.add(PendingUpdate(update_id=second["update_id"], chat_id=8005, payload=second,
                                  received_at=clock()))
        session.add(PendingUpdate(update_id=other["update_id"], chat_id=8006, payload=other,
                                  received_at=clock()))

    await server.services.db.run(arrive)
    # The second waits behind the first; another chat does not wait for anybody.
    assert await server.handle(second["update_id"]) is False
    assert await server.handle(other["update_id"]) is True

    def release(session: Session) -> None:
        row = session.get(PendingUpdate, first["update_id"])
        assert row is not None
        row.claimed_until = None
        session.add(row)

    await server.services.db.run(release)
    # Handling the first goes straight on with the second, in the same call.
    assert await server.handle(first["update_id"]) is True
    rows = {row.update_id: row for row in await stored(server)}
    assert all(row.done_at is not None for row in rows.values())
    # The firm reads the welcome first and the help last, in the order it wrote.
    seen = [m.plain for m in user.messages]
    assert seen[0].startswith("Bonjour, je suis Relais"), seen
    assert seen[-1].startswith("Aide\n/start"), seen
    assert server.handled == 3


def test_chat_of_finds_the_chat_of_every_update_kind() -> None:
    """Messages, buttons, edits and member updates carry their chat; polls carry none."""
    chat = {"id": 42, "type": "private"}
    assert chat_of({"update_id": 1, "message": {"chat": chat}}) == 42
    assert chat_of({"update_id": 1, "edited_message": {"chat": chat}}) == 42
    assert chat_of({"update_id": 1, "callback_query": {"from": {"id": 7},
                                                       "message": {"chat": chat}}}) == 42
    assert chat_of({"update_id": 1, "callback_query": {"from": {"id": 7}}}) == 7
    assert chat_of({"update_id": 1, "my_chat_member": {"chat": chat, "from": {"id": 7}}}) == 42
    assert chat_of({"update_id": 1, "poll": {"id": "p"}}) is None
    assert chat_of({"update_id": 1, "poll_answer": {"user": {"id": 9}}}) == 9


async def test_an_update_costs_two_transactions_its_store_and_its_turn(
    served: tuple[WebhookServer, httpx.AsyncClient], api: LocalBotAPI
) -> None:
    """The turn marks its update done (and claims the chat's next) in its own commit."""
    server, client = served
    engine = server.services.db.sync_engine
    begun = itertools.count(1)
    touching: set[int] = set()

    def on_begin(conn: Any) -> None:
        conn.info["transaction"] = next(begun)

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # The update's bookkeeping, and its turn (which records the update id).
        if "pending_update" in statement or "processed_update" in statement:
            touching.add(conn.info.get("transaction", 0))

    event.listen(engine, "begin", on_begin)
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        user = api.user(8010)
        assert await post(client, api._history[await user.send_command("/start")]) == 200
        await user.wait_for_messages(2)
        await server.drain()
    finally:
        event.remove(engine, "begin", on_begin)
        event.remove(engine, "before_cursor_execute", on_execute)
    [row] = await stored(server)
    assert row.done_at is not None and server.handled == 1
    assert len(touching) == 2
