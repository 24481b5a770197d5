"""The company directory in the intake: fewer questions, facts stored, routing that uses them.

The real Application talks to the Bot API double; the directory is `testing/directory.py`
on loopback (the public API is never called in tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bot.config import DEFAULT_TERRITORIES_DIR
from bot.runtime import build_services, running_bot
from bot.services.explain import decision_text
from knowledge.geography import default_geography
from knowledge.routing import FirmFacts, Router
from knowledge.territories import load_territories
from storage.models import FirmLookup, Need, NeedRouting
from testing.botapi import LocalBotAPI, SimUser
from testing.clock import FakeClock
from testing.directory import (
    MASKED_SIRET,
    NOT_FOUND_SIRET,
    PLANT_SIRET,
    SERVER_ERROR,
    SIREN,
    RechercheDouble,
    Reply,
)
from testing.smtp import SmtpServer
from tests.conftest import RunningBot, make_settings, smtp_settings
from tests.helpers import DESCRIPTION, all_needs, press, say

ANIMATOR_ID = 900000001


@pytest.fixture
async def directory() -> AsyncIterator[RechercheDouble]:
    """The company directory double."""
    double = RechercheDouble()
    await double.start()
    try:
        yield double
    finally:
        await double.stop()


@pytest.fixture
async def firm_bot(
    api: LocalBotAPI, smtp: SmtpServer, tmp_path: Path, clock: FakeClock,
    directory: RechercheDouble,
) -> AsyncIterator[RunningBot]:
    """The bot with the firm lookup on, pointed at the double."""
    settings = make_settings(
        api, tmp_path / "relais.db", RELAIS_FIRM_LOOKUP=True,
        RECHERCHE_ENTREPRISES_URL=directory.base_url, RELAIS_FIRM_TIMEOUT=0.5,
        **smtp_settings(smtp),
    )
    services = await build_services(settings, clock=clock)
    async with running_bot(services):
        yield RunningBot(api, services, settings, clock, smtp)
    await services.db.dispose()


async def consented(user: SimUser) -> None:
    await say(user, "/start")
    await press(user, "J'accepte")


async def finish(user: SimUser, theme: str = "Recruter") -> None:
    """From the theme question to the confirmed need."""
    await press(user, theme)
    await say(user, DESCRIPTION)
    await press(user, "Dans le mois")
    await press(user, "Ici, sur Telegram")
    await press(user, "Envoyer la demande")


@pytest.mark.slow
async def test_siret_found_is_confirmed_and_name_and_commune_are_not_asked(
    firm_bot: RunningBot, directory: RechercheDouble
) -> None:
    user = firm_bot.api.user(7001)
    animator = firm_bot.api.user(ANIMATOR_ID)
    await say(animator, "/aide")  # Telegram: a bot cannot write first
    await consented(user)
    found = (await say(user, PLANT_SIRET))[-1]
    assert found.plain == (
        "J'ai trouvé : FONDERIE DU CHAROLAIS (FDC), Paray-le-Monial, "
        "fonderie de fonte (24.51Z), 100 à 199 salariés.\n"
        "C'est bien votre établissement ?"
    )
    assert found.button_labels() == ["Oui", "Non, corriger"]
    # "Oui": straight to the theme, the name and the commune come from the directory.
    replies = await press(user, "Oui")
    assert replies[-1].plain.startswith("Quel est votre besoin principal")
    assert "✅ Oui" in found.plain
    await press(user, "Former")
    await say(user, DESCRIPTION)
    await press(user, "Dans le mois")
    summary = (await press(user, "Ici, sur Telegram"))[-1]
    assert "Entreprise : FONDERIE DU CHAROLAIS (FDC)" in summary.plain
    assert f"SIRET : {PLANT_SIRET}" in summary.plain
    assert "Activité : fonderie de fonte (24.51Z) · 100 à 199 salariés" in summary.plain
    assert "Commune : Paray-le-Monial (71342)" in summary.plain
    before = len(animator.messages)
    await press(user, "Envoyer la demande")

    [need] = await all_needs(firm_bot.services.db)
    assert (need.firm_name, need.siret, need.commune_insee, need.epci_siren) == (
        "FONDERIE DU CHAROLAIS (FDC)", PLANT_SIRET, "71342", "200071884")
    firm = need.firm
    assert firm is not None
    assert (firm["naf"], firm["size_band"], firm["artisan"], firm["idccs"], firm["opco"],
            firm["opco_key"]) == ("24.51Z", "22", False, ["3248"], "OPCO 2i", "opco-2i")
    assert firm["source"] == "recherche-entreprises.api.gouv.fr"
    assert firm["fetched_at"].startswith("2026-")
    # The animator's card shows the facts.
    await animator.wait_for_messages(before + 1)
    card = animator.messages[-1].plain
    assert ("Fiche publique : fonderie de fonte (24.51Z) · 100 à 199 salariés · non artisan · "
            "OPCO 2i (IDCC 3248) · source recherche-entreprises.api.gouv.fr, 28/11/2026") in card
    # The partners' emails carry them too (plain text and HTML).
    for _ in range(200):
        if any(m.rcpt_tos == ("opco2i-bfc@example.org",) for m in firm_bot.smtp.messages):
            break
        await asyncio.sleep(0.05)
    [mail] = [m.message for m in firm_bot.smtp.messages
              if m.rcpt_tos == ("opco2i-bfc@example.org",)]
    text = mail.get_body(("plain",)).get_content()
    assert ("Fiche publique : fonderie de fonte (24.51Z) · 100 à 199 salariés · non artisan · "
            "OPCO 2i (IDCC 3248)") in text
    assert "Fiche publique</td><td>fonderie de fonte (24.51Z)" in (
        mail.get_body(("html",)).get_content())
    # One API call for the whole conversation.
    assert len(directory.requests) == 1


@pytest.mark.slow
async def test_no_means_the_siret_is_asked_again(
    firm_bot: RunningBot, directory: RechercheDouble
) -> None:
    user = firm_bot.api.user(7002)
    await consented(user)
    await say(user, PLANT_SIRET)
    again = (await press(user, "Non, corriger"))[-1]
    assert again.plain.startswith("D'accord. Corrigez le numéro, ou passez cette question.")
    assert "Quel est le numéro SIRET" in again.plain
    assert again.button_labels() == ["Je ne l'ai pas sous la main"]
    assert "nom de votre entreprise" in (await press(user, "Je ne l'ai pas sous la main"))[-1].plain
    # A stale "Oui" cannot bring the refused establishment back.
    assert await firm_bot.answered(user, user.press_data("fc:yes")) == []


@pytest.mark.slow
async def test_not_found_keeps_the_number_and_asks_as_before(
    firm_bot: RunningBot, directory: RechercheDouble
) -> None:
    user = firm_bot.api.user(7003)
    await consented(user)
    reply = (await say(user, NOT_FOUND_SIRET))[-1]
    assert reply.plain.startswith("Je ne trouve pas ce SIRET dans l'annuaire public.")
    assert reply.plain.endswith("Quel est le nom de votre entreprise ?")
    await say(user, "Ateliers Réunis")
    await say(user, "Paray-le-Monial")
    # The name search found nothing under that name: no choice offered, the form goes on.
    await finish(user)
    [need] = await all_needs(firm_bot.services.db)
    assert need.siret == NOT_FOUND_SIRET and need.firm is None
    assert need.firm_name == "Ateliers Réunis"


@pytest.mark.slow
@pytest.mark.parametrize("failure", ["server_error", "timeout"])
async def test_directory_down_never_blocks_the_conversation(
    firm_bot: RunningBot, directory: RechercheDouble, failure: str
) -> None:
    user = firm_bot.api.user(7004)
    await consented(user)
    reply = Reply(500, SERVER_ERROR) if failure == "server_error" else Reply(200, {}, delay=3)
    directory.script(reply, reply, reply)
    answer = (await say(user, PLANT_SIRET))[-1]
    # Silent: the firm is asked as if there were no directory.
    assert answer.plain == "Quel est le nom de votre entreprise ?"
    await say(user, "Fonderie du Charolais")
    await say(user, "Paray-le-Monial")
    await finish(user)
    [need] = await all_needs(firm_bot.services.db)
    assert need.siret == PLANT_SIRET and need.firm is None


async def test_masked_firm_is_never_shown(
    firm_bot: RunningBot, directory: RechercheDouble
) -> None:
    user = firm_bot.api.user(7005)
    await consented(user)
    answer = (await say(user, MASKED_SIRET))[-1]
    # A sole trader who opposed publication: as if unknown, nothing of the record shown.
    assert answer.plain == ("Je ne trouve pas ce SIRET dans l'annuaire public. "
                            "Je le garde tel quel.\n\nQuel est le nom de votre entreprise ?")
    assert "NON-DIFFUSIBLE" not in "".join(m.plain for m in user.messages)


@pytest.mark.slow
async def test_siren_gives_the_firm_and_the_commune_is_still_asked(
    firm_bot: RunningBot, directory: RechercheDouble
) -> None:
    user = firm_bot.api.user(7006)
    await consented(user)
    found = (await say(user, SIREN))[-1]
    assert found.plain.startswith(
        "J'ai trouvé l'entreprise FONDERIE DU CHAROLAIS (FDC), siège à Lyon 2e Arrondissement")
    assert found.plain.endswith("C'est bien votre entreprise ?")
    assert "commune" in (await press(user, "Oui"))[-1].plain
    summary_before = await say(user, "Paray-le-Monial")
    assert "besoin principal" in summary_before[-1].plain
    await finish(user)
    [need] = await all_needs(firm_bot.services.db)
    assert need.siret is None and need.firm is not None and need.firm["siren"] == SIREN
    assert need.firm_name == "FONDERIE DU CHAROLAIS (FDC)" and need.commune_insee == "71342"


@pytest.mark.slow
async def test_name_and_commune_search_offers_the_firms_found(
    firm_bot: RunningBot, directory: RechercheDouble
) -> None:
    user = firm_bot.api.user(7007)
    await consented(user)
    await press(user, "Je ne l'ai pas sous la main")
    await say(user, "Fonderie")
    choice = (await say(user, "Paray-le-Monial"))[-1]
    assert choice.plain == "J'ai trouvé ces entreprises à Paray-le-Monial. Est-ce l'une d'elles ?"
    assert choice.button_labels() == [
        "FONDERIE DU CHAROLAIS (FDC) · fonderie de fonte", "Aucune de ces entreprises"]
    assert directory.requests[-1]["query"] == {
        "q": "Fonderie", "per_page": "5", "page": "1", "code_commune": "71342"}
    assert "besoin principal" in (await press(user, "FONDERIE DU CHAROLAIS (FDC) · fonderie de fonte"))[-1].plain
    await finish(user)
    [need] = await all_needs(firm_bot.services.db)
    # The establishment of that commune, not the head office in Lyon.
    assert need.siret == PLANT_SIRET and need.firm is not None and need.firm["naf"] == "24.51Z"
    assert need.firm_name == "Fonderie"  # the name the firm typed stays


@pytest.mark.slow
async def test_none_of_these_firms_goes_on_without_facts(
    firm_bot: RunningBot, directory: RechercheDouble
) -> None:
    user = firm_bot.api.user(7008)
    await consented(user)
    await press(user, "Je ne l'ai pas sous la main")
    await say(user, "Fonderie")
    await say(user, "71600")  # ambiguous postcode: the search waits for the commune chosen
    assert len(directory.requests) == 0
    choice = (await press(user, "Paray-le-Monial (71)"))[-1]
    assert choice.button_labels()[-1] == "Aucune de ces entreprises"
    assert "besoin principal" in (await press(user, "Aucune de ces entreprises"))[-1].plain
    await finish(user)
    [need] = await all_needs(firm_bot.services.db)
    assert need.siret is None and need.firm is None


def test_router_uses_the_firms_opco_and_leaves_unknown_branches_to_the_animator() -> None:
    geography = default_geography()
    router = Router(load_territories(DEFAULT_TERRITORIES_DIR, geography=geography), geography)

    def partners(firm: FirmFacts) -> tuple[set[str], str]:
        decision = router.route(theme="competences", commune_insee="71342", firm=firm)
        return {r.partner.id for r in decision.partners}, decision_text(decision).plain()

    # Nothing known (no lookup): the OPCO of the territory receives it, as before.
    assert "opco2i-bfc" in partners(FirmFacts())[0]
    # Metallurgy (3248 → OPCO 2i): its own OPCO.
    assert "opco2i-bfc" in partners(FirmFacts(idcc=("3248",), opco="opco-2i"))[0]
    # Building trades (Constructys): not OPCO 2i, and the reason is written down.
    chosen, why = partners(FirmFacts(idcc=("1596",), opco="constructys"))
    assert "opco2i-bfc" not in chosen
    assert "OPCO 2i Bourgogne-Franche-Comté (l'entreprise relève d'un autre OPCO : Constructys)" in why
    # Unmapped agreement or two OPCO: no OPCO is chosen; the animator decides.
    chosen, why = partners(FirmFacts(idcc=("1486", "3248")))
    assert "opco2i-bfc" not in chosen and "non déterminé" in why
    # An artisan goes to the CMA, not the CCI (innovation is served by both chambers).
    decision = router.route(theme="innovation", commune_insee="71342",
                            firm=FirmFacts(artisan=True))
    kinds = {r.partner.kind for r in decision.partners}
    assert "cma" in kinds and "cci" not in kinds


def test_partner_opco_is_checked(tmp_path: Path) -> None:
    from knowledge.territories import Partner

    base = {"id": "x-opco", "name": "Un OPCO", "email": "a@example.org",
            "themes": ["competences"]}
    assert Partner(**base, kind="opco", opco="ocapiat").opco == "ocapiat"
    with pytest.raises(ValueError, match="OPCO inconnu 'opco-9'"):
        Partner(**base, kind="opco", opco="opco-9")
    with pytest.raises(ValueError, match="ne vaut que pour un partenaire de type opco"):
        Partner(**base, kind="cci", opco="ocapiat")


@pytest.mark.slow
async def test_siret_of_a_known_firm_in_another_opco_is_not_sent_to_opco_2i(
    firm_bot: RunningBot, directory: RechercheDouble
) -> None:
    # Same foundry, but its establishment reports the textile agreement... of another OPCO:
    # change the double's record so the agreements point to Constructys (1596).
    import copy

    from testing.directory import PLANT_SIRET as siret
    page = copy.deepcopy(directory.fixtures[siret])
    page["results"][0]["matching_etablissements"][0]["liste_idcc"] = ["1596"]
    directory.fixtures[siret] = page
    user = firm_bot.api.user(7011)
    await consented(user)
    await say(user, siret)
    await press(user, "Oui")
    await finish(user, "Former")

    def partners(session: Session) -> set[str]:
        return {r.partner_id for r in session.exec(select(NeedRouting)).all()}

    routed = await firm_bot.services.db.run(partners)
    assert "opco2i-bfc" not in routed

    def note(session: Session) -> str:
        from storage.models import NeedEvent
        return " ".join(e.note or "" for e in session.exec(select(NeedEvent)).all())

    assert "l'entreprise relève d'un autre OPCO : Constructys" in await firm_bot.services.db.run(note)


@pytest.mark.slow
async def test_the_cache_answers_the_second_firm_and_supprimer_forgets_it(
    firm_bot: RunningBot, directory: RechercheDouble
) -> None:
    first = firm_bot.api.user(7012)
    await consented(first)
    await say(first, PLANT_SIRET)
    await press(first, "Oui")
    await finish(first)
    second = firm_bot.api.user(7013)
    await consented(second)
    assert "FONDERIE DU CHAROLAIS" in (await say(second, PLANT_SIRET))[-1].plain
    assert len(directory.requests) == 1  # the second lookup came from the database

    await say(first, "/supprimer")
    await press(first, "Oui, tout effacer")

    def state(session: Session) -> tuple[int, list[Need]]:
        cached = len(session.exec(select(FirmLookup)).all())
        return cached, list(session.exec(select(Need)).all())

    cached, needs = await firm_bot.services.db.run(state)
    assert cached == 0
    assert needs[0].firm is None and needs[0].siret is None


@pytest.mark.slow
async def test_concurrent_firms_with_the_same_siret_share_one_call(
    firm_bot: RunningBot, directory: RechercheDouble
) -> None:
    users = [firm_bot.api.user(7100 + i) for i in range(5)]
    await asyncio.gather(*(consented(u) for u in users))
    directory.script(Reply(200, directory.fixtures[PLANT_SIRET], delay=0.2))
    replies = await asyncio.gather(*(say(u, PLANT_SIRET) for u in users))
    assert all("FONDERIE DU CHAROLAIS" in r[-1].plain for r in replies)
    assert len(directory.requests) == 1


async def questions_until_summary(user: SimUser, answers: list[tuple[str, str]]) -> tuple[int, int]:
    """Play answers (("say", text) or ("press", label)); count questions asked and typed."""
    asked = typed = 0
    for kind, value in answers:
        replies = await (say(user, value) if kind == "say" else press(user, value))
        asked += 1
        typed += kind == "say"
        if "Récapitulatif" in replies[-1].plain:
            return asked, typed
    raise AssertionError("no summary")


@pytest.mark.slow
async def test_a_siret_saves_two_typed_questions(
    firm_bot: RunningBot, directory: RechercheDouble
) -> None:
    tail = [("press", "Recruter"), ("say", DESCRIPTION), ("press", "Dans le mois"),
            ("press", "Ici, sur Telegram")]
    without = firm_bot.api.user(7201)
    await consented(without)
    asked_without, typed_without = await questions_until_summary(without, [
        ("press", "Je ne l'ai pas sous la main"), ("say", "Ateliers Réunis"),
        ("say", "Paray-le-Monial"), *tail])
    with_siret = firm_bot.api.user(7202)
    await consented(with_siret)
    asked_with, typed_with = await questions_until_summary(with_siret, [
        ("say", PLANT_SIRET), ("press", "Oui"), *tail])
    # Without: SIRET (skipped), name, commune, theme, description, urgency, contact.
    # With: SIRET, "C'est bien votre établissement ?", theme, description, urgency, contact.
    assert (asked_without, typed_without) == (7, 3)
    assert (asked_with, typed_with) == (6, 2)
    # Against a firm that types its SIRET and then everything else (lookup off): 2 fewer.
    assert (typed_without + 1) - typed_with == 2


@pytest.mark.slow
async def test_artisan_goes_to_the_cma_and_industry_to_the_cci_end_to_end(
    firm_bot: RunningBot, directory: RechercheDouble
) -> None:
    import copy

    from testing.directory import ARTISAN_SIREN

    # The roofer of the double, moved to Paray-le-Monial for this test.
    page = copy.deepcopy(directory.fixtures[ARTISAN_SIREN])
    head = page["results"][0]["siege"]
    head.update(commune="71342", libelle_commune="PARAY-LE-MONIAL", code_postal="71600")
    siret = head["siret"]
    page["results"][0]["matching_etablissements"] = [copy.deepcopy(head)]
    directory.fixtures[siret] = page
    artisan = firm_bot.api.user(7301)
    await consented(artisan)
    assert "COUVERTURES DU CAUSSE" in (await say(artisan, siret))[-1].plain
    await press(artisan, "Oui")
    await finish(artisan, "Innover, moderniser")
    industrial = firm_bot.api.user(7302)
    await consented(industrial)
    await say(industrial, PLANT_SIRET)
    await press(industrial, "Oui")
    await finish(industrial, "Innover, moderniser")

    def kinds(session: Session) -> dict[str, set[str]]:
        result: dict[str, set[str]] = {}
        for routing, need in session.exec(
                select(NeedRouting, Need).where(NeedRouting.need_id == Need.id)):
            result.setdefault(need.reference, set()).add(routing.partner_kind)
        return result

    routed = await firm_bot.services.db.run(kinds)
    assert "cma" in routed["TI-2026-0001"] and "cci" not in routed["TI-2026-0001"]
    assert "cci" in routed["TI-2026-0002"] and "cma" not in routed["TI-2026-0002"]


@pytest.mark.slow
@pytest.mark.parametrize("failure", ["429_long", "503", "not_json", "stub", "breaker"])
async def test_every_directory_failure_leaves_the_form_going(
    firm_bot: RunningBot, directory: RechercheDouble, failure: str
) -> None:
    from testing.directory import STUB_SIRET

    siret = PLANT_SIRET
    if failure == "429_long":
        directory.script(Reply(429, {"erreur": "Trop de requêtes"}, {"Retry-After": "60"}))
    elif failure == "503":
        directory.script(Reply(503, SERVER_ERROR))
    elif failure == "not_json":
        directory.script(Reply(200, "<html>maintenance</html>"))
    elif failure == "stub":
        siret = STUB_SIRET
    else:
        # Three failures open the breaker: the fourth firm is not even looked up.
        directory.script(*(Reply(500, SERVER_ERROR) for _ in range(3)))
        for i in range(3):
            other = firm_bot.api.user(7400 + i)
            await consented(other)
            await say(other, PLANT_SIRET)
        requests = len(directory.requests)
    user = firm_bot.api.user(7410)
    await consented(user)
    answer = (await say(user, siret))[-1]
    assert answer.plain.endswith("Quel est le nom de votre entreprise ?")
    if failure == "breaker":
        assert len(directory.requests) == requests
    await say(user, "Fonderie du Charolais")
    await say(user, "Paray-le-Monial")
    await finish(user)
    needs = [n for n in await all_needs(firm_bot.services.db) if n.telegram_user_id == 7410]
    assert len(needs) == 1 and needs[0].siret == siret and needs[0].firm is None
