"""A territory's figures over a period, computed in the database (weekly digest, /stats).

`insight.compute_stats` defines the figures over whole tables; this module gives the same
figures while reading only what the period touches, so that the cost follows the period
and the territory, not three years of history:

* counts (new needs by theme, open needs) are SQL aggregates on `need` indexes;
* a need's status at the period's end is its current status unless it changed since the
  end: only those needs (events at or after the end, few for a recent period) are
  replayed from their events;
* needs closed in the period come from the closing events of the period (plus needs
  without any history, by their last update);
* acknowledgement delays, first responses, satisfaction and questions read the rows of
  the period through time indexes; late acknowledgements are one join of the needs open
  at the end with their routings still waiting then.

Rows are read as plain columns, and lists of needs are passed to the next statement as a
subquery, not as a list of parameters: a busy territory has thousands of open needs, and
an ORM object or a bound parameter costs more than the row itself.

The rows found are then handed to the same helpers as `compute_stats`, so each figure
keeps one definition (tests compare both on the same data).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, func, or_, union
from sqlmodel import Session, col, select

from bot.services import insight
from bot.services.insight import CLOSED_STATUSES, UNANSWERED_OUTCOMES, TerritoryStats
from storage.models import (
    KbQuery,
    Need,
    NeedEvent,
    NeedMessage,
    NeedRouting,
    NeedStatus,
    Satisfaction,
)

__all__ = ["territory_stats"]

CLOSED = tuple(sorted(CLOSED_STATUSES))
# "Since the end" as a bounded range: SQLite guesses a bounded range far more selective.
_FAR = datetime(9999, 1, 1, tzinfo=UTC)


def territory_stats(session: Session, territory_id: str, *, start: datetime, end: datetime,
                    tz: ZoneInfo) -> TerritoryStats:
    """The territory's figures for [start, end), as `insight.compute_stats` defines them."""
    start, end = insight._utc(start), insight._utc(end)
    if end <= start:
        raise ValueError("the period must end after it starts")
    if session.get_bind().dialect.name == "postgresql":
        # Each statement reads at most a few thousand rows: starting parallel workers costs
        # more than it saves, worst on a busy machine (bare needs: 24 ms with, 3.5 without,
        # at 500k needs). For the rest of this transaction only.
        session.connection().exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")
    # Needs whose status changed at or after the end: their status then is replayed.
    changed = _changed_since(territory_id, end)
    changed_needs = _needs(session, changed)
    changed_history = _history(session, changed) if changed_needs else {}
    status_then = {n.id: insight._status_at(n, changed_history.get(n.id, []), end)
                   for n in changed_needs}
    # Open at the end: open now and unchanged since, or replayed as open.
    open_now = session.exec(select(func.count()).select_from(Need).where(
        Need.territory_id == territory_id, col(Need.status).in_(_open_statuses()),
        col(Need.created_at) < end)).one()
    open_count = int(open_now) + sum(
        (status not in CLOSED_STATUSES) - (need.status not in CLOSED_STATUSES)
        for need, status in ((n, status_then[n.id]) for n in changed_needs))
    late = _late_acks(session, territory_id, end, tz, status_then,
                      changed if changed_needs else None)

    return TerritoryStats(
        territory_id=territory_id,
        period_start=start,
        period_end=end,
        new_by_theme=_new_by_theme(session, territory_id, start, end),
        open_count=open_count,
        closed_count=_closed_count(session, territory_id, start, end, changed_history),
        median_ack_hours_by_partner=insight._median_ack_hours(
            _acknowledged(session, territory_id, start, end), start, end),
        late_acks=late,
        satisfaction=insight._satisfaction(_ratings(session, territory_id, start, end),
                                           start, end),
        unanswered_questions=insight._unanswered(
            _questions(session, territory_id, start, end), start, end),
        median_first_response_hours=_first_response(session, territory_id, start, end),
    )


def _open_statuses() -> list[str]:
    """Every status but the closed ones (a need awaiting information counts as open)."""
    return [s.value for s in NeedStatus if s.value not in CLOSED_STATUSES]


class _NeedRef(NamedTuple):
    """What `insight._late_acks` reads of a need."""

    id: int
    reference: str
    status: str


class _Candidate(NamedTuple):
    """A need closed in the period, known by its events of the period (`_closed_count`)."""

    id: int
    status: str = ""  # never read: a candidate has events before the end
    updated_at: datetime | None = None  # never read, for the same reason


class _FirstEvent(NamedTuple):
    """A need's first status change by a chef de projet (for `_median_first_response`)."""

    need_id: int
    at: datetime
    actor: str = "animator"


