"""Outages never drop a message: SMTP down for hours, the Bot API answering 502 for an hour.

Everything runs through the real Application, the Bot API double and aiosmtpd, with the fake
clock: an outage is the clock moved forward while the server refuses; the tests wait for the
retries and deliveries to be recorded, never for wall-clock time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event
from sqlmodel import Session, col, select

from bot.messages import Message, plain
from bot.runtime import build_services, running_bot
from bot.services import outbox
from bot.services.emails import EmailDraft
from bot.services.types import Incoming
from handlers.telegram import deliver
from storage.db import Database
from storage.models import Outbox
from testing.botapi import LocalBotAPI, SimUser
from testing.smtp import SmtpServer
from tests.conftest import FakeClock, RunningBot, make_settings, smtp_settings
from tests.helpers import press, reach_summary, say

# End-to-end through real processes and servers: not in the fast lane.
pytestmark = pytest.mark.slow

ANIMATOR_ID = 900000001


async def eventually(check: Callable[[], Awaitable[bool]], what: str,
                     within: float = 15.0) -> None:
    """Wait until `check()` holds (polling), or fail saying what was awaited."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def rows(db: Database, channel: str, recipient: str | None = None) -> list[Outbox]:
    """The outbox rows of a channel (and recipient), oldest first."""

    def work(session: Session) -> list[Outbox]:
        stmt = select(Outbox).where(Outbox.channel == channel)
        if recipient is not None:
            stmt = stmt.where(Outbox.recipient == recipient)
        return list(session.exec(stmt.order_by(col(Outbox.id))).all())

    return await db.run(work)


def pending(found: list[Outbox]) -> list[Outbox]:
    """Rows neither delivered nor given up."""
    return [r for r in found if r.delivered_at is None and r.failed_at is None]


def heads(found: list[Outbox]) -> list[Outbox]:
    """The oldest pending row of each recipient: the only ones that may be attempted."""
    first: dict[str, Outbox] = {}
    for row in pending(found):
        first.setdefault(row.recipient.lower(), row)
    return list(first.values())


async def settled(relais: RunningBot, channel: str) -> bool:
    """Every row that may go now was attempted and its failure recorded: each head waits
    for its next try, none is being sent (a failure recorded after the clock moves on would
    push its next try past the time the test expects)."""
    now = relais.clock()
    return all(r.claimed_until is None and r.not_before > now
               for r in heads(await rows(relais.services.db, channel)))


async def opened_animator(relais: RunningBot) -> SimUser:
    """The example territory's animator, who has opened the bot."""
    animator = relais.api.user(ANIMATOR_ID, "Claire")
    await say(animator, "/aide")
    return animator


def texts_with(user: SimUser, fragment: str) -> list[str]:
    """The chat's messages containing `fragment`."""
    return [m.plain for m in user.messages if fragment in m.plain]


async def wait_for_text(user: SimUser, fragment: str, count: int = 1) -> list[str]:
    """Wait until `count` messages of the chat contain `fragment`."""

    async def enough() -> bool:
        return len(texts_with(user, fragment)) >= count

    await eventually(enough, f"{count} × {fragment!r} in chat {user.chat_id}")
    return texts_with(user, fragment)


def bot_api_down(api: LocalBotAPI) -> None:
    """sendMessage answers 502 Bad Gateway until `bot_api_back`."""
    api.fail_next("sendMessage", status=502, retry_after=None, times=10**9)


def bot_api_back(api: LocalBotAPI) -> None:
    """sendMessage works again."""
    # The double has no "until further notice" fault: the endless one is taken back.
    api._faults.pop("sendmessage", None)


def refused_sends(api: LocalBotAPI) -> int:
    """sendMessage calls the double answered with an error."""
    return sum(1 for c in api.calls_of("sendMessage") if c.status >= 400)


# --- SMTP down for two hours ---------------------------------------------------------------


