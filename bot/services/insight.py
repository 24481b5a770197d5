"""A territory's figures over a period (weekly digest, /stats): pure functions, plus charts.

The caller loads the rows; nothing here touches the database. Times are aware datetimes,
compared in UTC; days (deadlines, the period's title) are read in the territory's zone.
"""

from __future__ import annotations

import hashlib
import re
import statistics
import threading
import unicodedata
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from html import escape
from zoneinfo import ZoneInfo

from bot.catalogue import label, t
from bot.messages import Text
from bot.services import charts, lifecycle
from bot.services.workdays import add_working_days, working_days_between
from knowledge.taxonomy import theme_noun
from storage.models import KbQuery, Need, NeedEvent, NeedMessage, NeedRouting

__all__ = [
    "CLOSED_STATUSES",
    "UNANSWERED_OUTCOMES",
    "LateAck",
    "SatisfactionSummary",
    "TerritoryStats",
    "charts_png",
    "clear_chart_cache",
    "compute_stats",
    "normalise_question",
    "period_title",
    "stats_report",
    "stats_text",
]

CLOSED_STATUSES: frozenset[str] = frozenset(s.value for s in lifecycle.CLOSED_STATUSES)
UNANSWERED_OUTCOMES: frozenset[str] = frozenset(
    {"out_of_scope", "rejected", "forwarded", "uncertain"}
)
MAX_QUESTIONS = 10
QUESTION_CHARS = 120
# Lists in the text are cut: the message stays readable on a phone.
TEXT_LIST_LIMIT = 5


@dataclass(frozen=True, slots=True)
class LateAck:
    """A partner that has not acknowledged a need within its working-day deadline."""

    reference: str
    partner_name: str
    routed_at: datetime
    due: date
    working_days_late: int


@dataclass(frozen=True, slots=True)
class SatisfactionSummary:
    """The firms' ratings of the period: count, mean (1 decimal), distribution 1..5."""

    count: int
    mean: float
    distribution: dict[int, int]
    comments: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TerritoryStats:
    """A territory's figures over [period_start, period_end) (aware UTC)."""

    territory_id: str
    period_start: datetime
    period_end: datetime
    new_by_theme: dict[str, int]
    open_count: int
    closed_count: int
    median_ack_hours_by_partner: dict[str, float]
    late_acks: list[LateAck]
    satisfaction: SatisfactionSummary | None
    unanswered_questions: list[tuple[str, int]]
    # Median hours from a need's creation to the chef de projet's first response (a message
    # relayed to the firm, or a status change), over first responses of the period.
    median_first_response_hours: float | None = None


# --- Computation ----------------------------------------------------------------------------


def compute_stats(
    *,
    territory_id: str,
    needs: Sequence[Need],
    routings: Sequence[NeedRouting],
    events: Sequence[NeedEvent],
    queries: Sequence[KbQuery],
    ratings: Sequence[tuple[int, datetime, str | None]],
    start: datetime,
    end: datetime,
    tz: ZoneInfo,
    messages: Sequence[NeedMessage] = (),
) -> TerritoryStats:
    """The territory's figures over [start, end) from rows the caller loaded."""
    start, end = _utc(start), _utc(end)
    if end <= start:
        raise ValueError("the period must end after it starts")
    # A row explicitly of another territory is a caller's mistake: never count it here.
    mine = [n for n in needs if n.territory_id in (None, territory_id)]
    by_id = {n.id: n for n in mine if n.id is not None}
    history = _events_by_need(events)
    existing = [(n, _status_at(n, history.get(n.id or 0, []), end))
                for n in mine if n.created_at < end]
    return TerritoryStats(
        territory_id=territory_id,
        period_start=start,
        period_end=end,
        new_by_theme=_new_by_theme([n for n, _ in existing], start),
        open_count=sum(status not in CLOSED_STATUSES for _, status in existing),
        closed_count=_closed_in_period(existing, history, start, end),
        median_ack_hours_by_partner=_median_ack_hours(
            [r for r in routings if r.need_id in by_id], start, end),
        late_acks=_late_acks(routings, by_id, history, end, tz),
        satisfaction=_satisfaction(ratings, start, end),
        unanswered_questions=_unanswered(
            [q for q in queries if q.territory_id in (None, territory_id)], start, end),
        median_first_response_hours=_median_first_response(by_id, events, messages, start,
                                                            end),
    )


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime refused: pass timezone-aware values")
    return moment.astimezone(UTC)


