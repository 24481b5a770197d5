"""The relay beyond Telegram: a partner's email reaches a firm on Telegram, the firm's answer
goes back to the partner by email in the same thread; a firm that chose email gets the chef
de projet's message by email and its answer comes back to Telegram. Through the real
Application, the Bot API double, a real SMTP server and a real IMAP mailbox."""

from __future__ import annotations

import re
from email.message import EmailMessage

import pytest
from sqlmodel import Session, col, select

from storage.models import Need, NeedMessage, NeedRouting, Outbox
from testing.botapi import BotMessage, SimUser
from testing.imap import BOT_ADDRESS, ImapServer
from testing.smtp import Received
from tests.conftest import RunningBot
from tests.helpers import DESCRIPTION, VALID_SIRET, press, say
from tests.test_email_channel import (  # noqa: F401 - fixtures
    ANIMATOR_ID,
    FIRM,
    FIRST_MAIL,
    PARTNER,
    body,
    imported,
    mail_bot,
    mails_to,
    message,
    rows,
    says,
)
from tests.test_routing_flow import submit

# End-to-end through real processes and servers: not in the fast lane.
pytestmark = pytest.mark.slow

ANIMATOR_EMAIL = "claire.martin@example.org"
FIRM_ID = 5201


async def _messages(bot: RunningBot) -> list[NeedMessage]:
    def work(session: Session) -> list[NeedMessage]:
        return list(session.exec(select(NeedMessage).order_by(col(NeedMessage.id))))
    return await bot.services.db.run(work)


async def _outbox_to(bot: RunningBot, recipient: str) -> int:
    def work(session: Session) -> int:
        return len(session.exec(select(Outbox).where(Outbox.recipient == recipient)).all())
    return await bot.services.db.run(work)


def _answer_to(routed: Received, sender: str, text: str, *, subject: str = "",
               to: str | None = None) -> EmailMessage:
    """The partner answering one of our emails (reply-all: the need's address first)."""
    reply_to = routed.message["Reply-To"].addresses[0].addr_spec
    return message(sender, subject or f"RE: {routed.message['Subject']}", text,
                   to=to or reply_to, in_reply_to=routed.message["Message-ID"])


async def _routed_telegram_firm(bot: RunningBot) -> tuple[SimUser, SimUser, Received]:
    """A firm on Telegram whose need went to France Travail; the partner's email."""
    animator = bot.api.user(ANIMATOR_ID)
    firm = bot.api.user(FIRM_ID, "Paul")
    await submit(bot, firm, name="Fonderie Martin")
    [routed] = await mails_to(bot.smtp, PARTNER)
    await says(animator, "Nouvelle demande TI-2026-0001")
    return firm, animator, routed


async def _firm_gets(firm: SimUser, fragment: str) -> BotMessage:
    return await says(firm, fragment)


