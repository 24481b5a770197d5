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

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
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

__all__ = ["WeekRows", "compute_week", "read_week", "territories_stats", "territory_stats"]

CLOSED = tuple(sorted(CLOSED_STATUSES))
# "Since the end" as a bounded range: SQLite guesses a bounded range far more selective.
_FAR = datetime(9999, 1, 1, tzinfo=UTC)
# IN lists are sent in slices: SQLite allows a bounded number of parameters.
_SLICE = 500


def territory_stats(session: Session, territory_id: str, *, start: datetime, end: datetime,
                    tz: ZoneInfo) -> TerritoryStats:
    """The territory's figures for [start, end), as `insight.compute_stats` defines them."""
    return territories_stats(session, [territory_id], start=start, end=end, tz=tz)[territory_id]


def territories_stats(session: Session, territory_ids: Sequence[str], *, start: datetime,
                      end: datetime, tz: ZoneInfo) -> dict[str, TerritoryStats]:
    """Each territory's figures for [start, end): one query per figure for all of them.

    The weekly job asks for the 183 territories' week at once: each query reads the week's
    rows of every territory asked through the (territory, time) indexes, and the rows are
    then split by territory and handed to the same helpers as one territory's figures.
    """
    return compute_week(read_week(session, territory_ids, start=start, end=end), tz=tz)


@dataclass(frozen=True, slots=True)
class WeekRows:
    """What the figures of some territories over a period read from the database (plain
    rows), before any figure is computed: `compute_week` needs no database, so the weekly
    job computes in a thread (on PostgreSQL the session's Python runs on the event loop)."""

    ids: list[str]
    start: datetime
    end: datetime
    changed_history: dict[int, list[Any]]
    open_count: Counter[str]
    open_by_id: dict[int | None, Any]
    awaiting: list[Any]
    new_by_theme: dict[str, dict[str, int]]
    closing: list[Any]
    closing_history: dict[int, list[Any]]
    acknowledged: list[Any]
    ratings: list[Any]
    questions: list[Any]
    responders: list[Any]
    responses: tuple[list[Any], list[Any]]


def read_week(session: Session, territory_ids: Sequence[str], *, start: datetime,
              end: datetime) -> WeekRows:
    """The rows the territories' figures over [start, end) read, one query per figure."""
    start, end = insight._utc(start), insight._utc(end)
    if end <= start:
        raise ValueError("the period must end after it starts")
    ids = sorted(set(territory_ids))
    # Needs whose status changed at or after the end: their status then is replayed.
    changed = _changed_since(session, ids, end) if ids else []
    changed_needs = _needs(session, changed)
    changed_history = _history(session, changed)
    status_then = {n.id: insight._status_at(n, changed_history.get(n.id, []), end)
                   for n in changed_needs}

    # Open now, by the (territory, status) index; those created since the end taken off.
    # Only the columns the figures read: thousands of open needs at national scale, and
    # an ORM object costs ten times a row.
    open_rows: Sequence[Any] = session.exec(select(*_NEED_COLUMNS).where(
        col(Need.territory_id).in_(ids), col(Need.status).in_(_open_statuses()))).all() \
        if ids else []
    open_needs = [n for n in open_rows if n.created_at < end and n.id not in status_then]
    open_count = Counter(n.territory_id for n in open_needs)
    open_count.update(n.territory_id for n in changed_needs
                      if status_then[n.id] not in CLOSED_STATUSES)
    # Open at the end: open now and unchanged since, or replayed as open.
    open_needs += [n for n in changed_needs if status_then[n.id] not in CLOSED_STATUSES]
    closing, closing_history = _closing(session, ids, start, end) if ids else ([], {})
    responders, responses = _responders(session, ids, start, end) if ids else ([], ([], []))
    return WeekRows(
        ids=ids, start=start, end=end, changed_history=changed_history,
        open_count=open_count, open_by_id={n.id: n for n in open_needs},
        awaiting=_routings_awaiting(session, [n.id for n in open_needs], end),
        new_by_theme=_new_by_theme(session, ids, start, end) if ids else {},
        closing=closing, closing_history=closing_history,
        acknowledged=_acknowledged(session, ids, start, end) if ids else [],
        ratings=_ratings(session, ids, start, end) if ids else [],
        questions=_questions(session, ids, start, end) if ids else [],
        responders=responders, responses=responses)