def _events_by_need(events: Sequence[NeedEvent]) -> dict[int, list[NeedEvent]]:
    """Each need's status changes, in time order."""
    grouped: dict[int, list[NeedEvent]] = defaultdict(list)
    for event in events:
        grouped[event.need_id].append(event)
    return {need_id: sorted(evs, key=lambda e: (e.at, e.id or 0))
            for need_id, evs in grouped.items()}


def _status_at(need: Need, events: list[NeedEvent], end: datetime) -> str:
    """The need's status at `end`, replayed from its events (the row only knows today's)."""
    before = [e for e in events if e.at < end]
    if before:
        return before[-1].to_status
    if events:
        # Every change is after `end`: the status then is where the first change started.
        return events[0].from_status or events[0].to_status
    return need.status


def _new_by_theme(needs: Iterable[Need], start: datetime) -> dict[str, int]:
    """Needs created in the period, by theme, most frequent first."""
    counts = Counter(n.theme for n in needs if n.created_at >= start)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _closed_in_period(
    needs: Sequence[tuple[Need, str]],
    history: dict[int, list[NeedEvent]],
    start: datetime,
    end: datetime,
) -> int:
    """Needs closed at `end` whose closing happened in the period (a reopened one is not)."""
    count = 0
    for need, status in needs:
        if status not in CLOSED_STATUSES:
            continue
        events = history.get(need.id or 0, [])
        closing = [e.at for e in events if e.to_status in CLOSED_STATUSES and e.at < end]
        # Without its history, the last update of a closed need stands for its closing.
        last = closing[-1] if closing else (None if events else need.updated_at)
        count += last is not None and start <= last < end
    return count


def _median_ack_hours(
    routings: Sequence[NeedRouting], start: datetime, end: datetime
) -> dict[str, float]:
    """Median routed→acknowledged hours per partner, over acknowledgements of the period.

    Acknowledgements made in the period (not routings made in it): a routing of the
    period still waiting would otherwise be left out and flatter the slow partners.
    """
    hours: dict[str, list[float]] = defaultdict(list)
    for routing in routings:
        acked = routing.acknowledged_at
        if acked is not None and start <= acked < end:
            seconds = max((acked - routing.routed_at).total_seconds(), 0.0)
            hours[routing.partner_name].append(seconds / 3600)
    medians = {name: float(statistics.median(values)) for name, values in hours.items()}
    # Slowest first: that is what the animator acts on.
    return dict(sorted(medians.items(), key=lambda item: (-item[1], item[0].casefold())))


def _median_first_response(
    needs: dict[int | None, Need],
    events: Sequence[NeedEvent],
    messages: Sequence[NeedMessage],
    start: datetime,
    end: datetime,
) -> float | None:
    """Median hours from creation to the chef de projet's first response, over the period.

    A first response is the first message a chef de projet relayed to the firm, or the
    first status change a chef de projet made, after the need was created. Counted when
    it happened in the period, like acknowledgements.
    """
    first: dict[int, datetime] = {}

    def seen(need_id: int, at: datetime) -> None:
        need = needs.get(need_id)
        if need is not None and at >= need.created_at and (
                need_id not in first or at < first[need_id]):
            first[need_id] = at

    for message in messages:
        if message.author_kind == "animator" and message.to_kind == "firm":
            seen(message.need_id, message.at)
    for event in events:
        if event.actor == "animator":
            seen(event.need_id, event.at)
    hours = [(at - needs[need_id].created_at).total_seconds() / 3600
             for need_id, at in first.items() if start <= at < end]
    return float(statistics.median(hours)) if hours else None


