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
  the period through time indexes; late acknowledgements read the routings of the needs
  open at the end.

The rows found are then handed to the same helpers as `compute_stats`, so each figure
keeps one definition (tests compare both on the same data).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_
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
# IN lists are sent in slices: SQLite allows a bounded number of parameters.
_SLICE = 500


def territory_stats(session: Session, territory_id: str, *, start: datetime, end: datetime,
                    tz: ZoneInfo) -> TerritoryStats:
    """The territory's figures for [start, end), as `insight.compute_stats` defines them."""
    start, end = insight._utc(start), insight._utc(end)
    if end <= start:
        raise ValueError("the period must end after it starts")
    # Needs whose status changed at or after the end: their status then is replayed.
    changed = _changed_since(session, territory_id, end)
    changed_needs = _needs(session, changed)
    changed_history = _history(session, changed)
    status_then = {n.id: insight._status_at(n, changed_history.get(n.id or 0, []), end)
                   for n in changed_needs}

    # Open now, by the (territory, status) index; those created since the end taken off.
    # Only the columns the figures read: thousands of open needs at national scale, and
    # an ORM object costs ten times a row.
    open_rows: Sequence[Any] = session.exec(select(
        Need.id, Need.reference, Need.status, Need.created_at).where(
        Need.territory_id == territory_id, col(Need.status).in_(_open_statuses()))).all()
    open_needs = [n for n in open_rows if n.created_at < end and n.id not in status_then]
    open_count = len(open_needs) + sum(status not in CLOSED_STATUSES
                                       for status in status_then.values())
    # Open at the end: open now and unchanged since, or replayed as open.
    open_needs += [n for n in changed_needs if status_then[n.id] not in CLOSED_STATUSES]
    open_ids = [n.id for n in open_needs if n.id is not None]
    routings = _routings_awaiting(session, open_ids, end)
    by_id: dict[int | None, Any] = {n.id: n for n in open_needs}
    late = insight._late_acks(routings, by_id, changed_history, end, tz)

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


def _of_territory(session: Session, territory_id: str, end: datetime) -> tuple[Any, ...]:
    """The need belongs to the territory and existed at the end, as a join's filter.

    On SQLite, `|| ''` keeps the planner off the territory's indexes of `need`: the join
    then starts from the period's rows (a time index) and reaches each need by its key,
    instead of walking the territory's whole history (SQLite keeps no statistics on time
    ranges and guesses wrong). PostgreSQL has them and is left to choose.
    """
    territory = col(Need.territory_id)
    if session.get_bind().dialect.name == "sqlite":
        territory = territory + ""
    return (territory == territory_id, col(Need.created_at) < end)


def _open_statuses() -> list[str]:
    """Every status but the closed ones (a need awaiting information counts as open)."""
    return [s.value for s in NeedStatus if s.value not in CLOSED_STATUSES]


def _slices(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(ids), _SLICE):
        yield ids[i:i + _SLICE]


def _changed_since(session: Session, territory_id: str, end: datetime) -> list[int]:
    """The territory's needs (created before `end`) with a status change at or after it."""
    rows = session.exec(select(NeedEvent.need_id).distinct().join(
        Need, col(Need.id) == col(NeedEvent.need_id)).where(
        NeedEvent.territory_id == territory_id, col(NeedEvent.at) >= end,
        col(NeedEvent.at) < _FAR, col(Need.created_at) < end))
    return sorted(set(rows))


def _needs(session: Session, ids: Sequence[int]) -> list[Need]:
    return [n for part in _slices(ids)
            for n in session.exec(select(Need).where(col(Need.id).in_(part)))]


def _history(session: Session, ids: Sequence[int]) -> dict[int, list[NeedEvent]]:
    """Every event of these needs, grouped and in time order."""
    events = [e for part in _slices(ids)
              for e in session.exec(select(NeedEvent).where(col(NeedEvent.need_id).in_(part)))]
    return insight._events_by_need(events)


def _new_by_theme(session: Session, territory_id: str, start: datetime,
                  end: datetime) -> dict[str, int]:
    rows = session.exec(select(Need.theme, func.count()).where(
        Need.territory_id == territory_id, col(Need.created_at) >= start,
        col(Need.created_at) < end).group_by(Need.theme)).all()
    return dict(sorted(((theme, int(count)) for theme, count in rows),
                       key=lambda item: (-item[1], item[0])))


