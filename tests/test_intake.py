"""The intake conversation, end to end: real Application, local Bot API, SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from storage.models import Consent, Conversation, NeedEvent, Outbox, ProcessedUpdate
from testing.botapi import SimUser
from tests.conftest import RunningBot, wait_until
from tests.helpers import DESCRIPTION, VALID_SIRET, all_needs, press, reach_summary, say


async def count(relais: RunningBot, model: type) -> int:
    def work(session: Session) -> int:
        return session.exec(select(func.count()).select_from(model)).one()

    return await relais.services.db.run(work)


@pytest.mark.slow
async def test_whole_intake_records_a_complete_need(relais: RunningBot) -> None:
    user = relais.api.user(1001, "Camille")
    first = await say(user, "/start")
    assert "Relais" in first[0].plain
    notice = first[-1]
    assert "Vos données" in notice.plain and "/supprimer" in notice.plain
    assert notice.button_labels() == ["J'accepte", "Je refuse"]
    # Nothing personal before consent.
    assert await count(relais, Consent) == 0
    assert await count(relais, Conversation) == 0

    replies = await press(user, "J'accepte")
    assert replies[-1].plain.startswith("Quel est le numéro SIRET")
    assert "✅ J'accepte" in notice.plain  # the notice now shows the choice, without buttons
    assert notice.button_labels() == []
    assert user.callback_answers, "the button press must be answered"

    assert (await say(user, VALID_SIRET))[-1].plain == "Quel est le nom de votre entreprise ?"
    assert "commune" in (await say(user, "Menuiserie Dupont"))[-1].plain
    theme_question = (await say(user, "paray le monial"))[-1]
    assert theme_question.plain.startswith("Quel est votre besoin principal")
    assert "Recruter" in theme_question.button_labels()
    assert len(theme_question.button_labels()) == 11
    assert "Décrivez" in (await press(user, "Recruter"))[-1].plain
    assert "Pour quand" in (await say(user, DESCRIPTION))[-1].plain
    assert "recontacté" in (await press(user, "Dans le mois"))[-1].plain
    assert "téléphone" in (await press(user, "Par téléphone"))[-1].plain
    summary = (await say(user, "06 12 34 56 78"))[-1]
    for expected in ("Menuiserie Dupont", VALID_SIRET, "Paray-le-Monial (71342)", "Recruter",
                     DESCRIPTION, "Dans le mois", "06 12 34 56 78"):
        assert expected in summary.plain
    assert summary.button_labels() == ["Envoyer la demande", "Modifier", "Annuler"]

    done = (await press(user, "Envoyer la demande"))[-1]
    assert "TI-2026-0001" in done.plain
    assert "Claire Martin" in done.plain and "Bourgogne Industrie" in done.plain
    assert "5 jours ouvrés" in done.plain

    [need] = await all_needs(relais.services.db)
    assert need.reference == "TI-2026-0001"
    assert need.status == "routed"
    assert (need.commune_insee, need.commune_name) == ("71342", "Paray-le-Monial")
    assert need.epci_siren == "200071884"
    assert need.territory_id == "ti-2703"
    assert need.siret == VALID_SIRET and need.contact_value == "+33612345678"
    assert need.theme == "recrutement" and need.urgency == "month"
    assert need.created_at.tzinfo is not None
    assert await count(relais, Conversation) == 0
    assert await count(relais, NeedEvent) == 2  # submitted, then routed


@pytest.mark.slow
async def test_references_follow_each_other_within_the_year(relais: RunningBot) -> None:
    for user_id in (1, 2):
        user = relais.api.user(user_id)
        await reach_summary(user)
        await press(user, "Envoyer la demande")
    refs = [n.reference for n in await all_needs(relais.services.db)]
    assert refs == ["TI-2026-0001", "TI-2026-0002"]


async def test_refusing_consent_stores_nothing(relais: RunningBot) -> None:
    user = relais.api.user(1002)
    await say(user, "/start")
    replies = await press(user, "Je refuse")
    assert "rien n'a été enregistré" in replies[-1].plain
    # Outside the form, text is a question for the knowledge base; nothing personal is kept.
    assert "/start" in (await say(user, "bonjour"))[-1].plain
    assert await count(relais, Consent) == 0
    assert await count(relais, Conversation) == 0


@pytest.mark.slow
async def test_bad_siret_is_reasked_with_the_reason(relais: RunningBot) -> None:
    user = relais.api.user(1003)
    await say(user, "/start")
    await press(user, "J'accepte")
    cases = {
        "abc": "que des chiffres",
        "732829320": "SIREN",
        "7328293200007": "j'en lis 13",
        "73282932000075": "clé de contrôle",
    }
    for answer, reason in cases.items():
        reply = (await say(user, answer))[-1]
        assert reason in reply.plain
        assert "Quel est le numéro SIRET" in reply.plain
        assert reply.button_labels() == ["Je ne l'ai pas sous la main"]
    assert "nom de votre entreprise" in (await press(user, "Je ne l'ai pas sous la main"))[-1].plain
    assert "commune" in (await say(user, "ACME"))[-1].plain


@pytest.mark.slow
async def test_ambiguous_postcode_offers_communes(relais: RunningBot) -> None:
    user = relais.api.user(1004)
    await say(user, "/start")
    await press(user, "J'accepte")
    await press(user, "Je ne l'ai pas sous la main")
    await say(user, "ACME")
    unknown = (await say(user, "Zzyzxville"))[-1]
    assert "Je ne trouve pas la commune « Zzyzxville »" in unknown.plain
    choice = (await say(user, "71600"))[-1]
    assert "Plusieurs communes" in choice.plain
    labels = choice.button_labels()
    assert "Paray-le-Monial (71)" in labels and labels[-1] == "Aucune de ces communes"
    # Back to the free-text question, then choose.
    assert "Dans quelle commune" in (await press(user, "Aucune de ces communes"))[-1].plain
    await say(user, "71600")
    assert "besoin principal" in (await press(user, "Paray-le-Monial (71)"))[-1].plain
    # The choice message now shows the commune chosen, and no longer offers buttons.
    chosen = [m for m in user.messages if "✅ Paray-le-Monial (71)" in m.plain]
    assert len(chosen) == 1 and chosen[0].button_labels() == []


@pytest.mark.slow
async def test_misspelt_commune_is_suggested_and_unknown_postcode_said(relais: RunningBot) -> None:
    user = relais.api.user(1014)
    await say(user, "/start")
    await press(user, "J'accepte")
    await press(user, "Je ne l'ai pas sous la main")
    await say(user, "ACME")
    unknown = (await say(user, "99999"))[-1]
    assert "99999 n'est pas un code postal connu" in unknown.plain
    one = (await say(user, "Le Creuzo"))[-1]
    assert "Vouliez-vous dire Le Creusot (71) ?" in one.plain
    assert one.button_labels() == ["Le Creusot (71)", "Aucune de ces communes"]
    assert "Dans quelle commune" in (await press(user, "Aucune de ces communes"))[-1].plain
    several = (await say(user, "Digion"))[-1]
    assert "Vouliez-vous dire l'une de celles-ci ?" in several.plain
    labels = several.button_labels()
    assert labels[0] == "Digoin (71)" and labels[-1] == "Aucune de ces communes"
    assert "besoin principal" in (await press(user, "Digoin (71)"))[-1].plain
    assert [m for m in user.messages if "✅ Digoin (71)" in m.plain]


@pytest.mark.slow
async def test_text_where_a_button_is_expected_gets_the_question_again(relais: RunningBot) -> None:
    user = relais.api.user(1005)
    await say(user, "/start")
    await press(user, "J'accepte")
    await say(user, VALID_SIRET)
    await say(user, "ACME")
    await say(user, "71342")
    replies = await say(user, "je sais pas trop")
    assert len(replies) == 1
    assert "boutons" in replies[0].plain and "besoin principal" in replies[0].plain
    assert len(replies[0].button_labels()) == 11


async def test_media_get_one_line_and_the_same_question(relais: RunningBot) -> None:
    user = relais.api.user(1006)
    await say(user, "/start")
    await press(user, "J'accepte")
    for action, words in ((user.send_sticker, "autocollants"), (user.send_photo, "photos"),
                          (user.send_voice, "vocaux")):
        replies = await user.replies_after(action())
        assert len(replies) == 1
        assert words in replies[0].plain
        assert "Quel est le numéro SIRET" in replies[0].plain


@pytest.mark.slow
async def test_description_length_is_enforced_with_the_count(relais: RunningBot) -> None:
    user = relais.api.user(1007)
    await say(user, "/start")
    await press(user, "J'accepte")
    await say(user, VALID_SIRET)
    await say(user, "ACME")
    await say(user, "Paray-le-Monial")
    await press(user, "Recruter")
    assert "(10 caractères)" in (await say(user, "trop court"))[-1].plain
    too_long = (await say(user, "x" * 2001))[-1]
    assert "2001 caractères" in too_long.plain and "2000" in too_long.plain
    assert "Pour quand" in (await say(user, "y" * 2000))[-1].plain


@pytest.mark.slow
async def test_email_contact_is_validated(relais: RunningBot) -> None:
    user = relais.api.user(1008)
    await reach_summary(user)
    await press(user, "Modifier")
    await press(user, "Contact")
    assert "e-mail" in (await press(user, "Par e-mail"))[-1].plain
    assert "pas valide" in (await say(user, "pas-une-adresse"))[-1].plain
    summary = (await say(user, "direction@menuiserie-dupont.fr"))[-1]
    assert "direction@menuiserie-dupont.fr" in summary.plain
    await press(user, "Envoyer la demande")
    [need] = await all_needs(relais.services.db)
    assert (need.contact_method, need.contact_value) == ("email", "direction@menuiserie-dupont.fr")


@pytest.mark.slow
async def test_edit_one_field_returns_to_the_summary(relais: RunningBot) -> None:
    user = relais.api.user(1009)
    await reach_summary(user)
    await press(user, "Modifier")
    assert "Décrivez" in (await press(user, "Description"))[-1].plain
    summary = (await say(user, "Finalement nous cherchons un apprenti chaudronnier."))[-1]
    assert "apprenti chaudronnier" in summary.plain and "Envoyer la demande" in summary.button_labels()
    await press(user, "Modifier")
    await press(user, "Commune")
    summary = (await say(user, "Le Creusot"))[-1]
    assert "Le Creusot" in summary.plain
    await press(user, "Envoyer la demande")
    [need] = await all_needs(relais.services.db)
    assert need.description == "Finalement nous cherchons un apprenti chaudronnier."
    assert need.epci_siren == "247100290"


@pytest.mark.slow
async def test_cancel_at_any_step_and_stale_buttons(relais: RunningBot) -> None:
    user = relais.api.user(1010)
    await say(user, "/start")
    await press(user, "J'accepte")
    await say(user, VALID_SIRET)
    await say(user, "ACME")
    await say(user, "Paray-le-Monial")
    assert "annulée" in (await say(user, "/annuler"))[-1].plain
    assert await count(relais, Conversation) == 0
    # The theme keyboard is still on screen: pressing it now changes nothing.
    replies = await relais.answered(user, user.press("Recruter"))
    assert replies == []
    assert user.callback_answers[-1].get("text") == "Cette question est déjà passée."
    assert "Aucune demande n'est en cours" in (await say(user, "/annuler"))[-1].plain
    # Consent is remembered: /start goes straight to the first question.
    assert (await say(user, "/start"))[-1].plain.startswith("Quel est le numéro SIRET")
    # Cancel from the summary too.
    await say(user, "/annuler")
    await reach_summary(user)
    assert "annulée" in (await press(user, "Annuler"))[-1].plain
    assert await all_needs(relais.services.db) == []


@pytest.mark.slow
async def test_help_and_unknown_command_repeat_the_pending_question(relais: RunningBot) -> None:
    user = relais.api.user(1011)
    await say(user, "/start")
    await press(user, "J'accepte")
    replies = await say(user, "/aide")
    assert "/mesdemandes" in replies[0].plain
    assert replies[-1].plain.startswith("Quel est le numéro SIRET")
    replies = await say(user, "/nimportequoi")
    assert "Je ne connais pas cette commande" in replies[0].plain
    assert replies[-1].plain.startswith("Quel est le numéro SIRET")
    replies = await say(user, "/start")
    assert replies[0].plain == "Reprenons où nous en étions."


@pytest.mark.slow
async def test_html_in_answers_is_shown_as_typed(relais: RunningBot) -> None:
    user = relais.api.user(1012)
    summary = (await reach_summary(user, name='<script>&"'))[-1]
    assert '<b>Entreprise</b> : &lt;script&gt;&amp;"' in summary.text
    assert 'Entreprise : <script>&"' in summary.plain
    refused = [c for c in relais.api.calls if c.status not in (0, 200)]
    assert refused == []
    await press(user, "Envoyer la demande")
    [need] = await all_needs(relais.services.db)
    assert need.firm_name == '<script>&"'


@pytest.mark.slow
async def test_commune_outside_every_territory_is_accepted_honestly(relais: RunningBot) -> None:
    user = relais.api.user(1013)
    await reach_summary(user, location="Brest")
    done = (await press(user, "Envoyer la demande"))[-1]
    assert "Aucun chef de projet Territoire d'industrie ne couvre encore la commune de Brest" in done.plain
    [need] = await all_needs(relais.services.db)
    assert need.territory_id is None and need.commune_insee == "29019"


@pytest.mark.slow
async def test_my_needs_and_erasure(relais: RunningBot) -> None:
    user = relais.api.user(1014)
    assert "aucune demande" in (await say(user, "/mesdemandes"))[-1].plain
    await reach_summary(user)
    await press(user, "Envoyer la demande")
    listing = (await say(user, "/mesdemandes"))[-1]
    assert "TI-2026-0001 · Recruter · transmise · 28/11/2026" in listing.plain
    question = (await say(user, "/supprimer"))[-1]
    assert question.button_labels() == ["Oui, tout effacer", "Non, garder"]
    assert "rien n'a été effacé" in (await press(user, "Non, garder"))[-1].plain
    await say(user, "/supprimer")
    assert "effacées" in (await press(user, "Oui, tout effacer"))[-1].plain
    [need] = await all_needs(relais.services.db)
    assert need.firm_name is None and need.description is None and need.siret is None
    assert need.telegram_user_id is None and need.contact_value is None
    assert need.anonymized_at is not None
    # Anonymous counts stay.
    assert (need.theme, need.commune_insee, need.reference) == ("recrutement", "71342", "TI-2026-0001")
    assert await count(relais, Consent) == 0
    # Consent must be asked again.
    assert (await say(user, "/start"))[-1].button_labels() == ["J'accepte", "Je refuse"]


async def test_a_redelivered_update_has_effect_once(relais: RunningBot) -> None:
    user = relais.api.user(1015)
    await say(user, "/start")
    await press(user, "J'accepte")
    update_id = await user.send_text(VALID_SIRET)
    await user.wait_for_messages(len(user.messages) + 1)
    before = len(user.messages)
    relais.api.redeliver(update_id)
    # A later real message proves the duplicate went through the bot first.
    replies = await say(user, "Fonderie Martin")
    assert len(user.messages) == before + 1
    assert "commune" in replies[-1].plain
    assert await count(relais, ProcessedUpdate) >= 4


async def test_a_rate_limited_reply_is_delivered_later_in_order(relais: RunningBot) -> None:
    user = relais.api.user(1016)
    await say(user, "/start")
    await relais.drained()
    relais.api.fail_next("sendMessage", status=429, retry_after=3)
    await user.press("J'accepte")

    def waiting(session: Session) -> list[Outbox]:
        return list(session.exec(select(Outbox).where(
            Outbox.attempts == 1, Outbox.delivered_at.is_(None))).all())  # type: ignore[union-attr]

    async def refused() -> bool:
        return len(await relais.services.db.run(waiting)) == 1

    # The refusal is recorded (retry in 3 s of fake time) before the clock moves.
    await wait_until(refused, "the 429 to be recorded")
    await relais.settled()
    [row] = await relais.services.db.run(waiting)
    assert row.not_before == relais.clock() + timedelta(seconds=3)
    assert len(user.messages) == 2  # the question waits for Telegram's retry_after
    relais.clock.advance(seconds=4)
    messages = await user.wait_for_messages(3, timeout=20)
    assert messages[-1].plain.startswith("Quel est le numéro SIRET")
    await relais.drained()  # the row is marked once Telegram accepted it
    assert len(user.messages) == 3


@pytest.mark.slow
async def test_need_needs_no_telegram_when_contact_is_telegram(relais: RunningBot) -> None:
    user = relais.api.user(1017)
    summary = (await reach_summary(user))[-1]
    assert "Ici, sur Telegram" in summary.plain
    await press(user, "Envoyer la demande")
    [need] = await all_needs(relais.services.db)
    assert need.contact_method == "telegram" and need.contact_value is None
    assert need.telegram_chat_id == 1017


@pytest.mark.slow
async def test_two_hundred_conversations_at_once(relais: RunningBot) -> None:
    async def step(user: SimUser, action: Awaitable[int], replies: int = 1) -> str:
        # Under load a quiet spell proves nothing: wait for the exact number of replies.
        before = len(user.messages)
        await action
        await user.wait_for_messages(before + replies, timeout=60)
        return user.messages[-1].plain

    async def firm(user_id: int) -> None:
        user = relais.api.user(user_id)
        assert "Acceptez-vous" in await step(user, user.send_command("/start"), 2)
        assert "SIRET" in await step(user, user.press("J'accepte"))
        assert "nom" in await step(user, user.press("Je ne l'ai pas sous la main"))
        assert "commune" in await step(user, user.send_text(f"Entreprise {user_id}"))
        assert "besoin" in await step(user, user.send_text("Le Creusot"))
        assert "Décrivez" in await step(user, user.press("Innover, moderniser"))
        assert "Pour quand" in await step(user, user.send_text(DESCRIPTION))
        assert "recontacté" in await step(user, user.press("Cette semaine"))
        assert f"Entreprise {user_id}" in await step(user, user.press("Ici, sur Telegram"))
        assert "TI-2026-" in await step(user, user.press("Envoyer la demande"))

    await asyncio.gather(*(firm(50_000 + i) for i in range(200)))
    needs = await all_needs(relais.services.db)
    assert len(needs) == 200
    assert len({n.reference for n in needs}) == 200
    assert sorted(int(n.reference[-4:]) for n in needs) == list(range(1, 201))
    # Nobody got somebody else's answers.
    assert all(n.firm_name == f"Entreprise {n.telegram_user_id}" for n in needs)
    assert await count(relais, Conversation) == 0


@pytest.mark.slow
async def test_a_commune_outside_every_territory_is_said_at_the_commune_step(
    relais: RunningBot,
) -> None:
    user = relais.api.user(1021)
    await say(user, "/start")
    await press(user, "J'accepte")
    await say(user, VALID_SIRET)
    await say(user, "Menuiserie Dupont")
    [question] = await say(user, "Brest")
    assert "Aucun Territoire d'industrie ne couvre encore Brest" in question.plain
    assert question.button_labels() == ["Continuer quand même", "Arrêter là"]
    replies = await press(user, "Arrêter là")
    assert "rien n'a été enregistré" in replies[-1].plain
    assert await all_needs(relais.services.db) == []
    # Going on: the form goes on, and moving to a covered commune from the summary is fine.
    await reach_summary(relais.api.user(1022), location="Brest")
    other = relais.api.user(1023)
    await reach_summary(other)
    await press(other, "Modifier")
    await press(other, "Commune")
    [question] = await say(other, "Brest")
    assert question.button_labels() == ["Continuer quand même", "Arrêter là"]
    [summary] = (await press(other, "Continuer quand même"))[-1:]
    assert "Brest (29019)" in summary.plain and "Récapitulatif" in summary.plain