class _FirstMessage(NamedTuple):
    """A need's first message from its chef de projet to the firm."""

    need_id: int
    at: datetime
    author_kind: str = "animator"
    to_kind: str = "firm"


def _changed_since(territory_id: str, end: datetime) -> Select[Any]:
    """The territory's needs (created before `end`) with a status change at or after it."""
    return select(NeedEvent.need_id).join(
        Need, col(Need.id) == col(NeedEvent.need_id)).where(
        NeedEvent.territory_id == territory_id, col(NeedEvent.at) >= end,
        col(NeedEvent.at) < _FAR, col(Need.created_at) < end)


def _needs(session: Session, ids: Select[Any]) -> list[Any]:
    """The needs of the subquery `ids`: the columns the figures' helpers read."""
    return list(session.exec(select(
        Need.id, Need.reference, Need.status, Need.created_at, Need.updated_at).where(
        col(Need.id).in_(ids))))


def _history(session: Session, ids: Select[Any]) -> dict[int, list[Any]]:
    """Every event of the needs of the subquery `ids`, grouped and in time order."""
    events = session.exec(select(
        NeedEvent.id, NeedEvent.need_id, NeedEvent.from_status, NeedEvent.to_status,
        NeedEvent.at).where(col(NeedEvent.need_id).in_(ids)))
    return insight._events_by_need(list(events))


def _new_by_theme(session: Session, territory_id: str, start: datetime,
                  end: datetime) -> dict[str, int]:
    rows = session.exec(select(Need.theme, func.count()).where(
        Need.territory_id == territory_id, col(Need.created_at) >= start,
        col(Need.created_at) < end).group_by(Need.theme)).all()
    return dict(sorted(((theme, int(count)) for theme, count in rows),
                       key=lambda item: (-item[1], item[0])))


def _closed_count(session: Session, territory_id: str, start: datetime, end: datetime,
                  changed_history: dict[int, list[Any]]) -> int:
    """Needs closed at the end whose last closing before it falls in the period."""
    # Closed in the period by an event: the candidates. Their events of the period are
    # enough to replay them: the last event before the end (their status then) and their
    # last closing before the end both fall at or after the closing found in the period.
    closing = select(NeedEvent.need_id).join(
        Need, col(Need.id) == col(NeedEvent.need_id)).where(
        NeedEvent.territory_id == territory_id, col(NeedEvent.at) >= start,
        col(NeedEvent.at) < end, col(NeedEvent.to_status).in_(CLOSED),
        col(Need.created_at) < end)
    history = insight._events_by_need(list(session.exec(select(
        NeedEvent.id, NeedEvent.need_id, NeedEvent.from_status, NeedEvent.to_status,
        NeedEvent.at).where(
        NeedEvent.territory_id == territory_id, col(NeedEvent.at) >= start,
        col(NeedEvent.at) < end, col(NeedEvent.need_id).in_(closing)))))
    needs = [_Candidate(need_id) for need_id in history]
    # Needs without any history: their last update stands for their closing.
    bare = session.exec(select(
        Need.id, Need.reference, Need.status, Need.created_at, Need.updated_at).where(
        Need.territory_id == territory_id, col(Need.created_at) < end,
        col(Need.updated_at) >= start, col(Need.updated_at) < end,
        ~select(NeedEvent.id).where(col(NeedEvent.need_id) == col(Need.id)).exists())).all()
    existing: list[tuple[Any, str]] = [
        (n, insight._status_at(n, history.get(n.id, []), end)) for n in [*needs, *bare]]
    return insight._closed_in_period(existing, history, start, end)


def _acknowledged(session: Session, territory_id: str, start: datetime,
                  end: datetime) -> list[Any]:
    """The territory's routings acknowledged in the period (the columns the median reads)."""
    return list(session.exec(select(
        NeedRouting.need_id, NeedRouting.partner_name, NeedRouting.routed_at,
        NeedRouting.acknowledged_at).join(
        Need, col(Need.id) == col(NeedRouting.need_id)).where(
        NeedRouting.territory_id == territory_id,
        col(NeedRouting.acknowledged_at) >= start, col(NeedRouting.acknowledged_at) < end,
        col(Need.created_at) < end)))


def _awaiting_at(end: datetime) -> tuple[Any, ...]:
    """A routing still waiting for its acknowledgement at `end` (`insight._awaiting_ack`)."""
    return (NeedRouting.status != "removed", col(NeedRouting.routed_at) < end,
            or_(and_(col(NeedRouting.acknowledged_at).is_(None),
                     NeedRouting.status != "acknowledged"),
                col(NeedRouting.acknowledged_at) >= end))


