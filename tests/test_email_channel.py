"""The email channel end to end: a real IMAP mailbox, a real SMTP server, the real bot.

A firm writes to the territory's address and gets a reference; the need is routed; the
partner replies "je m'en occupe" and the need is acknowledged: email alone, no Telegram
for the firm or the partner. Then the ways helpdesks go wrong, one test each.

Our mail server's verdict on each sender is the `Authentication-Results` header that
`message()` writes on top, as the server would (`MAIL_AUTHSERV_ID` is its authserv-id):
a pass by default, a forgery's verdict when a test says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bot.runtime import build_services, running_bot
from storage.models import InboundEmail, Need, NeedAttachment, NeedMessage, NeedRouting
from testing.botapi import BotMessage, LocalBotAPI, SimUser
from testing.clock import FakeClock
from testing.imap import BOT_ADDRESS, ImapServer
from testing.smtp import Received, SmtpServer
from tests.conftest import RunningBot, imap_settings, make_settings, smtp_settings
from tests.helpers import say

ANIMATOR_ID = 900000001
FIRM = "contact@menuiserie-dupont.fr"
PARTNER = "ft-paray-le-monial@example.org"
OUR_MX = "mx.relais.example.org"
# The forgery of issue 16: a verdict, but none our server wrote (no authserv-id at all).
FORGED = "spf=fail; dkim=none"
FIRST_MAIL = (
    "Bonjour,\n\nNous cherchons deux soudeurs qualifiés pour notre atelier de "
    "Paray-le-Monial, à pourvoir avant la fin du trimestre.\n\n"
    "Cordialement,\nPaul Dupont\nMenuiserie Dupont"
)


@pytest.fixture
async def mail_bot(api: LocalBotAPI, smtp: SmtpServer, imap: ImapServer, tmp_path: Path,
                   clock: FakeClock) -> AsyncIterator[RunningBot]:
    """The bot reading the IMAP mailbox (polled every 0.2 s, IDLE when pushed)."""
    settings = make_settings(
        api, tmp_path / "relais.db", **smtp_settings(smtp), **imap_settings(imap),
        RELAIS_MAIL_MAX_BYTES=50_000,
        MAIL_AUTHSERV_ID=OUR_MX)
    services = await build_services(settings, clock=clock)
    animator = api.user(ANIMATOR_ID, "Claire")
    async with running_bot(services):
        await say(animator, "/aide")
        yield RunningBot(api, services, settings, clock, smtp)
    await services.db.dispose()


def message(sender: str, subject: str, body: str, *, to: str = BOT_ADDRESS,
            in_reply_to: str | None = None, name: str = "",
            headers: dict[str, str] | None = None,
            verdict: str | None = "pass") -> EmailMessage:
    """An email as our server delivers it; `verdict` "pass", None (no header) or a header."""
    mail = EmailMessage()
    domain = sender.rpartition("@")[2]
    if verdict == "pass":
        mail["Authentication-Results"] = (
            f"{OUR_MX}; dkim=pass header.d={domain}; spf=pass smtp.mailfrom={sender}; "
            f"dmarc=pass (p=QUARANTINE) header.from={domain}")
    elif verdict is not None:
        mail["Authentication-Results"] = verdict
    mail["From"] = f"{name} <{sender}>" if name else sender
    mail["To"] = to
    mail["Subject"] = subject
    mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    if in_reply_to:
        mail["In-Reply-To"] = in_reply_to
        mail["References"] = in_reply_to
    for key, value in (headers or {}).items():
        mail[key] = value
    mail.set_content(body)
    return mail


async def mails_to(smtp: SmtpServer, rcpt: str, count: int = 1,
                   within: float = 10.0) -> list[Received]:
    """Wait until `rcpt` received `count` emails."""
    for _ in range(int(within / 0.05)):
        got = [m for m in smtp.messages if rcpt in m.rcpt_tos]
        if len(got) >= count:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"{rcpt} got {len([m for m in smtp.messages if rcpt in m.rcpt_tos])}")


async def says(user: SimUser, fragment: str, within: float = 10.0) -> BotMessage:
    """Wait for a message of this chat containing `fragment`."""
    for _ in range(int(within / 0.05)):
        found = [m for m in user.messages if fragment in m.plain]
        if found:
            return found[-1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no message with {fragment!r}")


async def rows(bot: RunningBot, model: type) -> list:
    def work(session: Session) -> list:
        return list(session.exec(select(model)))

    return await bot.services.db.run(work)


async def imported(bot: RunningBot, count: int, within: float = 10.0) -> list[InboundEmail]:
    """Wait until `count` emails were read and handled."""
    for _ in range(int(within / 0.05)):
        done = [r for r in await rows(bot, InboundEmail) if r.status != "new"]
        if len(done) >= count:
            return done
        await asyncio.sleep(0.05)
    raise AssertionError("emails not imported in time")


def body(received: Received) -> str:
    return received.message.get_body(("plain",)).get_content().replace("\r\n", "\n")


@pytest.mark.slow
async def test_first_email_to_routed_need_to_partner_acknowledgement(
    mail_bot: RunningBot, imap: ImapServer
) -> None:
    first = message(FIRM, "Recherche de soudeurs", FIRST_MAIL, name="Paul Dupont")
    imap.deliver(first.as_bytes())
    [reply] = await mails_to(mail_bot.smtp, FIRM)
    text = body(reply)
    assert "Votre demande est enregistrée sous la référence TI-2026-0001." in text
    assert "- besoin : Recruter" in text and "- commune : Paray-le-Monial" in text
    assert "Elle est transmise à : " in text and "France Travail Paray-le-Monial" in text
    assert "Claire Martin, chef de projet Territoire d'industrie" in text
    mail = reply.message
    assert mail["Subject"] == "Re: [TI-2026-0001] Recherche de soudeurs"
    assert mail["In-Reply-To"] == first["Message-ID"]
    assert mail["Auto-Submitted"] == "auto-replied"
    [need] = await rows(mail_bot, Need)
    token_address = f"relais+{need.reply_token}@relais.example.org"
    assert mail["Reply-To"].addresses[0].addr_spec == token_address
    assert (need.channel, need.status, need.theme, need.commune_insee) == (
        "email", "routed", "recrutement", "71342")
    assert need.contact_value == FIRM and need.missing is None

    # The partner's email: Reply-To is the need's address, the animator in Cc.
    [routed] = await mails_to(mail_bot.smtp, PARTNER)
    assert routed.message["Reply-To"].addresses[0].addr_spec == token_address
    assert routed.message["Cc"].addresses[0].addr_spec == "claire.martin@example.org"
    assert "répondant simplement à ce message" in body(routed)

    animator = mail_bot.api.user(ANIMATOR_ID)
    await says(animator, "Nouvelle demande TI-2026-0001")
    answer = message(PARTNER, f"RE: {routed.message['Subject']}",
                     "Bonjour,\nje m'en occupe, j'appelle l'entreprise demain.\n"
                     "Cordialement\nMarie Roche\nFrance Travail\n\n"
                     "> Bonjour,\n> Merci d'accuser réception...",
                     to=token_address, in_reply_to=routed.message["Message-ID"])
    imap.deliver(answer.as_bytes())
    news = await says(animator, "prend en charge TI-2026-0001")
    assert news.plain.startswith("✅ France Travail Paray-le-Monial prend en charge TI-2026-0001")
    [need] = await rows(mail_bot, Need)
    assert need.status == "acknowledged"
    routing = next(r for r in await rows(mail_bot, NeedRouting) if r.partner_email == PARTNER)
    assert routing.status == "acknowledged" and routing.acknowledged_at is not None
    [note] = [m for m in await rows(mail_bot, NeedMessage) if m.author_kind == "partner"]
    assert note.text.startswith("Bonjour,\nje m'en occupe") and "> Merci" not in note.text
    # No automatic answer to the partner, and everything is flagged on the server.
    await mail_bot.drained()
    assert [m for m in mail_bot.smtp.messages if PARTNER in m.rcpt_tos] == [routed]
    assert all("RelaisImported" in f for f in imap.flags())
    assert imap.count() == 2  # nothing deleted


async def test_missing_commune_is_asked_then_filled_by_reply(
    mail_bot: RunningBot, imap: ImapServer
) -> None:
    imap.deliver(message(FIRM, "Formation", "Bonjour, nous voulons former nos opérateurs "
                         "à la soudure. Quelles aides existent ?").as_bytes())
    [reply] = await mails_to(mail_bot.smtp, FIRM)
    text = body(reply)
    assert "il me manque :\n- la commune de l'établissement concerné (ou son code postal)" in text
    assert "Des dispositifs qui peuvent vous concerner :" in text
    [need] = await rows(mail_bot, Need)
    assert (need.status, need.missing, need.theme) == ("awaiting_info", ["commune"],
                                                        "competences")
    # The firm answers in the thread: the need is completed and routed.
    answer = message(FIRM, f"Re: {reply.message['Subject']}",
                     "Nous sommes à Paray-le-Monial.\n\nLe 28/11/2026, Relais a écrit :\n> ...",
                     to=reply.message["Reply-To"].addresses[0].addr_spec,
                     in_reply_to=reply.message["Message-ID"])
    imap.deliver(answer.as_bytes())
    replies = await mails_to(mail_bot.smtp, FIRM, 2)
    second = body(replies[1])
    assert "Merci pour ces précisions sur votre demande TI-2026-0001." in second
    assert "Elle est transmise à" in second
    [need] = await rows(mail_bot, Need)
    assert (need.status, need.missing, need.commune_insee) == ("routed", None, "71342")


@pytest.mark.slow
async def test_the_same_message_twice_is_imported_once(
    mail_bot: RunningBot, imap: ImapServer
) -> None:
    raw = message(FIRM, "Recherche de soudeurs", FIRST_MAIL).as_bytes()
    imap.deliver(raw)
    await mails_to(mail_bot.smtp, FIRM)
    # Delivered again (a mail loop, or re-read after a crash before the flag was stored).
    imap.deliver(raw)
    await imported(mail_bot, 1)
    # The reader flags a message once it has handled it: both copies flagged, one import.
    for _ in range(400):
        if imap.count() == 2 and all("RelaisImported" in f for f in imap.flags()):
            break
        await asyncio.sleep(0.05)
    assert all("RelaisImported" in f for f in imap.flags())
    assert len(await rows(mail_bot, InboundEmail)) == 1
    assert len(await rows(mail_bot, Need)) == 1
    assert len([m for m in mail_bot.smtp.messages if FIRM in m.rcpt_tos]) == 1
    assert all("RelaisImported" in f for f in imap.flags())


@pytest.mark.slow
async def test_automatic_messages_are_never_answered(
    mail_bot: RunningBot, imap: ImapServer
) -> None:
    imap.deliver(message(FIRM, "Recherche de soudeurs", FIRST_MAIL).as_bytes())
    [reply] = await mails_to(mail_bot.smtp, FIRM)
    reply_to = reply.message["Reply-To"].addresses[0].addr_spec
    # The firm's out-of-office answers our reply; a bounce; a list; our own message.
    automatic = [
        message(FIRM, "Réponse automatique : Re: [TI-2026-0001] Recherche de soudeurs",
                "Je suis absent jusqu'au 5 janvier.", to=reply_to,
                in_reply_to=reply.message["Message-ID"],
                headers={"Auto-Submitted": "auto-replied"}),
        message("MAILER-DAEMON@mx.example.org", "Undelivered Mail Returned to Sender",
                "This is the mail system at host mx.example.org."),
        message("annonces@cci.example.org", "Lettre d'information", "Les nouvelles du mois",
                headers={"List-Id": "<annonces.cci.example.org>",
                         "Precedence": "bulk"}),
        message("relais@relais.example.org", "Re: boucle", "Un message de nous-mêmes."),
    ]
    for mail in automatic:
        imap.deliver(mail.as_bytes())
    done = await imported(mail_bot, 1 + len(automatic))
    assert sorted(r.kind or "" for r in done) == sorted(
        ["firm_new"] + ["automatic"] * len(automatic))
    await mail_bot.drained()
    assert len(mail_bot.smtp.messages) == 1 + 2  # our reply + the two partners' emails
    assert [m for m in mail_bot.smtp.messages if FIRM in m.rcpt_tos] == [reply]


async def test_a_stranger_quoting_a_reference_cannot_join_the_thread(
    mail_bot: RunningBot, imap: ImapServer
) -> None:
    imap.deliver(message(FIRM, "Recherche de soudeurs", FIRST_MAIL).as_bytes())
    [reply] = await mails_to(mail_bot.smtp, FIRM)
    reply_to = reply.message["Reply-To"].addresses[0].addr_spec
    stranger = "curieux@autre-entreprise.fr"
    hijack = message(stranger, "Re: [TI-2026-0001] Recherche de soudeurs",
                     "Je m'en occupe, envoyez-moi le dossier complet.", to=reply_to,
                     in_reply_to=reply.message["Message-ID"])
    imap.deliver(hijack.as_bytes())
    [answer] = await mails_to(mail_bot.smtp, stranger)
    # A new need of its own, nothing of the firm's shown, nothing of the firm's changed.
    assert "TI-2026-0002" in body(answer)
    assert "soudeurs" not in body(answer) and "Dupont" not in body(answer)
    needs = {n.reference: n for n in await rows(mail_bot, Need)}
    assert needs["TI-2026-0001"].status == "routed"
    assert needs["TI-2026-0002"].contact_value == stranger
    assert all(r.status == "routed" for r in await rows(mail_bot, NeedRouting))
    assert all(m.need_id != needs["TI-2026-0001"].id or m.author == FIRM
               for m in await rows(mail_bot, NeedMessage))


@pytest.mark.slow
async def test_partner_refusal_and_unclear_reply_reach_the_animator(
    mail_bot: RunningBot, imap: ImapServer
) -> None:
    imap.deliver(message(FIRM, "Recherche de soudeurs", FIRST_MAIL).as_bytes())
    [routed] = await mails_to(mail_bot.smtp, PARTNER)
    opco = "opco2i-bfc@example.org"
    [routed_opco] = await mails_to(mail_bot.smtp, opco)
    token = routed.message["Reply-To"].addresses[0].addr_spec
    animator = mail_bot.api.user(ANIMATOR_ID)
    await says(animator, "Nouvelle demande TI-2026-0001")
    imap.deliver(message(PARTNER, "RE: demande", "Bonjour, ce n'est pas pour nous : hors de "
                         "notre champ. Voyez plutôt avec la CCI.", to=token,
                         in_reply_to=routed.message["Message-ID"]).as_bytes())
    refused = await says(animator, "décline TI-2026-0001")
    assert refused.plain.startswith("❌ France Travail Paray-le-Monial décline TI-2026-0001")
    assert refused.button_labels() == ["Réaffecter"]
    imap.deliver(message(opco, "RE: demande", "Peut-être, à voir avec ma direction.",
                         to=token, in_reply_to=routed_opco.message["Message-ID"]).as_bytes())
    unsure = await says(animator, "Je ne sais pas dire")
    assert "Je ne sais pas dire si c'est une prise en charge" in unsure.plain
    assert unsure.button_labels() == ["Prise en charge", "Refus", "Ni l'un ni l'autre"]
    done = (await animator.replies_after(animator.press("Prise en charge")))[-1]
    assert done.plain == "Noté : OPCO 2i Bourgogne-Franche-Comté prend en charge TI-2026-0001."
    statuses = {r.partner_email: r.status for r in await rows(mail_bot, NeedRouting)}
    assert statuses[PARTNER] == "refused" and statuses[opco] == "acknowledged"


async def test_attachments_are_kept_or_refused_by_size(
    mail_bot: RunningBot, imap: ImapServer
) -> None:
    small = message(FIRM, "Recherche de soudeurs", FIRST_MAIL)
    small.add_attachment(b"%PDF-1.4 fiche de poste", maintype="application",
                         subtype="pdf", filename="fiche-poste.pdf")
    imap.deliver(small.as_bytes())
    [reply] = await mails_to(mail_bot.smtp, FIRM)
    assert "Pièces jointes conservées : fiche-poste.pdf." in body(reply)
    [kept] = await rows(mail_bot, NeedAttachment)
    assert (kept.filename, kept.content_type, kept.data) == (
        "fiche-poste.pdf", "application/pdf", b"%PDF-1.4 fiche de poste")
    big = message("autre@fonderie.fr", "Plans", "Bonjour, voici nos plans pour un projet "
                  "d'agrandissement à Paray-le-Monial : nous cherchons un terrain.")
    big.add_attachment(b"x" * 60_000, maintype="application", subtype="octet-stream",
                       filename="plans.dwg")
    imap.deliver(big.as_bytes())
    [refused] = await mails_to(mail_bot.smtp, "autre@fonderie.fr")
    assert "dépassent la taille maximale" in body(refused)
    assert len(await rows(mail_bot, NeedAttachment)) == 1


@pytest.mark.slow
async def test_the_email_reader_survives_a_mailbox_outage(
    mail_bot: RunningBot, imap: ImapServer, caplog: pytest.LogCaptureFixture
) -> None:
    await imap.stop()
    # A pass fails and the reader backs off; nothing crashes.
    for _ in range(400):
        if any(r.getMessage().startswith("mailbox pass failed") for r in caplog.records):
            break
        await asyncio.sleep(0.05)
    assert any(r.getMessage().startswith("mailbox pass failed") for r in caplog.records)
    await imap.start_again()
    imap.deliver(message(FIRM, "Recherche de soudeurs", FIRST_MAIL).as_bytes())
    await mails_to(mail_bot.smtp, FIRM, within=15)


@pytest.mark.slow
async def test_supprimer_mes_donnees_by_email(mail_bot: RunningBot, imap: ImapServer) -> None:
    imap.deliver(message(FIRM, "Recherche de soudeurs", FIRST_MAIL).as_bytes())
    [reply] = await mails_to(mail_bot.smtp, FIRM)
    imap.deliver(message(FIRM, "Re: données", "Merci de supprimer mes données.",
                         to=reply.message["Reply-To"].addresses[0].addr_spec,
                         in_reply_to=reply.message["Message-ID"]).as_bytes())
    # First a confirmation, at the address on file, with a one-time reply address.
    confirm = (await mails_to(mail_bot.smtp, FIRM, 2))[1]
    assert "répondez à ce message en écrivant simplement : OUI" in body(confirm)
    [need] = await rows(mail_bot, Need)
    assert need.contact_value == FIRM and need.anonymized_at is None
    imap.deliver(message(FIRM, f"Re: {confirm.message['Subject']}", "Oui\n\n> Bonjour,",
                         to=confirm.message["Reply-To"].addresses[0].addr_spec,
                         in_reply_to=confirm.message["Message-ID"]).as_bytes())
    replies = await mails_to(mail_bot.smtp, FIRM, 3)
    text = body(replies[2])
    assert "C'est fait : vos données personnelles sont effacées" in text
    assert "Ce que j'ai compris" not in text and "Aucun chef de projet" not in text
    [need] = await rows(mail_bot, Need)
    assert (need.firm_name, need.description, need.contact_value) == (None, None, None)
    assert need.anonymized_at is not None and need.commune_insee == "71342"
    assert all(r.raw is None and r.from_addr == "" for r in await rows(mail_bot, InboundEmail))


# --- forged mail changes nothing (issue 16, item 1) --------------------------------------------
async def routed_need(bot: RunningBot, imap: ImapServer) -> tuple[Received, SimUser]:
    """The firm's need, routed; the partner's email; the animator told."""
    imap.deliver(message(FIRM, "Recherche de soudeurs", FIRST_MAIL).as_bytes())
    [routed] = await mails_to(bot.smtp, PARTNER)
    animator = bot.api.user(ANIMATOR_ID)
    await says(animator, "Nouvelle demande TI-2026-0001")
    return routed, animator


async def notices(user: SimUser, fragment: str, count: int, within: float = 10.0
                  ) -> list[BotMessage]:
    """Wait until the chat holds `count` messages containing `fragment`."""
    for _ in range(int(within / 0.05)):
        found = [m for m in user.messages if fragment in m.plain]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} messages with {fragment!r}")


@pytest.mark.slow
async def test_a_forged_partner_acknowledgement_changes_nothing_the_animator_decides(
    mail_bot: RunningBot, imap: ImapServer
) -> None:
    routed, animator = await routed_need(mail_bot, imap)
    token = routed.message["Reply-To"].addresses[0].addr_spec
    subject = f"RE: {routed.message['Subject']}"
    ack = "Bien reçu, je m'en occupe."
    forgeries = [
        # The reproduction: the reference guessed, a verdict nobody trusted.
        message(PARTNER, subject, f"{ack} (1)", verdict=FORGED),
        # The need's own reply address, but the "pass" is the sender's word, not our server's.
        message(PARTNER, subject, f"{ack} (2)", to=token,
                verdict="mx.attacker.example; dmarc=pass header.from=example.org"),
        # Our server's own verdict: it failed.
        message(PARTNER, subject, f"{ack} (3)", to=token,
                verdict=f"{OUR_MX}; spf=fail smtp.mailfrom=example.org; dkim=none; "
                        "dmarc=fail header.from=example.org"),
        # Verified, but to the bot's plain address with the subject tag only.
        message(PARTNER, subject, f"{ack} (4)"),
    ]
    for number, forged in enumerate(forgeries, start=1):
        imap.deliver(forged.as_bytes())
        seen = await notices(animator, "non vérifié", number)
        assert f"({number})" in seen[-1].plain
    first, *_, last = seen
    assert first.plain.startswith(
        "⚠️ France Travail Paray-le-Monial aurait répondu au sujet de TI-2026-0001, "
        "par un e-mail non vérifié (expéditeur non authentifié par notre serveur de "
        "messagerie) :")
    assert "Je n'en tiens pas compte seul. Est-ce une prise en charge ?" in first.plain
    assert "(envoyé hors de l'adresse de réponse de la demande)" in last.plain
    assert first.button_labels() == ["Prise en charge", "Refus", "Ni l'un ni l'autre"]
    assert not [m for m in animator.messages if "prend en charge TI-2026-0001" in m.plain]

    # Nothing changed; each email is in the need's history, marked.
    [need] = await rows(mail_bot, Need)
    assert need.status == "routed"
    assert all(r.status == "routed" and r.acknowledged_at is None
               for r in await rows(mail_bot, NeedRouting))
    notes = [m for m in await rows(mail_bot, NeedMessage) if m.author_kind == "partner"]
    assert [n.verified for n in notes] == [False, False, False, True]
    inbound = [r for r in await rows(mail_bot, InboundEmail) if r.kind == "partner_reply"]
    assert [r.note.split(":")[0] for r in inbound] == ["unverified"] * 3 + ["verified"]
    history = (await say(animator, "/demande TI-2026-0001"))[-1]
    assert f"{PARTNER} (e-mail non vérifié) : « Bien reçu, je m'en occupe. (1) »" in (
        history.plain)

    # The animator knows better: the acknowledgement is theirs to record.
    done = (await animator.replies_after(animator.press("Prise en charge",
                                                                 message_id=first.message_id)))[-1]
    assert done.plain == "Noté : France Travail Paray-le-Monial prend en charge TI-2026-0001."
    [need] = await rows(mail_bot, Need)
    assert need.status == "acknowledged"


@pytest.mark.slow
async def test_a_forged_refusal_reroutes_nothing(
    mail_bot: RunningBot, imap: ImapServer
) -> None:
    routed, animator = await routed_need(mail_bot, imap)
    imap.deliver(message(PARTNER, f"RE: {routed.message['Subject']}",
                         "Ce n'est pas pour nous : hors de notre champ.",
                         to=routed.message["Reply-To"].addresses[0].addr_spec,
                         verdict=FORGED).as_bytes())
    notice = await says(animator, "non vérifié")
    assert "hors de notre champ" in notice.plain
    assert "Réaffecter" not in notice.button_labels()
    assert not [m for m in animator.messages if "décline" in m.plain]
    assert all(r.status == "routed" for r in await rows(mail_bot, NeedRouting))


async def test_an_unverified_answer_does_not_complete_and_route_a_need(
    mail_bot: RunningBot, imap: ImapServer
) -> None:
    imap.deliver(message(FIRM, "Formation", "Bonjour, nous voulons former nos opérateurs "
                         "à la soudure. Quelles aides existent ?").as_bytes())
    [reply] = await mails_to(mail_bot.smtp, FIRM)
    token = reply.message["Reply-To"].addresses[0].addr_spec
    # A forger names another commune: the need would go to that territory's partners.
    imap.deliver(message(FIRM, f"Re: {reply.message['Subject']}", "Nous sommes à Paray-le-Monial.",
                         to=token, verdict=FORGED).as_bytes())
    # Verified, but with the subject tag only (a fresh email, not to the reply address).
    imap.deliver(message(FIRM, f"Re: {reply.message['Subject']}",
                         "Nous sommes à Paray-le-Monial.").as_bytes())
    await imported(mail_bot, 3)
    await mail_bot.drained()
    [need] = await rows(mail_bot, Need)
    assert (need.status, need.missing, need.commune_insee) == ("awaiting_info", ["commune"],
                                                                None)
    assert await rows(mail_bot, NeedRouting) == []
    assert [m for m in mail_bot.smtp.messages if FIRM in m.rcpt_tos] == [reply]
    assert [m.verified for m in await rows(mail_bot, NeedMessage)] == [False, True]


async def test_a_forged_erasure_request_erases_nothing_until_the_address_on_file_confirms(
    mail_bot: RunningBot, imap: ImapServer
) -> None:
    imap.deliver(message(FIRM, "Recherche de soudeurs", FIRST_MAIL, name="Paul Dupont").as_bytes())
    [reply] = await mails_to(mail_bot.smtp, FIRM)
    need_address = reply.message["Reply-To"].addresses[0].addr_spec
    forged = message(FIRM, "Re: [TI-2026-0001] Recherche de soudeurs",
                     "Merci de supprimer mes données. Écrivez-moi à pirate@evil.example.",
                     name="Pirate", verdict=FORGED,
                     headers={"Reply-To": "pirate@evil.example"})
    imap.deliver(forged.as_bytes())
    [_, confirm] = await mails_to(mail_bot.smtp, FIRM, 2)

    # Nothing erased; the confirmation goes to the address on file, and only there.
    [need] = await rows(mail_bot, Need)
    assert (need.firm_name, need.contact_value, need.anonymized_at) == (
        "Paul Dupont", FIRM, None)
    assert list(confirm.rcpt_tos) == [FIRM]
    assert all("evil.example" not in r for m in mail_bot.smtp.messages for r in m.rcpt_tos)
    assert confirm.message["Subject"] == (
        "Re: [TI-2026-0001] Confirmer l'effacement de vos données")
    text = body(confirm)
    assert "Pour la confirmer, répondez à ce message en écrivant simplement : OUI" in text
    assert "Pirate" not in text and "pirate" not in text
    erase_address = confirm.message["Reply-To"].addresses[0].addr_spec
    assert erase_address.startswith("relais+") and erase_address != need_address

    # Asking again within the day sends nothing more (a forger cannot flood the firm).
    imap.deliver(message(FIRM, "Re: [TI-2026-0001]", "Supprimer mes données !",
                         verdict=FORGED).as_bytes())
    # "Oui" to the need's own address, or from another address to the token's: no erasure.
    imap.deliver(message(FIRM, f"Re: {confirm.message['Subject']}", "OUI",
                         to=need_address).as_bytes())
    imap.deliver(message("pirate@evil.example", "Re: confirmation", "OUI",
                         to=erase_address).as_bytes())
    # The firm says no to the token's address: nothing erased either.
    imap.deliver(message(FIRM, f"Re: {confirm.message['Subject']}",
                         "Non, je n'ai rien demandé !", to=erase_address).as_bytes())
    await imported(mail_bot, 6)
    await mail_bot.drained()
    need = await mail_bot.services.db.run(lambda session: session.exec(
        select(Need).where(Need.reference == "TI-2026-0001")).one())
    assert need.anonymized_at is None and need.contact_value == FIRM
    firm_mails = [m for m in mail_bot.smtp.messages if FIRM in m.rcpt_tos]
    assert firm_mails == [reply, confirm]

    # The firm confirms from its mailbox: erased, and told.
    imap.deliver(message(FIRM, f"Re: {confirm.message['Subject']}", "Bonjour,\nOui.\n",
                         to=erase_address, in_reply_to=confirm.message["Message-ID"],
                         verdict=None).as_bytes())
    done = (await mails_to(mail_bot.smtp, FIRM, 3))[2]
    assert "C'est fait : vos données personnelles sont effacées" in body(done)
    need = await mail_bot.services.db.run(lambda session: session.get(Need, need.id))
    assert (need.firm_name, need.contact_value) == (None, None)
    assert need.anonymized_at is not None
    # The token was for once: the same reply again is only a new email (a new need).
    imap.deliver(message(FIRM, "Re: confirmation", "Oui", to=erase_address).as_bytes())
    last = await imported(mail_bot, 8)
    assert [r.kind for r in sorted(last, key=lambda r: r.id or 0)][-2:] == [
        "firm_erase", "firm_new"]
