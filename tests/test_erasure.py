"""Being forgotten: one erasure, whichever way the person asks, table by table.

Two firms leave a trace in every table (a need each, taken and closed by the animator,
rated with a comment, emails from the firm and a partner with an attachment, a meeting with
the firm's note and its reminders, a question to the knowledge base, a form in progress, a
draft, cached directory answers, messages of both channels delivered and waiting, webhook
updates...). One of them asks to be forgotten on Telegram, by email, or through the CLI.
Then every table of the schema is read: nothing of that person may remain, nothing of the
other may be gone, and the erased need still counts in the statistics.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select as core_select
from sqlmodel import Session, SQLModel, col, select

import storage.models  # noqa: F401  (registers every table)
from bot.runtime import build_services, running_bot
from storage.models import (
    AnimatorBinding,
    ChatDraft,
    DeadLetter,
    DigestRun,
    FirmLookup,
    HeldMessage,
    InboundEmail,
    MailEraseConfirm,
    Meeting,
    MeetingAttendee,
    Need,
    NeedAttachment,
    NeedMessage,
    Outbox,
    PendingUpdate,
    RadarApart,
    RadarConsent,
    RadarMark,
    Reminder,
)
from testing.botapi import LocalBotAPI, SimUser
from testing.imap import ImapServer
from testing.pg import fresh_database
from testing.smtp import SmtpServer
from tests.conftest import FakeClock, RunningBot, imap_settings, make_settings, smtp_settings
from tests.helpers import press, say

# End-to-end through real processes and servers: not in the fast lane.
pytestmark = pytest.mark.slow

ANIMATOR_ID = 900000001
PARTNER = "ft-paray-le-monial@example.org"
Row = Mapping[str, Any]
Tables = dict[str, list[dict[str, Any]]]


@dataclass
class Person:
    """A firm's owner, and every string that would betray them."""

    chat: int
    first_name: str
    last_name: str
    firm: str
    email: str  # as they type it: mixed case, compared case-insensitively
    phone: str
    siret: str
    description: str
    # Words of the description found nowhere else.
    words: tuple[str, ...]
    need_id: int = 0
    reference: str = ""
    token: str = ""
    meetings: set[int] = field(default_factory=set)

    def markers(self) -> list[str]:
        """Lowercase strings: any of them in a row is a trace of this person."""
        return [self.last_name.lower(), self.email.lower(), self.phone,
                self.phone.replace(" ", ""), self.siret, self.siret[:9], str(self.chat),
                *(w.lower() for w in self.words)]


JEAN = Person(chat=730155501, first_name="Jean", last_name="Zyxwv", firm="Métallerie Zyxwv",
              email="Jean.Zyxwv@Zyxwv-Metal.fr", phone="06 11 22 33 44",
              siret="48392017900007",
              description="Notre cabine de thermolaquage doit être remplacée avant l'hiver, "
                          "nous cherchons un peintre industriel.",
              words=("thermolaquage",))
ANNE = Person(chat=730155502, first_name="Anne", last_name="Qwertz", firm="Fonderie Qwertz",
              email="Anne.Qwertz@Qwertz-Guss.fr", phone="07 99 88 77 66",
              siret="51928374100006",
              description="Nous cherchons deux fondeurs pour la coulée sous pression de nos "
                          "carters en magnésium.",
              words=("magnésium",))


# --- every table, declared ---------------------------------------------------------------
def _by_need(row: Row, person: Person, _tables: Tables) -> bool:
    return row["need_id"] == person.need_id


def _by_meeting(row: Row, person: Person, _tables: Tables) -> bool:
    return row["meeting_id"] in person.meetings


def _by_chat(column: str) -> Callable[[Row, Person, Tables], bool]:
    return lambda row, person, _tables: row[column] == person.chat


def _outbox_row(row: Row, person: Person, _tables: Tables) -> bool:
    return (row["recipient"] in (str(person.chat), person.email.lower(), person.email)
            or (row["payload"] or {}).get("need_id") == person.need_id)