def _late_acks(session: Session, territory_id: str, end: datetime, tz: ZoneInfo,
               status_then: dict[int, str], changed: Select[Any] | None) -> list[insight.LateAck]:
    """Routings still waiting at the end, of needs open then, late by a working day or more.

    One join from the territory's open needs (their index) to their routings: the cost
    follows the open needs, not the territory's history (most routings never acknowledged
    belong to needs closed long ago). Needs changed since the end are read apart, by their
    replayed status.
    """
    columns = (NeedRouting.need_id, NeedRouting.partner_name, NeedRouting.status,
               NeedRouting.ack_days, NeedRouting.routed_at, NeedRouting.acknowledged_at,
               col(Need.reference).label("need_reference"),
               col(Need.status).label("need_status"))
    rows = list(session.exec(select(*columns).join(
        Need, col(Need.id) == col(NeedRouting.need_id)).where(
        Need.territory_id == territory_id, col(Need.status).in_(_open_statuses()),
        col(Need.created_at) < end, *_awaiting_at(end))))
    rows = [r for r in rows if r.need_id not in status_then]
    if changed is not None:
        rows += session.exec(select(*columns).join(
            Need, col(Need.id) == col(NeedRouting.need_id)).where(
            col(Need.id).in_(changed), *_awaiting_at(end))).all()
    needs: dict[int | None, Any] = {}
    for row in rows:
        status = status_then.get(row.need_id, row.need_status)
        if status not in CLOSED_STATUSES:
            needs[row.need_id] = _NeedRef(row.need_id, row.need_reference, status)
    # The replayed status is already in `needs`: no history needed for the open ones.
    return insight._late_acks(rows, needs, {}, end, tz)


def _ratings(session: Session, territory_id: str, start: datetime,
             end: datetime) -> list[tuple[int, datetime, str | None]]:
    rows = session.exec(select(Satisfaction.score, Satisfaction.answered_at,
                               Satisfaction.comment).where(
        Satisfaction.territory_id == territory_id, col(Satisfaction.answered_at) >= start,
        col(Satisfaction.answered_at) < end, col(Satisfaction.score).is_not(None))
        .order_by(col(Satisfaction.id)))
    return [(score, at, comment) for score, at, comment in rows
            if score is not None and at is not None]


def _questions(session: Session, territory_id: str, start: datetime,
               end: datetime) -> list[Any]:
    """The period's unanswered questions (the columns `insight._unanswered` reads)."""
    return list(session.exec(select(
        KbQuery.id, KbQuery.text, KbQuery.outcome, KbQuery.asked_at).where(
        KbQuery.territory_id == territory_id, col(KbQuery.asked_at) >= start,
        col(KbQuery.asked_at) < end, col(KbQuery.outcome).in_(sorted(UNANSWERED_OUTCOMES)))))


def _first_response(session: Session, territory_id: str, start: datetime,
                    end: datetime) -> float | None:
    """Median hours to the chef de projet's first response, over first responses of the period.

    A need's first response falls in the period only if it has an animator's move or
    message in the period: those needs are the candidates. One statement reads each
    candidate's creation and its earliest move and message since (what the definition
    keeps of them), the candidates given as a subquery.
    """
    # No "created before the end" on the candidates: a first response counts from the
    # need's creation, so one in the period belongs to a need created before its end.
    by_event = select(NeedEvent.need_id).where(
        NeedEvent.territory_id == territory_id, col(NeedEvent.at) >= start,
        col(NeedEvent.at) < end, NeedEvent.actor == "animator")
    by_message = select(NeedMessage.need_id).where(
        NeedMessage.territory_id == territory_id, col(NeedMessage.at) >= start,
        col(NeedMessage.at) < end, NeedMessage.author_kind == "animator",
        NeedMessage.to_kind == "firm")
    candidates = union(by_event, by_message).subquery()
    first_event = select(func.min(NeedEvent.at)).where(
        col(NeedEvent.need_id) == col(Need.id), NeedEvent.actor == "animator",
        col(NeedEvent.at) >= col(Need.created_at)).scalar_subquery()
    first_message = select(func.min(NeedMessage.at)).where(
        col(NeedMessage.need_id) == col(Need.id), NeedMessage.author_kind == "animator",
        NeedMessage.to_kind == "firm",
        col(NeedMessage.at) >= col(Need.created_at)).scalar_subquery()
    rows = session.exec(select(
        Need.id, Need.created_at, first_event.label("event_at"),
        first_message.label("message_at")).where(
        col(Need.id).in_(select(candidates.c.need_id)))).all()
    if not rows:
        return None
    needs: dict[int | None, Any] = {row.id: row for row in rows}
    events = [_FirstEvent(row.id, row.event_at) for row in rows if row.event_at]
    messages = [_FirstMessage(row.id, row.message_at) for row in rows if row.message_at]
    return insight._median_first_response(needs, events, messages, start, end)

