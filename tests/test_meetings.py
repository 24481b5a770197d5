"""Meetings end to end: the animator proposes, the firm answers, invitations and reminders.

The real Application against the Bot API double, a real SMTP server, the test's clock:
reminders fall due when the test moves the clock, never after a real wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
from icalendar import Calendar
from sqlalchemy import insert
from sqlmodel import Session, col, select

from bot.reminders import ReminderScheduler
from bot.runtime import build_services, running_bot
from bot.services import outbox
from bot.services.meetings import EMAIL_EARLY
from storage.models import Meeting, MeetingAttendee, Need, Outbox, Reminder
from testing.botapi import SimUser
from testing.clock import FakeClock
from testing.smtp import SmtpServer
from tests.conftest import RunningBot, make_settings, smtp_settings, wait_until
from tests.helpers import press, reach_summary, say

ANIMATOR_ID = 900000001
FIRM_ID = 6101
SLOT = "jeudi 3 décembre 2026, 14h30–15h30"


async def filed(relais: RunningBot) -> tuple[SimUser, SimUser]:
    """A confirmed need from Paray-le-Monial, and the animator who got its card."""
    animator = relais.api.user(ANIMATOR_ID, "Claire")
    await say(animator, "/aide")
    firm = relais.api.user(FIRM_ID, "Paul")
    await reach_summary(firm)
    before = len(animator.messages)
    await press(firm, "Envoyer la demande")
    await animator.wait_for_messages(before + 1)
    return firm, animator


async def propose(animator: SimUser, when: str = "jeudi 14h30") -> list:
    """From the card to the recap, with the defaults (firm and routed partners invited)."""
    await press(animator, "Proposer un RDV")
    await say(animator, when)
    await press(animator, "1 h")
    await press(animator, "Dans l'entreprise (Paray-le-Monial)")
    return await press(animator, "Valider")


async def emails_to(smtp: SmtpServer, count: int, within: float = 10.0) -> list[EmailMessage]:
    """Wait until `count` messages arrived; return them all."""
    for _ in range(int(within / 0.05)):
        if len(smtp.messages) >= count:
            break
        await asyncio.sleep(0.05)
    return [m.message for m in smtp.messages]


def calendar_of(mail: EmailMessage) -> Calendar:
    """The text/calendar part of an invitation email, parsed."""
    for part in mail.walk():
        if part.get_content_type() == "text/calendar":
            return Calendar.from_ical(part.get_payload(decode=True))
    raise AssertionError("no text/calendar part")


def with_subject(mails: Iterable[EmailMessage], fragment: str) -> list[EmailMessage]:
    return [m for m in mails if fragment in str(m["Subject"])]


async def reminders(relais: RunningBot) -> list[Reminder]:
    def work(session: Session) -> list[Reminder]:
        return list(session.exec(select(Reminder).order_by(Reminder.id)))

    return await relais.services.db.run(work)


async def settle(relais: RunningBot) -> None:
    """Fire what is due at the test clock's time, then wait until the outbox is drained.

    The scheduler's 0.1 s tick runs the same claim; running it here makes "nothing more was
    sent" a fact about a pass that saw the current time, not about a pause. (Each reminder
    is claimed once, so this pass and a tick never both send it.)
    """
    meetings = relais.services.meetings
    assert meetings is not None
    await relais.services.db.run(lambda s: meetings.fire_due(s, now=relais.clock()))
    await relais.drained()


@pytest.mark.slow
async def test_propose_confirm_and_both_reminders_once(relais: RunningBot) -> None:
    firm, animator = await filed(relais)
    await press(animator, "Proposer un RDV")
    # Bad dates get the reason and the same question.
    for typed, reason in (("31/02 à 10h", "Cette date n'existe pas"),
                          ("12/01/2025 à 9h", "Cette date est déjà passée"),
                          ("jeudi", "Il manque l'heure"),
                          ("bientôt", "Je n'ai pas compris")):
        reply = (await say(animator, typed))[-1]
        assert reply.plain.startswith(reason) and "quand ?" in reply.plain
    duration = (await say(animator, "jeudi 14h30"))[-1]
    assert duration.plain == "Jeudi 3 décembre 2026 à 14h30. Combien de temps dure le RDV ?"
    assert duration.button_labels() == ["30 min", "1 h", "1 h 30", "2 h"]
    place = (await press(animator, "1 h"))[-1]
    assert place.button_labels()[0] == "Dans l'entreprise (Paray-le-Monial)"
    who = (await press(animator, "Dans l'entreprise (Paray-le-Monial)"))[-1]
    labels = who.button_labels()
    assert labels[0] == "✅ L'entreprise (Menuiserie Dupont)"
    assert "✅ France Travail Paray-le-Monial" in labels
    # Untick one partner: only the others are invited.
    untick = next(label for label in labels if "OPCO 2i" in label)
    who = (await press(animator, untick))[-1]
    assert "☐ OPCO 2i Bourgogne-Franche-Comté" in who.button_labels()
    recap = (await press(animator, "Valider"))[-1]
    assert f"Quand : {SLOT}" in recap.plain
    assert "Où : Dans les locaux de l'entreprise, Paray-le-Monial" in recap.plain
    assert "OPCO" not in recap.plain and "Menuiserie Dupont" in recap.plain
    sent_before = len(relais.smtp.messages)
    firm_before = len(firm.messages)
    await press(animator, "Envoyer l'invitation")

    proposal = (await firm.wait_for_messages(firm_before + 1))[-1]
    assert proposal.plain.startswith("Proposition de rendez-vous (TI-2026-0001)")
    assert f"Quand : {SLOT}" in proposal.plain
    assert proposal.button_labels() == ["Je confirme", "Proposer un autre créneau",
                                        "Je ne peux pas"]

    def meeting(session: Session) -> Meeting:
        return session.exec(select(Meeting)).one()

    row = await relais.services.db.run(meeting)
    attendees = 2  # France Travail and the animator (the OPCO was unticked)
    mails = await emails_to(relais.smtp, sent_before + attendees)
    invites = with_subject(mails, "Invitation : RDV Menuiserie Dupont")
    assert len(invites) == attendees
    rcpts = {m["To"].addresses[0].addr_spec for m in invites}
    assert "claire.martin@example.org" in rcpts and "opco2i-bfc@example.org" not in rcpts
    event = calendar_of(invites[0]).walk("VEVENT")[0]
    assert str(calendar_of(invites[0])["METHOD"]) == "REQUEST"
    assert str(event["UID"]) == row.uid and int(event["SEQUENCE"]) == 0
    assert event.decoded("DTSTART") == datetime(2026, 12, 3, 13, 30, tzinfo=UTC)
    assert event["DTSTART"].params["TZID"] == "Europe/Paris"
    assert invites[0]["Subject"].endswith(SLOT)

    # The firm confirms: the animator knows at once; two reminders are planned.
    animator_before = len(animator.messages)
    ack = (await press(firm, "Je confirme"))[-1]
    assert ack.plain == f"Merci, c'est noté : rendez-vous {SLOT}. Je vous enverrai un rappel."
    news = (await animator.wait_for_messages(animator_before + 1))[-1]
    assert news.plain == f"✅ Menuiserie Dupont confirme le RDV du {SLOT} (TI-2026-0001)."
    planned = await reminders(relais)
    assert [(r.offset_minutes, r.due_at, r.status) for r in planned] == [
        (1440, datetime(2026, 12, 2, 13, 30, tzinfo=UTC), "pending"),
        (120, datetime(2026, 12, 3, 11, 30, tzinfo=UTC), "pending"),
    ]

    # Just before the first reminder: nothing. At its time: the firm and every attendee.
    relais.clock.now = datetime(2026, 12, 2, 13, 29, tzinfo=UTC)
    await settle(relais)
    assert [r.status for r in await reminders(relais)] == ["pending", "pending"]
    firm_before, mails_before = len(firm.messages), len(relais.smtp.messages)
    relais.clock.now = datetime(2026, 12, 2, 13, 30, 1, tzinfo=UTC)
    reminder = (await firm.wait_for_messages(firm_before + 1))[-1]
    assert reminder.plain.startswith(f"⏰ Rappel : rendez-vous {SLOT} (TI-2026-0001)")
    mails = await emails_to(relais.smtp, mails_before + attendees)
    assert len(with_subject(mails, "Rappel : RDV Menuiserie Dupont")) == attendees
    # The second one, two hours before; then nothing more, however long we wait. (Each
    # jump of the clock waits for the deliveries to be recorded: jumping a day past the
    # outbox lease while a row is being marked would look like a crash and resend it.)
    await settle(relais)
    relais.clock.now = datetime(2026, 12, 3, 11, 31, tzinfo=UTC)
    await firm.wait_for_messages(firm_before + 2)
    await emails_to(relais.smtp, mails_before + 2 * attendees)
    await settle(relais)
    relais.clock.now = datetime(2026, 12, 3, 16, 0, tzinfo=UTC)
    await settle(relais)
    assert len(firm.messages) == firm_before + 2, [m.plain[:80] for m in firm.messages[firm_before:]]
    assert len(with_subject((m.message for m in relais.smtp.messages), "Rappel")) == 2 * attendees
    assert [r.status for r in await reminders(relais)] == ["sent", "sent"]


@pytest.mark.slow
async def test_reschedule_moves_reminders_and_old_buttons_do_nothing(relais: RunningBot) -> None:
    firm, animator = await filed(relais)
    await propose(animator)
    await press(animator, "Envoyer l'invitation")
    await firm.wait_for_messages(len(firm.messages))
    first_proposal = [m for m in firm.messages if "Proposition de rendez-vous" in m.plain][-1]
    await press(firm, "Je confirme")
    assert len(await reminders(relais)) == 2

    # The animator moves it from /rdv.
    listing = (await say(animator, "/rdv"))[-1]
    assert listing.plain.startswith("RDV à venir (1)")
    assert f"• {SLOT} · Menuiserie Dupont (TI-2026-0001) · confirmé" in listing.plain
    detail = (await press(animator, "03/12 14:30 · Menuiserie Dupont"))[-1]
    assert detail.button_labels() == ["Déplacer", "Annuler le RDV"]
    ask = (await press(animator, "Déplacer"))[-1]
    assert f"prévu {SLOT} : nouvelle date ?" in ask.plain
    await say(animator, "vendredi 4 décembre à 9h")
    recap = (await press(animator, "1 h 30"))[-1]
    assert "Quand : vendredi 4 décembre 2026, 9h–10h30" in recap.plain
    mails_before, firm_before = len(relais.smtp.messages), len(firm.messages)
    moved = (await press(animator, "Envoyer le changement"))[-1]
    assert moved.plain == "📅 RDV déplacé : vendredi 4 décembre 2026, 9h–10h30. Tout le monde est prévenu."
    updates = with_subject(await emails_to(relais.smtp, mails_before + 3), "RDV déplacé")
    assert len(updates) == 3
    event = calendar_of(updates[0]).walk("VEVENT")[0]
    assert int(event["SEQUENCE"]) == 1
    assert event.decoded("DTSTART") == datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
    # Old reminders are cancelled until the firm confirms the new slot.
    assert [r.status for r in await reminders(relais)] == ["cancelled", "cancelled"]
    new_proposal = (await firm.wait_for_messages(firm_before + 1))[-1]
    assert new_proposal.plain.startswith("Rendez-vous déplacé (TI-2026-0001)")
    # The first proposal's "Je confirme" belongs to the old slot: a toast, nothing else.
    assert await relais.answered(firm, firm.press("Je confirme",
                                                  message_id=first_proposal.message_id)) == []
    assert firm.callback_answers[-1].get("text") == "Cette question est déjà passée."
    await press(firm, "Je confirme")
    statuses = [(r.sequence, r.status) for r in await reminders(relais)]
    assert statuses == [(0, "cancelled"), (0, "cancelled"), (1, "pending"), (1, "pending")]
    # The old due time passes: nothing is sent for the old slot.
    firm_before = len(firm.messages)
    relais.clock.now = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
    await settle(relais)
    assert len(firm.messages) == firm_before


@pytest.mark.slow
async def test_cancel_sends_method_cancel_and_drops_reminders(relais: RunningBot) -> None:
    firm, animator = await filed(relais)
    await propose(animator)
    await press(animator, "Envoyer l'invitation")
    await press(firm, "Je confirme")
    await say(animator, "/rdv")
    await press(animator, "03/12 14:30 · Menuiserie Dupont")
    ask = (await press(animator, "Annuler le RDV"))[-1]
    assert ask.plain.startswith(f"Annuler le RDV du {SLOT} avec Menuiserie Dupont ?")
    mails_before, firm_before = len(relais.smtp.messages), len(firm.messages)
    done = (await press(animator, "Oui, annuler le RDV"))[-1]
    assert done.plain == f"RDV du {SLOT} annulé. Tout le monde est prévenu."
    told = (await firm.wait_for_messages(firm_before + 1))[-1]
    assert told.plain == f"Le rendez-vous du {SLOT} (TI-2026-0001) est annulé."
    cancels = with_subject(await emails_to(relais.smtp, mails_before + 3), "RDV annulé")
    assert len(cancels) == 3
    cal = calendar_of(cancels[0])
    assert str(cal["METHOD"]) == "CANCEL"
    assert int(cal.walk("VEVENT")[0]["SEQUENCE"]) == 1
    assert str(cal.walk("VEVENT")[0]["STATUS"]) == "CANCELLED"
    assert [r.status for r in await reminders(relais)] == ["cancelled", "cancelled"]
    relais.clock.now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    await settle(relais)
    assert len(firm.messages) == firm_before + 1
    assert (await say(animator, "/rdv"))[-1].plain == "Aucun RDV à venir sur votre territoire."
    assert (await say(firm, "/mesrdv"))[-1].plain == "Vous n'avez aucun rendez-vous à venir."


@pytest.mark.slow
async def test_weekend_and_holiday_need_a_confirmation(relais: RunningBot) -> None:
    _firm, animator = await filed(relais)
    await press(animator, "Proposer un RDV")
    warning = (await say(animator, "samedi 5 décembre 10h"))[-1]
    assert warning.plain.startswith("Attention, ce créneau tombe un week-end :")
    assert "samedi 5 décembre 2026, 10h–11h" in warning.plain
    assert warning.button_labels() == ["Oui, garder ce créneau", "Changer la date"]
    assert "quand ?" in (await press(animator, "Changer la date"))[-1].plain
    warning = (await say(animator, "25/12 à 21h"))[-1]
    assert "en dehors de 7h–20h, un jour férié (Noël)" in warning.plain
    assert "Combien de temps" in (await press(animator, "Oui, garder ce créneau"))[-1].plain


@pytest.mark.slow
async def test_a_range_sets_the_length_and_an_approximate_hour_is_said(relais: RunningBot) -> None:
    _firm, animator = await filed(relais)
    await press(animator, "Proposer un RDV")
    # A spoken hour from one to seven is asked back, with the same question.
    asked = (await say(animator, "jeudi à trois heures"))[-1]
    assert asked.plain.startswith("3h du matin ou de l'après-midi ?") and "quand ?" in asked.plain
    # "vers": the hour is kept and said; the duration is still asked.
    duration = (await say(animator, "jeudi vers 14h30"))[-1]
    assert duration.plain == ("Heure approximative : je retiens 14h30.\n\n"
                              "Jeudi 3 décembre 2026 à 14h30. Combien de temps dure le RDV ?")
    await press(animator, "Abandonner")
    # A range: start and length from the text, straight to the place.
    await press(animator, "Proposer un RDV")
    place = (await say(animator, "jeudi de 14h à 16h"))[-1]
    assert place.plain.startswith("Créneau noté : jeudi 3 décembre 2026, 14h–16h.")
    assert place.button_labels()[0] == "Dans l'entreprise (Paray-le-Monial)"
    await press(animator, "Dans l'entreprise (Paray-le-Monial)")
    recap = (await press(animator, "Valider"))[-1]
    assert "Quand : jeudi 3 décembre 2026, 14h–16h" in recap.plain
    await press(animator, "Abandonner")
    # A range on a weekend: the warning first, then the place (the length is known).
    await press(animator, "Proposer un RDV")
    warning = (await say(animator, "samedi 5 décembre de 10h à 12h"))[-1]
    assert warning.plain.startswith("Créneau noté : samedi 5 décembre 2026, 10h–12h.")
    assert "tombe un week-end" in warning.plain
    assert "samedi 5 décembre 2026, 10h–12h" in warning.plain.split("\n\n", 1)[1]
    place = (await press(animator, "Oui, garder ce créneau"))[-1]
    assert place.button_labels()[0] == "Dans l'entreprise (Paray-le-Monial)"


@pytest.mark.slow
async def test_firm_asks_for_another_slot_and_the_animator_hears_it(relais: RunningBot) -> None:
    firm, animator = await filed(relais)
    await propose(animator)
    await press(animator, "Envoyer l'invitation")
    animator_before = len(animator.messages)
    ask = (await press(firm, "Proposer un autre créneau"))[-1]
    assert ask.plain.startswith("Quel créneau vous conviendrait ?")
    assert "Menuiserie Dupont demande un autre créneau" in (
        await animator.wait_for_messages(animator_before + 1))[-1].plain
    assert (await say(firm, "ok"))[-1].plain.startswith("Écrivez le créneau")
    reply = (await say(firm, "mardi matin <b>avant 11h</b>"))[-1]
    assert reply.plain.startswith("Merci, je transmets.")
    heard = (await animator.wait_for_messages(animator_before + 2))[-1]
    assert heard.plain == ("🔁 Menuiserie Dupont propose, pour le RDV TI-2026-0001 : "
                           "« mardi matin <b>avant 11h</b> »")
    assert heard.button_labels() == ["Déplacer", "Annuler le RDV"]
    # The firm's next text is an ordinary question again, not another slot.
    assert "autre créneau" not in (await say(firm, "c'est quoi la POEC ?"))[0].plain


@pytest.mark.slow
async def test_only_the_territorys_animator_and_the_firm_can_act(relais: RunningBot) -> None:
    firm, animator = await filed(relais)
    stranger = relais.api.user(6999)
    assert (await say(stranger, "/rdv"))[-1].plain.startswith("Cette commande est réservée")
    assert await relais.answered(stranger, stranger.press_data("mt:new:1")) == []
    assert stranger.callback_answers[-1].get("text", "").startswith("Cette commande est réservée")
    # The firm cannot open a proposal either.
    assert (await say(firm, "/rdv TI-2026-0001"))[-1].plain.startswith("Cette commande est réservée")
    await propose(animator)
    await press(animator, "Envoyer l'invitation")
    # Somebody else pressing the firm's button (forged data) changes nothing.
    assert await relais.answered(stranger, stranger.press_data("mt:ok:1:0")) == []

    def status(session: Session) -> str:
        return session.exec(select(Meeting)).one().status

    assert await relais.services.db.run(status) == "proposed"
    listing = (await say(firm, "/mesrdv"))[-1]
    assert listing.plain.startswith("Vos rendez-vous à venir")
    assert f"• {SLOT} · Dans les locaux de l'entreprise, Paray-le-Monial (TI-2026-0001)" in (
        listing.plain)


@pytest.mark.slow
async def test_annuler_abandons_a_proposal_in_progress(relais: RunningBot) -> None:
    _firm, animator = await filed(relais)
    await press(animator, "Proposer un RDV")
    await say(animator, "jeudi 14h30")
    assert (await say(animator, "/annuler"))[-1].plain == "Proposition de RDV abandonnée."
    # Text is no longer read as a date.
    assert "Combien de temps" not in (await say(animator, "jeudi 15h"))[-1].plain


@pytest.mark.slow
async def test_restart_in_the_due_window_sends_once_or_skips_a_past_meeting(
    api, smtp: SmtpServer, tmp_path, clock: FakeClock
) -> None:
    settings = make_settings(api, tmp_path / "relais.db", **smtp_settings(smtp))
    services = await build_services(settings, clock=clock)
    async with running_bot(services):
        relais = RunningBot(api, services, settings, clock, smtp)
        firm, animator = await filed(relais)
        await propose(animator)
        await press(animator, "Envoyer l'invitation")
        await press(firm, "Je confirme")
    await services.db.dispose()
    # Down while the day-before reminder falls due; the meeting is still ahead.
    firm_before = len(firm.messages)
    clock.now = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    services = await build_services(settings, clock=clock)
    async with running_bot(services):
        relais = RunningBot(api, services, settings, clock, smtp)
        await firm.wait_for_messages(firm_before + 1)
        await settle(relais)
        assert len(firm.messages) == firm_before + 1
        assert [r.status for r in await reminders(relais)] == ["sent", "pending"]
    await services.db.dispose()
    # Down again past the meeting: the 2-hour reminder is skipped, not sent late.
    clock.now = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
    services = await build_services(settings, clock=clock)
    async with running_bot(services):
        relais = RunningBot(api, services, settings, clock, smtp)
        await settle(relais)
        assert len(firm.messages) == firm_before + 1
        rows = await reminders(relais)
        assert [(r.status, r.note) for r in rows] == [("sent", None),
                                                      ("skipped", "RDV déjà commencé")]
    await services.db.dispose()


@pytest.mark.slow
async def test_a_crash_after_sending_never_sends_the_reminder_again(
    api, smtp: SmtpServer, tmp_path, clock: FakeClock
) -> None:
    """The reminder's claim and its messages are one transaction: after it, only the outbox
    delivers them, so a process that dies right after a reminder was sent cannot resend it."""
    settings = make_settings(api, tmp_path / "relais.db", **smtp_settings(smtp),
                             REMINDER_OFFSETS="3m")
    services = await build_services(settings, clock=clock)
    async with running_bot(services):
        relais = RunningBot(api, services, settings, clock, smtp)
        firm, animator = await filed(relais)
        await propose(animator)
        await press(animator, "Envoyer l'invitation")
        await press(firm, "Je confirme")
        [row] = await reminders(relais)
        assert row.offset_minutes == 3
        assert row.due_at == datetime(2026, 12, 3, 13, 27, tzinfo=UTC)
        firm_before = len(firm.messages)
        clock.now = datetime(2026, 12, 3, 13, 27, 30, tzinfo=UTC)
        await firm.wait_for_messages(firm_before + 1)
    # "Crash": the outbox row is delivered; restart with the reminder row already sent.
    await services.db.dispose()
    services = await build_services(settings, clock=clock)
    async with running_bot(services):
        relais = RunningBot(api, services, settings, clock, smtp)
        await settle(relais)
        fired = await relais.services.db.run(
            lambda session: services.meetings.fire_due(session, now=clock()))  # type: ignore[union-attr]
        assert fired.sent == 0
        assert len(firm.messages) == firm_before + 1

        def reminder_rows(session: Session) -> int:
            return len([o for o in session.exec(select(Outbox)) if "Rappel" in str(o.payload)])

        assert await relais.services.db.run(reminder_rows) == 1 + 3  # Telegram + 3 emails
    await services.db.dispose()


@pytest.mark.slow
async def test_unknown_need_reference_and_closed_need(relais: RunningBot) -> None:
    firm, animator = await filed(relais)
    assert (await say(animator, "/rdv TI-2026-9999"))[-1].plain == (
        "Je ne trouve pas la demande TI-2026-9999.")
    prompt = (await say(animator, "/rdv ti-2026-0001"))[-1]
    assert prompt.plain.startswith("RDV avec Menuiserie Dupont (TI-2026-0001) : quand ?")
    await press(animator, "Abandonner")
    await press(animator, "Clore")
    await press(animator, "Aidée")
    assert (await say(animator, "/rdv TI-2026-0001"))[-1].plain == (
        "Cette demande est close : pas de nouveau RDV.")
    assert firm is not None


def test_reminder_offsets_setting() -> None:
    from bot.config import parse_offsets

    assert parse_offsets("24h,2h") == (timedelta(hours=24), timedelta(hours=2))
    assert parse_offsets(" 3m , 1d, 3m") == (timedelta(days=1), timedelta(minutes=3))
    for bad in ("", "2x", "-1h", "0m", "h"):
        try:
            parse_offsets(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")


def test_reminder_times_across_daylight_saving_changes() -> None:
    """A day-before reminder keeps the wall-clock time; hours are real durations."""
    from zoneinfo import ZoneInfo

    from bot.config import DEFAULT_TERRITORIES_DIR
    from bot.services.meetings import MeetingService
    from knowledge.geography import default_geography
    from knowledge.territories import load_territories

    paris = ZoneInfo("Europe/Paris")
    service = MeetingService(load_territories(DEFAULT_TERRITORIES_DIR,
                                              geography=default_geography()),
                             tz=paris, mail_domain="relais.example.org")
    spring = datetime(2027, 3, 28, 10, 0, tzinfo=paris)  # first day of summer time
    autumn = datetime(2027, 10, 31, 10, 0, tzinfo=paris)  # first day of winter time
    day, two_hours = timedelta(hours=24), timedelta(hours=2)
    assert service.due_time(spring, day) == datetime(2027, 3, 27, 9, 0, tzinfo=UTC)  # 10:00 CET
    assert service.due_time(spring, day).astimezone(paris).hour == 10
    assert service.due_time(autumn, day) == datetime(2027, 10, 30, 8, 0, tzinfo=UTC)  # 10:00 CEST
    assert service.due_time(spring, two_hours) == datetime(2027, 3, 28, 6, 0, tzinfo=UTC)
    # 03:30 on the spring day is 1h30 of real time after 01:00: 2 hours before is 00:30.
    early = datetime(2027, 3, 28, 3, 30, tzinfo=paris)
    assert service.due_time(early, two_hours).astimezone(paris) == datetime(
        2027, 3, 28, 0, 30, tzinfo=paris)


def _meetings_due(session: Session, first: int, count: int, due: datetime, now: datetime, *,
                  firms: list[SimUser] | None = None) -> None:
    """`count` confirmed meetings (ids from `first`), each with a reminder due at `due`;
    with `firms`, each firm is invited (its chat) and one partner attends by email."""
    for i, n in enumerate(range(first, first + count)):
        firm = firms[i] if firms is not None else None
        session.execute(insert(Need), [{
            "id": n, "reference": f"TI-2026-{n:04d}", "status": "in_progress",
            "channel": "telegram", "theme": "recrutement", "urgency": "month",
            "contact_method": "telegram", "commune_insee": "71342",
            "territory_id": "ti-2703", "created_at": now, "updated_at": now}])
        session.execute(insert(Meeting), [{
            "id": n, "uid": f"rdv-{n}@relais.example.org", "need_id": n,
            "territory_id": "ti-2703", "start_at": due + timedelta(hours=2),
            "end_at": due + timedelta(hours=3), "status": "confirmed", "sequence": 0,
            "organizer_name": "Claire Martin", "firm_invited": firm is not None,
            "firm_chat_id": firm.user_id if firm is not None else None,
            "created_at": now, "updated_at": now}])
        if firm is not None:
            session.execute(insert(MeetingAttendee), [{
                "meeting_id": n, "kind": "partner", "partner_id": "p", "name": "Partenaire",
                "email": f"partenaire-{i}@example.org"}])
        session.execute(insert(Reminder), [{
            "meeting_id": n, "sequence": 0, "offset_minutes": 120, "due_at": due,
            "status": "pending"}])


async def test_a_burst_is_fired_ahead_by_what_telegrams_rate_needs(relais: RunningBot) -> None:
    """50 reminders due in 10 s wait for their time; 300 leave now (12 s at 25/s)."""
    services, now = relais.services, relais.clock()
    meetings = services.meetings
    assert meetings is not None
    scheduler = ReminderScheduler(services.db, meetings, relais.clock, send_rate=25.0,
                                  max_lead=120.0)

    async def add(first: int, count: int, due: datetime) -> None:
        await services.db.run(lambda session: _meetings_due(session, first, count, due, now))

    await add(9000, 50, now + timedelta(seconds=10))
    assert (await scheduler.run_due()).sent == 0  # 2 s of sending: no need to start early
    await add(9050, 250, now + timedelta(seconds=10))
    await add(9300, 1, now + timedelta(seconds=30))
    # 12 s of sending: they leave now. The bot's own scheduler may fire a batch of them at
    # the same moment (batches run in the database's worker thread), so the rows say it.
    assert (await scheduler.run_due()).sent > 0
    mine = [r for r in await reminders(relais) if r.meeting_id >= 9000]
    assert sorted(r.meeting_id for r in mine if r.status == "pending") == [9300]
    assert sum(r.status == "sent" for r in mine) == 300


async def _fire_a_burst_ahead(relais: RunningBot) -> tuple[datetime, list[SimUser]]:
    """60 meetings (ids 9000…) whose reminders fall due in 10 s, fired now for Telegram's
    rate (5 per second: 12 s of sending); returns the due time and the firms."""
    services, now = relais.services, relais.clock()
    meetings = services.meetings
    assert meetings is not None
    # 60 reminders at 5 per second: 12 s of sending, so the burst fires now.
    scheduler = ReminderScheduler(services.db, meetings, relais.clock, send_rate=5.0,
                                  max_lead=120.0)
    due = now + timedelta(seconds=10)
    firms = [relais.api.user(7000 + n, f"Firme {n}") for n in range(60)]
    for firm in firms:
        firm.started = True  # they opened the bot when they filed their needs

    def work(session: Session) -> None:
        _meetings_due(session, 9000, len(firms), due, now, firms=firms)

    await services.db.run(work)
    await scheduler.run_due()
    return due, firms


async def test_a_burst_fired_ahead_holds_its_emails_until_their_due_time(
    relais: RunningBot, smtp: SmtpServer
) -> None:
    """Fired 12 s early for Telegram's rate, the firms' messages leave at once, but the
    partners' emails wait in the outbox until `EMAIL_EARLY` (1 s) before their due time."""
    services, now = relais.services, relais.clock()
    due, firms = await _fire_a_burst_ahead(relais)

    def written(session: Session) -> list[Outbox]:
        return [o for o in session.exec(select(Outbox).order_by(col(Outbox.id)))
                if "Rappel" in str(o.payload)]

    rows = await services.db.run(written)
    assert sorted(o.channel for o in rows) == ["email"] * 60 + ["telegram"] * 60
    # Every reminder is fired (the bot's own ticks may have fired some of them first).
    assert all(r.status == "sent" for r in await reminders(relais) if r.meeting_id >= 9000)
    assert {o.not_before for o in rows if o.channel == "email"} == {due - EMAIL_EARLY}
    assert all(o.not_before <= relais.clock() for o in rows if o.channel == "telegram")
    # The Telegram side leaves now; no email can be claimed before its time.
    for firm in firms:
        await firm.wait_for_messages(1)
    assert await outbox.claim_raw(services.db, due - EMAIL_EARLY - timedelta(milliseconds=1),
                                  channel="email") == []
    assert await outbox.next_due(services.db, now, channel="email") == pytest.approx(
        (due - EMAIL_EARLY - now).total_seconds())
    # Their time comes: the email workers send every one of them, once.
    relais.clock.now = due - EMAIL_EARLY

    async def all_sent() -> bool:
        return len(smtp.messages) >= 60

    await wait_until(all_sent, "the 60 reminder emails")
    await relais.drained()
    assert sorted(str(m.message["To"]) for m in smtp.messages) == sorted(
        f"Partenaire <partenaire-{n}@example.org>" for n in range(60))


async def test_a_meeting_cancelled_after_its_burst_fired_sends_no_held_reminder(
    relais: RunningBot, smtp: SmtpServer
) -> None:
    """The burst fired ahead, its emails wait; the animator cancels one meeting meanwhile:
    its partner gets the cancellation, never the reminder of a meeting that will not be."""
    services = relais.services
    meetings = services.meetings
    assert meetings is not None
    due, firms = await _fire_a_burst_ahead(relais)
    for firm in firms:
        await firm.wait_for_messages(1)
    now = relais.clock()
    await services.db.run(lambda session: meetings.on_button(
        session, ANIMATOR_ID, ANIMATOR_ID, "mt:cancelok:9000", now=now))
    relais.clock.now = due - EMAIL_EARLY

    async def all_sent() -> bool:
        return len(smtp.messages) >= 60  # 59 reminders and the cancellation

    await wait_until(all_sent, "the 59 reminder emails and the cancellation")
    await relais.drained()
    to_first = [m for m in smtp.messages if "partenaire-0@" in str(m.message["To"])]
    assert len(to_first) == 1 and "Rappel" not in str(to_first[0].message["Subject"])
    assert len(smtp.messages) == 60