# Tables that hold a person's data, and how to tell a row of theirs.
CHECKED: dict[str, Callable[[Row, Person, Tables], bool]] = {
    "need": lambda row, person, _tables: row["id"] == person.need_id,
    "need_event": _by_need,
    "need_routing": _by_need,
    "need_message": _by_need,
    "need_attachment": _by_need,
    "satisfaction": _by_need,
    "radar_consent": _by_need,
    "mail_erase_confirm": _by_need,
    "meeting": _by_need,
    "meeting_attendee": _by_meeting,
    "reminder": _by_meeting,
    "inbound_email": _by_need,
    "consent": _by_chat("user_id"),
    "conversation": _by_chat("chat_id"),
    "chat_draft": _by_chat("chat_id"),
    "kb_query": _by_chat("chat_id"),
    "pending_update": _by_chat("chat_id"),
    "dead_letter": _by_chat("chat_id"),
    "firm_lookup": lambda row, person, _tables: row["key"] == f"siret:{person.siret}",
    "outbox": _outbox_row,
    "held_message": _by_need,
}
# Tables that hold nothing personal (they are searched for traces all the same).
NOTHING_PERSONAL: dict[str, str] = {
    "processed_update": "update ids and when they were handled",
    "need_sequence": "the last reference number of each year",
    "digest_run": "which periodic job ran for which period",
    "radar_mark": "a territory's mutualisation groups, by key",
    "radar_apart": "pairs of need ids the animator separated",
}
# Tables about the territory's staff, not about firms (an animator's own erasure empties
# them: tests/test_animator_invite.py).
STAFF: dict[str, str] = {
    "animator_binding": "the Telegram account each animator's invitation bound",
}


# --- the bot, with its mailbox -----------------------------------------------------------
@pytest.fixture
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The bot's database: a SQLite file, or a throwaway PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/relais.db"
        return
    async with fresh_database() as url:
        yield url


@pytest.fixture
async def bot(api: LocalBotAPI, smtp: SmtpServer, imap: ImapServer, database: str,
              tmp_path: Path, clock: FakeClock) -> AsyncIterator[RunningBot]:
    """The real bot: Telegram through the Bot API double, email through IMAP and SMTP."""
    settings = make_settings(
        api, tmp_path / "relais.db", **smtp_settings(smtp), DATABASE_URL=database,
        **imap_settings(imap))
    services = await build_services(settings, clock=clock)
    async with running_bot(services):
        yield RunningBot(api, services, settings, clock, smtp)
    await services.db.dispose()


