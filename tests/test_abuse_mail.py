"""Limits against abuse on the email channel: a real IMAP mailbox, SMTP server and bot.

Twenty strangers' emails (forged senders: the replies would go to third parties) make a few
needs, one automatic reply per address, and two pings for the chef de projet, not twenty
of each. A helpdesk that answers every message without the Auto-Submitted header stops
ping-ponging with Relais after one answer in the thread, and a thread that keeps receiving
is set aside by the loop breaker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlmodel import select

from bot.runtime import build_services, running_bot
from storage.models import InboundEmail, Need
from testing.botapi import LocalBotAPI
from testing.clock import FakeClock
from testing.imap import ImapServer
from testing.smtp import Received, SmtpServer
from tests.conftest import RunningBot, imap_settings, make_settings, smtp_settings, wait_until
from tests.helpers import say
from tests.test_email_channel import OUR_MX, message

ANIMATOR_ID = 900000001
PARTNERS = ("ft-paray-le-monial@example.org", "opco2i-bfc@example.org")
NEED_MAIL = ("Bonjour,\n\nNous cherchons à recruter deux soudeurs qualifiés pour notre atelier de "
             "Paray-le-Monial.\n\nCordialement")


@pytest.fixture
async def mail_bot(api: LocalBotAPI, smtp: SmtpServer, imap: ImapServer, tmp_path: Path,
                   clock: FakeClock) -> AsyncIterator[RunningBot]:
    """The bot reading its mailbox, with at most 5 needs an hour by email overall."""
    settings = make_settings(
        api, tmp_path / "relais.db", **smtp_settings(smtp), **imap_settings(imap),
        RELAIS_LIMIT_MAIL_NEEDS_PER_HOUR_TOTAL=5,
        MAIL_AUTHSERV_ID=OUR_MX)
    services = await build_services(settings, clock=clock)
    async with running_bot(services) as (application, _stop, _polling):
        await say(api.user(ANIMATOR_ID, "Claire"), "/aide")
        bot = RunningBot(api, services, settings, clock, smtp)
        bot.mailbox = application.bot_data["mailbox"]  # type: ignore[attr-defined]
        yield bot
    await services.db.dispose()


async def handled(bot: RunningBot, count: int) -> list[InboundEmail]:
    """Wait until `count` emails were read and acted on, and what they caused was sent."""

    async def done() -> list[InboundEmail]:
        found = await bot.services.db.run(lambda s: list(s.exec(select(InboundEmail))))
        return [r for r in found if r.status != "new"]

    async def enough() -> bool:
        return len(await done()) >= count

    await wait_until(enough, f"{count} emails to be handled")
    await bot.drained()
    return await done()


def to(bot: RunningBot, address: str) -> list[Received]:
    return [m for m in bot.smtp.messages if address in m.rcpt_tos]


def about_needs(bot: RunningBot) -> list[str]:
    """What the chef de projet was told about new needs."""
    return [m.plain for m in bot.api.user(ANIMATOR_ID).messages
            if "Nouvelle demande" in m.plain or "nouvelles demandes" in m.plain]


async def test_twenty_strangers_emails_make_few_needs_replies_and_pings(
    mail_bot: RunningBot, imap: ImapServer
) -> None:
    victims = ("accueil@victime-un.fr", "contact@victime-deux.fr")
    for index in range(20):
        imap.deliver(message(victims[index % 2], f"Offre exceptionnelle n°{index}",
                             NEED_MAIL).as_bytes())
    rows = await handled(mail_bot, 20)
    needs = await mail_bot.services.db.run(lambda s: list(s.exec(select(Need))))
    # 3 an hour from one sender; 5 an hour overall (this bot's setting): the rest is kept,
    # not acted on.
    assert sorted(n.contact_value or "" for n in needs) == sorted(
        [victims[0]] * 3 + [victims[1]] * 2)
    assert sum(r.kind == "limited" for r in rows) == 15
    # One automatic reply per address, whatever the number of emails.
    assert [len(to(mail_bot, victim)) for victim in victims] == [1, 1]
    assert [len(to(mail_bot, partner)) for partner in PARTNERS] == [5, 5]
    # The chef de projet: the first need at once, the others wait for the next hour.
    assert [text.splitlines()[0] for text in about_needs(mail_bot)] == [
        "Nouvelle demande TI-2026-0001"]

    passes = mail_bot.mailbox.passes  # type: ignore[attr-defined]
    mail_bot.clock.advance(hours=1)

    async def looked_again() -> bool:
        return mail_bot.mailbox.passes >= passes + 2  # type: ignore[attr-defined]

    await wait_until(looked_again, "the mailbox to be read after the hour")
    await mail_bot.drained()
    told = about_needs(mail_bot)
    assert len(told) == 2, told
    assert told[1].startswith("📬 4 nouvelles demandes reçues par e-mail"), told[1]
    assert all(f"TI-2026-000{i}" in told[1] for i in range(2, 6))
    assert victims[1] in told[1] and "Offre exceptionnelle" not in told[1]


def auto_ack(ticket: int, answered: Received) -> EmailMessage:
    """A helpdesk's acknowledgement without any of the headers that mark automatic mail."""
    return message("support@helpdesk-fournisseur.fr",
                   f"Re: {answered.message['Subject']} [Ticket #{ticket}]",
                   f"Bonjour,\nVotre demande a bien été enregistrée sous le numéro {ticket}.\n"
                   "Un conseiller vous répondra prochainement.",
                   to=answered.message["Reply-To"].addresses[0].addr_spec,
                   in_reply_to=answered.message["Message-ID"])