async def test_smtp_down_two_hours_then_back_every_email_once_in_order(
    relais: RunningBot,
) -> None:
    animator = await opened_animator(relais)
    await relais.smtp.stop()
    # Two needs from the same commune and theme: the same partners get two emails each.
    for user_id, name in ((7001, "Fonderie Alpha"), (7002, "Fonderie Beta")):
        await reach_summary(relais.api.user(user_id), name=name)
        await press(relais.api.user(user_id), "Envoyer la demande")
    emails = await rows(relais.services.db, "email")
    addresses = {r.recipient.lower() for r in emails}
    assert len(emails) >= 4 and len(addresses) * 2 == len(emails)

    for _ in range(24):  # two hours, five minutes at a time; the worker tries again
        relais.clock.advance(minutes=5)
        await eventually(lambda: settled(relais, "email"), "the email worker's retries")
    waiting = await rows(relais.services.db, "email")
    assert len(pending(waiting)) == len(emails), "two hours of outage: nothing given up"
    assert all(r.attempts >= 10 for r in heads(waiting)), [r.attempts for r in waiting]
    # Late beyond an hour: the animator is told once per address, not once per email.
    alerts = await wait_for_text(animator, "E-mail en retard", len(addresses))
    assert {a.split(" pour ", 1)[1].split(" : ", 1)[0].lower() for a in alerts} == addresses
    assert "jusqu'au 30/11/2026 à" in alerts[0]

    await relais.smtp.start()
    relais.clock.advance(minutes=15)  # the longest wait between two attempts

    async def all_delivered() -> bool:
        return all(r.delivered_at is not None for r in await rows(relais.services.db, "email"))

    await eventually(all_delivered, "every email delivered")
    received = relais.smtp.messages
    ids = [m.message["Message-ID"] for m in received]
    assert len(ids) == len(emails) and len(set(ids)) == len(ids), "every email exactly once"
    # In order per address: the first need's email before the second's.
    row_of = {f"<{r.payload['email']['message_id'].strip('<>')}>": r.id for r in emails}
    for address in addresses:
        order = [row_of[m.message["Message-ID"]] for m in received
                 if m.rcpt_tos[0].lower() == address]
        assert order == sorted(order) and len(order) == 2, (address, order)
    assert len(texts_with(animator, "E-mail en retard")) == len(addresses)
    assert not texts_with(animator, "abandonné")


@pytest.fixture
async def short_horizon(api: LocalBotAPI, smtp: SmtpServer, tmp_path: Path,
                        clock: FakeClock) -> AsyncIterator[RunningBot]:
    """The bot with a one-hour retry horizon and alerts after 20 minutes."""
    settings = make_settings(api, tmp_path / "relais.db", RELAIS_RETRY_HOURS=1,
                             RELAIS_LATE_ALERT_MINUTES=20, **smtp_settings(smtp))
    services = await build_services(settings, clock=clock)
    async with running_bot(services):
        yield RunningBot(api, services, settings, clock, smtp)
    await services.db.dispose()


async def test_an_email_is_given_up_only_after_the_horizon_and_the_animator_told(
    short_horizon: RunningBot,
) -> None:
    relais = short_horizon
    animator = await opened_animator(relais)
    await relais.smtp.stop()
    await reach_summary(relais.api.user(7011), name="Fonderie Gamma")
    await press(relais.api.user(7011), "Envoyer la demande")
    emails = await rows(relais.services.db, "email")
    for _ in range(11):  # 55 minutes: still tried
        relais.clock.advance(minutes=5)
        await eventually(lambda: settled(relais, "email"), "the email worker's retries")
    assert len(pending(await rows(relais.services.db, "email"))) == len(emails)
    await wait_for_text(animator, "E-mail en retard", len(emails))

    relais.clock.advance(minutes=6)  # past the hour: the last attempt fails, the end

    async def all_given_up() -> bool:
        return all(r.failed_at is not None for r in await rows(relais.services.db, "email"))

    await eventually(all_given_up, "every email given up")
    given_up = await wait_for_text(animator, "E-mail abandonné", len(emails))
    assert "ne l'a pas accepté en 1 heure" in given_up[0]
    assert relais.smtp.messages == []


async def test_a_permanent_smtp_refusal_ends_the_row_at_once(relais: RunningBot) -> None:
    animator = await opened_animator(relais)
    relais.smtp.handler.refuse_rcpt["ft-paray-le-monial@example.org"] = (
        "550 5.1.1 Utilisateur inconnu")
    await reach_summary(relais.api.user(7021), name="Fonderie Delta")
    await press(relais.api.user(7021), "Envoyer la demande")

    async def refused() -> bool:
        found = await rows(relais.services.db, "email", "ft-paray-le-monial@example.org")
        return bool(found) and found[0].failed_at is not None

    await eventually(refused, "the refused email ended")
    [row] = await rows(relais.services.db, "email", "ft-paray-le-monial@example.org")
    assert row.attempts == 1 and "550" in (row.last_error or "")
    await wait_for_text(animator, "E-mail non distribué")


