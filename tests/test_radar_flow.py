"""The mutualisation radar on Telegram: groups shown to the animator only, firms asked."""

from __future__ import annotations

import threading

import pytest

from testing.botapi import SimUser
from tests.conftest import RunningBot
from tests.helpers import press, reach_summary, say

ANIMATOR_ID = 900000001


async def file_need(relais: RunningBot, user_id: int, name: str) -> SimUser:
    firm = relais.api.user(user_id)
    await reach_summary(firm, name=name)
    await press(firm, "Envoyer la demande")
    return firm


@pytest.mark.slow
async def test_radar_groups_firms_and_asks_before_sharing_names(relais: RunningBot) -> None:
    animator = relais.api.user(ANIMATOR_ID, "Claire")
    await say(animator, "/aide")
    first = await file_need(relais, 6401, "Chaudronnerie Martin")
    second = await file_need(relais, 6402, "Forges du Brionnais")
    assert (await say(first, "/radar"))[-1].plain.startswith("Cette commande est réservée")
    replies = await say(animator, "/radar")
    assert replies[0].plain.startswith("Besoins communs possibles (1) · visibles de vous seul")
    assert "Relisez chaque groupe" in replies[0].plain
    card = replies[1]
    # The groups were computed in the radar's worker thread, not on the event loop.
    assert any(th.name.startswith("relais-radar") for th in threading.enumerate())
    assert "Chaudronnerie Martin" in card.plain and "Forges du Brionnais" in card.plain
    # The group is explained by its object, the count of firms said once.
    assert card.plain.startswith("2 entreprises : soudeurs à recruter")
    assert card.plain.count("entreprises") == 1
    # each need with the sentence that puts it in the group (computed in the worker thread)
    assert ("TI-2026-0001 · Chaudronnerie Martin (Paray-le-Monial) : « Nous cherchons deux "
            "soudeurs qualifiés pour notre atelier de Paray. »") in card.plain
    assert card.button_labels() == ["Proposer aux entreprises", "Écarter",
                                    "Retirer TI-2026-0001", "Retirer TI-2026-0002"]
    before_first, before_second = len(first.messages), len(second.messages)
    done = (await press(animator, "Proposer aux entreprises"))[-1]
    assert done.plain == "Proposé à 2 entreprises. Je vous transmets leurs réponses."
    ask = (await first.wait_for_messages(before_first + 1))[-1]
    assert ask.plain.startswith("D'autres entreprises du territoire ont un besoin proche")
    # A firm never learns who the others are.
    assert "Forges" not in ask.plain and "Chaudronnerie" not in ask.plain
    await second.wait_for_messages(before_second + 1)
    # Proposed again: both firms were asked already, nobody is asked twice.
    again = (await press(animator, "Proposer aux entreprises"))[-1]
    assert again.plain.startswith("Aucune entreprise de plus à solliciter")
    before = len(animator.messages)
    assert (await press(first, "Oui, d'accord"))[-1].plain.startswith("Merci.")
    note = (await animator.wait_for_messages(before + 1))[-1]
    assert note.plain == ("Chaudronnerie Martin (TI-2026-0001) accepte que son nom soit "
                          "communiqué au groupe.")
    assert (await press(second, "Non merci"))[-1].plain.startswith("C'est noté")
    # Pressing again changes nothing.
    assert await relais.answered(first, first.press("Non merci")) == []
    # Dismissed, the group is not shown again.
    await say(animator, "/radar")
    assert (await press(animator, "Écarter"))[-1].plain == (
        "Groupe écarté : ces demandes ne seront plus rapprochées les unes des autres.")
    assert (await say(animator, "/radar"))[-1].plain == (
        "Aucun besoin commun repéré parmi les demandes ouvertes de votre territoire.")


