"""Erasure asked by email: the one-time confirmation, its life and what counts as "oui"."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, SQLModel, create_engine, select

from bot.services.mail_erasure import (
    COOLDOWN,
    VALID_FOR,
    ask_confirmation,
    confirmed_need,
    says_yes,
)
from storage.models import MailEraseConfirm, Need

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
FIRM = "Contact@Menuiserie-Dupont.fr"  # as typed on Telegram: capitals


@pytest.fixture
def session() -> Iterator[Session]:
    """A fresh in-memory database."""
    engine = create_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    with Session(engine) as db:
        yield db
    engine.dispose()


def a_need(session: Session, contact: str | None = FIRM, number: int = 1) -> Need:
    need = Need(reference=f"TI-2026-{number:04d}", theme="recrutement", urgency="none",
                contact_method="email", contact_value=contact, created_at=NOW, updated_at=NOW)
    session.add(need)
    session.flush()
    return need


def confirm(session: Session, token: str, *, sender: str = FIRM.lower(), text: str = "Oui",
            at: datetime = NOW) -> Need | None:
    return confirmed_need(session, tokens=(token,), sender=sender, text=text, now=at)


def test_a_token_confirms_once_from_the_address_on_file(session: Session) -> None:
    need = a_need(session)
    token = ask_confirmation(session, need, now=NOW)
    assert token is not None and len(token) == 16
    # Only its hash is stored.
    [row] = session.exec(select(MailEraseConfirm)).all()
    assert token not in row.token_hash and row.expires_at == NOW + VALID_FOR
    assert confirm(session, token, sender="pirate@evil.example") is None
    assert confirm(session, token, text="Non merci") is None
    assert confirm(session, "a" * 16) is None
    assert confirm(session, token.upper(), at=NOW + timedelta(hours=1)) is need
    assert confirm(session, token, at=NOW + timedelta(hours=2)) is None  # used


def test_a_token_expires(session: Session) -> None:
    need = a_need(session)
    token = ask_confirmation(session, need, now=NOW)
    assert token is not None
    assert confirm(session, token, at=NOW + VALID_FOR) is None


def test_one_confirmation_a_day_and_none_without_an_address(session: Session) -> None:
    need = a_need(session)
    first = ask_confirmation(session, need, now=NOW)
    assert first is not None
    assert ask_confirmation(session, need, now=NOW + COOLDOWN - timedelta(minutes=1)) is None
    second = ask_confirmation(session, need, now=NOW + COOLDOWN + timedelta(minutes=1))
    assert second is not None and second != first
    # Both still confirm (the first one may be the one the firm reads).
    assert confirm(session, first, at=NOW + COOLDOWN + timedelta(hours=1)) is need
    assert ask_confirmation(session, a_need(session, contact=None, number=2), now=NOW) is None


def test_an_erased_need_has_no_address_to_confirm_from(session: Session) -> None:
    need = a_need(session)
    token = ask_confirmation(session, need, now=NOW)
    assert token is not None
    need.contact_value = None  # erased meanwhile (on Telegram, by the CLI)
    session.add(need)
    assert confirm(session, token) is None


@pytest.mark.parametrize(("text", "yes"), [
    ("Oui", True), ("OUI.", True), ("oui, je confirme", True), ("Je confirme", True),
    ("Bonjour,\n\nOui.\nPaul Dupont", True), ("Bonjour Madame,\noui", True),
    ("Bonjour, oui.", True), ("Confirmé", True),
    ("Non", False), ("Oui ? Non, surtout pas", False), ("Bonjour,\nNon merci", False),
    ("Ce n'était pas moi", False), ("Ouistiti", False), ("", False),
    ("Qui êtes-vous ? Oui ou non ?", False), ("Bonjour,\n\n", False),
])
def test_what_counts_as_yes(text: str, yes: bool) -> None:
    assert says_yes(text) is yes
