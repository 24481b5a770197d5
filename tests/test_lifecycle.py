"""A need's lifecycle: checked moves, time-stamped events, and a history in French words."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session, SQLModel, create_engine, select

from bot.services import lifecycle
from bot.services.lifecycle import (
    FIRM,
    SYSTEM,
    IllegalTransition,
    acknowledge,
    change_status,
    history_label,
    next_reference,
    record_created,
)
from storage.migrate import upgrade
from storage.models import Need, NeedEvent, NeedRouting, NeedStatus

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
ANIMATORS = {"telegram:900000001": "Claire Martin"}
PARTNERS = {"ft-paray": "France Travail Paray-le-Monial"}


@pytest.fixture
def session() -> Iterator[Session]:
    """A fresh in-memory database."""
    engine = create_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    with Session(engine) as db:
        yield db
    engine.dispose()


def a_need(session: Session, status: NeedStatus = NeedStatus.SUBMITTED) -> Need:
    need = Need(reference=next_reference(session, 2026), status=status.value, theme="recrutement",
                urgency="month", contact_method="email", created_at=NOW, updated_at=NOW)
    session.add(need)
    session.flush()
    return need


def history(session: Session, need: Need) -> list[str]:
    events = session.exec(select(NeedEvent).where(NeedEvent.need_id == need.id)
                          .order_by(NeedEvent.id)).all()
    return [history_label(e, animators=ANIMATORS, partners=PARTNERS) for e in events]


def test_a_need_received_by_email_from_first_line_to_closing(session: Session) -> None:
    need = a_need(session, NeedStatus.AWAITING_INFO)
    record_created(session, need, actor=FIRM, now=NOW)
    change_status(session, need, NeedStatus.SUBMITTED, actor=FIRM, now=NOW, note="par e-mail")
    change_status(session, need, NeedStatus.ROUTED, actor=SYSTEM, now=NOW)
    routing = NeedRouting(need_id=need.id, partner_id="ft-paray", partner_kind="france_travail",
                          partner_name="France Travail Paray-le-Monial",
                          partner_email="ft@example.org", level="epci", reason="thème")
    session.add(routing)
    later = NOW + timedelta(days=1)
    acknowledge(session, need, routing, actor=lifecycle.partner("ft-paray"), now=later)
    # A second acknowledgement (another partner, or the same one again) moves nothing.
    acknowledge(session, need, routing, actor=lifecycle.partner("ft-paray"), now=later)
    claire = lifecycle.animator(900000001, "Claire Martin")
    change_status(session, need, NeedStatus.IN_PROGRESS, actor=claire, now=later)
    change_status(session, need, NeedStatus.CLOSED_HELPED, actor=claire, now=later)
    assert history(session, need) == [
        "reçue par e-mail, précisions demandées à l'entreprise",
        "complétée par l'entreprise",
        "transmise aux partenaires",
        "prise en compte par France Travail Paray-le-Monial",
        "prise en charge par Claire Martin",
        "close par Claire Martin : entreprise aidée",
    ]
    assert (need.status, need.updated_at) == ("closed_helped", later)
    assert (routing.status, routing.acknowledged_at) == ("acknowledged", later)
    # Roles and references, never a person's name or a firm's id.
    events = session.exec(select(NeedEvent).order_by(NeedEvent.id)).all()
    assert [(e.actor, e.actor_ref) for e in events] == [
        ("firm", None), ("firm", None), ("system", None), ("partner:ft-paray", None),
        ("animator", "telegram:900000001"), ("animator", "telegram:900000001")]
    assert [e.from_status for e in events][:2] == [None, "awaiting_info"]


def test_a_move_outside_the_table_is_refused_and_leaves_no_trace(session: Session) -> None:
    need = a_need(session, NeedStatus.CANCELLED)
    with pytest.raises(IllegalTransition):
        change_status(session, need, NeedStatus.IN_PROGRESS, actor=FIRM, now=NOW)
    closed = a_need(session, NeedStatus.CLOSED_HELPED)
    with pytest.raises(IllegalTransition):
        change_status(session, closed, NeedStatus.ROUTED, actor=SYSTEM, now=NOW)
    assert session.exec(select(NeedEvent)).all() == []
    assert (need.status, closed.status) == ("cancelled", "closed_helped")
    # Reopening a closed need is a move of the table.
    change_status(session, closed, NeedStatus.IN_PROGRESS, actor=SYSTEM, now=NOW)
    assert closed.status == "in_progress"


def test_names_nobody_knows_any_more_read_as_roles(session: Session) -> None:
    need = a_need(session)
    change_status(session, need, NeedStatus.ROUTED, actor=lifecycle.animator(123), now=NOW)
    change_status(session, need, NeedStatus.ACKNOWLEDGED, actor=lifecycle.partner("gone"),
                  now=NOW)
    change_status(session, need, NeedStatus.CANCELLED, actor=lifecycle.animator(123), now=NOW)
    # An erased animator: the reference is blanked, the role stays.
    session.add(NeedEvent(need_id=need.id, from_status="cancelled", to_status="cancelled",
                          actor="animator", actor_ref=None, at=NOW))
    assert history(session, need) == [
        "transmise à un partenaire par le chef de projet",
        "prise en compte par un partenaire",
        "annulée par le chef de projet",
        "annulée par le chef de projet",
    ]


def test_references_count_per_year_from_one() -> None:
    engine = create_engine("sqlite://")
    SQLModel.metadata.create_all(engine)
    with Session(engine) as session:
        assert [next_reference(session, 2026), next_reference(session, 2026),
                next_reference(session, 2027)] == ["TI-2026-0001", "TI-2026-0002",
                                                   "TI-2027-0001"]
    engine.dispose()


def test_old_history_lines_become_roles(tmp_path: Path) -> None:
    """Migration 0004: a firm's Telegram id and email sender are dropped, names kept as refs."""
    url = f"sqlite+aiosqlite:///{tmp_path}/old.db"
    upgrade(url, "0003")
    engine = create_engine(f"sqlite:///{tmp_path}/old.db")
    old = ["telegram:730155501", "email", "email:TI-2026-0001", "routing",
           "animateur:Claire Martin", "email:ft-paray"]
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO need (id, reference, status, channel, theme, urgency, contact_method, "
            "created_at, updated_at) VALUES (1, 'TI-2026-0001', 'routed', 'telegram', "
            "'recrutement', 'month', 'telegram', '2026-11-28 09:00:00', "
            "'2026-11-28 09:00:00')"))
        for actor in old:
            connection.execute(text(
                "INSERT INTO need_event (need_id, to_status, actor, at) "
                "VALUES (1, 'routed', :actor, '2026-11-28 09:00:00')"), {"actor": actor})
    upgrade(url)
    with Session(engine) as session:
        events = session.exec(select(NeedEvent).order_by(NeedEvent.id)).all()
        assert [(e.actor, e.actor_ref) for e in events] == [
            ("firm", None), ("firm", None), ("firm", None), ("system", None),
            ("animator", "Claire Martin"), ("partner:ft-paray", None)]
        assert history_label(events[4], animators={}, partners={}) == (
            "transmise à un partenaire par Claire Martin")
    engine.dispose()


def test_an_animator_records_what_a_partner_answered(session: Session) -> None:
    need = a_need(session, NeedStatus.ROUTED)
    routing = NeedRouting(need_id=need.id, partner_id="opco-2i", partner_kind="opco",
                          partner_name="OPCO 2i", partner_email="opco@example.org",
                          level="region", reason="thème")
    acknowledge(session, need, routing, actor=lifecycle.animator(900000001), now=NOW)
    assert history(session, need) == ["prise en compte par OPCO 2i, d'après Claire Martin"]