def compute_week(rows: WeekRows, *, tz: ZoneInfo) -> dict[str, TerritoryStats]:
    """Each territory's figures from the rows read (no database)."""
    start, end, by_id = rows.start, rows.end, rows.open_by_id
    awaiting = _split(rows.awaiting, lambda r: by_id[r.need_id].territory_id)
    acknowledged = _split(rows.acknowledged, _territory)
    ratings = _split(rows.ratings, _territory)
    questions = _split(rows.questions, _territory)
    closed = _closed_count(rows.closing, rows.closing_history, start, end)
    first_response = _first_response(rows.responders, *rows.responses, start, end)
    return {territory_id: TerritoryStats(
        territory_id=territory_id,
        period_start=start,
        period_end=end,
        new_by_theme=rows.new_by_theme.get(territory_id, {}),
        open_count=rows.open_count.get(territory_id, 0),
        closed_count=closed.get(territory_id, 0),
        median_ack_hours_by_partner=insight._median_ack_hours(
            acknowledged.get(territory_id, []), start, end),
        late_acks=insight._late_acks(awaiting.get(territory_id, []), by_id,
                                     rows.changed_history, end, tz),
        satisfaction=insight._satisfaction(
            [(r.score, r.answered_at, r.comment) for r in ratings.get(territory_id, [])],
            start, end),
        unanswered_questions=insight._unanswered(questions.get(territory_id, []), start, end),
        median_first_response_hours=first_response.get(territory_id),
    ) for territory_id in rows.ids}


T = TypeVar("T")

# What the figures read of a need (never the whole row: texts and contacts are long).
_NEED_COLUMNS = (Need.id, Need.territory_id, Need.reference, Need.status, Need.created_at,
                 Need.updated_at)
_EVENT_COLUMNS = (NeedEvent.id, NeedEvent.need_id, NeedEvent.territory_id,
                  NeedEvent.from_status, NeedEvent.to_status, NeedEvent.actor, NeedEvent.at)


def _territory(row: Any) -> str:
    return str(row.territory_id)


def _split(rows: Iterable[T], key: Callable[[T], str]) -> dict[str, list[T]]:
    """Rows by territory, each territory's in their original order."""
    result: dict[str, list[T]] = defaultdict(list)
    for row in rows:
        result[key(row)].append(row)
    return result


def _of_territory(session: Session, ids: Sequence[str], end: datetime) -> tuple[Any, ...]:
    """The need belongs to one of the territories and existed at the end, as a join's filter.

    On SQLite, `|| ''` keeps the planner off the territory's indexes of `need`: the join
    then starts from the period's rows (a time index) and reaches each need by its key,
    instead of walking the territory's whole history (SQLite keeps no statistics on time
    ranges and guesses wrong). PostgreSQL has them and is left to choose.
    """
    territory = col(Need.territory_id)
    if session.get_bind().dialect.name == "sqlite":
        territory = territory + ""
    return (territory.in_(ids), col(Need.created_at) < end)


def _open_statuses() -> list[str]:
    """Every status but the closed ones (a need awaiting information counts as open)."""
    return [s.value for s in NeedStatus if s.value not in CLOSED_STATUSES]


def _slices(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(ids), _SLICE):
        yield ids[i:i + _SLICE]


def _changed_since(session: Session, ids: Sequence[str], end: datetime) -> list[int]:
    """The territories' needs (created before `end`) with a status change at or after it."""
    rows = session.exec(select(NeedEvent.need_id).distinct().join(
        Need, col(Need.id) == col(NeedEvent.need_id)).where(
        col(NeedEvent.territory_id).in_(ids), col(NeedEvent.at) >= end,
        col(NeedEvent.at) < _FAR, col(Need.created_at) < end))
    return sorted(set(rows))


def _needs(session: Session, ids: Sequence[int]) -> list[Any]:
    """These needs' columns the figures read."""
    return [n for part in _slices(ids)
            for n in session.exec(select(*_NEED_COLUMNS).where(col(Need.id).in_(part)))]


def _history(session: Session, ids: Sequence[int]) -> dict[int, list[Any]]:
    """Every event of these needs, grouped and in time order."""
    events = [e for part in _slices(ids) for e in session.exec(
        select(*_EVENT_COLUMNS).where(col(NeedEvent.need_id).in_(part)))]
    return insight._events_by_need(events)


def _new_by_theme(session: Session, ids: Sequence[str], start: datetime,
                  end: datetime) -> dict[str, dict[str, int]]:
    """Needs created in the period by territory and theme, most frequent theme first."""
    rows = session.exec(select(Need.territory_id, Need.theme, func.count()).where(
        col(Need.territory_id).in_(ids), col(Need.created_at) >= start,
        col(Need.created_at) < end).group_by(Need.territory_id, Need.theme)).all()
    counts: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for territory_id, theme, count in rows:
        counts[str(territory_id)].append((theme, int(count)))
    return {territory_id: dict(sorted(items, key=lambda item: (-item[1], item[0])))
            for territory_id, items in counts.items()}


def _closing(session: Session, ids: Sequence[str], start: datetime,
             end: datetime) -> tuple[list[Any], dict[int, list[Any]]]:
    """The needs that may have closed in the period, and their histories."""
    # Closed in the period by an event: the candidates, replayed from their whole history.
    need_ids = sorted(set(session.exec(select(NeedEvent.need_id).distinct().join(
        Need, col(Need.id) == col(NeedEvent.need_id)).where(
        col(NeedEvent.territory_id).in_(ids), col(NeedEvent.at) >= start,
        col(NeedEvent.at) < end, col(NeedEvent.to_status).in_(CLOSED),
        col(Need.created_at) < end))))
    needs = _needs(session, need_ids)
    history = _history(session, need_ids)
    # Needs without any history: their last update stands for their closing.
    bare = session.exec(select(*_NEED_COLUMNS).where(
        col(Need.territory_id).in_(ids), col(Need.created_at) < end,
        col(Need.updated_at) >= start, col(Need.updated_at) < end,
        ~select(NeedEvent.id).where(col(NeedEvent.need_id) == col(Need.id)).exists())).all()
    return [*needs, *bare], history


