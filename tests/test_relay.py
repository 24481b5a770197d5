"""The relay: after routing, the firm and its chef de projet write to each other through
Relais, on Telegram, through the real Application and the Bot API double."""

from __future__ import annotations

import pytest
from sqlmodel import Session, col, select

from storage.models import NeedMessage, Outbox
from testing.botapi import BotMessage, SimUser
from tests.conftest import RunningBot
from tests.helpers import all_needs, press, say
from tests.test_routing_flow import message_with, opened_animator, submit

# End-to-end through real processes and servers: not in the fast lane.
pytestmark = pytest.mark.slow

FIRM_ID = 5101


async def _routed(relais: RunningBot, firm_id: int = FIRM_ID, name: str = "Fonderie Martin"
                  ) -> tuple[SimUser, SimUser, BotMessage]:
    """A firm whose need reached the animator; the animator's card."""
    animator = await opened_animator(relais)
    firm = relais.api.user(firm_id, "Paul")
    await submit(relais, firm, name=name)
    card = await message_with(animator, "Nouvelle demande TI-2026-000")
    return firm, animator, card


async def _messages(relais: RunningBot) -> list[NeedMessage]:
    def work(session: Session) -> list[NeedMessage]:
        return list(session.exec(select(NeedMessage).order_by(col(NeedMessage.id))))
    return await relais.services.db.run(work)


async def test_animator_and_firm_write_to_each_other_with_the_reference(
    relais: RunningBot,
) -> None:
    firm, animator, card = await _routed(relais)
    assert "Écrire à l'entreprise" in card.button_labels()
    prompt = (await press(animator, "Écrire à l'entreprise"))[-1]
    assert "Votre message pour Fonderie Martin (TI-2026-0001)" in prompt.plain
    before = len(firm.messages)
    done = await say(animator, "Bonjour, pouvez-vous me dire combien de soudeurs ?")
    assert done[-1].plain == "Message transmis à Fonderie Martin."
    await firm.wait_for_messages(before + 1)
    relayed = firm.messages[-1]
    assert relayed.plain.startswith(
        "Claire Martin, chef de projet du Territoire d'industrie Bourgogne Industrie, "
        "vous écrit à propos de TI-2026-0001 :")
    assert "combien de soudeurs ?" in relayed.plain
    assert "Pour lui répondre" in relayed.plain  # a person, through Relais
    assert relayed.button_labels() == ["Répondre"]

    # The firm answers with the button: the animator reads it, with the reference.
    prompt = (await press(firm, "Répondre"))[-1]
    assert "Votre réponse au chef de projet (TI-2026-0001)" in prompt.plain
    before = len(animator.messages)
    assert (await say(firm, "Trois soudeurs TIG, dès mars."))[-1].plain == (
        "Message transmis au chef de projet (TI-2026-0001).")
    await animator.wait_for_messages(before + 1)
    answer = animator.messages[-1]
    assert answer.plain.startswith("Fonderie Martin vous écrit à propos de TI-2026-0001 :")
    assert "Trois soudeurs TIG, dès mars." in answer.plain
    assert answer.button_labels() == ["Répondre"]

    # The firm answers again with Telegram's own "reply" on the relayed message (a few
    # seconds later: relayed messages to one chat are spaced by a second).
    relais.clock.advance(seconds=5)
    before = len(animator.messages)
    await firm.replies_after(firm.send_text("Et un chaudronnier.", reply_to=relayed.message_id))
    await animator.wait_for_messages(before + 1)
    assert "Et un chaudronnier." in animator.messages[-1].plain

    # The animator answers with "Répondre" on the firm's message.
    relais.clock.advance(seconds=5)
    await press(animator, "Répondre")
    before = len(firm.messages)
    await say(animator, "Noté, je transmets à France Travail.")
    await firm.wait_for_messages(before + 1)
    assert "Noté, je transmets à France Travail." in firm.messages[-1].plain

    rows = await _messages(relais)
    assert [(m.author_kind, m.to_kind, m.channel) for m in rows] == [
        ("animator", "firm", "telegram"), ("firm", "animator", "telegram"),
        ("firm", "animator", "telegram"), ("animator", "firm", "telegram")]
    assert rows[0].author == "Claire Martin" and rows[1].author == "entreprise"
    # The need's history shows the exchange.
    shown = (await say(animator, "/demande TI-2026-0001"))[-1]
    assert "Trois soudeurs TIG" in shown.plain and "combien de soudeurs" in shown.plain