async def test_a_partner_reaches_a_telegram_firm_then_directly_and_gets_its_answers(
    mail_bot: RunningBot, imap: ImapServer  # noqa: F811 - fixtures
) -> None:
    firm, animator, routed = await _routed_telegram_firm(mail_bot)
    token_address = routed.message["Reply-To"].addresses[0].addr_spec

    # The partner answers the need's email, with a question for the firm and a file.
    question = _answer_to(routed, PARTNER, (
        "Bonjour,\nPouvez-vous nous préciser le nombre de postes et les horaires ?\n\n"
        "Le 07/12/2026, Relais a écrit :\n> Bonjour,\n> Merci d'accuser réception..."))
    question.add_attachment(b"%PDF-1.4 offre", maintype="application", subtype="pdf",
                            filename="offre-soudeur.pdf")
    imap.deliver(question.as_bytes())
    notice = await says(animator, "a répondu au sujet de TI-2026-0001")
    assert "Transmettre à l'entreprise" in notice.button_labels()
    assert await _outbox_to(mail_bot, str(FIRM_ID)) > 0  # the firm's own earlier messages
    before = await _outbox_to(mail_bot, str(FIRM_ID))

    # The chef de projet passes it on: the firm reads it, then the file, then the question.
    done = (await press(animator, "Transmettre à l'entreprise"))[-1]
    assert done.plain == "Message de France Travail Paray-le-Monial transmis à Fonderie Martin."
    relayed = await _firm_gets(firm, "via votre chef de projet")
    assert relayed.plain.startswith(
        "France Travail Paray-le-Monial, via votre chef de projet, à propos de TI-2026-0001 :")
    assert "le nombre de postes et les horaires ?" in relayed.plain
    assert "Merci d'accuser réception" not in relayed.plain  # quoted history stripped
    assert relayed.button_labels() == ["Répondre"]
    mail_bot.clock.advance(seconds=5)  # relayed messages to one chat: one a second
    document = await _firm_gets(firm, "Pièce jointe de France Travail")
    assert (document.kind, document.file_name, document.data) == (
        "document", "offre-soudeur.pdf", b"%PDF-1.4 offre")
    consent = await _firm_gets(firm, "souhaite vous écrire ici")
    assert consent.button_labels() == ["Accepter", "Non merci"]
    assert await _outbox_to(mail_bot, str(FIRM_ID)) == before + 3
    # Pressed twice: passed on once.
    await animator.replies_after(animator.press("Transmettre à l'entreprise"))
    assert animator.callback_answers[-1].get("text") == "Ce message est déjà transmis."

    # The firm answers with "Répondre": the partner gets it by email, in its thread, the
    # chef de projet in copy, replies coming back to the need's address.
    prompt = (await press(firm, "Répondre"))[-1]
    assert prompt.plain.startswith("Votre réponse à France Travail Paray-le-Monial")
    sent = (await say(firm, "Deux postes, en horaires de journée."))[-1]
    assert sent.plain == ("Réponse envoyée par e-mail à France Travail Paray-le-Monial "
                          "(TI-2026-0001).")
    answer = (await mails_to(mail_bot.smtp, PARTNER, 2))[1]
    mail = answer.message
    assert mail["In-Reply-To"] == question["Message-ID"]
    assert routed.message["Message-ID"] in mail["References"]
    assert mail["Cc"].addresses[0].addr_spec == ANIMATOR_EMAIL
    assert ANIMATOR_EMAIL in answer.rcpt_tos
    assert mail["Reply-To"].addresses[0].addr_spec == token_address
    assert mail["Subject"].startswith("RE: ") and "[TI-2026-0001]" in mail["Subject"]
    assert mail["Auto-Submitted"] is None  # a person wrote it
    text = body(answer)
    assert "Fonderie Martin vous répond au sujet de la demande TI-2026-0001" in text
    assert "Deux postes, en horaires de journée." in text
    assert "Claire Martin, chef de projet, est en copie." in text

    # The firm accepts: the partner's next emails in the thread come straight to it.
    accepted = (await press(firm, "Accepter"))[-1]
    assert accepted.plain == ("C'est noté : les messages de France Travail Paray-le-Monial "
                              "vous arriveront directement ici.")
    await says(animator, "accepte que France Travail Paray-le-Monial lui écrive directement")
    mail_bot.clock.advance(seconds=5)
    again = _answer_to(answer, PARTNER, "Merci. Pouvons-nous venir jeudi à 10 h ?")
    imap.deliver(again.as_bytes())
    direct = await _firm_gets(firm, "Pouvons-nous venir jeudi à 10 h ?")
    assert direct.plain.startswith("France Travail Paray-le-Monial, via votre chef de projet")
    told = await says(animator, "Transmis directement à Fonderie Martin")
    assert "Transmettre à l'entreprise" not in told.button_labels()
    assert "Pouvons-nous venir jeudi" in told.plain

    # The firm answers with Telegram's own "reply": back to the partner, same thread.
    mail_bot.clock.advance(seconds=5)
    done = await firm.replies_after(firm.send_text("Oui, jeudi 10 h nous convient.",
                                                   reply_to=direct.message_id))
    assert done[-1].plain.startswith("Réponse envoyée par e-mail à France Travail")
    second = (await mails_to(mail_bot.smtp, PARTNER, 3))[2].message
    assert second["In-Reply-To"] == again["Message-ID"]
    assert second["Cc"].addresses[0].addr_spec == ANIMATOR_EMAIL
    assert "Oui, jeudi 10 h nous convient." in body((await mails_to(mail_bot.smtp,
                                                                    PARTNER, 3))[2])

    # The history has it all, each message with its direction and channel.
    kinds = [(m.author_kind, m.to_kind, m.channel) for m in await _messages(mail_bot)]
    assert kinds == [("partner", "firm", "email"), ("firm", "partner", "email"),
                     ("partner", "firm", "email"), ("firm", "partner", "email")]
    files = (await _messages(mail_bot))[0].attachment
    assert files is not None and files["files"] == [["offre-soudeur.pdf", 14,
                                                     "application/pdf"]]


