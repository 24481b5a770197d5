"""A person's data: export as JSON, erase everywhere, and the daily retention pass."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from bot.services.privacy import retention_pass
from storage.models import (
    Consent,
    Need,
    NeedEvent,
    NeedMessage,
    Outbox,
    PendingUpdate,
    ProcessedUpdate,
    Satisfaction,
)
from tests.conftest import RunningBot
from tests.helpers import press, reach_summary


async def cli(relais: RunningBot, *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_"))}
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "bot.cli", *args], capture_output=True,
        text=True, env={**base, "DATABASE_URL": relais.settings.database_url}, timeout=120,
        check=False)


@pytest.mark.slow
async def test_export_then_erase_a_telegram_user(relais: RunningBot) -> None:
    firm = relais.api.user(6501)
    await reach_summary(firm, name="Scierie <Morel>")
    await press(firm, "Envoyer la demande")
    exported = await cli(relais, "privacy", "export", "--telegram-id", "6501")
    assert exported.returncode == 0, exported.stderr
    data = json.loads(exported.stdout)
    assert data["consent"] is not None
    [need] = data["needs"]
    assert need["reference"] == "TI-2026-0001" and need["firm_name"] == "Scierie <Morel>"
    assert "reply_token" not in need
    erased = await cli(relais, "privacy", "erase", "--telegram-id", "6501")
    assert erased.returncode == 0, erased.stderr

    def state(session: Session) -> tuple[Need, Consent | None]:
        return session.exec(select(Need)).one(), session.get(Consent, 6501)

    need_row, consent = await relais.services.db.run(state)
    assert consent is None
    assert (need_row.firm_name, need_row.description, need_row.telegram_user_id) == (
        None, None, None)
    assert (need_row.theme, need_row.commune_insee) == ("recrutement", "71342")
    again = json.loads((await cli(relais, "privacy", "export", "--telegram-id", "6501")).stdout)
    assert again["needs"] == [] and again["consent"] is None
    assert (await cli(relais, "privacy", "erase")).returncode == 2


@pytest.mark.slow
async def test_retention_anonymises_old_needs_and_purges_old_rows(relais: RunningBot) -> None:
    firm = relais.api.user(6502)
    await reach_summary(firm)
    await press(firm, "Envoyer la demande")
    # The pass purges only rows that are done with: let the animators' card and the
    # partners' emails go out first (they leave after the firm's reply).
    await relais.drained()

    def run(session: Session, now: datetime) -> dict[str, int]:
        return retention_pass(session, now=now, years=3, raw_days=90)

    # Three months later: messages and update ids go, the need stays.
    done = await relais.services.db.run(
        lambda s: run(s, datetime(2027, 3, 1, tzinfo=UTC)))
    assert done["needs"] == 0 and done["outbox"] > 0 and done["updates"] > 0

    def counts(session: Session) -> tuple[int, int, str | None]:
        return (len(session.exec(select(Outbox)).all()),
                len(session.exec(select(ProcessedUpdate)).all()),
                session.exec(select(Need)).one().firm_name)

    outbox_left, updates_left, name = await relais.services.db.run(counts)
    assert (outbox_left, updates_left, name) == (0, 0, "Menuiserie Dupont")
    # Three years after its last change, the need is anonymised.
    done = await relais.services.db.run(
        lambda s: run(s, datetime(2029, 12, 1, tzinfo=UTC)))
    assert done["needs"] == 1
    *_, name = await relais.services.db.run(counts)
    assert name is None


async def test_retention_cleans_what_still_hangs_off_an_anonymised_need(
    relais: RunningBot,
) -> None:
    """A comment or a message left on a need anonymised earlier goes at the next pass."""
    firm = relais.api.user(6503)
    await reach_summary(firm)
    await press(firm, "Envoyer la demande")
    now = relais.clock.now

    def leave(session: Session) -> None:
        need = session.exec(select(Need)).one()
        need.anonymized_at = now
        session.add(need)
        session.add(Satisfaction(need_id=need.id, score=5, comment="Merci, Paul Dupont",
                                 asked_at=now, answered_at=now))
        session.add(NeedMessage(need_id=need.id, author_kind="firm", author="paul@dupont.fr",
                                text="Appelez-moi au 06 12 34 56 78", at=now))

    await relais.services.db.run(leave)
    done = await relais.services.db.run(lambda s: retention_pass(s, now=now))
    # The comment, the message, and the routing explanation in the history (it may quote
    # the firm's facts).
    assert done["leftovers"] == 3 and done["needs"] == 0

    def state(session: Session) -> tuple[list[tuple[int | None, str | None]], int, set[str]]:
        return ([(r.score, r.comment) for r in session.exec(select(Satisfaction))],
                len(session.exec(select(NeedMessage)).all()),
                {e.note or "" for e in session.exec(select(NeedEvent))})

    assert await relais.services.db.run(state) == ([(5, None)], 0, {""})
    again = await relais.services.db.run(lambda s: retention_pass(s, now=now))
    assert again["leftovers"] == 0


async def test_retention_purges_handled_webhook_updates(relais: RunningBot) -> None:
    """What people typed, kept with a webhook update, goes with the other raw data."""
    now = relais.clock.now
    typed = {"message": {"text": "Paul Dupont, 06 12 34 56 78", "chat": {"id": 6504}}}

    def store(session: Session) -> None:
        session.add(PendingUpdate(update_id=1, chat_id=6504, payload=typed, received_at=now,
                                  done_at=now))
        session.add(PendingUpdate(update_id=2, chat_id=6504, payload=typed, received_at=now))

    await relais.services.db.run(store)
    soon = await relais.services.db.run(lambda s: retention_pass(s, now=now + timedelta(days=89)))
    later = await relais.services.db.run(lambda s: retention_pass(s, now=now + timedelta(days=91)))
    assert (soon["updates"], later["updates"]) == (0, 1)

    def left(session: Session) -> list[int]:
        return [u.update_id for u in session.exec(select(PendingUpdate))]

    # The one not handled yet stays: it is handled first, purged later.
    assert await relais.services.db.run(left) == [2]