async def cli(bot: RunningBot, *args: str) -> subprocess.CompletedProcess[str]:
    """`relais …` in its own process, on the bot's database."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_"))}
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "bot.cli", *args], capture_output=True,
        text=True, env={**base, "DATABASE_URL": bot.settings.database_url}, timeout=120,
        check=False)


async def until(condition: Callable[[], Any], what: str, within: float = 20.0) -> Any:
    """Poll `condition` (sync or async) until it returns something truthy."""
    for _ in range(int(within / 0.05)):
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def drained(bot: RunningBot) -> None:
    """Wait until every message due now is delivered (or given up)."""
    def waiting(session: Session) -> int:
        return len(session.exec(select(Outbox).where(
            col(Outbox.delivered_at).is_(None), col(Outbox.failed_at).is_(None),
            col(Outbox.not_before) <= bot.clock.now)).all())

    async def empty() -> bool:
        return await bot.services.db.run(waiting) == 0

    await until(empty, "the outbox to drain")


async def snapshot(bot: RunningBot) -> Tables:
    """Every row of every table of the schema, as plain dicts."""
    def work(session: Session) -> Tables:
        return {table.name: [dict(r) for r in session.execute(core_select(table)).mappings()]
                for table in SQLModel.metadata.sorted_tables}

    return await bot.services.db.run(work)


def text_of(row: Row, *, skip: tuple[str, ...] = ()) -> str:
    """Everything a row says, lowercase: text, JSON, bytes and numbers."""
    parts = []
    for key, value in row.items():
        if value is None or key in skip:
            continue
        if isinstance(value, dict | list):
            parts.append(json.dumps(value, ensure_ascii=False))
        elif isinstance(value, bytes):
            parts.append(value.decode("utf-8", "replace"))
        else:
            parts.append(str(value))
    return "\n".join(parts).lower()


# --- two firms leave a trace everywhere --------------------------------------------------
async def firm_on_telegram(bot: RunningBot, person: Person) -> SimUser:
    """Consent, the whole intake (contact by email), then the need is routed."""
    user = bot.api.user(person.chat, person.first_name)
    replies = await say(user, "/start")
    if "J'accepte" in replies[-1].button_labels():
        await press(user, "J'accepte")
    await say(user, person.siret)
    await say(user, person.firm)
    await say(user, "Paray-le-Monial")
    await press(user, "Recruter")
    await say(user, person.description)
    await press(user, "Dans le mois")
    await press(user, "Par e-mail")
    await say(user, person.email)
    done = (await press(user, "Envoyer la demande"))[-1]
    assert "TI-2026-" in done.plain

    def need(session: Session) -> Need:
        return session.exec(select(Need).where(Need.telegram_user_id == person.chat)).one()

    row = await bot.services.db.run(need)
    assert row.id is not None and row.reply_token is not None
    person.need_id, person.reference, person.token = row.id, row.reference, row.reply_token
    return user


async def taken_closed_and_rated(bot: RunningBot, animator: SimUser, user: SimUser,
                                 person: Person) -> None:
    """The animator takes the need, closes it as helped; the firm rates it and comments."""
    await animator.replies_after(animator.press_data(f"ani:take:{person.need_id}"))
    await animator.replies_after(animator.press_data(f"ani:closed:{person.need_id}:helped"))
    await until(lambda: any("4" in m.button_labels() for m in user.messages), "the rating")
    await press(user, "4")
    await say(user, f"Très bon accompagnement, merci. {person.first_name} {person.last_name}")


async def a_form_in_progress_and_a_question(user: SimUser, person: Person) -> None:
    """A second intake left at the name, and a question to the knowledge base meanwhile."""
    await say(user, "/start")
    await say(user, person.siret)
    await say(user, f"Quelles aides pour embaucher chez {person.firm} ?")


def rows_of(person: Person, now: datetime) -> list[SQLModel]:
    """What the email channel, meetings, the radar and webhooks leave about a person."""
    later = now + timedelta(days=7)
    card = (f"Nouvelle demande {person.reference}\n{person.firm} · SIRET {person.siret}\n"
            f"{person.description}\nContact : {person.email}")
    firm_mail = (f"From: {person.first_name} {person.last_name} <{person.email}>\r\n"
                 f"Subject: Re: [{person.reference}] fiche de poste\r\n\r\n"
                 f"Voici la fiche de poste. Appelez-moi au {person.phone}.\r\n").encode()
    partner_mail = (f"From: {PARTNER}\r\nSubject: RE: [{person.reference}] {person.firm}\r\n"
                    f"\r\nJe m'en occupe.\r\n> {person.description}\r\n").encode()
    firm_in = InboundEmail(message_id=make_msgid(domain=person.email.split("@")[1]),
                           from_addr=person.email, subject=f"Re: [{person.reference}] "
                           "fiche de poste", raw=firm_mail, status="processed",
                           kind="firm_reply", need_id=person.need_id, received_at=now)
    partner_in = InboundEmail(message_id=make_msgid(domain="example.org"), from_addr=PARTNER,
                              subject=f"RE: [{person.reference}] {person.firm}",
                              raw=partner_mail, status="processed", kind="partner_reply",
                              need_id=person.need_id, received_at=now)
    update = {"update_id": 0, "message": {
        "message_id": 7, "date": 0, "text": f"Mon numéro : {person.phone}",
        "from": {"id": person.chat, "is_bot": False, "first_name": person.first_name,
                 "last_name": person.last_name},
        "chat": {"id": person.chat, "type": "private", "first_name": person.first_name}}}
    pressed = {"update_id": 0, "callback_query": {
        "id": "1", "data": f"ani:show:{person.need_id}", "chat_instance": "1",
        "from": {"id": ANIMATOR_ID, "is_bot": False, "first_name": "Claire"},
        "message": {"message_id": 3, "date": 0, "text": card,
                    "chat": {"id": ANIMATOR_ID, "type": "private"}}}}
    base = 900_000_000 + person.chat % 1000 * 10
    return [
        firm_in, partner_in,
        FirmLookup(key=f"siret:{person.siret}", found=True, fetched_at=now, payload={
            "siren": person.siret[:9], "siret": person.siret, "name": person.firm.upper()}),
        ChatDraft(chat_id=person.chat, user_id=person.chat, kind="sat_comment", step="comment",
                  data={"need_id": person.need_id}, updated_at=now),
        RadarConsent(need_id=person.need_id, group_key="recrutement-71", answer="yes", at=now),
        PendingUpdate(update_id=base + 1, chat_id=person.chat, payload={**update,
                      "update_id": base + 1}, received_at=now, done_at=now),
        PendingUpdate(update_id=base + 2, chat_id=person.chat, payload={**update,
                      "update_id": base + 2}, received_at=now),
        DeadLetter(source="webhook", update_id=str(2**70 + base), chat_id=person.chat,
                   fields="message,update_id", reason="update_id hors limites",
                   received_at=now),
        PendingUpdate(update_id=base + 3, chat_id=ANIMATOR_ID, payload={**pressed,
                      "update_id": base + 3}, received_at=now, done_at=now),
        PendingUpdate(update_id=base + 4, chat_id=ANIMATOR_ID, payload={**pressed,
                      "update_id": base + 4}, received_at=now),
        # Waiting for next week: an invitation to the firm, a reminder on Telegram.
        Outbox(channel="email", recipient=person.email, created_at=now, not_before=later,
               payload={"need_id": person.need_id, "email": {
                   "to": [f"{person.first_name} {person.last_name} <{person.email}>"],
                   "subject": f"[{person.reference}] Invitation", "text": card,
                   "html": card}}),
        Outbox(channel="telegram", recipient=str(person.chat), created_at=now,
               not_before=later, payload={"text": f"Rappel : RDV pour {person.firm}"}),
        # The card of an animator Telegram could not reach, kept for their /start.
        HeldMessage(territory_id="ti-2703", email="claire.martin@example.org",
                    source=f"outbox:{base}", need_id=person.need_id, created_at=now,
                    payload={"blocks": [{"p": [[card]]}]}),
        # An erasure asked by email two days ago, never confirmed.
        MailEraseConfirm(need_id=person.need_id, created_at=now - timedelta(days=2),
                         expires_at=now + timedelta(days=5),
                         token_hash=hashlib.sha256(person.email.encode()).hexdigest()),
    ]


def more_rows_of(person: Person, now: datetime, inbound: list[int]) -> list[SQLModel]:
    """Rows that refer to ids of the first batch (emails, meeting)."""
    firm_in, partner_in = inbound[:2]
    return [
        NeedMessage(need_id=person.need_id, inbound_id=firm_in, author_kind="firm",
                    author=person.email, at=now,
                    text=f"Voici la fiche de poste. Appelez-moi au {person.phone}."),
        NeedMessage(need_id=person.need_id, inbound_id=partner_in, author_kind="partner",
                    author=PARTNER, at=now, text=f"Je m'en occupe.\n> {person.description}"),
        NeedAttachment(need_id=person.need_id, inbound_id=firm_in, at=now,
                       filename=f"fiche-{person.last_name.lower()}.pdf",
                       content_type="application/pdf", size=40,
                       data=f"%PDF-1.4 {person.firm} {person.siret}".encode()),
    ]


def meeting_of(person: Person, territory_id: str | None, now: datetime) -> Meeting:
    """A confirmed meeting next week at the firm, with its note."""
    start = now + timedelta(days=7)
    return Meeting(uid=f"meeting-{person.need_id}@relais.example.org", need_id=person.need_id,
                   territory_id=territory_id, start_at=start,
                   end_at=start + timedelta(hours=1), status="confirmed",
                   place=f"Atelier {person.firm}, 3 rue des Forges, Paray-le-Monial",
                   organizer_name="Claire Martin", organizer_email="claire.martin@example.org",
                   organizer_telegram_id=ANIMATOR_ID, firm_chat_id=person.chat,
                   firm_note=f"Rappelez-moi au {person.phone} avant.", created_at=now,
                   updated_at=now)


async def leave_traces(bot: RunningBot) -> None:
    """The rows no Telegram flow writes here: emails, meetings, radar, webhooks, cache."""
    now = bot.clock.now

    def work(session: Session) -> None:
        for person in (JEAN, ANNE):
            need = session.get(Need, person.need_id)
            assert need is not None
            need.firm = {"siren": person.siret[:9], "siret": person.siret,
                         "name": person.firm.upper(), "naf": "25.61Z"}
            session.add(need)
            rows = rows_of(person, now)
            session.add_all(rows)
            session.flush()
            session.add_all(more_rows_of(person, now, [r.id for r in rows[:2]]))  # type: ignore[attr-defined]
            meeting = meeting_of(person, need.territory_id, now)
            session.add(meeting)
            session.flush()
            assert meeting.id is not None
            person.meetings = {meeting.id}
            session.add(MeetingAttendee(meeting_id=meeting.id, kind="partner",
                                        partner_id="ft-paray", name="France Travail Paray",
                                        email=PARTNER))
            for minutes in (1440, 120):
                session.add(Reminder(meeting_id=meeting.id, offset_minutes=minutes,
                                     due_at=meeting.start_at - timedelta(minutes=minutes)))
        # One message waiting for the animator names both firms: only one of them goes.
        session.add(Outbox(channel="telegram", recipient=str(ANIMATOR_ID), created_at=now,
                           not_before=now + timedelta(days=7), payload={
                               "text": f"Cette semaine :\n• {JEAN.firm} ({JEAN.reference})\n"
                                       f"• {ANNE.firm} ({ANNE.reference})"}))
        # The directory's spelling: capitals, accented ones too.
        session.add(Outbox(channel="telegram", recipient=str(ANIMATOR_ID), created_at=now,
                           not_before=now + timedelta(days=7), payload={
                               "text": f"Jeudi : {JEAN.firm.upper()}, {ANNE.firm.upper()}"}))
        session.add(RadarMark(territory_id="t1", group_key="recrutement-71", status="proposed",
                              at=now))
        # The animator set the two needs apart: ids only, it stays.
        for need_id in (JEAN.need_id, ANNE.need_id):
            session.add(RadarApart(territory_id="t1", set_key="aside-0123456789abcdef",
                                   need_id=need_id, at=now))
        session.add(DigestRun(kind="territory:t1", period="2026-W48", ran_at=now))
        session.add(AnimatorBinding(territory_id="ti-2703", email="claire.martin@example.org",
                                    telegram_user_id=ANIMATOR_ID, bound_at=now))

    await bot.services.db.run(work)


# --- the three ways of asking -------------------------------------------------------------
def erase_request(person: Person) -> bytes:
    """"Supprimer mes données", answered to the need's own address, in mixed case."""
    mail = EmailMessage()
    mail["From"] = f"{person.first_name} {person.last_name} <{person.email.lower()}>"
    mail["To"] = f"relais+{person.token}@relais.example.org"
    mail["Subject"] = "Re: mes données"
    mail["Message-ID"] = make_msgid(domain="mail.example.net")
    mail.set_content("Bonjour,\nMerci de supprimer mes données.\n")
    return mail.as_bytes()