def _closed_count(session: Session, territory_id: str, start: datetime, end: datetime,
                  changed_history: dict[int, list[NeedEvent]]) -> int:
    """Needs closed at the end whose last closing before it falls in the period."""
    # Closed in the period by an event: the candidates, replayed from their whole history.
    ids = sorted(set(session.exec(select(NeedEvent.need_id).distinct().join(
        Need, col(Need.id) == col(NeedEvent.need_id)).where(
        NeedEvent.territory_id == territory_id, col(NeedEvent.at) >= start,
        col(NeedEvent.at) < end, col(NeedEvent.to_status).in_(CLOSED),
        col(Need.created_at) < end))))
    needs = _needs(session, ids)
    history = _history(session, ids)
    # Needs without any history: their last update stands for their closing.
    bare = session.exec(select(Need).where(
        Need.territory_id == territory_id, col(Need.created_at) < end,
        col(Need.updated_at) >= start, col(Need.updated_at) < end,
        ~select(NeedEvent.id).where(col(NeedEvent.need_id) == col(Need.id)).exists())).all()
    existing = [(n, insight._status_at(n, history.get(n.id or 0, []), end))
                for n in [*needs, *bare]]
    return insight._closed_in_period(existing, history, start, end)


def _acknowledged(session: Session, territory_id: str, start: datetime,
                  end: datetime) -> list[NeedRouting]:
    """The territory's routings acknowledged in the period."""
    return list(session.exec(select(NeedRouting).join(
        Need, col(Need.id) == col(NeedRouting.need_id)).where(
        NeedRouting.territory_id == territory_id,
        col(NeedRouting.acknowledged_at) >= start, col(NeedRouting.acknowledged_at) < end,
        col(Need.created_at) < end)))


def _routings_awaiting(session: Session, need_ids: Sequence[int],
                       end: datetime) -> list[Any]:
    """These needs' routings still waiting for an acknowledgement at the end (the columns
    `insight._late_acks` reads)."""
    result: list[Any] = []
    for part in _slices(need_ids):
        result.extend(session.exec(select(
            NeedRouting.need_id, NeedRouting.partner_name, NeedRouting.status,
            NeedRouting.ack_days, NeedRouting.routed_at, NeedRouting.acknowledged_at).where(
            col(NeedRouting.need_id).in_(part), NeedRouting.status != "removed",
            col(NeedRouting.routed_at) < end,
            or_(and_(col(NeedRouting.acknowledged_at).is_(None),
                     NeedRouting.status != "acknowledged"),
                col(NeedRouting.acknowledged_at) >= end))))
    return [r for r in result if insight._awaiting_ack(r, end)]


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
               end: datetime) -> list[KbQuery]:
    return list(session.exec(select(KbQuery).where(
        KbQuery.territory_id == territory_id, col(KbQuery.asked_at) >= start,
        col(KbQuery.asked_at) < end, col(KbQuery.outcome).in_(sorted(UNANSWERED_OUTCOMES)))))


def _first_response(session: Session, territory_id: str, start: datetime,
                    end: datetime) -> float | None:
    """Median hours to the chef de projet's first response, over first responses of the period.

    A need's first response falls in the period only if it has an animator's move or
    message in the period: those needs are the candidates, read with all their responses.
    """
    mine = _of_territory(session, territory_id, end)
    by_event = session.exec(select(NeedEvent.need_id).join(
        Need, col(Need.id) == col(NeedEvent.need_id)).where(
        NeedEvent.territory_id == territory_id, col(NeedEvent.at) >= start,
        col(NeedEvent.at) < end, NeedEvent.actor == "animator", col(Need.created_at) < end))
    by_message = session.exec(select(NeedMessage.need_id).join(
        Need, col(Need.id) == col(NeedMessage.need_id)).where(
        col(NeedMessage.at) >= start, col(NeedMessage.at) < end,
        NeedMessage.author_kind == "animator", NeedMessage.to_kind == "firm", *mine))
    ids = sorted(set(by_event) | set(by_message))
    if not ids:
        return None
    needs: dict[int | None, Need] = {n.id: n for n in _needs(session, ids)}
    events: list[Any] = []
    messages: list[Any] = []
    for part in _slices(ids):
        events.extend(session.exec(select(NeedEvent).where(
            col(NeedEvent.need_id).in_(part), NeedEvent.actor == "animator")))
        messages.extend(session.exec(select(NeedMessage).where(
            col(NeedMessage.need_id).in_(part), NeedMessage.author_kind == "animator",
            NeedMessage.to_kind == "firm")))
    return insight._median_first_response(needs, events, messages, start, end)