async def test_an_invalid_address_is_refused_without_a_try(relais: RunningBot) -> None:
    animator = await opened_animator(relais)
    draft = EmailDraft(to=("pas une adresse",), subject="[TI-2026-0099] Essai", text="Bonjour",
                       html="<p>Bonjour</p>", reply_to=None, message_id="<essai@relais>")
    now = relais.clock()
    await relais.services.db.run(lambda session: outbox.enqueue_payload(
        session, channel="email", recipient="pas une adresse", now=now,
        payload={"email": draft.to_payload(), "territory_id": "ti-2703"}))

    async def ended() -> bool:
        return all(r.failed_at is not None for r in await rows(relais.services.db, "email"))

    await eventually(ended, "the row ended")
    [row] = await rows(relais.services.db, "email")
    assert "invalid email address" in (row.last_error or "") and row.attempts == 1
    assert relais.smtp.connections == 0
    await wait_for_text(animator, "E-mail non distribué")


# --- the Bot API answering 502 for an hour -------------------------------------------------


async def test_bot_api_502_for_an_hour_then_back_every_message_once_in_order(
    relais: RunningBot,
) -> None:
    firm = relais.api.user(7101, "Paul")
    bot_api_down(relais.api)
    await firm.send_command("/start")  # the welcome is refused: 502

    async def welcome_tried() -> bool:
        found = await rows(relais.services.db, "telegram", "7101")
        return bool(found) and found[0].attempts >= 1 and await settled(relais, "telegram")

    await eventually(welcome_tried, "the welcome tried once")
    welcome = await rows(relais.services.db, "telegram", "7101")
    # The firm writes again: the answer must wait behind the welcome, not overtake it.
    await firm.send_text("Bonjour, vous êtes là ?")

    async def answer_queued() -> bool:
        return len(await rows(relais.services.db, "telegram", "7101")) > len(welcome)

    await eventually(answer_queued, "the answer written to the outbox")
    # An hour of 502, each retry made as soon as it is due.
    start = relais.clock()
    while relais.clock() - start < timedelta(hours=1):
        [head] = heads(await rows(relais.services.db, "telegram", "7101"))
        assert head.id == welcome[0].id, "the welcome stays first in line"
        before = refused_sends(relais.api)
        relais.clock.advance(seconds=max((head.not_before - relais.clock()).total_seconds(), 0))

        async def retried(before: int = before) -> bool:
            return refused_sends(relais.api) > before and await settled(relais, "telegram")

        await eventually(retried, "the welcome tried again")
    assert head.attempts >= 10
    assert firm.messages == [], "nothing overtook the welcome"

    bot_api_back(relais.api)
    # Telegram answers again; the firm writes before the welcome's next try: the answer
    # waits for the sweeper, behind the welcome, instead of going out at once.
    written = await rows(relais.services.db, "telegram", "7101")
    await firm.send_text("Il y a quelqu'un ?")

    async def second_answer_queued() -> bool:
        return len(await rows(relais.services.db, "telegram", "7101")) > len(written)

    await eventually(second_answer_queued, "the second answer written to the outbox")
    written = await rows(relais.services.db, "telegram", "7101")
    assert len(pending(written)) == len(written), "an hour of 502: nothing given up"
    relais.clock.advance(minutes=15)
    messages = await firm.wait_for_messages(len(written), timeout=10)

    async def all_delivered() -> bool:
        return all(r.delivered_at is not None
                   for r in await rows(relais.services.db, "telegram", "7101"))

    await eventually(all_delivered, "every message marked delivered")
    assert len(firm.messages) == len(written), "every message exactly once"
    # In the order they were written: the welcome and its consent question, then the answers.
    assert [m.plain for m in messages] == [
        Message.from_payload(r.payload).plain() for r in written]
    assert "J'accepte" in messages[len(welcome) - 1].button_labels()
    # The person carries on as if nothing happened.
    replies = await press(firm, "J'accepte")
    assert "SIRET" in replies[-1].plain