def confirmation(person: Person, asked: EmailMessage) -> bytes:
    """"Oui", answered to the one-time address of the email asking to confirm."""
    mail = EmailMessage()
    mail["From"] = person.email.lower()
    mail["To"] = asked["Reply-To"].addresses[0].addr_spec
    mail["Subject"] = f"Re: {asked['Subject']}"
    mail["Message-ID"] = make_msgid(domain="mail.example.net")
    mail["In-Reply-To"] = asked["Message-ID"]
    mail.set_content("Oui\n")
    return mail.as_bytes()


async def ask_to_be_forgotten(way: str, bot: RunningBot, user: SimUser,
                              imap: ImapServer) -> None:
    """The person asks, and what the bot answers is delivered."""
    if way == "telegram":
        await say(user, "/supprimer")
        assert "effacées" in (await press(user, "Oui, tout effacer"))[-1].plain
    elif way == "email":
        imap.deliver(erase_request(JEAN))

        def asked() -> list[EmailMessage]:
            return [m.message for m in bot.smtp.messages
                    if JEAN.email.lower() in (r.lower() for r in m.rcpt_tos)
                    and "écrivant simplement : OUI"
                    in m.message.get_body(("plain",)).get_content()]

        await until(lambda: bool(asked()), "the email asking to confirm")
        imap.deliver(confirmation(JEAN, asked()[0]))

        def confirmed() -> bool:
            return any(JEAN.email.lower() in (r.lower() for r in m.rcpt_tos)
                       and "vos données personnelles sont effacées"
                       in m.message.get_body(("plain",)).get_content()
                       for m in bot.smtp.messages)

        await until(confirmed, "the confirmation email")
    else:
        done = await cli(bot, "privacy", "erase", "--telegram-id", str(JEAN.chat))
        assert done.returncode == 0, done.stderr
        assert "Effacé : 1 demande anonymisée" in done.stdout
    await drained(bot)


