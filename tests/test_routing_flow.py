"""A confirmed need reaches its partners by email and its animators on Telegram, end to end."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import Session, select

from storage.models import NeedRouting, Outbox
from testing.botapi import SimUser
from testing.smtp import SmtpServer
from tests.conftest import RunningBot, wait_until
from tests.helpers import all_needs, press, reach_summary, say

ANIMATOR_ID = 900000001


async def wait_for_emails(smtp: SmtpServer, count: int, within: float = 10.0) -> list:
    """Wait until the SMTP server holds `count` messages."""
    for _ in range(int(within / 0.05)):
        if len(smtp.messages) >= count:
            break
        await asyncio.sleep(0.05)
    return smtp.messages


async def message_with(user: SimUser, fragment: str, within: float = 20.0):
    """Wait for a bot message containing `fragment` in this chat."""
    for _ in range(int(within / 0.05)):
        found = [m for m in user.messages if fragment in m.plain]
        if found:
            return found[-1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no message with {fragment!r}: {[m.plain[:60] for m in user.messages]}")


async def submit(relais: RunningBot, user: SimUser, **kwargs: str) -> list:
    """Walk the intake and confirm; return the firm's last messages."""
    await reach_summary(user, **kwargs)
    return await press(user, "Envoyer la demande")


async def opened_animator(relais: RunningBot) -> SimUser:
    """The example territory's animator, who has opened the bot."""
    animator = relais.api.user(ANIMATOR_ID, "Claire")
    await say(animator, "/aide")
    return animator


@pytest.mark.slow
async def test_need_is_emailed_to_partners_and_carded_to_the_animator(relais: RunningBot) -> None:
    animator = await opened_animator(relais)
    before = len(animator.messages)
    firm = relais.api.user(5001, "Paul")
    done = (await submit(relais, firm, name="Menuiserie Dupont"))[-1]
    assert "TI-2026-0001" in done.plain
    assert "Elle est transmise à : " in done.plain and "France Travail Paray-le-Monial" in done.plain

    await animator.wait_for_messages(before + 1)
    card = animator.messages[-1]
    assert "Nouvelle demande TI-2026-0001" in card.plain
    assert "Menuiserie Dupont" in card.plain and "Paray-le-Monial (71342)" in card.plain
    assert "thème recrutement, zone EPCI 200071884" in card.plain
    # Each partner is named once on its line, then why it got the need.
    assert "• France Travail Paray-le-Monial : thème recrutement" in card.plain
    assert "Paray-le-Monial : France Travail" not in card.plain
    assert card.button_labels() == ["Je prends", "Réaffecter", "Écrire à l'entreprise",
                                    "Proposer un RDV", "Clore"]

    def routings(session: Session) -> list[NeedRouting]:
        return list(session.exec(select(NeedRouting)).all())

    routed = await relais.services.db.run(routings)
    emails = await wait_for_emails(relais.smtp, len(routed))
    assert len(routed) >= 2  # France Travail and the OPCO at least
    await relais.drained()
    assert len(relais.smtp.messages) == len(routed), "each partner gets exactly one email"
    by_rcpt = {m.rcpt_tos[0]: m.message for m in emails}
    assert {r.partner_email for r in routed} == set(by_rcpt)
    mail = by_rcpt[next(r.partner_email for r in routed if r.partner_kind == "france_travail")]
    assert mail["Subject"] == "[TI-2026-0001] Recrutement — Menuiserie Dupont (Paray-le-Monial)"
    assert mail["Reply-To"].addresses[0].addr_spec == "claire.martin@example.org"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Message-ID"].endswith("@relais.example.org>")
    text = mail.get_body(("plain",)).get_content()
    assert "Merci d'accuser réception" in text and "zone EPCI 200071884" in text
    html = mail.get_body(("html",)).get_content()
    assert "Menuiserie Dupont" in html


