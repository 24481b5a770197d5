"""Hostile input: nothing a stranger sends costs work in proportion on the event loop.

Every "à Xxxx-yyyy" of a text used to cost six fuzzy scans of the communes table (an 8.4 KB
email stalled every chat for 14 s), and a message of 50,000 one-byte parts was parsed whole
on the event loop (54 s). The tests count the work (lookups, parts read) and check the
order of events (a chat answered while a message is being read), never the clock.
"""

from __future__ import annotations

import asyncio
import random
import string
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bot.runtime import build_services, running_bot
from bot.services.extract import Limits, extract_fields
from handlers.mail.decode import DEFAULT_MAX_PARTS, parse_inbound
from handlers.mail.inbox import MailboxReader
from knowledge.geography import Commune, Geography, GeoResult
from storage.models import InboundEmail
from testing.botapi import LocalBotAPI
from testing.imap import BOT_ADDRESS, ImapServer
from testing.smtp import SmtpServer
from tests.conftest import FakeClock, RunningBot, imap_settings, make_settings, smtp_settings

FIRM = "contact@menuiserie-dupont.fr"


class CountingGeography(Geography):
    """The real communes table, counting the lookups made in it."""

    lookups = 0

    def resolve(self, text: str, **options: object) -> GeoResult:
        """Count, then resolve as usual."""
        self.lookups += 1
        return super().resolve(text, **options)  # type: ignore[arg-type]

    def named(self, name: str) -> tuple[Commune, ...]:
        """Count, then look up as usual."""
        self.lookups += 1
        return super().named(name)

    def starting_with(self, name: str) -> tuple[Commune, ...]:
        """Count, then look up as usual."""
        self.lookups += 1
        return super().starting_with(name)


@pytest.fixture(scope="module")
def counting() -> CountingGeography:
    """The shipped table, loaded into the counting subclass."""
    return CountingGeography.load()


def places_text(size: int, seed: int = 7) -> str:
    """A text of `size` characters made of "livré à Xxxx-yyyy puis Zzzz", all different."""
    rng = random.Random(seed)

    def word() -> str:
        return rng.choice(string.ascii_uppercase) + "".join(rng.choices(string.ascii_lowercase,
                                                                        k=6))

    parts, length = ["Bonjour,\n"], 9
    while length < size:
        part = f"livré à {word()}-{word().lower()} puis {word()} "
        parts.append(part)
        length += len(part)
    return "".join(parts)[:size]


def test_extraction_lookups_are_bounded_whatever_the_length(counting: CountingGeography) -> None:
    """8.4 KB or 100 KB of candidate places: at most the budget of lookups, then nothing."""
    limits = Limits()
    for size in (8_400, 100_000):
        counting.lookups = 0
        fields = extract_fields(places_text(size), geography=counting)
        assert fields.commune_hint is None
        assert 0 < counting.lookups <= limits.max_lookups, (size, counting.lookups)


def test_a_place_named_again_and_again_is_looked_up_once(counting: CountingGeography) -> None:
    counting.lookups = 0
    text = "Livraison à Digoin-Sud puis Xyzzy demain. " * 200
    extract_fields(text, geography=counting)
    # "Digoin-Sud puis Xyzzy demain", then its first 3, 2 and 1 words: once each.
    assert counting.lookups <= 4


def test_a_commune_after_many_false_candidates_is_still_found_within_budget(
    counting: CountingGeography,
) -> None:
    counting.lookups = 0
    text = "Livraison à Abcdef puis Ghijkl. " * 5 + "Notre atelier est situé à Paray-le-Monial."
    assert extract_fields(text, geography=counting).commune_hint == "Paray-le-Monial"
    assert counting.lookups <= Limits().max_lookups


def many_parts(count: int, *, sender: str = FIRM) -> bytes:
    """A multipart message of `count` one-byte text parts."""
    head = (f"From: {sender}\r\nTo: {BOT_ADDRESS}\r\nSubject: Parts\r\n"
            f"Message-ID: {make_msgid(domain='menuiserie-dupont.fr')}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n")
    part = b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    return head.encode() + part * count + b"--b--\r\n"


def test_a_message_of_50000_one_byte_parts_is_read_up_to_the_part_limit() -> None:
    raw = many_parts(50_000)
    assert len(raw) > 1_500_000
    mail = parse_inbound(raw)
    assert 0 < mail.text.count("x") <= DEFAULT_MAX_PARTS
    assert mail.truncated and mail.from_addr == FIRM


