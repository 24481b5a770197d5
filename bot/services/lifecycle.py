"""A need's lifecycle: its statuses, the moves allowed between them, and who made each move.

Every change of a need's status goes through `change_status`, which checks the move against
`ALLOWED_TRANSITIONS` and writes a time-stamped `NeedEvent`: follow-up delays and
statistics are read from those events. The event keeps a role (`firm`, `animator`,
`partner:<id>`, `system`), never a person; an animator is named through a separate
reference that erasure can blank (see `bot.services.privacy`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col

from bot.catalogue import entries, label, placeholders, t
from bot.catalogue.labels import status_label
from storage.models import Need, NeedEvent, NeedRouting, NeedSequence, NeedStatus

__all__ = [
    "ALLOWED_TRANSITIONS",
    "CLOSED_STATUSES",
    "FIRM",
    "OPEN_STATUSES",
    "SYSTEM",
    "Actor",
    "IllegalTransition",
    "acknowledge",
    "animator",
    "change_status",
    "decline",
    "history_label",
    "next_reference",
    "partner",
    "record_created",
]

# An explicit table of moves, so every change is checked and time-stamped in NeedEvent.
ALLOWED_TRANSITIONS: dict[NeedStatus, frozenset[NeedStatus]] = {
    NeedStatus.AWAITING_INFO: frozenset(
        {NeedStatus.SUBMITTED, NeedStatus.ROUTED, NeedStatus.IN_PROGRESS, NeedStatus.CANCELLED,
         NeedStatus.CLOSED_HELPED, NeedStatus.CLOSED_NOT_HELPED}
    ),
    NeedStatus.SUBMITTED: frozenset(
        {NeedStatus.ROUTED, NeedStatus.IN_PROGRESS, NeedStatus.CANCELLED,
         NeedStatus.CLOSED_HELPED, NeedStatus.CLOSED_NOT_HELPED}
    ),
    NeedStatus.ROUTED: frozenset(
        {NeedStatus.ACKNOWLEDGED, NeedStatus.IN_PROGRESS, NeedStatus.ROUTED,
         NeedStatus.CANCELLED, NeedStatus.CLOSED_HELPED, NeedStatus.CLOSED_NOT_HELPED}
    ),
    NeedStatus.ACKNOWLEDGED: frozenset(
        {NeedStatus.IN_PROGRESS, NeedStatus.CLOSED_HELPED, NeedStatus.CLOSED_NOT_HELPED,
         NeedStatus.CANCELLED}
    ),
    NeedStatus.IN_PROGRESS: frozenset(
        {NeedStatus.CLOSED_HELPED, NeedStatus.CLOSED_NOT_HELPED, NeedStatus.CANCELLED}
    ),
    NeedStatus.CLOSED_HELPED: frozenset({NeedStatus.IN_PROGRESS}),
    NeedStatus.CLOSED_NOT_HELPED: frozenset({NeedStatus.IN_PROGRESS}),
    NeedStatus.CANCELLED: frozenset(),
}
# Needs someone still has to act on (lists, reminders, the radar).
OPEN_STATUSES: tuple[NeedStatus, ...] = (
    NeedStatus.SUBMITTED, NeedStatus.ROUTED, NeedStatus.ACKNOWLEDGED, NeedStatus.IN_PROGRESS)
# StrEnum members hash as their values: `"cancelled" in CLOSED_STATUSES` holds.
CLOSED_STATUSES: frozenset[NeedStatus] = frozenset(
    {NeedStatus.CLOSED_HELPED, NeedStatus.CLOSED_NOT_HELPED, NeedStatus.CANCELLED})


class IllegalTransition(ValueError):
    """A status change the transition table does not allow."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who moves a need: a role kept with the event, and a reference erasure can blank.

    `name` is for the texts written in the same transaction (a routing reason); it is
    never stored.
    """

    role: str
    ref: str | None = None
    name: str | None = field(default=None, compare=False)


FIRM = Actor("firm")
SYSTEM = Actor("system")


def animator(telegram_user_id: int, name: str | None = None) -> Actor:
    """An animator acting on Telegram."""
    return Actor("animator", f"telegram:{telegram_user_id}", name)


def partner(partner_id: str) -> Actor:
    """A partner of the directory (an organisation, not a person)."""
    return Actor(f"partner:{partner_id}")


def next_reference(session: Session, year: int) -> str:
    """Allocate the next public reference of the year (atomic on SQLite and PostgreSQL)."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    table = NeedSequence.__table__  # type: ignore[attr-defined]
    stmt = (
        insert(table)
        .values(year=year, last=1)
        .on_conflict_do_update(index_elements=["year"], set_={"last": table.c.last + 1})
        .returning(table.c.last)
    )
    number = session.execute(stmt).scalar_one()
    return f"TI-{year}-{number:04d}"