@pytest.mark.slow
async def test_take_reassign_close_and_the_firm_is_told(relais: RunningBot) -> None:
    animator = await opened_animator(relais)
    firm = relais.api.user(5002, "Paul")
    await submit(relais, firm)
    await animator.wait_for_messages(2)
    replies = await press(animator, "Je prends")
    assert "Prise en charge par Claire Martin" in replies[-1].plain
    news = await message_with(firm, "prend en charge")
    assert "Claire Martin prend en charge votre demande TI-2026-0001" in news.plain
    assert "ici, sur Telegram" in news.plain
    assert "en cours" in (await say(firm, "/mesdemandes"))[-1].plain

    # Reassign: one more partner gets the email.
    emails_before = len(await wait_for_emails(relais.smtp, 2))
    menu = (await press(animator, "Réaffecter"))[-1]
    assert any("CCI" in label for label in menu.button_labels())
    cci = next(label for label in menu.button_labels() if label.startswith("CCI"))
    assert "Transmise aussi à" in (await press(animator, cci))[-1].plain
    emails = await wait_for_emails(relais.smtp, emails_before + 1)
    assert "CCI" in emails[-1].message["To"] or "cci" in emails[-1].rcpt_tos[0]

    # The need's card now says who has it, and offers no "Je prends".
    shown = (await say(animator, "/demande TI-2026-0001"))[-1]
    assert shown.plain.startswith("Demande TI-2026-0001 · prise en charge par Claire Martin")
    assert "Nouvelle demande" not in shown.plain
    assert shown.button_labels() == ["Réaffecter", "Écrire à l'entreprise", "Proposer un RDV",
                                     "Clore"]
    assert "• France Travail Paray-le-Monial : thème recrutement" in shown.plain
    assert "CCI" in shown.plain and "choisi par Claire Martin" in shown.plain
    assert "animateur:" not in shown.plain and "(routing)" not in shown.plain

    # Close, with a reason.
    await press(animator, "Clore")
    assert "Close : Aidée" in (await press(animator, "Aidée"))[-1].plain
    [need] = await all_needs(relais.services.db)
    assert need.status == "closed_helped"
    history = (await say(animator, "/demande TI-2026-0001"))[-1]
    assert "Historique" in history.plain and "close" in history.plain
    assert history.plain.startswith("Demande TI-2026-0001 · close")
    assert history.button_labels() == []
    lines = history.plain.split("Historique", 1)[1].strip().splitlines()
    assert [line.split(" · ", 1)[1] for line in lines] == [
        "déposée par l'entreprise",
        "transmise aux partenaires",
        "prise en charge par Claire Martin",
        "close par Claire Martin : entreprise aidée",
    ]
    # The manual routing says who chose the partner, by name, once.
    assert "• CCI" in history.plain and "choisi par Claire Martin" in history.plain


@pytest.mark.slow
async def test_only_the_territorys_animators_may_act(relais: RunningBot) -> None:
    await opened_animator(relais)
    firm = relais.api.user(5003, "Paul")
    await submit(relais, firm)
    [need] = await all_needs(relais.services.db)
    # The firm forges an animator button.
    assert await relais.answered(firm, firm.press_data(f"ani:take:{need.id}")) == []
    assert firm.callback_answers[-1]["text"] == (
        "Cette commande est réservée aux chefs de projet Territoire d'industrie."
    )
    assert "réservée aux chefs de projet" in (await say(firm, "/demandes"))[-1].plain
    assert "réservée aux chefs de projet" in (await say(firm, "/demande TI-2026-0001"))[-1].plain
    [need] = await all_needs(relais.services.db)
    assert need.status == "routed"
    # An outsider who is no animator cannot see the need either.
    stranger = relais.api.user(5004)
    assert "TI-2026-0001" not in (await say(stranger, "/demande TI-2026-0001"))[-1].plain.replace(
        "Je ne trouve pas la demande TI-2026-0001", "")
    # Malformed data does not crash anything.
    await relais.answered(firm, firm.press_data("ani:take:abc"))
    await relais.answered(firm, firm.press_data("ani:closed:99999:helped"))
    assert (await say(firm, "/aide"))[-1].plain


@pytest.mark.slow
async def test_open_needs_are_listed_with_pages(relais: RunningBot) -> None:
    animator = await opened_animator(relais)
    for i in range(10):
        await submit(relais, relais.api.user(5100 + i), name=f"Atelier {i}")
    listing = (await say(animator, "/demandes"))[-1]
    assert "Demandes ouvertes (10) · page 1/2" in listing.plain
    assert "Suivantes ▶" in listing.button_labels()
    page2 = (await press(animator, "Suivantes ▶"))[-1]
    assert "page 2/2" in page2.plain
    opened = (await press(animator, page2.button_labels()[0]))[-1]
    assert "Nouvelle demande TI-2026-" in opened.plain and "Historique" in opened.plain


@pytest.mark.slow
async def test_smtp_down_then_back_every_email_once(relais: RunningBot) -> None:
    await relais.smtp.stop()
    firm = relais.api.user(5005)
    await submit(relais, firm)

    def pending(session: Session) -> list[Outbox]:
        return list(session.exec(select(Outbox).where(Outbox.channel == "email")).all())

    async def tried() -> bool:
        return any(r.attempts >= 1 for r in await relais.services.db.run(pending))

    # The worker met the closed port and stopped: the email it tried waits for its retry,
    # the others stay leased (fake time moves neither).
    await wait_until(tried, "an email to fail")
    rows = await relais.services.db.run(pending)
    assert rows and all(r.delivered_at is None for r in rows)
    await relais.smtp.start()
    relais.clock.advance(minutes=10)  # past the retry backoff
    emails = await wait_for_emails(relais.smtp, len(rows))
    await relais.drained()
    assert len(emails) == len(rows)
    assert len({m.message["Message-ID"] for m in emails}) == len(rows)
    rows = await relais.services.db.run(pending)
    assert all(r.delivered_at is not None for r in rows)


