"""Animators are first-class users: invited by a personal link, welcomed as animators, and
never losing a card Telegram could not deliver (emailed at once, shown after their /start).

Through the real Application, the Bot API double (which refuses like Telegram a chat that
never started the bot) and the SMTP double.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import sys
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bot.config import DEFAULT_TERRITORIES_DIR
from bot.messages import Message
from bot.runtime import build_services, running_bot
from bot.services.animators import Animators
from bot.services.types import Delivery
from knowledge.territories import load_territories
from storage.models import AnimatorBinding, HeldMessage, Outbox
from testing.botapi import LocalBotAPI, SimUser
from testing.clock import FakeClock
from testing.smtp import SmtpServer
from tests.conftest import RunningBot, make_settings, smtp_settings
from tests.helpers import press, reach_summary, say

# End-to-end through real processes and servers: not in the fast lane.
pytestmark = pytest.mark.slow

CLAIRE_ID = 900000001  # in the territory file, has never opened the bot
MARC_ID = 900000002  # in the territory file by email only
CLAIRE = "claire.martin@example.org"
MARC = "marc.petit@example.org"
LINK = re.compile(r"https://t\.me/relais_local_bot\?start=(ani-[A-Za-z0-9_-]+)")
ONBOARDING = ("Acceptez-vous ces conditions ?", "Je recueille le besoin")


@pytest.fixture
def territories_dir(tmp_path: Path) -> Path:
    """The example territory, with a second animator known by email only."""
    directory = tmp_path / "territories"
    directory.mkdir()
    text = (DEFAULT_TERRITORIES_DIR / "bourgogne-industrie.yaml").read_text(encoding="utf-8")
    anchor = f"    telegram_user_id: {CLAIRE_ID}\n"
    assert anchor in text
    text = text.replace(anchor, anchor + f"  - name: Marc Petit\n    email: {MARC}\n", 1)
    (directory / "bourgogne-industrie.yaml").write_text(text, encoding="utf-8")
    return directory


@pytest.fixture
async def bot(api: LocalBotAPI, smtp: SmtpServer, tmp_path: Path, clock: FakeClock,
              territories_dir: Path) -> AsyncIterator[RunningBot]:
    """The real Application on the territory with two animators."""
    settings = make_settings(api, tmp_path / "relais.db", TERRITORIES_DIR=territories_dir,
                             **smtp_settings(smtp))
    services = await build_services(settings, clock=clock)
    async with running_bot(services):
        yield RunningBot(api, services, settings, clock, smtp)
    await services.db.dispose()


def link_token(bot: RunningBot, email: str) -> str:
    """The invitation token the bot accepts for this animator of ti-2703."""
    animators = bot.services.animators
    assert animators is not None
    return animators.token("ti-2703", email)


async def emails_to(smtp: SmtpServer, address: str, count: int,
                    within: float = 10.0) -> list[EmailMessage]:
    """Wait until `count` emails reached `address`; return them, oldest first."""
    for _ in range(int(within / 0.05)):
        found = [m.message for m in smtp.messages if address in m.rcpt_tos]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{address} got {[m.message['Subject'] for m in smtp.messages]}")


def body(mail: EmailMessage, kind: str = "plain") -> str:
    """One part of an email, as its reader sees it."""
    part = mail.get_body((kind,))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


async def submit(firm: SimUser, name: str) -> None:
    """A firm of Paray-le-Monial sends a need."""
    await reach_summary(firm, name=name)
    await press(firm, "Envoyer la demande")


def never_onboarded(user: SimUser) -> None:
    """The firm's consent notice and intake never reached this chat."""
    for message in user.messages:
        assert not any(fragment in message.plain for fragment in ONBOARDING), message.plain
        assert "J'accepte" not in message.button_labels()