def _late_acks(
    routings: Sequence[NeedRouting],
    needs: dict[int | None, Need],
    history: dict[int, list[NeedEvent]],
    end: datetime,
    tz: ZoneInfo,
) -> list[LateAck]:
    """Routings still unacknowledged at `end` at least one working day past their deadline."""
    # The period's last day: `end` itself is excluded.
    as_of = (end - timedelta(microseconds=1)).astimezone(tz).date()
    late = []
    for routing in routings:
        need = needs.get(routing.need_id)
        if need is None or not _awaiting_ack(routing, end):
            continue
        if _status_at(need, history.get(routing.need_id, []), end) in CLOSED_STATUSES:
            continue  # Nobody chases a partner about a closed need.
        due = add_working_days(routing.routed_at.astimezone(tz).date(), routing.ack_days)
        days = _working_days_between(due, as_of)
        if days > 0:
            late.append(LateAck(need.reference, routing.partner_name, routing.routed_at, due,
                                days))
    return sorted(late, key=lambda a: (-a.working_days_late, a.routed_at, a.reference,
                                       a.partner_name))


def _awaiting_ack(routing: NeedRouting, end: datetime) -> bool:
    """Routed before `end`, still in the need, and not acknowledged before `end`."""
    if routing.status == "removed" or routing.routed_at >= end:
        return False
    if routing.acknowledged_at is None:
        # An acknowledged row without its time is taken at its word.
        return routing.status != "acknowledged"
    return routing.acknowledged_at >= end


def _working_days_between(after: date, until: date) -> int:
    """Working days in (after, until]."""
    return working_days_between(after, until)


def _satisfaction(
    ratings: Sequence[tuple[int, datetime, str | None]], start: datetime, end: datetime
) -> SatisfactionSummary | None:
    """Count, mean and distribution of the period's 1..5 ratings; None without any."""
    kept = [(score, comment) for score, at, comment in ratings
            if 1 <= score <= 5 and start <= at < end]
    if not kept:
        return None
    scores = [score for score, _ in kept]
    distribution = {value: scores.count(value) for value in range(1, 6)}
    mean = float(_half_up(Decimal(sum(scores)) / Decimal(len(scores)), 1))
    comments = tuple(c.strip() for _, c in kept if c and c.strip())
    return SatisfactionSummary(len(scores), mean, distribution, comments)


def _half_up(value: Decimal | float, places: int) -> Decimal:
    """Rounded as people expect (4,25 → 4,3), not to the nearest even."""
    exponent = Decimal(1).scaleb(-places)
    return Decimal(str(value)).quantize(exponent, rounding=ROUND_HALF_UP)


def normalise_question(text: str) -> str:
    """Casefolded, accents folded, spaces collapsed: the key that groups repeated questions."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"\s+", " ", bare).strip()


def _unanswered(
    queries: Sequence[KbQuery], start: datetime, end: datetime
) -> list[tuple[str, int]]:
    """The period's questions the cards did not answer, grouped, most frequent first."""
    groups: dict[str, list[KbQuery]] = defaultdict(list)
    for query in sorted(queries, key=lambda q: (q.asked_at, q.id or 0)):
        key = normalise_question(query.text)
        if key and query.outcome in UNANSWERED_OUTCOMES and start <= query.asked_at < end:
            groups[key].append(query)
    ranked = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    return [(_shown_text(group), len(group)) for _, group in ranked[:MAX_QUESTIONS]]


def _shown_text(group: list[KbQuery]) -> str:
    """The most frequent wording of a group (the earliest on a tie), on one line, cut."""
    wordings = Counter(re.sub(r"\s+", " ", q.text).strip() for q in group)
    text = wordings.most_common(1)[0][0]  # Counter keeps first-seen order on ties.
    return _cut(text, QUESTION_CHARS)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# --- Text -----------------------------------------------------------------------------------


def stats_report(stats: TerritoryStats, *, tz: ZoneInfo) -> Text:
    """The figures as a short French report: a bold title, then one line per figure."""
    title, weekly = _period(stats.period_start, stats.period_end, tz)
    return t(
        "animator.stats_report",
        title=title,
        new=_new_text(stats.new_by_theme),
        open=stats.open_count,
        closed_when=label("animator.stats_closed_this_week" if weekly
                          else "animator.stats_closed_in_period"),
        closed=stats.closed_count,
        ack=_listing([_entry("animator.stats_ack_item", partner=name, hours=_hours(h))
                      for name, h in stats.median_ack_hours_by_partner.items()],
                     "animator.stats_ack_none"),
        first_response=(_hours(stats.median_first_response_hours)
                        if stats.median_first_response_hours is not None
                        else label("animator.stats_first_response_none")),
        # Only the items shown are written: a busy territory has hundreds of late ones.
        late=_listing([_entry("animator.stats_late_item", reference=a.reference,
                              partner=a.partner_name, days=_late_days(a.working_days_late))
                       for a in stats.late_acks[:TEXT_LIST_LIMIT]], "animator.stats_late_none",
                      total=len(stats.late_acks)),
        satisfaction=_satisfaction_text(stats.satisfaction),
        questions=_listing([_entry("animator.stats_question_item", question=text, count=count)
                            for text, count in stats.unanswered_questions],
                           "animator.stats_questions_none"),
    )


