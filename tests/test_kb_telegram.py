"""Knowledge-base answers in Telegram, through the real Application and the Bot API double."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bot.runtime import build_services, running_bot
from knowledge.cards import CARDS_DIR
from storage.models import KbQuery
from testing.botapi import LocalBotAPI
from testing.clock import FakeClock
from tests.conftest import RunningBot, make_settings
from tests.helpers import VALID_SIRET, all_needs, press, say


async def queries(relais: RunningBot) -> list[KbQuery]:
    def work(session: Session) -> list[KbQuery]:
        return list(session.exec(select(KbQuery).order_by(KbQuery.id)).all())

    return await relais.services.db.run(work)


async def test_a_question_gets_the_best_card_with_its_buttons(relais: RunningBot) -> None:
    user = relais.api.user(3001)
    [reply] = await say(user, "on a un vieux batiment vide a cote de l'usine, on peut le rehabiliter ?")
    assert reply.plain.startswith("Fonds friches") or "friche" in reply.plain.split("\n")[0].lower()
    assert "Conditions principales" in reply.plain
    assert reply.button_labels() == ["Détails", "Qui contacter", "Ce n'est pas ça",
                                     "Déposer une demande"]
    details = (await press(user, "Détails"))[-1]
    assert "Pour qui" in details.plain and "Comment faire" in details.plain
    contacts = (await press(user, "Qui contacter"))[-1]
    assert "Qui contacter" in contacts.plain
    [row] = await queries(relais)
    assert row.outcome == "answered" and row.best_card_id == "fonds_friches_recyclage_foncier"
    refused = [c for c in relais.api.calls if c.status not in (0, 200)]
    assert refused == []


async def test_ended_scheme_names_its_successor(relais: RunningBot) -> None:
    user = relais.api.user(3002)
    [reply] = await say(user, "c quoi transco")
    assert "a pris fin le 31/12/2025" in reply.plain
    assert "Période de reconversion" in reply.plain or "période de reconversion" in reply.plain


async def test_out_of_scope_is_refused_and_can_be_forwarded(relais: RunningBot) -> None:
    user = relais.api.user(3003)
    animator = relais.api.user(900000001, "Claire")
    await animator.send_text("bonjour")  # the animator has opened the bot
    await animator.wait_for_messages(1)
    [reply] = await say(user, "quelle est la recette de la blanquette de veau")
    assert "pas de fiche" in reply.plain
    assert reply.button_labels() == ["Transmettre ma question"]
    before = len(animator.messages)
    assert "transmise" in (await press(user, "Transmettre ma question"))[-1].plain
    forwarded = await animator.wait_for_messages(before + 1)
    assert "blanquette de veau" in forwarded[-1].plain
    # the animator's « bonjour » was politeness, not a question: only the firm's is kept
    [row] = await queries(relais)
    assert row.outcome == "forwarded" and "blanquette" in row.text


async def test_greetings_and_thanks_get_a_human_answer(relais: RunningBot) -> None:
    """Politeness alone is answered as such, never with « pas de fiche », and not recorded."""
    user = relais.api.user(3010)
    [hello] = await say(user, "Bonjour !")
    assert hello.plain.startswith("Bonjour !") and "/start" in hello.plain
    assert "pas de fiche" not in hello.plain and hello.button_labels() == []
    [thanks] = await say(user, "merci beaucoup")
    assert thanks.plain.startswith("Avec plaisir") and "pas de fiche" not in thanks.plain
    [nod] = await say(user, "ok super")
    assert nod.plain.startswith("C'est noté")
    [bye] = await say(user, "au revoir")
    assert bye.plain.startswith("Au revoir")
    assert await queries(relais) == []
    # a greeting followed by a question is a question for the cards
    [reply] = await say(user, "bonjour, une aide pour embaucher un apprenti ?")
    assert "apprentissage" in reply.plain.split("\n")[0].lower()
    [row] = await queries(relais)
    assert row.best_card_id == "aide_embauche_alternants"


async def test_not_that_is_recorded_with_the_query(relais: RunningBot) -> None:
    user = relais.api.user(3004)
    await say(user, "c quoi la POEC")
    replies = await press(user, "Ce n'est pas ça")
    assert "c'est noté" in replies[-1].plain
    assert "Transmettre ma question" in replies[-1].button_labels()
    [row] = await queries(relais)
    assert (row.outcome, row.text) == ("rejected", "c quoi la POEC")


@pytest.mark.slow
async def test_apply_from_a_card_prefills_the_theme(relais: RunningBot) -> None:
    user = relais.api.user(3005)
    await say(user, "c quoi la POEC")
    replies = await press(user, "Déposer une demande")
    assert replies[-1].button_labels() == ["J'accepte", "Je refuse"]
    replies = await press(user, "J'accepte")
    assert "Thème retenu" in replies[-2].plain
    await say(user, VALID_SIRET)
    await say(user, "Forges de Bourgogne")
    # The theme question is skipped: straight to the description.
    assert "Décrivez" in (await say(user, "Le Creusot"))[-1].plain


async def test_question_in_the_middle_of_the_intake_then_the_question_again(
    relais: RunningBot,
) -> None:
    user = relais.api.user(3006)
    await say(user, "/start")
    await press(user, "J'accepte")
    replies = await say(user, "c'est quoi un VTE ?")
    assert len(replies) == 2
    assert "VTE" in replies[0].plain or "Volontariat" in replies[0].plain
    assert replies[1].plain.startswith("Quel est le numéro SIRET")
    # The answer to the form still works.
    assert "nom de votre entreprise" in (await say(user, VALID_SIRET))[-1].plain


@pytest.mark.slow
async def test_reload_by_animator_reports_broken_cards(
    api: LocalBotAPI, tmp_path: Path, clock: FakeClock
) -> None:
    cards = tmp_path / "cards"
    cards.mkdir()
    for card in CARDS_DIR.glob("*.md"):
        (cards / card.name).write_text(card.read_text(encoding="utf-8"), encoding="utf-8")
    settings = make_settings(api, tmp_path / "db.sqlite", RELAIS_CARDS_DIR=str(cards),
                             RELAIS_CARDS_WATCH=0.2)
    services = await build_services(settings, clock=clock)
    animator = api.user(900000001, "Claire")
    firm = api.user(3007)
    async with running_bot(services):
        assert "réservée aux chefs de projet" in (await say(firm, "/recharger"))[-1].plain
        (cards / "poec.md").write_text("---\nid: poec\ntitle: [cassé\n---\n", encoding="utf-8")
        shipped = len(list(CARDS_DIR.glob("*.md")))
        replies = await say(animator, "/recharger")
        assert f"{shipped - 1} fiches" in replies[0].plain
        bad = [c for c in api.calls if c.status not in (0, 200)]
        assert bad == [], bad
        assert "poec.md" in replies[-1].plain
        # The other cards still answer.
        [reply] = await say(firm, "c quoi transco")
        assert "reconversion" in reply.plain.lower()
        # The file watch picks up a new fix without any command.
        (cards / "poec.md").write_text(
            (CARDS_DIR / "poec.md").read_text(encoding="utf-8"), encoding="utf-8"
        )
        for _ in range(50):
            if len(services.questions.kb.cards) == shipped:
                break
            await asyncio.sleep(0.1)
        assert len(services.questions.kb.cards) == shipped
    await services.db.dispose()
    assert await all_needs(services.db) == []