# --- the invitation --------------------------------------------------------------------------
async def relais_cli(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    """Run `python -m bot.cli …` without blocking the loop the doubles live in."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, cwd=cwd, env={**base, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_invite_prints_and_emails_each_animator_a_personal_link(
        api: LocalBotAPI, smtp: SmtpServer, tmp_path: Path, territories_dir: Path,
        clock: FakeClock) -> None:
    env = {"TELEGRAM_BOT_TOKEN": api.token, "TELEGRAM_API_URL": api.base_url,
           "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/relais.db",
           "TERRITORIES_DIR": str(territories_dir),
           **{k: str(v) for k, v in smtp_settings(smtp).items()}}
    code, out, err = await relais_cli("invite", env=env, cwd=tmp_path)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 2 and not smtp.messages  # printed only
    assert lines[0].startswith(f"Claire Martin <{CLAIRE}> · Bourgogne Industrie : https://t.me/")
    assert lines[1].startswith(f"Marc Petit <{MARC}> · Bourgogne Industrie : https://t.me/")
    tokens = [LINK.search(line).group(1) for line in lines]  # type: ignore[union-attr]
    # Telegram's start parameter: at most 64 characters of A-Za-z0-9_-.
    assert all(len(token) <= 64 and re.fullmatch(r"[A-Za-z0-9_-]+", token) for token in tokens)
    assert tokens[0] != tokens[1]

    code, out, err = await relais_cli("invite", "--territory", "ti-2703", "--email", env=env,
                                      cwd=tmp_path)
    assert code == 0, err
    assert out.strip().splitlines()[-1] == "2 invitations envoyées par e-mail."
    [mail] = await emails_to(smtp, MARC, 1)
    assert mail["Subject"] == "Relais · Votre accès de chef de projet (Bourgogne Industrie)"
    assert mail["To"].addresses[0].display_name == "Marc Petit"
    assert mail["Auto-Submitted"] == "auto-generated"
    text = body(mail)
    assert text.startswith("Bonjour Marc Petit,")
    assert f"https://t.me/relais_local_bot?start={tokens[1]}" in text
    assert tokens[1] in body(mail, "html") and "<p>" in body(mail, "html")
    assert len(await emails_to(smtp, CLAIRE, 1)) == 1

    code, _out, err = await relais_cli("invite", "--territory", "ti-9999", env=env,
                                       cwd=tmp_path)
    assert code == 2 and "territoire inconnu : ti-9999" in err

    # The running bot (same token) accepts the printed link: Marc becomes an animator.
    settings = make_settings(api, tmp_path / "relais.db", TERRITORIES_DIR=territories_dir,
                             **smtp_settings(smtp))
    services = await build_services(settings, clock=clock)
    async with running_bot(services):
        marc = api.user(MARC_ID, "Marc")
        replies = await say(marc, f"/start {tokens[1]}")
        assert replies[0].plain.startswith("Bienvenue, Marc Petit.")
        assert "Votre compte Telegram est maintenant relié à Relais." in replies[0].plain
        assert "Aucune demande ouverte" in (await say(marc, "/demandes"))[-1].plain
    await services.db.dispose()


# --- binding -------------------------------------------------------------------------------
async def test_start_with_a_token_binds_the_account_and_welcomes_an_animator(
        bot: RunningBot) -> None:
    marc = bot.api.user(MARC_ID, "Marc")
    replies = await say(marc, f"/start {link_token(bot, MARC)}")
    [welcome] = replies
    assert welcome.plain.startswith("Bienvenue, Marc Petit.")
    assert "chef de projet du territoire Bourgogne Industrie" in welcome.plain
    for command in ("/demandes", "/demande TI-…", "/rdv", "/stats", "/radar", "/aide"):
        assert command in welcome.plain
    never_onboarded(marc)

    def bindings(session: Session) -> list[AnimatorBinding]:
        return list(session.exec(select(AnimatorBinding)).all())

    [row] = await bot.services.db.run(bindings)
    assert (row.territory_id, row.email, row.telegram_user_id) == ("ti-2703", MARC, MARC_ID)
    # Bound: the animator's commands answer, and /start again is the animator's welcome.
    assert "Aucune demande ouverte" in (await say(marc, "/demandes"))[-1].plain
    again = await say(marc, "/start")
    assert again[0].plain.startswith("Bienvenue, Marc Petit.")
    assert "relié" not in again[0].plain
    assert "/demandes : les demandes ouvertes" in (await say(marc, "/aide"))[-1].plain
    never_onboarded(marc)
    assert len(await bot.services.db.run(bindings)) == 1


async def test_a_forged_or_foreign_token_is_refused_politely(bot: RunningBot) -> None:
    stranger = bot.api.user(7001, "Paul")
    # Signed with another bot's token (another deployment), for a real animator.
    other = Animators(load_territories(bot.settings.territories_dir), secret="999:OTHER",
                      mail_domain="example.org")
    # Signed with the right key, for a territory the animator does not animate.
    mac = hmac.new(hashlib.sha256(b"relais-animator-invite:" + bot.api.token.encode())
                   .digest(), f"ti-9999\n{MARC}".encode(), hashlib.sha256).digest()[:18]
    foreign = "ani-" + base64.urlsafe_b64encode(mac).decode()
    assert link_token(bot, MARC) != foreign  # the same recipe, for ti-2703
    for token in (other.token("ti-2703", MARC), foreign, "ani-" + "A" * 24, "ani-court"):
        [refusal] = await say(stranger, f"/start {token}")
        assert refusal.plain.startswith("Ce lien d'invitation n'est pas valable.")
        assert "tapez /start" in refusal.plain
    never_onboarded(stranger)
    assert "réservée aux chefs de projet" in (await say(stranger, "/demandes"))[-1].plain

    def bound(session: Session) -> int:
        return len(session.exec(select(AnimatorBinding)).all())

    assert await bot.services.db.run(bound) == 0
    # A /start without an invitation is still the firm's.
    assert "Acceptez-vous ces conditions ?" in (await say(stranger, "/start"))[-1].plain


# --- nothing dropped -------------------------------------------------------------------------
async def test_cards_for_animators_who_never_started_go_by_email_then_show_on_telegram(
        bot: RunningBot) -> None:
    claire = bot.api.user(CLAIRE_ID, "Claire")  # exists on Telegram, never opened the bot
    marc = bot.api.user(MARC_ID, "Marc")
    firms = ("Menuiserie Dupont", "Fonderie du Charolais", "Atelier Bernard")
    for index, name in enumerate(firms):
        await submit(bot.api.user(5001 + index, "Paul"), name)
        # Each card reaches both animators by email at once, before the next need.
        await emails_to(bot.smtp, CLAIRE, index + 1)
        await emails_to(bot.smtp, MARC, index + 1)
    assert not claire.messages and not marc.messages
    refused = [c for c in bot.api.calls_of("sendMessage")
               if c.params.get("chat_id") in (CLAIRE_ID, str(CLAIRE_ID))]
    assert len(refused) == 3  # Telegram was asked, and refused

    for address, token in ((CLAIRE, link_token(bot, CLAIRE)), (MARC, link_token(bot, MARC))):
        mails = await emails_to(bot.smtp, address, 3)
        for number, (mail, firm) in enumerate(zip(mails, firms, strict=True), start=1):
            assert mail["Subject"] == f"Relais · Nouvelle demande TI-2026-{number:04d}"
            text = body(mail)
            assert "Relais n'a pas pu vous joindre sur Telegram." in text
            assert firm in text and "Paray-le-Monial (71342)" in text
            assert "Entreprise : " in text and "Besoin : Recruter · Dans le mois" in text
            assert f"https://t.me/relais_local_bot?start={token}" in text
            assert f"<td>{firm}" in body(mail, "html")
    await asyncio.sleep(0.3)
    assert len([m for m in bot.smtp.messages if CLAIRE in m.rcpt_tos]) == 3, "one email a card"

    # Claire, in the file, just opens the bot: her welcome, then the three cards.
    replies = await say(claire, "/start")
    assert replies[0].plain.startswith("Bienvenue, Claire Martin.")
    assert replies[1].plain == "3 demandes vous attendent :"
    cards = replies[2:]
    assert [c.plain.split("\n", 1)[0] for c in cards] == [
        f"Nouvelle demande TI-2026-{n:04d}" for n in (1, 2, 3)]
    assert all(c.button_labels() == ["Je prends", "Réaffecter", "Écrire à l'entreprise",
                                          "Proposer un RDV", "Clore"]
               for c in cards)
    assert firms[1] in cards[1].plain
    taken = await press(claire, "Je prends")  # the newest card: TI-2026-0003
    assert "Prise en charge par Claire Martin (TI-2026-0003)" in taken[-1].plain
    # Shown once: a second /start has nothing waiting.
    assert len(await say(claire, "/start")) == 1

    # Marc, by email only, opens his link: bound, welcomed, the three cards.
    replies = await say(marc, f"/start {link_token(bot, MARC)}")
    assert "maintenant relié" in replies[0].plain
    assert replies[1].plain == "3 demandes vous attendent :"
    assert len(replies) == 5 and "TI-2026-0001" in replies[2].plain
    never_onboarded(claire)
    never_onboarded(marc)

    # From now on cards reach both on Telegram, and nobody by email.
    emails_before = len(bot.smtp.messages)
    seen = len(claire.messages), len(marc.messages)
    await submit(bot.api.user(5010, "Paul"), "Scierie Moreau")
    card_claire = (await claire.wait_for_messages(seen[0] + 1))[-1]
    card_marc = (await marc.wait_for_messages(seen[1] + 1))[-1]
    assert "Nouvelle demande TI-2026-0004" in card_claire.plain
    assert "Nouvelle demande TI-2026-0004" in card_marc.plain
    await asyncio.sleep(0.3)
    assert not [m for m in bot.smtp.messages[emails_before:]
                if {CLAIRE, MARC} & set(m.rcpt_tos)]

    def held(session: Session) -> list[HeldMessage]:
        return list(session.exec(select(HeldMessage)).all())

    rows = await bot.services.db.run(held)
    assert len(rows) == 6 and all(r.shown_at is not None for r in rows)
    assert sorted({r.need_id for r in rows}) == [1, 2, 3]


async def test_an_animator_who_blocked_the_bot_gets_the_card_by_email(bot: RunningBot) -> None:
    marc = bot.api.user(MARC_ID, "Marc")
    await say(marc, f"/start {link_token(bot, MARC)}")
    marc.block()
    await submit(bot.api.user(5001, "Paul"), "Menuiserie Dupont")
    [mail] = await emails_to(bot.smtp, MARC, 1)
    assert "Menuiserie Dupont" in body(mail)
    replies = await say(marc, "/start")  # unblocked by writing again
    assert replies[1].plain == "1 demande vous attend :"
    assert "Nouvelle demande TI-2026-0001" in replies[2].plain


# --- an animator's free text ---------------------------------------------------------------
async def test_an_animators_free_text_is_never_offered_to_the_animators(
        bot: RunningBot) -> None:
    claire = bot.api.user(CLAIRE_ID, "Claire")
    await say(claire, "/start")
    marc = bot.api.user(MARC_ID, "Marc")
    await say(marc, f"/start {link_token(bot, MARC)}")
    marc_seen = len(marc.messages)
    # What an animator types after leaving a meeting dialog.
    replies = await say(claire, "jeudi 15h30")
    assert [m.plain for m in replies] == [
        "Je n'ai pas de fiche sur ce sujet, et je préfère ne pas deviner.",
        "Vos commandes : /demandes, /demande TI-…, /rdv, /stats, /radar, /aide."]
    assert not any(m.button_labels() for m in replies)
    # Close to a card (the knowledge base hesitates), or a real question: the answer, still
    # without the offer to pass it on.
    for text in ("le 14 janvier à 15 h", "Quelles aides pour embaucher un apprenti ?"):
        replies = await say(claire, text)
        labels = [label for m in replies for label in m.button_labels()]
        assert labels and "Transmettre ma question" not in labels
        assert not any("transmettre" in m.plain.lower() for m in replies)
        assert replies[-1].plain.startswith("Vos commandes : ")
    # "Ce n'est pas ça" under the card: other cards, and still no offer to pass it on.
    others = await press(claire, "Ce n'est pas ça")
    assert others and "Transmettre ma question" not in others[-1].button_labels()
    await asyncio.sleep(0.3)
    assert len(marc.messages) == marc_seen  # nothing was passed on to the other animator
    # A firm typing the same still gets the offer.
    firm = bot.api.user(5001, "Paul")
    replies = await say(firm, "jeudi 15h30")
    assert "Transmettre ma question" in [label for m in replies for label in m.button_labels()]



async def test_an_animators_erasure_removes_the_binding_and_what_was_kept(
        bot: RunningBot) -> None:
    await submit(bot.api.user(5001, "Paul"), "Menuiserie Dupont")
    await emails_to(bot.smtp, MARC, 1)  # kept for Marc, who has no Telegram account yet
    marc = bot.api.user(MARC_ID, "Marc")
    assert len(await say(marc, f"/start {link_token(bot, MARC)}")) == 3

    def rows(session: Session) -> tuple[int, int]:
        return (len(session.exec(select(AnimatorBinding)).all()),
                len(session.exec(select(HeldMessage)).all()))

    assert await bot.services.db.run(rows) == (1, 2)  # Marc's, and Claire's (refused)
    await say(marc, "/supprimer")
    await press(marc, "Oui, tout effacer")
    assert await bot.services.db.run(rows) == (0, 1)  # Claire's card stays for her
    assert "réservée aux chefs de projet" in (await say(marc, "/demandes"))[-1].plain


async def test_a_refusal_handled_twice_keeps_and_emails_the_card_once(bot: RunningBot) -> None:
    """A crash between keeping the card and recording the refusal: Telegram refuses again."""
    claire = bot.api.user(CLAIRE_ID, "Claire")
    await submit(bot.api.user(5001, "Paul"), "Menuiserie Dupont")
    await emails_to(bot.smtp, CLAIRE, 1)

    def card_row(session: Session) -> Outbox:
        return session.exec(select(Outbox).where(
            Outbox.channel == "telegram", Outbox.recipient == str(CLAIRE_ID))).one()

    row = await bot.services.db.run(card_row)
    assert row.failed_at is not None and "can't initiate" in (row.last_error or "")
    assert row.id is not None
    again = Delivery(row.id, "telegram", str(CLAIRE_ID), Message.from_payload(row.payload))
    await bot.services.keep_refused(again, "Forbidden: bot can't initiate conversation")

    def counts(session: Session) -> tuple[int, int]:
        return (len(session.exec(select(HeldMessage).where(HeldMessage.email == CLAIRE)).all()),
                len(session.exec(select(Outbox).where(Outbox.channel == "email",
                                                      Outbox.recipient == CLAIRE)).all()))

    assert await bot.services.db.run(counts) == (1, 1)
    assert len(await say(claire, "/start")) == 3  # welcome, "1 demande…", the card