@pytest.mark.slow
async def test_a_need_taken_out_or_a_group_set_aside_never_comes_back(
        relais: RunningBot) -> None:
    """« Retirer » keeps the rest together; « Écarter » holds when one more need joins."""
    animator = relais.api.user(ANIMATOR_ID, "Claire")
    await say(animator, "/aide")
    for user_id, name in ((6501, "Chaudronnerie Martin"), (6502, "Forges du Brionnais"),
                          (6503, "Tôlerie de l'Arconce")):
        await file_need(relais, user_id, name)
    card = (await say(animator, "/radar"))[1]
    assert card.plain.startswith("3 entreprises : soudeurs à recruter")
    taken = (await press(animator, "Retirer TI-2026-0003"))[-1]
    assert taken.plain.startswith("TI-2026-0003 est retirée du groupe")
    # a mistaken tap is undone: the group of three is back
    assert (await press(animator, "Annuler"))[-1].plain.startswith("C'est annulé")
    again = (await say(animator, "/radar"))[1]
    assert again.plain.startswith("3 entreprises : soudeurs à recruter")
    card = again
    taken = (await press(animator, "Retirer TI-2026-0003"))[-1]
    assert taken.plain.startswith("TI-2026-0003 est retirée du groupe")
    assert taken.button_labels() == ["Annuler"]
    # the old card's buttons name a group that no longer exists
    stale = await relais.answered(
        animator, animator.press("Retirer TI-2026-0001", message_id=card.message_id))
    assert stale[-1].plain.startswith("Ce groupe a changé depuis")
    card = (await say(animator, "/radar"))[1]
    assert card.plain.startswith("2 entreprises : soudeurs à recruter")
    assert "Tôlerie" not in card.plain
    # a forged button: a need that is not in the group is refused, nothing is stored
    key = next(b["callback_data"] for row in card.inline_keyboard() for b in row
               if b["callback_data"].startswith("rad:dis:")).split(":")[2]
    assert await relais.answered(animator, animator.press_data(f"rad:out:999999:{key}")) == []
    assert animator.callback_answers[-1].get("text") == "Ce bouton n'est plus valable."
    aside = (await press(animator, "Écarter"))[-1]
    assert aside.plain.startswith("Groupe écarté")
    assert (await press(animator, "Annuler"))[-1].plain.startswith("C'est annulé")
    # undone once, the button has nothing left to undo
    stale = await relais.answered(animator, animator.press("Annuler",
                                                           message_id=aside.message_id))
    assert stale == [] and animator.callback_answers[-1].get("text") == (
        "Ce bouton n'est plus valable.")
    assert (await say(animator, "/radar"))[1].plain.startswith("2 entreprises")
    assert (await press(animator, "Écarter"))[-1].plain.startswith("Groupe écarté")
    # One more firm with the same need: before, the set-aside group came back with it (a new
    # member, a new key); now each group shown holds at most one of the three first needs.
    await file_need(relais, 6504, "Serrurerie Bourbon")
    replies = await say(animator, "/radar")
    firsts = ("Chaudronnerie Martin", "Forges du Brionnais", "Tôlerie de l'Arconce")
    cards = [r.plain for r in replies[1:]]
    assert cards, [r.plain for r in replies]
    for plain in cards:
        assert sum(name in plain for name in firsts) <= 1, plain
        assert "Serrurerie Bourbon" in plain
    # The corrections stay reviewable: a button under the title lists them, each liftable.
    assert replies[0].button_labels() == ["Vos corrections (2)"]
    listed = await press(animator, "Vos corrections (2)")
    assert listed[0].plain.startswith("Vos corrections du radar (2)")
    lines = {m.plain: m for m in listed[1:]}
    assert len(lines) == 2, list(lines)
    out = next(m for p, m in lines.items() if p.startswith("TI-2026-0003"))
    assert out.plain.startswith(
        "TI-2026-0003 retirée du groupe de TI-2026-0001, TI-2026-0002 · le ")
    aside = next(m for p, m in lines.items() if p.startswith("Groupe écarté"))
    assert aside.plain.startswith("Groupe écarté : TI-2026-0001, TI-2026-0002 · le ")
    assert out.button_labels() == aside.button_labels() == ["Rétablir"]
    lifted = await relais.answered(animator, animator.press("Rétablir",
                                                           message_id=aside.message_id))
    assert lifted[-1].plain.startswith("C'est annulé")
    # the first two firms are together again, with the fourth; the third stays out
    cards = [r.plain for r in (await say(animator, "/radar"))[1:]]
    assert any("Chaudronnerie Martin" in c and "Forges du Brionnais" in c for c in cards), cards
    assert not any("Tôlerie" in c and "Chaudronnerie Martin" in c for c in cards), cards
    # lifted once, the button is spent; the list holds the take-out only
    spent = await relais.answered(animator, animator.press("Rétablir",
                                                          message_id=aside.message_id))
    assert spent == [] and animator.callback_answers[-1].get("text") == (
        "Ce bouton n'est plus valable.")
    listed = await press(animator, "Vos corrections (1)")
    assert [m.plain[:12] for m in listed[1:]] == ["TI-2026-0003"]
    # another territory's list is not this animator's
    assert await relais.answered(animator, animator.press_data("rad:fix:ti-0101")) == []
    assert animator.callback_answers[-1].get("text") == "Ce bouton n'est plus valable."


def test_radar_eval_holds_the_bar() -> None:
    """`relais radar eval` on the legacy set: precision and recall ≥ 0.9."""
    from bot.radar_eval import evaluate
    from knowledge.retrieval import KnowledgeBase

    score = evaluate(kb=KnowledgeBase.load(None))
    assert score.expected_pairs >= 12 and score.needs >= 40
    assert score.precision >= 0.9 and score.recall >= 0.9