def test_bytes_past_the_size_limit_are_not_read() -> None:
    raw = many_parts(10) + b"y" * 200_000
    mail = parse_inbound(raw, max_bytes=5_000, max_attachment_bytes=5_000)
    assert mail.truncated and mail.oversized and mail.text.count("x") == 10
    assert all(a.data is None for a in mail.attachments)


# --- through the real bot ----------------------------------------------------------------------


@pytest.fixture
async def mail_bot(api: LocalBotAPI, smtp: SmtpServer, imap: ImapServer, tmp_path: Path,
                   clock: FakeClock, request: pytest.FixtureRequest,
                   ) -> AsyncIterator[tuple[RunningBot, MailboxReader]]:
    """The bot reading its mailbox, with room for 3,000 parts (the default is 250)."""
    settings = make_settings(
        api, tmp_path / "relais.db", **smtp_settings(smtp), **imap_settings(imap),
        RELAIS_MAIL_MAX_BYTES=150_000,
        RELAIS_MAIL_MAX_PARTS=3_000, **getattr(request, "param", {}))
    services = await build_services(settings, clock=clock)
    async with running_bot(services) as (application, _stop, _task):
        yield (RunningBot(api, services, settings, clock, smtp),
               application.bot_data["mailbox"])
    await services.db.dispose()


async def inbound_rows(bot: RunningBot) -> list[InboundEmail]:
    def work(session: Session) -> list[InboundEmail]:
        return list(session.exec(select(InboundEmail).order_by(InboundEmail.id)))

    return await bot.services.db.run(work)


async def test_aide_is_answered_while_a_crafted_mail_is_being_read(
    mail_bot: tuple[RunningBot, MailboxReader],
) -> None:
    """The mail's parts and text are read off the event loop: the chats go on meanwhile."""
    bot, mailbox = mail_bot
    crafted = many_parts(3_000)
    reading = asyncio.create_task(mailbox.import_raw(crafted))
    user = bot.api.user(7001)
    await user.send_command("/aide")
    [answer] = await user.wait_for_messages(1, timeout=30)
    assert answer.plain.startswith("Aide")
    # The order of events: the help came back while the mail was still being read.
    assert not reading.done()
    assert await reading == "firm_new"
    [row] = await inbound_rows(bot)
    assert row.status == "processed" and row.raw == crafted


async def test_the_raw_message_is_kept_only_within_the_size_limit(
    mail_bot: tuple[RunningBot, MailboxReader],
) -> None:
    bot, mailbox = mail_bot
    small = EmailMessage()
    small["From"], small["To"], small["Subject"] = FIRM, BOT_ADDRESS, "Soudeurs"
    small["Message-ID"] = make_msgid(domain="menuiserie-dupont.fr")
    small.set_content("Bonjour, nous cherchons deux soudeurs à Paray-le-Monial.")
    big = EmailMessage()
    big["From"], big["To"], big["Subject"] = "autre@fonderie.fr", BOT_ADDRESS, "Plans"
    big["Message-ID"] = make_msgid(domain="fonderie.fr")
    big.set_content("Bonjour, voici nos plans pour un terrain à Paray-le-Monial.")
    big.add_attachment(b"x" * 200_000, maintype="application", subtype="octet-stream",
                       filename="plans.dwg")
    assert await mailbox.import_raw(small.as_bytes()) == "firm_new"
    assert await mailbox.import_raw(big.as_bytes()) == "firm_new"
    kept, dropped = await inbound_rows(bot)
    assert kept.raw == small.as_bytes()
    assert dropped.raw is None and dropped.status == "processed"


@pytest.mark.parametrize("mail_bot", [{"RELAIS_MAIL_PARSE_TIMEOUT": 0.01}], indirect=True)
async def test_a_mail_still_not_read_after_the_time_limit_is_recorded_as_failed(
    mail_bot: tuple[RunningBot, MailboxReader],
) -> None:
    bot, mailbox = mail_bot
    crafted = many_parts(3_000)  # hundreds of times the limit to read, within the part limit
    assert await mailbox.import_raw(crafted) == "failed"
    [row] = await inbound_rows(bot)
    assert row.status == "failed" and row.message_id.endswith("@relais.invalid>")
    assert row.raw == crafted