async def test_an_email_from_the_partners_address_alone_never_reaches_the_firm(
    mail_bot: RunningBot, imap: ImapServer  # noqa: F811 - fixtures
) -> None:
    _, animator, routed = await _routed_telegram_firm(mail_bot)

    def accept(session: Session) -> None:
        routing = session.exec(select(NeedRouting).where(
            NeedRouting.partner_email == PARTNER)).one()
        routing.relay_direct = "accepted"
        session.add(routing)
    await mail_bot.services.db.run(accept)
    before = await _outbox_to(mail_bot, str(FIRM_ID))
    # Someone writes with the partner's address in From:, naming the need by its
    # subject and our Message-ID, but not to the need's reply address.
    forged = _answer_to(routed, PARTNER, "Envoyez-moi vos coordonnées bancaires.",
                        to=BOT_ADDRESS)
    imap.deliver(forged.as_bytes())
    notice = await says(animator, "aurait répondu au sujet de TI-2026-0001")
    assert "non vérifié" in notice.plain  # not to the need's address: the forgery of issue 16
    assert "Transmettre à l'entreprise" not in notice.button_labels()
    [done] = await imported(mail_bot, 1)
    assert done.kind == "partner_reply"
    assert await _outbox_to(mail_bot, str(FIRM_ID)) == before
    assert all(m.to_kind is None for m in await _messages(mail_bot))