async def test_a_photo_is_relayed_by_its_telegram_file(relais: RunningBot) -> None:
    firm, animator, _ = await _routed(relais, 5102)
    await press(animator, "Écrire à l'entreprise")
    before = len(firm.messages)
    await animator.replies_after(animator.send_photo(caption="Le plan de la zone"))
    await firm.wait_for_messages(before + 1)
    photo = firm.messages[-1]
    assert photo.raw.get("photo") and "Le plan de la zone" in photo.plain
    assert "à propos de TI-2026-0001" in photo.plain
    [row] = await _messages(relais)
    assert row.attachment is not None and row.attachment["kind"] == "photo"


async def test_a_stranger_reaches_nobody(relais: RunningBot) -> None:
    firm, animator, _ = await _routed(relais, 5103)
    [need] = await all_needs(relais.services.db)
    stranger = relais.api.user(5999, "Mallory")
    await say(stranger, "/aide")
    for data in (f"rl:w:{need.id}", f"rl:r:{need.id}", "rl:r:999", "rl:x:1", "rl:"):
        # The press is answered and the outbox drained: nothing more can come of it.
        assert await relais.answered(stranger, stranger.press_data(data)) == []
        assert stranger.callback_answers[-1].get("text") == "Ce bouton n'est pas pour vous."
    # A Telegram "reply" naming someone else's reference is a plain question, not a relay.
    before_firm, before_animator = len(firm.messages), len(animator.messages)
    answer = await stranger.replies_after(stranger.send_text(
        "TI-2026-0001 : je veux voir", reply_to=stranger.messages[-1].message_id))
    assert not any(m.plain.startswith("Message transmis") for m in answer)
    await relais.drained()
    assert await _messages(relais) == []
    assert len(firm.messages) == before_firm and len(animator.messages) == before_animator


async def test_a_firm_with_two_open_needs_is_asked_which_one(relais: RunningBot) -> None:
    firm, animator, _ = await _routed(relais, 5104)
    await submit(relais, firm, name="Fonderie Martin")
    for reference in ("TI-2026-0001", "TI-2026-0002"):
        await message_with(animator, f"Nouvelle demande {reference}")
    # The animator writes about each need.
    for index in (0, 1):
        cards = [m for m in animator.messages if "Écrire à l'entreprise" in m.button_labels()]
        await animator.replies_after(animator.press("Écrire à l'entreprise",
                                                    message_id=cards[index].message_id))
        await say(animator, f"Question {index + 1}")
        relais.clock.advance(seconds=5)
    # A reply to a bot message that names no reference: which need is it about?
    welcome = next(m for m in firm.messages if "Bonjour, je suis Relais" in m.plain)
    asked = await firm.replies_after(firm.send_text("Voici ma réponse", reply_to=welcome.message_id))
    assert asked[-1].plain == "À propos de quelle demande est votre message ?"
    labels = asked[-1].button_labels()
    assert len(labels) == 2 and all(label.startswith("TI-2026-000") for label in labels)
    before = len(animator.messages)
    await press(firm, labels[1])
    await animator.wait_for_messages(before + 1)
    assert "Voici ma réponse" in animator.messages[-1].plain
    assert "TI-2026-000" in animator.messages[-1].plain


async def test_a_firm_flooding_the_relay_is_held_not_dropped(relais: RunningBot) -> None:
    firm, animator, _ = await _routed(relais, 5105)
    await press(animator, "Écrire à l'entreprise")
    await say(animator, "Bonjour")
    relayed = [m for m in firm.messages if "Répondre" in m.button_labels()][-1]
    notices = []
    for index in range(8):
        replies = await firm.replies_after(firm.send_text(
            f"message {index}", reply_to=relayed.message_id))
        notices.append(replies[-1].plain)
        relais.clock.advance(seconds=2)
    per_minute = relais.services.settings.relay_per_minute
    assert notices[:per_minute] == ["Message transmis au chef de projet (TI-2026-0001)."] \
        * per_minute
    assert all("partira dans une minute" in n for n in notices[per_minute:])

    def held(session: Session) -> int:
        rows = session.exec(select(Outbox).where(Outbox.recipient == "900000001",
                                                 col(Outbox.delivered_at).is_(None)))
        now = relais.services.clock()
        return sum(1 for row in rows if row.not_before > now)
    assert await relais.services.db.run(held) >= 8 - per_minute
    # Nothing is lost: every message is in the need's history.
    assert len([m for m in await _messages(relais) if m.author_kind == "firm"]) == 8