def record_created(session: Session, need: Need, *, actor: Actor, now: datetime) -> None:
    """The first event of a just-flushed need: its first status, from nothing."""
    assert need.id is not None
    session.add(NeedEvent(need_id=need.id, from_status=None, to_status=need.status,
                          actor=actor.role, actor_ref=actor.ref, at=now))


def change_status(session: Session, need: Need, to: NeedStatus, *, actor: Actor, now: datetime,
                  note: str | None = None) -> None:
    """Move a need to another status (checked against the transition table), time-stamped."""
    current = NeedStatus(need.status)
    if to != current and to not in ALLOWED_TRANSITIONS[current]:
        raise IllegalTransition(f"transition {current} -> {to} not allowed")
    assert need.id is not None
    session.add(NeedEvent(need_id=need.id, from_status=current.value, to_status=to.value,
                          actor=actor.role, actor_ref=actor.ref,
                          note=note[:500] if note else None, at=now))
    need.status = to.value
    need.updated_at = now
    session.add(need)
    if current in CLOSED_STATUSES and to not in CLOSED_STATUSES:
        # Reopened: the follow-up left its routings when it found the need closed; it
        # looks at those still waiting for their partner again.
        session.execute(update(NeedRouting).where(
            col(NeedRouting.need_id) == need.id, col(NeedRouting.status) == "routed",
            or_(col(NeedRouting.reminded_at).is_(None), col(NeedRouting.escalated_at).is_(None)))
            .values(followup_at=now))


def acknowledge(session: Session, need: Need, routing: NeedRouting, *, actor: Actor,
                now: datetime) -> None:
    """A partner took the need: its routing row and, the first time, the need's status."""
    if routing.status != "acknowledged":
        routing.status = "acknowledged"
        routing.acknowledged_at = now
        session.add(routing)
    if need.status == NeedStatus.ROUTED.value:
        change_status(session, need, NeedStatus.ACKNOWLEDGED, actor=actor, now=now,
                      note=routing.partner_name[:200])


def decline(session: Session, routing: NeedRouting) -> None:
    """A partner declined the need: the need keeps its status, the animator reassigns."""
    routing.status = "refused"
    session.add(routing)


def history_label(event: NeedEvent, *, animators: Mapping[str, str],
                  partners: Mapping[str, str]) -> str:
    """One event in French for the need's history ("prise en charge par Claire Martin").

    `animators` maps an actor reference (``telegram:<id>``) to a name, `partners` a
    partner id to its name; an unknown one is named by its role.
    """
    role, _, partner_id = event.actor.partition(":")
    key = f"animator.history_{event.to_status}"
    if event.from_status == NeedStatus.AWAITING_INFO.value and (
            event.to_status == NeedStatus.SUBMITTED.value):
        key = "animator.history_submitted_completed"
    elif f"{key}_by_{role}" in entries():
        key = f"{key}_by_{role}"
    if key not in entries():
        return status_label(event.to_status)
    if role == "animator":
        ref = event.actor_ref or ""
        # Events older than the references (migration 0004) kept the animator's name.
        legacy = ref if ref and not ref.startswith("telegram:") else None
        who = animators.get(ref) or legacy or label("common.history_who_animator")
    elif role == "partner":
        who = partners.get(partner_id) or label("common.history_who_partner")
    else:
        who_key = f"common.history_who_{role}"
        who = label(who_key if who_key in entries() else "common.history_who_system")
    # Who took the need ({partner}): the partner acting, else the name `acknowledge` kept
    # in the note (an animator recording a partner's answer).
    taker = (partners.get(partner_id) if role == "partner" else None) or event.note or (
        label("common.history_who_partner"))
    values = {"who": who, "partner": taker}
    return t(key, **{k: v for k, v in values.items() if k in placeholders(key)}).plain()