@pytest.mark.slow
async def test_an_animator_of_another_territory_sees_nothing(
    api, smtp, tmp_path, clock
) -> None:
    from bot.config import DEFAULT_TERRITORIES_DIR
    from bot.runtime import build_services, running_bot
    from tests.conftest import make_settings, smtp_settings

    territories = tmp_path / "territories"
    territories.mkdir()
    source = DEFAULT_TERRITORIES_DIR / "bourgogne-industrie.yaml"
    (territories / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    (territories / "brest.yaml").write_text(
        "id: ti-test-brest\nname: Territoire de test Brest\n"
        "epci:\n  - siren: \"242900314\"\n    name: Brest Métropole\n"
        "animators:\n  - name: Yann Le Goff\n    email: yann@example.org\n"
        "    telegram_user_id: 900000002\n",
        encoding="utf-8",
    )
    settings = make_settings(api, tmp_path / "db.sqlite", TERRITORIES_DIR=str(territories),
                             **smtp_settings(smtp))
    services = await build_services(settings, clock=clock)
    async with running_bot(services):
        bot = RunningBot(api, services, settings, clock, smtp)
        firm = api.user(5200)
        await submit(None, firm)  # type: ignore[arg-type]
        [need] = await all_needs(services.db)
        other = api.user(900000002, "Yann")
        await say(other, "/aide")
        listing = (await say(other, "/demandes"))[-1]
        assert "Aucune demande ouverte" in listing.plain
        shown = (await say(other, f"/demande {need.reference}"))[-1]
        assert shown.plain == f"Je ne trouve pas la demande {need.reference}."
        for data in (f"ani:take:{need.id}", f"ani:show:{need.id}", f"ani:rp:{need.id}:cci-71",
                     f"ani:closed:{need.id}:helped"):
            assert await bot.answered(other, other.press_data(data)) == []
            assert other.callback_answers[-1]["text"] == "Cette demande n'est pas de votre territoire."
        assert all("Menuiserie" not in m.plain for m in other.messages)
    [need] = await all_needs(services.db)
    await services.db.dispose()
    assert need.status == "routed"


@pytest.mark.slow
async def test_a_firm_that_blocked_the_bot_is_reported_to_the_animator(relais: RunningBot) -> None:
    animator = await opened_animator(relais)
    firm = relais.api.user(5300, "Paul")
    await submit(relais, firm, name="Fonderie Bloquée")
    firm.block()
    await press(animator, "Je prends")  # the firm's notice is refused: bot blocked
    notice = await message_with(animator, "non distribué")
    assert "TI-2026-0001" in notice.plain and "Fonderie Bloquée" in notice.plain
    assert "Motif : l'entreprise a bloqué Relais" in notice.plain  # in French, not Telegram's

    def failed(session: Session) -> list[Outbox]:
        return list(session.exec(select(Outbox).where(Outbox.failed_at.is_not(None))).all())  # type: ignore[union-attr]

    [row] = await relais.services.db.run(failed)
    assert row.recipient == "5300" and "blocked" in (row.last_error or "")


@pytest.mark.slow
async def test_telegram_500_then_everything_arrives_once(relais: RunningBot) -> None:
    animator = await opened_animator(relais)
    firm = relais.api.user(5400, "Paul")
    await reach_summary(firm)
    await relais.drained()
    relais.api.fail_next("sendMessage", status=500, retry_after=None, times=2)
    await firm.press("Envoyer la demande")

    def waiting(session: Session) -> list[Outbox]:
        return list(session.exec(select(Outbox).where(
            Outbox.channel == "telegram", Outbox.attempts == 1,
            Outbox.delivered_at.is_(None))).all())  # type: ignore[union-attr]

    async def both_failed() -> bool:
        return len(await relais.services.db.run(waiting)) == 2

    # The firm's reply and the animator's card each met a 500 and wait for their retry.
    # Only then may the clock move: a first attempt made after the jump would wait for a
    # retry that fake time never reaches.
    await wait_until(both_failed, "the reply and the card to fail once")
    await relais.settled()
    assert {r.recipient for r in await relais.services.db.run(waiting)} == {
        "5400", str(ANIMATOR_ID)}
    assert not any("TI-2026-0001" in m.plain for m in firm.messages)
    relais.clock.advance(seconds=30)  # past the retry backoff
    await message_with(firm, "TI-2026-0001")
    await message_with(animator, "Nouvelle demande TI-2026-0001")
    await relais.drained()
    assert sum("TI-2026-0001" in m.plain for m in firm.messages) == 1
    assert sum("Nouvelle demande" in m.plain for m in animator.messages) == 1
