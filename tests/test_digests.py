"""Digests, /stats and exports end to end: Bot API double, real SMTP server, test clock."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bot.services.digests import StatsReady, week_period
from bot.services.types import Incoming
from storage.models import DigestRun
from testing.botapi import SimUser
from tests.conftest import RunningBot
from tests.helpers import press, reach_summary, say

ANIMATOR_ID = 900000001


async def filed(relais: RunningBot, name: str = "Menuiserie Dupont") -> SimUser:
    animator = relais.api.user(ANIMATOR_ID, "Claire")
    await say(animator, "/aide")
    firm = relais.api.user(6301, "Paul")
    await reach_summary(firm, name=name)
    await press(firm, "Envoyer la demande")
    # Every delivery recorded before a test moves the clock past the outbox lease.
    await relais.drained()
    return animator


async def wait_emails(relais: RunningBot, count: int) -> None:
    for _ in range(200):
        if len(relais.smtp.messages) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(relais.smtp.messages)} emails, expected {count}")


def test_collector_paused_while_any_job_runs_then_back() -> None:
    """Nested and overlapping pauses: the collector comes back when the last one ends, and
    stays off if it was off before."""
    import gc

    from bot.services.digests import collector_paused

    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_week_period_is_the_week_that_ended() -> None:
    from zoneinfo import ZoneInfo

    paris = ZoneInfo("Europe/Paris")
    key, start, end = week_period(datetime(2026, 11, 30, 6, 0, tzinfo=UTC), paris)
    assert key == "2026-W48"
    assert (start.isoformat(), end.isoformat()) == (
        "2026-11-23T00:00:00+01:00", "2026-11-30T00:00:00+01:00")
    # The week of the spring DST change still runs midnight to midnight.
    key, start, end = week_period(datetime(2027, 3, 29, 6, 0, tzinfo=UTC), paris)
    assert (key, start.isoformat(), end.isoformat()) == (
        "2027-W12", "2027-03-22T00:00:00+01:00", "2027-03-29T00:00:00+02:00")


@pytest.mark.slow
async def test_stats_gives_the_picture_with_charts(relais: RunningBot) -> None:
    animator = await filed(relais)
    relais.clock.advance(minutes=5)
    before = len(animator.messages)
    await say(animator, "/stats")
    messages = await animator.wait_for_messages(before + 2)
    text = next(m for m in messages[before:] if m.kind == "text")
    assert "Nouvelles demandes : 1 (Recrutement 1)" in text.plain
    photos = [m for m in animator.messages[before:] if m.kind == "photo"]
    assert photos and photos[0].caption == "Nouvelles demandes par thème"
    assert photos[0].data is not None and photos[0].data.startswith(b"\x89PNG")
    # Firms have no /stats.
    firm = relais.api.user(6301)
    assert (await say(firm, "/stats"))[-1].plain.startswith("Cette commande est réservée")


@pytest.mark.slow
async def test_stats_figures_and_charts_are_ready_before_the_turn(relais: RunningBot) -> None:
    animator = await filed(relais)
    relais.clock.advance(minutes=5)
    digests = relais.services.digests
    assert digests is not None
    event = Incoming(chat_id=animator.user_id, user_id=animator.user_id, kind="command",
                     value="stats")
    ready = await digests.prefetch_stats(event, None)
    assert isinstance(ready, StatsReady) and len(ready.items) == 1
    now = relais.clock()
    # The turn shows what was prepared: the same as computing it inside the transaction.
    prepared, inline = await relais.services.db.run(lambda session: (
        digests.stats_command(session, animator.user_id, now=now, prepared=ready),
        digests.stats_command(session, animator.user_id, now=now)))
    assert [m.to_payload() for m in prepared.messages] == [
        m.to_payload() for m in inline.messages]
    # Another event is not /stats: nothing to prepare.
    other = Incoming(chat_id=animator.user_id, user_id=animator.user_id, kind="command",
                     value="demandes")
    assert await digests.prefetch_stats(other, None) is None


@pytest.mark.slow
async def test_weekly_digest_once_per_week_with_inline_charts(relais: RunningBot) -> None:
    animator = await filed(relais)
    for _ in range(200):  # the two partners' emails of the need
        if len(relais.smtp.messages) >= 2:
            break
        await asyncio.sleep(0.05)
    routed = len(relais.smtp.messages)
    relais.clock.now = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)  # Monday 07:00 in Paris
    digests = relais.services.digests
    assert digests is not None
    before = len(animator.messages)
    sent = await relais.services.db.run(
        lambda session: digests.send_all(session, now=relais.clock()))
    assert sent == 1 + 2  # the territory's digest, two partners with open needs
    await wait_emails(relais, routed + 3)
    mails = [m.message for m in relais.smtp.messages[routed:]]
    [digest] = [m for m in mails if "claire.martin@example.org" in str(m["To"])]
    assert str(digest["Subject"]).startswith("[Relais] Semaine du 23 au 29 novembre 2026")
    html = digest.get_body(("html",))
    assert html is not None
    images = [p for p in digest.walk() if p.get_content_type() == "image/png"]
    assert images and all(p["Content-ID"] for p in images)
    cid = images[0]["Content-ID"].strip("<>")
    assert f"cid:{cid}" in html.get_content()
    partner = next(m for m in mails if "ft-paray-le-monial" in str(m["To"]))
    assert str(partner["Subject"]) == "[Relais] Vos demandes ouvertes (1) — Bourgogne Industrie"
    assert "TI-2026-0001 · Recruter · Menuiserie Dupont (Paray-le-Monial)" in (
        partner.get_body(("plain",)).get_content())
    await animator.wait_for_messages(before + 2)
    assert any(m.kind == "photo" for m in animator.messages[before:])
    # The same week again (a second process, or a restart): nothing more.
    again = await relais.services.db.run(
        lambda session: digests.send_all(session, now=relais.clock()))
    assert again == 0

    def runs(session: Session) -> list[str]:
        return sorted(f"{r.kind}@{r.period}" for r in session.exec(select(DigestRun)))

    assert await relais.services.db.run(runs) == [
        "partners:ti-2703@2026-W48", "territory:ti-2703@2026-W48"]


@pytest.mark.slow
async def test_weekly_job_prepares_figures_and_charts_before_its_transaction(
        relais: RunningBot) -> None:
    animator = await filed(relais)
    relais.clock.now = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)  # Monday 07:00 in Paris
    digests = relais.services.digests
    assert digests is not None
    [territory] = [t for t in digests.territories.territories if t.id == "ti-2703"]
    before = len(animator.messages)
    sent = await digests.send_territory(relais.services.db, territory, now=relais.clock())
    assert sent == 1 + 2  # the territory's digest, two partners with open needs
    messages = await animator.wait_for_messages(before + 2)
    assert any(m.kind == "photo" for m in messages[before:])
    # Claimed: the same week again reads the claims and queues nothing.
    assert await digests.send_territory(relais.services.db, territory,
                                        now=relais.clock()) == 0
    again = await relais.services.db.run(
        lambda session: digests.send_all(session, now=relais.clock()))
    assert again == 0


@pytest.mark.slow
async def test_weekly_job_sends_every_territory_once(relais: RunningBot) -> None:
    """The scheduler's weekly job: every territory's week claimed and queued, once; a
    territory already claimed by another process is left alone."""
    import gc

    from bot.reminders import ReminderScheduler
    from bot.services.digests import DigestService
    from knowledge.territories import TerritoryDirectory

    animator = await filed(relais)
    relais.clock.now = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)  # Monday 07:00 in Paris
    service, meetings = relais.services.digests, relais.services.meetings
    assert service is not None and meetings is not None
    [home] = service.territories.territories
    # Two more territories (same animator, no needs): one already claimed elsewhere.
    quiet, claimed = (home.model_copy(update={"id": tid, "name": name, "epci": ()})
                      for tid, name in (("ti-9998", "Calme"), ("ti-9999", "Déjà fait")))
    digests = DigestService(TerritoryDirectory((home, quiet, claimed)), tz=relais.settings.tz,
                            mail_domain=service.mail_domain)
    week, _start, _end = week_period(relais.clock(), relais.settings.tz)

    def claim_other(session: Session) -> None:
        for kind in ("territory", "partners"):
            assert digests.claim(session, f"{kind}:{claimed.id}", week, relais.clock())

    await relais.services.db.run(claim_other)
    scheduler = ReminderScheduler(relais.services.db, meetings, relais.clock,
                                  digests=digests, tz=relais.settings.tz)
    before = len(animator.messages)
    # ti-2703's digest and its two partners with open needs, the quiet territory's digest.
    assert await scheduler.run_digests() == 1 + 2 + 1
    # ti-2703's report and its one chart; the quiet territory's report, without charts.
    messages = (await animator.wait_for_messages(before + 3))[before:]
    assert [m.kind == "photo" for m in messages].count(True) == 1
    assert sum("Nouvelles demandes : aucune" in (m.text or "") for m in messages) == 1

    def runs(session: Session) -> set[str]:
        return {r.kind for r in session.exec(select(DigestRun).where(DigestRun.period == week))}

    assert await relais.services.db.run(runs) == {
        f"{kind}:{t.id}" for t in (home, quiet, claimed) for kind in ("territory", "partners")}
    assert await scheduler.run_digests() == 0
    assert gc.isenabled()  # paused during the job only


@pytest.mark.slow
async def test_export_csv_and_xlsx_keep_formulas_out(
    relais: RunningBot, tmp_path: Path
) -> None:
    await filed(relais, name="=HYPERLINK(\"http://x\")")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_"))}
    env = {**base, "DATABASE_URL": relais.settings.database_url}
    csv_run = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "bot.cli", "export", "--format", "csv"],
        capture_output=True, env=env, timeout=120, check=False)
    assert csv_run.returncode == 0, csv_run.stderr
    text = csv_run.stdout.decode("utf-8-sig")
    import csv

    header, row = list(csv.reader(io.StringIO(text), delimiter=";"))[:2]
    assert header[:3] == ["référence", "statut", "thème"]
    assert row[:4] == ["TI-2026-0001", "transmise", "Recruter", "Dans le mois"]
    assert row[4] == "'=HYPERLINK(\"http://x\")"  # shown as text, never run as a formula
    target = tmp_path / "demandes.xlsx"
    xlsx_run = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "bot.cli", "export", "--format", "xlsx",
                         "--output", str(target)],
        capture_output=True, env=env, timeout=120, check=False)
    assert xlsx_run.returncode == 0, xlsx_run.stderr
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(target.read_bytes())).active
    assert sheet is not None
    assert sheet["A2"].value == "TI-2026-0001" and sheet["E2"].value.startswith("'=")


def test_partner_digest_lines_are_cleaned_and_escaped_field_by_field() -> None:
    """Each line prints its fields cleaned (one line, no bidi controls) and, in HTML,
    escaped; a value repeated on many lines reads the same on each."""
    from bot.services.emails import partner_digest_email

    needs = [{"reference": f"TI-2026-000{i}", "theme": "Recruter",
              "firm": "Dupont & Fils <SA>" if i % 2 else "  Atelier\u202e du\tbois ",
              "commune": "Paray-le-Monial", "routed_on": "28/11/2026",
              "state": "en attente"} for i in range(4)]
    draft = partner_digest_email(partner_name="France Travail", partner_email="ft@example.org",
                                 territory="Bourgogne Industrie", needs=needs, period="2026-W49",
                                 mail_domain="example.org", reply_to=None)
    assert ("- TI-2026-0001 · Recruter · Dupont & Fils <SA> (Paray-le-Monial) · transmise le "
            "28/11/2026 · en attente\n") in draft.text
    assert "- TI-2026-0002 · Recruter · Atelier du bois (Paray-le-Monial) · transmise" \
        in draft.text
    assert ("<li><strong>TI-2026-0003</strong> · Recruter · Dupont &amp; Fils &lt;SA&gt; "
            "(Paray-le-Monial) · transmise le 28/11/2026 · en attente</li>") in draft.html
    assert "<SA>" not in draft.html and "\u202e" not in draft.text + draft.html