async def test_a_helpdesk_answering_everything_does_not_ping_pong_with_relais(
    mail_bot: RunningBot, imap: ImapServer
) -> None:
    helpdesk = "support@helpdesk-fournisseur.fr"
    # No commune: Relais asks for it, and would ask again after every answer without one.
    imap.deliver(message(helpdesk, "Formation", "Bonjour, nous voulons former nos "
                         "opérateurs à la soudure.").as_bytes())
    delivered, rounds = 1, 0
    await handled(mail_bot, delivered)
    while rounds < 8:
        received = to(mail_bot, helpdesk)
        if len(received) == rounds:
            break  # the last acknowledgement was handled and nothing answered it
        rounds += 1
        imap.deliver(auto_ack(rounds, received[-1]).as_bytes())
        delivered += 1
        await handled(mail_bot, delivered)
    # The acknowledgement of the new email, then one answer in the thread: two rounds.
    assert rounds == 2, [m.message["Subject"] for m in to(mail_bot, helpdesk)]

    # It keeps writing in the thread: past 5 emails in an hour the next are set aside.
    last = to(mail_bot, helpdesk)[-1]
    for ticket in range(3, 7):
        imap.deliver(auto_ack(ticket, last).as_bytes())
    rows = await handled(mail_bot, delivered + 4)
    kinds = [r.kind for r in sorted(rows, key=lambda r: r.id or 0)]
    assert kinds[-4:] == ["firm_reply", "firm_reply", "loop", "loop"], kinds
    assert len(to(mail_bot, helpdesk)) == 2


async def test_the_loop_breaker_never_sets_aside_an_erasure_confirmation(
    mail_bot: RunningBot, imap: ImapServer
) -> None:
    firm = "contact@menuiserie-dupont.fr"
    imap.deliver(message(firm, "Recrutement", NEED_MAIL).as_bytes())
    await handled(mail_bot, 1)
    [ack] = to(mail_bot, firm)
    thread = {"to": ack.message["Reply-To"].addresses[0].addr_spec,
              "in_reply_to": ack.message["Message-ID"]}
    imap.deliver(message(firm, "Re: données", "Merci de supprimer mes données.",
                         **thread).as_bytes())
    await handled(mail_bot, 2)
    confirm = to(mail_bot, firm)[-1]
    # Three more emails in the thread: five from this sender this hour, the loop breaker's
    # limit (its next one in the thread would be set aside).
    for index in range(3):
        imap.deliver(message(firm, "Re: précisions", f"Une précision ({index}).",
                             **thread).as_bytes())
    await handled(mail_bot, 5)
    imap.deliver(message(firm, f"Re: {confirm.message['Subject']}", "Oui",
                         to=confirm.message["Reply-To"].addresses[0].addr_spec,
                         in_reply_to=confirm.message["Message-ID"]).as_bytes())
    rows = await handled(mail_bot, 6)
    assert sorted(rows, key=lambda r: r.id or 0)[-1].kind == "firm_erase"
    needs = await mail_bot.services.db.run(lambda s: list(s.exec(select(Need))))
    assert [n.anonymized_at is not None for n in needs] == [True]