def stats_text(stats: TerritoryStats, *, tz: ZoneInfo, html: bool) -> str:
    """The report as a string: Telegram's HTML subset when `html`, else plain.

    The weekly digest email carries the report as a `Text`, rendered by the email worker.
    """
    report = stats_report(stats, tz=tz)
    if not html:
        return report.plain()
    return "".join(f"<b>{escape(span.text, quote=False)}</b>" if span.style == "bold"
                   else escape(span.text, quote=False) for span in report.inline())


def _entry(key: str, **values: object) -> str:
    """A catalogue entry without markup, as a value of another entry."""
    return t(key, **values).plain()


def _period(start: datetime, end: datetime, tz: ZoneInfo) -> tuple[str, bool]:
    """The period's title, and whether it is a week."""
    first = start.astimezone(tz).date()
    last = (end - timedelta(microseconds=1)).astimezone(tz).date()
    if first == last:
        return _entry("animator.period_day", day=_day(first, month=True, year=True)), False
    weekly = (last - first).days == 6
    same_year = first.year == last.year
    same_month = same_year and first.month == last.month
    head = _day(first, month=not same_month, year=not same_year)
    key = "animator.period_week" if weekly else "animator.period_other"
    return _entry(key, first=head, last=_day(last, month=True, year=True)), weekly


def period_title(start: datetime, end: datetime, tz: ZoneInfo) -> str:
    """« Semaine du 23 au 29 novembre 2026 » for [start, end) read in `tz`."""
    return _period(start, end, tz)[0]


def _day(day: date, *, month: bool, year: bool) -> str:
    text = label("animator.day_first_of_month") if day.day == 1 else str(day.day)
    if month:
        text += f" {label(f'animator.month_{day.month}')}"
    if year:
        text += f" {day.year}"
    return text


def _new_text(by_theme: dict[str, int]) -> str:
    total = sum(by_theme.values())
    if not total:
        return label("animator.stats_new_none")
    # Nouns, not the intake labels: those contain commas and would blur the list.
    themes = ", ".join(_entry("animator.stats_theme_count", theme=theme_noun(key), count=count)
                       for key, count in by_theme.items())
    return _entry("animator.stats_new", total=total, themes=themes)


def _listing(items: Sequence[str], empty: str, total: int | None = None) -> str:
    # `total` when only the first items were written: the others are counted, not shown.
    total = len(items) if total is None else total
    if not total:
        return label(empty)
    shown = ", ".join(items[:TEXT_LIST_LIMIT])
    rest = total - TEXT_LIST_LIMIT
    if rest == 1:
        return _entry("animator.stats_list_more_one", items=shown)
    if rest > 1:
        return _entry("animator.stats_list_more_other", items=shown, rest=rest)
    return shown


def _decimal(value: float | Decimal, places: int = 1) -> str:
    """French decimal: comma, and no ",0" tail."""
    text = f"{_half_up(value, places):f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text.replace(".", ",")


def _hours(hours: float) -> str:
    # A tenth of an hour matters under 10 h; beyond, whole hours read better.
    return _entry("animator.stats_hours", hours=_decimal(hours, 1 if hours < 10 else 0))


def _late_days(days: int) -> str:
    key = "animator.stats_working_days_one" if days == 1 else "animator.stats_working_days_other"
    return _entry(key, days=days)


def _answers(count: int) -> str:
    return (label("animator.stats_answers_one") if count == 1
            else _entry("animator.stats_answers_other", count=count))


def _mean(summary: SatisfactionSummary) -> str:
    return f"{summary.mean:.1f}".replace(".", ",")


