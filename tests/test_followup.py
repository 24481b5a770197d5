"""Follow-up end to end: relances, alerts, long-open needs and satisfaction, on a test clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, update
from sqlmodel import Session, col, select

from bot.services.followup import FollowUpCounts, FollowUpService
from bot.services.workdays import add_working_days
from knowledge.territories import load_territories
from storage.db import Database
from storage.models import ChatDraft, Need, NeedRouting, Outbox, Satisfaction
from testing.botapi import BotMessage, SimUser
from tests.conftest import RunningBot
from tests.helpers import press, reach_summary, say

ANIMATOR_ID = 900000001
FT = "ft-paray-le-monial@example.org"


async def filed(relais: RunningBot) -> tuple[SimUser, SimUser]:
    animator = relais.api.user(ANIMATOR_ID, "Claire")
    await say(animator, "/aide")
    firm = relais.api.user(6201, "Paul")
    await reach_summary(firm)
    await press(firm, "Envoyer la demande")
    await says(animator, "Nouvelle demande TI-2026-0001")
    # Every delivery recorded before the tests jump the clock by days (past the outbox lease).
    await relais.drained()
    return firm, animator


async def follow_up(relais: RunningBot) -> FollowUpCounts:
    """One follow-up pass at the test clock's time, then every message it wrote delivered.

    The scheduler's 0.1 s tick runs the same pass; running it here makes "nothing was sent"
    a fact about a pass that saw the current time, not about a pause.
    """
    followup = relais.services.followup
    assert followup is not None
    counts = await relais.services.db.run(lambda s: followup.run_due(s, now=relais.clock()))
    await relais.drained()
    return counts


async def says(user: SimUser, fragment: str, within: float = 10.0) -> BotMessage:
    for _ in range(int(within / 0.05)):
        found = [m for m in user.messages if fragment in m.plain]
        if found:
            return found[-1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no message with {fragment!r}")


def relances(relais: RunningBot, to: str) -> list:
    return [m for m in relais.smtp.messages
            if to in m.rcpt_tos and str(m.message["Subject"]).startswith("Relance")]


async def test_working_day_deadlines_skip_weekends_and_holidays() -> None:
    assert add_working_days(date(2026, 11, 28), 2) == date(2026, 12, 1)  # Sat → Tue
    assert add_working_days(date(2026, 12, 23), 2) == date(2026, 12, 28)  # Noël skipped
    assert add_working_days(date(2026, 11, 10), 1) == date(2026, 11, 12)  # 11 Novembre


@pytest.mark.slow
async def test_late_partner_gets_one_relance_then_the_animator_is_alerted(
    relais: RunningBot,
) -> None:
    _firm, animator = await filed(relais)
    # Filed Saturday 28 November; France Travail has 2 working days: until Tuesday 1st.
    relais.clock.now = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
    assert (await follow_up(relais)).relances == 0
    assert relances(relais, FT) == []
    relais.clock.now = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
    for _ in range(100):
        if relances(relais, FT):
            break
        await asyncio.sleep(0.05)
    [relance] = relances(relais, FT)
    mail = relance.message
    assert mail["Subject"] == "Relance : [TI-2026-0001] Recrutement — Menuiserie Dupont"
    assert mail["In-Reply-To"].startswith("<need-TI-2026-0001-")
    text = mail.get_body(("plain",)).get_content()
    assert "transmise le samedi 28 novembre 2026" in text
    assert "attendu au plus tard le mardi 1er décembre 2026" in text
    # The OPCO (3 working days) is not late yet.
    assert relances(relais, "opco2i-bfc@example.org") == []
    # Twice the delay (4 working days: Thursday 3rd): the animator is alerted, once.
    relais.clock.now = datetime(2026, 12, 4, 7, 0, tzinfo=UTC)
    alert = await says(animator, "n'a pas accusé réception de TI-2026-0001")
    assert alert.plain.startswith("⏰ France Travail Paray-le-Monial n'a pas accusé réception")
    assert alert.button_labels() == ["Réaffecter", "Je prends"]
    assert await follow_up(relais) == FollowUpCounts()
    assert len(relances(relais, FT)) == 1
    assert len([m for m in animator.messages if "n'a pas accusé" in m.plain and "France" in
                m.plain]) == 1


@pytest.mark.slow
async def test_an_acknowledged_partner_is_not_chased(relais: RunningBot) -> None:
    await filed(relais)

    def acknowledge(session: Session) -> None:
        session.execute(update(NeedRouting).values(status="acknowledged",
                                                   acknowledged_at=relais.clock()))

    await relais.services.db.run(acknowledge)
    relais.clock.now = datetime(2026, 12, 10, 7, 0, tzinfo=UTC)
    assert (await follow_up(relais)).relances == 0
    assert [m for m in relais.smtp.messages if "Relance" in str(m.message["Subject"])] == []


@pytest.mark.slow
async def test_long_open_need_asks_close_or_keep_every_period(relais: RunningBot) -> None:
    _firm, animator = await filed(relais)

    def acknowledge(session: Session) -> None:
        session.execute(update(NeedRouting).values(status="acknowledged"))

    await relais.services.db.run(acknowledge)
    # Filed on 28 November at 09:00 UTC: 30 days later is 28 December, 09:00 UTC.
    relais.clock.now = datetime(2026, 12, 28, 8, 59, tzinfo=UTC)
    assert (await follow_up(relais)).stale == 0
    assert not [m for m in animator.messages if "ouverte depuis" in m.plain]
    relais.clock.now = datetime(2026, 12, 28, 9, 0, tzinfo=UTC)
    ask = await says(animator, "ouverte depuis plus de 30 jours")
    assert ask.button_labels() == ["Clore", "La garder ouverte"]
    kept = (await press(animator, "La garder ouverte"))[-1]
    assert kept.plain == "TI-2026-0001 reste ouverte. Je vous reposerai la question dans 30 jours."
    await relais.drained()
    relais.clock.now = datetime(2027, 1, 20, 10, 0, tzinfo=UTC)
    assert (await follow_up(relais)).stale == 0
    assert len([m for m in animator.messages if "ouverte depuis" in m.plain]) == 1
    relais.clock.now = datetime(2027, 1, 29, 10, 0, tzinfo=UTC)
    for _ in range(100):
        if len([m for m in animator.messages if "ouverte depuis" in m.plain]) == 2:
            break
        await asyncio.sleep(0.05)
    assert len([m for m in animator.messages if "ouverte depuis" in m.plain]) == 2


async def drained(relais: RunningBot) -> None:
    """Wait until every queued message has been handed to its channel (or given up)."""

    def waiting(session: Session) -> int:
        return session.exec(select(func.count()).select_from(Outbox).where(
            col(Outbox.delivered_at).is_(None), col(Outbox.failed_at).is_(None))).one()

    for _ in range(200):
        if await relais.services.db.run(waiting) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the outbox did not drain")


@pytest.mark.slow
async def test_satisfaction_is_asked_once_and_reaches_the_animator(relais: RunningBot) -> None:
    firm, animator = await filed(relais)
    await press(animator, "Clore")
    before = len(firm.messages)
    await press(animator, "Aidée")
    # One message tells the firm its need is closed and asks how it went.
    question = (await firm.wait_for_messages(before + 1))[-1]
    assert question.plain == ("Votre demande TI-2026-0001 est close. Avez-vous été aidé ?\n"
                              "Notez de 1 (pas du tout) à 5 (tout à fait).")
    assert question.button_labels() == ["1", "2", "3", "4", "5"]
    # Late is fine: a week later.
    await relais.drained()
    relais.clock.now = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    comment_ask = (await press(firm, "4"))[-1]
    assert comment_ask.plain.startswith("Merci ! Un commentaire ?")
    star = await says(animator, "⭐ 4/5 de Menuiserie Dupont pour TI-2026-0001.")
    assert star is not None
    thanks = (await say(firm, "Très réactifs, <b>merci</b> !"))[-1]
    assert thanks.plain == "Merci pour votre avis."
    await says(animator, "« Très réactifs, <b>merci</b> ! »")
    # A second press changes nothing; the firm is never asked again.
    assert await relais.answered(firm, firm.press("5", message_id=question.message_id)) == []
    assert firm.callback_answers[-1].get("text") == "Merci, votre note est déjà enregistrée."

    def rows(session: Session) -> list[Satisfaction]:
        return list(session.exec(select(Satisfaction)))

    [row] = await relais.services.db.run(rows)
    assert (row.score, row.comment) == (4, "Très réactifs, <b>merci</b> !")
    # Each piece of news once: the closing to the firm, the rating and the comment to the
    # animator (the comment does not repeat the rating).
    await drained(relais)
    assert len([m for m in firm.messages if "Avez-vous été aidé" in m.plain]) == 1
    assert len([m for m in firm.messages if "est close" in m.plain]) == 1
    assert len([m for m in animator.messages if "⭐" in m.plain]) == 1
    [comment] = [m for m in animator.messages if "Très réactifs" in m.plain]
    assert comment.plain == ("💬 Menuiserie Dupont commente sa note pour TI-2026-0001 : "
                             "« Très réactifs, <b>merci</b> ! »")


async def test_a_need_closed_without_help_is_announced_once(relais: RunningBot) -> None:
    firm, animator = await filed(relais)
    await press(animator, "Clore")
    await press(animator, "Non aidée")
    closed = await says(firm, "est close")
    assert closed.plain == "Votre demande TI-2026-0001 est close. Merci d'avoir utilisé Relais."
    await drained(relais)
    assert len([m for m in firm.messages if "est close" in m.plain]) == 1
    assert not [m for m in firm.messages if "Avez-vous été aidé" in m.plain]


async def test_an_anonymised_need_keeps_no_comment(tmp_path: Path) -> None:
    """A comment typed after the need was anonymised (an erasure while the question was
    open) is thanked for and not stored: the retention pass does not look for comments."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/relais.db")
    await db.create_all()
    now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    service = FollowUpService(load_territories(Path("territories")),
                              tz=ZoneInfo("Europe/Paris"), mail_domain="relais.example.org",
                              reply_local=None)

    def comment(session: Session) -> list[str]:
        need = Need(reference="TI-2026-0001", theme="recrutement", urgency="month",
                    contact_method="telegram", territory_id="ti-2703", status="closed_helped",
                    created_at=now, updated_at=now, anonymized_at=now)
        session.add(need)
        session.flush()
        assert need.id is not None
        session.add(Satisfaction(need_id=need.id, territory_id="ti-2703", score=4,
                                 asked_at=now, answered_at=now))
        draft = ChatDraft(chat_id=42, user_id=42, kind="sat_comment", step="comment",
                          data={"need_id": need.id}, updated_at=now)
        session.add(draft)
        session.flush()
        reply = service.on_comment(session, draft, "Merci à M. Dupont", now=now)
        return [m.text.plain() for m in reply.messages]

    assert await db.run(comment) == ["Merci pour votre avis."]
    rows = await db.run(lambda session: list(session.exec(select(Satisfaction))))
    assert [(r.score, r.comment) for r in rows] == [(4, None)]
    await db.dispose()