@pytest.mark.parametrize(("way", "database"), [
    ("telegram", "sqlite"), ("email", "sqlite"), ("cli", "sqlite"),
    # The same statements on PostgreSQL (JSON operators, LIKE over JSON text).
    ("telegram", "postgresql"),
], indirect=["database"])
async def test_erasure_leaves_nothing_of_the_person_and_all_of_the_other(
    way: str, bot: RunningBot, imap: ImapServer
) -> None:
    animator = bot.api.user(ANIMATOR_ID, "Claire")
    await say(animator, "/aide")
    users = {p.chat: await firm_on_telegram(bot, p) for p in (JEAN, ANNE)}
    for person in (JEAN, ANNE):
        await taken_closed_and_rated(bot, animator, users[person.chat], person)
    for person in (JEAN, ANNE):
        await a_form_in_progress_and_a_question(users[person.chat], person)
    await drained(bot)
    await leave_traces(bot)
    before = await snapshot(bot)

    # Every table is declared, filled, and holds rows of both people where it is personal.
    for name, rows in before.items():
        assert name in CHECKED or name in NOTHING_PERSONAL or name in STAFF, \
            f"declare the new table {name}"
        assert rows, f"the test leaves no row in {name}"
        if name in CHECKED:
            for person in (JEAN, ANNE):
                assert any(CHECKED[name](r, person, before) for r in rows), (name, person.firm)
    for person in (JEAN, ANNE):
        assert any(m in text_of(r) for rows in before.values() for r in rows
                   for m in person.markers())

    bot.clock.advance(minutes=5)
    erased_at = bot.clock.now
    await ask_to_be_forgotten(way, bot, users[JEAN.chat], imap)
    after = await snapshot(bot)

    # Nothing of Jean, in any table. The answer to his request goes to him: it may carry his
    # address, and nothing else of his.
    for name, rows in after.items():
        for row in rows:
            confirmation = (name == "outbox" and row["created_at"] >= erased_at
                            and _outbox_row(row, JEAN, after))
            text = text_of(row, skip=("recipient",) if confirmation else ())
            if confirmation:
                text = text.replace(JEAN.email.lower(), "")
            found = [m for m in JEAN.markers() if m in text]
            assert not found, f"{name} keeps {found}: {row}"

    # All of Anne, unchanged, and every trace of her still where it was.
    for name, predicate in CHECKED.items():
        mine = [r for r in before[name] if predicate(r, ANNE, before)]
        assert mine == [r for r in after[name] if predicate(r, ANNE, after)], name
    for name in before:
        for marker in ANNE.markers():
            count = sum(marker in text_of(r) for r in before[name])
            assert count == sum(marker in text_of(r) for r in after[name]), (name, marker)

    # Jean's need still counts: theme, place, status and dates are kept, the rating too.
    [need] = [r for r in after["need"] if r["id"] == JEAN.need_id]
    [old] = [r for r in before["need"] if r["id"] == JEAN.need_id]
    kept = ("reference", "theme", "commune_insee", "epci_siren", "territory_id", "status",
            "channel", "created_at")
    assert {k: need[k] for k in kept} == {k: old[k] for k in kept}
    assert need["anonymized_at"] is not None and old["status"] == "closed_helped"
    assert [(r["score"], r["comment"]) for r in after["satisfaction"]
            if r["need_id"] == JEAN.need_id] == [(4, None)]
    assert len(after["need_event"]) >= len(before["need_event"])

    # Asking again (by the CLI, with both identities) finds at most the answer to the
    # request, then nothing at all.
    again = await cli(bot, "privacy", "erase", "--telegram-id", str(JEAN.chat),
                      "--email", JEAN.email)
    assert again.returncode == 0, again.stderr
    assert "demande anonymisée" not in again.stdout
    last = await cli(bot, "privacy", "erase", "--telegram-id", str(JEAN.chat),
                     "--email", JEAN.email.upper())
    assert last.stdout.strip() == (
        "Rien à effacer : aucune donnée de cette personne n'est enregistrée.")
    final = await snapshot(bot)
    assert not [r for r in final["outbox"] if _outbox_row(r, JEAN, final)]