def _satisfaction_text(summary: SatisfactionSummary | None) -> str:
    if summary is None:
        return label("animator.stats_satisfaction_none")
    return _entry("animator.stats_satisfaction", mean=_mean(summary),
                  answers=_answers(summary.count))


# --- Charts ---------------------------------------------------------------------------------

# Part of every cached picture's key: a change of drawing draws again.
CHART_STYLE = "pillow-1, 800x450"


def charts_png(stats: TerritoryStats, *, tz: ZoneInfo) -> list[tuple[str, bytes]]:
    """PNG charts of the figures, as (filename, bytes); a chart without data is left out.

    Each picture is cached by the hash of what it draws: a past week's charts never change
    and the current week's only when its figures do, so a digest or `/stats` asked again
    (another animator, the next round of the weekly job) costs no drawing.
    """
    title = period_title(stats.period_start, stats.period_end, tz)
    specs: list[tuple[str, tuple[object, ...]]] = []
    if stats.new_by_theme:
        specs.append(("besoins-par-theme.png", (
            "barh", tuple(theme_noun(key) for key in stats.new_by_theme),
            tuple(stats.new_by_theme.values()),
            _entry("animator.chart_title_new_by_theme", period=_lower_first(title)),
            label("animator.chart_axis_needs"), True)))
    if stats.median_ack_hours_by_partner:
        ack = stats.median_ack_hours_by_partner
        specs.append(("delais-accuse-reception.png", (
            "barh", tuple(_cut(name, 40) for name in ack), tuple(ack.values()),
            _entry("animator.chart_title_ack_delays", period=_lower_first(title)),
            label("animator.chart_axis_hours"), False)))
    if stats.satisfaction is not None:
        summary = stats.satisfaction
        specs.append(("satisfaction.png", (
            "bars", tuple(summary.distribution.items()),
            _entry("animator.chart_title_satisfaction", period=_lower_first(title),
                   mean=_mean(summary), answers=_answers(summary.count)),
            label("animator.chart_axis_score"), label("animator.chart_axis_answers"))))
    return [(name, _CHARTS.get_or_draw(spec)) for name, spec in specs]


class _ChartCache:
    """Rendered PNGs by the hash of their drawing spec, bounded in bytes, thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[bytes, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_draw(self, spec: tuple[object, ...]) -> bytes:
        """The PNG of `spec`, drawn only if no earlier call drew the same."""
        key = hashlib.sha256(repr((CHART_STYLE, spec)).encode()).digest()
        with self._lock:
            png = self._items.get(key)
            if png is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return png
            self.misses += 1
        # Drawn outside the lock: two threads may draw the same picture once each, harmless.
        png = _draw(spec)
        with self._lock:
            if key not in self._items:
                self._items[key] = png
                self.size += len(png)
            while self.size > self.max_bytes and self._items:
                _, old = self._items.popitem(last=False)
                self.size -= len(old)
        return png

    def clear(self) -> None:
        """Forget every picture (tests, benchmarks of the cold cost)."""
        with self._lock:
            self._items.clear()
            self.size = 0


# ~3 charts of 7-10 kB per territory and week: 183 territories' weekly charts fit many
# times over.
_CHARTS = _ChartCache(max_bytes=48 * 2**20)


def clear_chart_cache() -> None:
    """Forget every cached chart (benchmarks measure the cold drawing with it)."""
    _CHARTS.clear()


def _draw(spec: tuple[object, ...]) -> bytes:
    # `charts` (Pillow) is imported with this module, not at the first chart: loading its C
    # extensions holds the interpreter, and the first weekly job would stall the loop.
    kind, *args = spec
    if kind == "barh":
        labels, values, title, xlabel, integer = args
        return charts.barh_png(
            list(labels), list(values),  # type: ignore[call-overload]
            title=str(title), xlabel=str(xlabel), integer=bool(integer),
            value_text=lambda v: _value(v, bool(integer)))
    distribution, title, xlabel, ylabel = args
    counts = [(f"{score}/5", count)
              for score, count in dict(distribution).items()]  # type: ignore[call-overload]
    return charts.bars_png(counts, title=str(title), xlabel=str(xlabel), ylabel=str(ylabel))


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _value(value: float, integer: bool) -> str:
    return str(round(value)) if integer else _hours(value)