async def test_a_firm_that_chose_email_gets_the_message_by_email_and_answers_to_telegram(
    mail_bot: RunningBot, imap: ImapServer  # noqa: F811 - fixtures
) -> None:
    first = message(FIRM, "Recherche de soudeurs", FIRST_MAIL, name="Paul Dupont")
    imap.deliver(first.as_bytes())
    [auto] = await mails_to(mail_bot.smtp, FIRM)
    animator = mail_bot.api.user(ANIMATOR_ID)
    await says(animator, "Nouvelle demande TI-2026-0001")
    [need] = await rows(mail_bot, Need)
    token_address = f"relais+{need.reply_token}@relais.example.org"

    prompt = (await press(animator, "Écrire à l'entreprise"))[-1]
    assert "Il lui part par e-mail ; sa réponse vous reviendra ici." in prompt.plain
    done = (await say(animator, "Bonjour, quand pouvons-nous passer vous voir ?"))[-1]
    assert done.plain == f"Message envoyé par e-mail à {need.firm_name}."
    relayed = (await mails_to(mail_bot.smtp, FIRM, 2))[1]
    mail = relayed.message
    assert mail["Reply-To"].addresses[0].addr_spec == token_address
    assert mail["In-Reply-To"] == first["Message-ID"]
    assert mail["Subject"] == "Re: [TI-2026-0001] Recherche de soudeurs"
    assert mail["Auto-Submitted"] is None
    text = body(relayed)
    assert ("Claire Martin, chef de projet du Territoire d'industrie Bourgogne Industrie, "
            "vous écrit à propos de votre demande TI-2026-0001 :") in text
    assert "quand pouvons-nous passer vous voir ?" in text
    assert auto.message["Message-ID"] != mail["Message-ID"]

    # The firm answers the email: the chef de projet reads it on Telegram, with "Répondre".
    imap.deliver(message(FIRM, f"Re: {mail['Subject']}",
                         "Mardi matin, à partir de 9 h.\n\n> Bonjour, quand pouvons-nous...",
                         to=token_address, in_reply_to=mail["Message-ID"]).as_bytes())
    news = await says(animator, "Mardi matin, à partir de 9 h.")
    assert news.plain.startswith(f"✉️ {need.firm_name} a écrit au sujet de TI-2026-0001")
    assert news.button_labels() == ["Répondre"]
    await press(animator, "Répondre")
    await say(animator, "Parfait, à mardi 9 h.")
    third = (await mails_to(mail_bot.smtp, FIRM, 3))[2]
    assert "Parfait, à mardi 9 h." in body(third)
    reply_id = [r for r in await rows(mail_bot, NeedMessage) if r.author_kind == "firm"]
    assert third.message["In-Reply-To"] == reply_id[0].message_id
    assert mail["Message-ID"] in third.message["References"]
    kinds = [(m.author_kind, m.to_kind, m.channel) for m in await _messages(mail_bot)]
    assert kinds == [("animator", "firm", "email"), ("firm", "animator", "email"),
                     ("animator", "firm", "email")]
    # The need's history shows the exchange.
    shown = (await say(animator, "/demande TI-2026-0001"))[-1]
    assert "Mardi matin" in shown.plain and "quand pouvons-nous passer" in shown.plain


async def test_the_contact_step_says_what_each_choice_means(relais: RunningBot) -> None:
    firm = relais.api.user(FIRM_ID + 1, "Paul")
    await say(firm, "/start")
    await press(firm, "J'accepte")
    await say(firm, VALID_SIRET)
    await say(firm, "Fonderie Martin")
    await say(firm, "Paray-le-Monial")
    await press(firm, "Recruter")
    await say(firm, DESCRIPTION)
    asked = (await press(firm, "Dans le mois"))[-1]
    assert asked.plain.split("\n") == [
        "Comment préférez-vous être recontacté ?",
        "Ici, sur Telegram : le chef de projet vous écrit dans cette conversation. "
        "Par téléphone : il vous appelle. Par e-mail : il vous écrit, vous répondez à son "
        "message."]
    assert asked.button_labels() == ["Ici, sur Telegram", "Par téléphone", "Par e-mail"]


async def test_a_partners_file_too_heavy_for_telegram_is_named_with_its_size(
    mail_bot: RunningBot, imap: ImapServer  # noqa: F811 - fixtures
) -> None:
    firm, animator, routed = await _routed_telegram_firm(mail_bot)
    plans = _answer_to(routed, PARTNER, "Voici les plans du poste de travail.")
    plans.add_attachment(b"x" * 60_000, maintype="application", subtype="octet-stream",
                         filename="plans.dwg")  # over the mailbox's limit (50 000 bytes)
    imap.deliver(plans.as_bytes())
    await says(animator, "a répondu au sujet de TI-2026-0001")
    await press(animator, "Transmettre à l'entreprise")
    await _firm_gets(firm, "Voici les plans du poste de travail.")
    mail_bot.clock.advance(seconds=5)
    named = await _firm_gets(firm, "plans.dwg")
    # The mailbox reads a message up to its size limit only (hostile-world issue): the file
    # is named, never relayed, and its size is said as a lower bound.
    assert re.fullmatch(
        r"France Travail Paray-le-Monial a joint « plans\.dwg » \(au moins \d+ Ko\), trop "
        r"lourd pour "
        r"vous être transmis ici\. Votre chef de projet peut vous l'envoyer par e-mail\.",
        named.plain), named.plain
    assert named.kind == "text"