def _closed_count(needs: Sequence[Any], history: dict[int, list[Any]], start: datetime,
                  end: datetime) -> dict[str, int]:
    """By territory: needs closed at the end whose last closing before it falls in the
    period."""
    return {territory_id: insight._closed_in_period(
        [(n, insight._status_at(n, history.get(n.id, []), end)) for n in group],
        history, start, end)
        for territory_id, group in _split(needs, _territory).items()}


def _acknowledged(session: Session, ids: Sequence[str], start: datetime,
                  end: datetime) -> list[Any]:
    """The territories' routings acknowledged in the period (the columns read)."""
    return list(session.exec(select(
        NeedRouting.territory_id, NeedRouting.partner_name, NeedRouting.routed_at,
        NeedRouting.acknowledged_at).join(
        Need, col(Need.id) == col(NeedRouting.need_id)).where(
        col(NeedRouting.territory_id).in_(ids),
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


def _ratings(session: Session, ids: Sequence[str], start: datetime,
             end: datetime) -> list[Any]:
    """The territories' ratings answered in the period, in the order they were asked."""
    rows = session.exec(select(Satisfaction.territory_id, Satisfaction.score,
                               Satisfaction.answered_at, Satisfaction.comment).where(
        col(Satisfaction.territory_id).in_(ids), col(Satisfaction.answered_at) >= start,
        col(Satisfaction.answered_at) < end, col(Satisfaction.score).is_not(None))
        .order_by(col(Satisfaction.id)))
    return [row for row in rows if row.score is not None and row.answered_at is not None]


def _questions(session: Session, ids: Sequence[str], start: datetime,
               end: datetime) -> list[Any]:
    """The territories' unanswered questions of the period (the columns read)."""
    return list(session.exec(select(
        KbQuery.id, KbQuery.territory_id, KbQuery.text, KbQuery.outcome, KbQuery.asked_at).where(
        col(KbQuery.territory_id).in_(ids), col(KbQuery.asked_at) >= start,
        col(KbQuery.asked_at) < end, col(KbQuery.outcome).in_(sorted(UNANSWERED_OUTCOMES)))))


def _responders(session: Session, ids: Sequence[str], start: datetime,
                end: datetime) -> tuple[list[Any], tuple[list[Any], list[Any]]]:
    """The needs whose first response may fall in the period, with all their responses.

    A need's first response falls in the period only if it has an animator's move or
    message in the period: those needs are the candidates, read with all their responses.
    """
    mine = _of_territory(session, ids, end)
    by_event = session.exec(select(NeedEvent.need_id).join(
        Need, col(Need.id) == col(NeedEvent.need_id)).where(
        col(NeedEvent.territory_id).in_(ids), col(NeedEvent.at) >= start,
        col(NeedEvent.at) < end, NeedEvent.actor == "animator", col(Need.created_at) < end))
    by_message = session.exec(select(NeedMessage.need_id).join(
        Need, col(Need.id) == col(NeedMessage.need_id)).where(
        col(NeedMessage.at) >= start, col(NeedMessage.at) < end,
        NeedMessage.author_kind == "animator", NeedMessage.to_kind == "firm", *mine))
    need_ids = sorted(set(by_event) | set(by_message))
    events: list[Any] = []
    messages: list[Any] = []
    for part in _slices(need_ids):
        events.extend(session.exec(select(*_EVENT_COLUMNS).where(
            col(NeedEvent.need_id).in_(part), NeedEvent.actor == "animator")))
        messages.extend(session.exec(select(
            NeedMessage.need_id, NeedMessage.author_kind, NeedMessage.to_kind,
            NeedMessage.at).where(
            col(NeedMessage.need_id).in_(part), NeedMessage.author_kind == "animator",
            NeedMessage.to_kind == "firm")))
    return _needs(session, need_ids), (events, messages)


def _first_response(needs: Sequence[Any], events: Sequence[Any], messages: Sequence[Any],
                    start: datetime, end: datetime) -> dict[str, float]:
    """By territory: median hours to the chef de projet's first response, over first
    responses of the period (territories without any are left out)."""
    territory_of = {n.id: str(n.territory_id) for n in needs}
    events_of = _split(events, lambda e: territory_of[e.need_id])
    messages_of = _split(messages, lambda m: territory_of[m.need_id])
    result: dict[str, float] = {}
    for territory_id, group in _split(needs, _territory).items():
        median = insight._median_first_response(
            {n.id: n for n in group}, events_of.get(territory_id, []),
            messages_of.get(territory_id, []), start, end)
        if median is not None:
            result[territory_id] = median
    return result