async def test_a_late_telegram_message_to_a_firm_alerts_its_animator_once_naming_the_need(
    relais: RunningBot,
) -> None:
    animator = await opened_animator(relais)
    firm = relais.api.user(7201, "Paul")
    await reach_summary(firm, name="Fonderie Epsilon")
    await press(firm, "Envoyer la demande")
    await wait_for_text(animator, "Nouvelle demande TI-2026-0001")
    bot_api_down(relais.api)
    await animator.press("Je prends")  # the firm's notice (and the rest) refused: 502

    async def notice_tried() -> bool:
        found = pending(await rows(relais.services.db, "telegram", "7201"))
        return bool(found) and found[0].attempts >= 1 and await settled(relais, "telegram")

    await eventually(notice_tried, "the firm's notice tried once")
    for _ in range(5):  # 75 minutes
        before = refused_sends(relais.api)
        relais.clock.advance(minutes=15)

        async def retried(before: int = before) -> bool:
            return refused_sends(relais.api) > before and await settled(relais, "telegram")

        await eventually(retried, "the notice tried again")
    bot_api_back(relais.api)
    relais.clock.advance(minutes=15)
    [alert] = await wait_for_text(animator, "Message Telegram en retard")
    assert "demande TI-2026-0001 (Fonderie Epsilon)" in alert

    async def all_delivered() -> bool:
        return not pending(await rows(relais.services.db, "telegram"))

    await eventually(all_delivered, "every message delivered")
    assert len(texts_with(animator, "Message Telegram en retard")) == 1
    assert len(texts_with(firm, "TI-2026-0001")) >= 2  # the receipt, then the notice


async def test_a_telegram_message_refused_for_good_alerts_the_animator(
    relais: RunningBot,
) -> None:
    animator = await opened_animator(relais)
    firm = relais.api.user(7301, "Paul")
    await reach_summary(firm, name="Fonderie Zêta")
    await press(firm, "Envoyer la demande")
    await wait_for_text(animator, "Nouvelle demande TI-2026-0001")
    relais.api.fail_next("sendMessage", status=400, retry_after=None,
                         description="Bad Request: chat not found")
    await firm.send_command("/aide")  # the answer: 400, never worth a retry
    notice = await wait_for_text(animator, "non distribué")
    assert "TI-2026-0001" in notice[0] and "n'existe plus" in notice[0]
    [row] = [r for r in await rows(relais.services.db, "telegram", "7301")
             if r.failed_at is not None]
    assert row.attempts == 1


async def test_a_given_up_telegram_message_lets_the_next_one_go(
    short_horizon: RunningBot,
) -> None:
    relais = short_horizon
    animator = await opened_animator(relais)
    firm = relais.api.user(7401, "Paul")
    await reach_summary(firm, name="Fonderie Êta")
    await press(firm, "Envoyer la demande")
    await wait_for_text(animator, "Nouvelle demande TI-2026-0001")
    seen = len(firm.messages)
    bot_api_down(relais.api)
    await animator.press("Je prends")

    async def notice_tried() -> bool:
        found = pending(await rows(relais.services.db, "telegram", "7401"))
        return bool(found) and found[0].attempts >= 1 and await settled(relais, "telegram")

    await eventually(notice_tried, "the firm's notice tried once")
    for _ in range(5):  # 75 minutes: past the one-hour horizon
        relais.clock.advance(minutes=15)
        await eventually(lambda: settled(relais, "telegram"), "the sweeper's retries")

    async def given_up() -> bool:
        return any(r.failed_at is not None
                   for r in await rows(relais.services.db, "telegram", "7401"))

    await eventually(given_up, "the notice given up")
    bot_api_back(relais.api)
    relais.clock.advance(minutes=15)
    [alert] = await wait_for_text(animator, "Message Telegram abandonné")
    assert "TI-2026-0001 (Fonderie Êta)" in alert and "en 1 heure" in alert
    # A later message to the firm is not stuck behind the one given up.
    await relais.services.turns.handle(Incoming(chat_id=7401, user_id=7401, kind="command",
                                                value="aide"))
    relais.clock.advance(minutes=1)
    await eventually(lambda: _more(firm, seen), "the next message delivered")


async def _more(user: SimUser, seen: int) -> bool:
    return len(user.messages) > seen


# --- the outbox's own rules ----------------------------------------------------------------


async def test_the_turn_writes_its_replies_with_the_configured_lease(
    api: LocalBotAPI, tmp_path: Path, clock: FakeClock
) -> None:
    settings = make_settings(api, tmp_path / "relais.db", RELAIS_OUTBOX_LEASE=7)
    services = await build_services(settings, clock=clock)
    result = await services.turns.handle(Incoming(chat_id=7501, user_id=7501, kind="command",
                                                  value="aide"))
    found = await rows(services.db, "telegram", "7501")
    await services.db.dispose()
    assert result.deliveries and found
    assert all(r.claimed_until == r.created_at + timedelta(seconds=7) for r in found)


async def test_deliver_returns_once_its_rows_are_marked_delivered(
    api: LocalBotAPI, smtp: SmtpServer, tmp_path: Path, clock: FakeClock
) -> None:
    settings = make_settings(api, tmp_path / "relais.db", **smtp_settings(smtp))
    services = await build_services(settings, clock=clock)
    async with running_bot(services) as (application, _stop, _polling):
        user = api.user(7601)
        await say(user, "/aide")
        for _ in range(3):
            result = await services.handle(Incoming(chat_id=7601, user_id=7601,
                                                    kind="command", value="aide"))
            await deliver(application.bot, services, result.deliveries)
            # No await in between: nothing else ran since Telegram accepted them.
            left = pending(await rows(services.db, "telegram", "7601"))
            assert result.deliveries and left == []
    await services.db.dispose()


async def test_one_recipients_backlog_never_hides_another_recipient(
    tmp_path: Path, clock: FakeClock
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    await db.create_all()
    now = clock()

    def write(session: Session) -> None:
        for i in range(300):
            outbox.enqueue(session, channel="telegram", recipient="1", now=now, claimed=False,
                           messages=[Message(plain(f"message {i}"))])
        outbox.enqueue(session, channel="telegram", recipient="2", now=now, claimed=False,
                       messages=[Message(plain("pour le second"))])

    await db.run(write)
    first = await outbox.claim_due(db, now, channel="telegram", limit=20)
    assert len(first) == 20 and "2" in [d.recipient for d in first]
    own = [d.message.text.plain() for d in first if d.recipient == "1"]
    assert own == [f"message {i}" for i in range(19)]
    # The first recipient's oldest message failed: nothing newer of it goes meanwhile.
    await outbox.record_failure(db, first[0].outbox_id, error="502", now=now)
    await outbox.release(db, [d.outbox_id for d in first[1:] if d.recipient == "1"])
    await outbox.mark_delivered(db, [d.outbox_id for d in first if d.recipient == "2"], now)
    assert await outbox.claim_due(db, now, channel="telegram") == []
    clock.advance(seconds=3)
    again = await outbox.claim_due(db, clock(), channel="telegram", limit=5)
    assert [d.outbox_id for d in again] == [d.outbox_id for d in first[:5]]
    await db.dispose()


async def test_two_deliverers_racing_for_the_same_rows_never_both_get_one(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A rival claim between our read and our lease (SQLite reads take no lock): no row twice.

    The rival is another connection to the same file, as the worker thread's or another
    instance's; it cuts in just before our lease is written.
    """
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    await db.create_all()
    now = clock()

    def write(session: Session) -> None:
        for recipient in ("a@example.org", "b@example.org"):
            outbox.enqueue(session, channel="email", recipient=recipient, now=now,
                           claimed=False, messages=[Message(plain("un")), Message(plain("deux"))])

    await db.run(write)
    rival_engine = create_engine(f"sqlite:///{tmp_path}/db.sqlite")
    rival: list[int] = []

    def cut_in(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if rival or not statement.startswith("UPDATE outbox SET claimed_until"):
            return
        with Session(rival_engine) as session:
            taken = outbox._claim_heads(session, now, channel="email", limit=1, lease=None)
            rival.extend(row.id or 0 for row in taken)
            session.commit()

    event.listen(db.sync_engine, "before_cursor_execute", cut_in)
    ours = [d.outbox_id for d in await outbox.claim_due(db, now, channel="email", limit=10)]
    event.remove(db.sync_engine, "before_cursor_execute", cut_in)
    assert len(rival) == 1 and rival[0] not in ours
    # The rival holds a's first message: we take b's two, and none of a's (order kept).
    assert len(ours) == 2
    with Session(rival_engine) as session:
        held = session.exec(select(Outbox).where(col(Outbox.id).in_(ours))).all()
        assert {row.recipient for row in held} == {"b@example.org"}
    rival_engine.dispose()
    await db.dispose()
