"""Territory figures (weekly digest, /stats): computation, French text and charts."""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.services.insight import (
    LateAck,
    SatisfactionSummary,
    TerritoryStats,
    charts_png,
    compute_stats,
    normalise_question,
    period_title,
    stats_text,
)
from storage.models import KbQuery, Need, NeedEvent, NeedMessage, NeedRouting

PARIS = ZoneInfo("Europe/Paris")
TI = "charolais"
# Week of Monday 23 November 2026, in Paris: [start, end).
START = datetime(2026, 11, 23, tzinfo=PARIS)
END = datetime(2026, 11, 30, tzinfo=PARIS)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def paris(month: int, day: int, hour: int = 0, minute: int = 0, year: int = 2026) -> datetime:
    """An instant given in Paris time, stored as UTC like the database does."""
    return datetime(year, month, day, hour, minute, tzinfo=PARIS).astimezone(UTC)


def need(number: int, theme: str, created: datetime, status: str = "submitted",
         territory: str | None = TI) -> Need:
    return Need(id=number, reference=f"TI-2026-{number:04d}", theme=theme, urgency="normal",
                contact_method="telegram", status=status, territory_id=territory,
                created_at=created, updated_at=created)


def event(need_id: int, from_status: str | None, to_status: str, at: datetime) -> NeedEvent:
    return NeedEvent(need_id=need_id, from_status=from_status, to_status=to_status, at=at)


def routing(need_id: int, partner: str, routed: datetime, acked: datetime | None = None, *,
            ack_days: int = 2, status: str | None = None) -> NeedRouting:
    return NeedRouting(
        need_id=need_id, partner_id=partner.casefold().replace(" ", "-"), partner_kind="opco",
        partner_name=partner, partner_email="p@example.org", level="epci", reason="test",
        ack_days=ack_days, routed_at=routed, acknowledged_at=acked,
        status=status or ("acknowledged" if acked else "routed"),
    )


def query(text: str, outcome: str, asked: datetime, territory: str | None = TI) -> KbQuery:
    return KbQuery(text=text, outcome=outcome, asked_at=asked, territory_id=territory)


CCI = "CCI <Saône & Loire>"
LONG_QUESTION = "Quelles aides " + "pour moderniser une ligne de production " * 5


def week_rows() -> dict[str, list]:
    needs = [
        need(1, "recrutement", START.astimezone(UTC), "routed"),  # exactly at the start: in
        need(2, "recrutement", paris(11, 24, 10), "acknowledged"),
        need(3, "competences", paris(11, 25, 9), "closed_helped"),
        need(4, "recrutement", paris(11, 29, 23, 59)),  # Sunday 23:59 Paris: in
        need(5, "export", END.astimezone(UTC)),  # exactly at the end: out
        need(6, "foncier", paris(11, 10, 9), "routed"),
        need(7, "financement", paris(11, 2, 9), "closed_not_helped"),
        need(8, "innovation", paris(11, 16, 9), "in_progress"),
        need(9, "recrutement", paris(11, 20, 9), "closed_helped"),
        need(10, "recrutement", paris(11, 24, 9), territory="autre-ti"),
        need(11, "mobilite", paris(11, 26, 9), "cancelled"),
    ]
    events = [
        event(3, None, "submitted", paris(11, 25, 9)),
        event(3, "submitted", "routed", paris(11, 25, 9, 5)),
        event(3, "routed", "closed_helped", paris(11, 27, 15)),
        event(6, None, "submitted", paris(11, 10, 9)),
        event(6, "submitted", "routed", paris(11, 10, 10)),
        event(7, "routed", "closed_not_helped", paris(11, 5, 9)),
        # Closed then reopened within the week: open, not "closed this week".
        event(8, "routed", "closed_helped", paris(11, 24, 9)),
        event(8, "closed_helped", "in_progress", paris(11, 26, 9)),
        # Closed after the period: in progress at its end.
        event(9, "routed", "in_progress", paris(11, 21, 9)),
        event(9, "in_progress", "closed_helped", paris(12, 1, 9)),
        event(11, "submitted", "cancelled", paris(11, 26, 10)),
    ]
    routings = [
        # France Travail: 2 h, 5 h, 9 h → median 5 h.
        routing(1, "France Travail Paray", paris(11, 23, 9), paris(11, 23, 11)),
        routing(2, "France Travail Paray", paris(11, 24, 10), paris(11, 24, 15)),
        routing(3, "France Travail Paray", paris(11, 25, 9, 5), paris(11, 25, 18, 5)),
        # OPCO: 1 h, 4 h → median 2,5 h.
        routing(1, "OPCO 2i", paris(11, 23, 9), paris(11, 23, 10)),
        routing(2, "OPCO 2i", paris(11, 24, 10), paris(11, 24, 14)),
        # Tuesday 10 Nov; Wed 11 Nov is a holiday: due Fri 13 Nov, 10 working days late.
        routing(6, "OPCO 2i", paris(11, 10, 10)),
        # Acknowledged before the period: neither in the medians nor late.
        routing(6, CCI, paris(11, 10, 10), paris(11, 12, 10)),
        # Friday 20 Nov: due Tue 24, late Wed, Thu, Fri.
        routing(8, CCI, paris(11, 20, 16)),
        # Wednesday 25 Nov: due Fri 27, no working day lost by Sunday: not late.
        routing(9, CCI, paris(11, 25, 10)),
        # Acknowledged after the end: late as of the end (due Wed 25), not in the medians.
        routing(2, "CMA", paris(11, 24, 10), paris(11, 30, 10), ack_days=1),
        # The need is closed: nobody is chased.
        routing(3, "CMA", paris(11, 25, 9, 5)),
        # Removed from the need.
        routing(1, "CMA", paris(11, 16, 9), status="removed"),
        # Routed after the end.
        routing(6, "CMA", paris(12, 1, 9)),
        # Another territory's need.
        routing(10, "Autre", paris(11, 2, 9)),
        routing(10, "Autre", paris(11, 24, 9), paris(11, 24, 10)),
    ]
    queries = [
        query("aide a l'embauche  d'un apprenti", "uncertain", paris(11, 23, 8)),
        query("Aide à l'embauche d'un apprenti", "forwarded", paris(11, 24, 8)),
        query("AIDE À L'EMBAUCHE D'UN APPRENTI", "out_of_scope", paris(11, 25, 8)),
        query("Aide à l'embauche d'un apprenti", "rejected", paris(11, 26, 8), territory=None),
        query("Aide à l'embauche d'un apprenti", "answered", paris(11, 26, 9)),
        query("Aide à l'embauche d'un apprenti", "forwarded", paris(11, 26, 9), "autre-ti"),
        query("Subvention pour panneaux solaires ?", "rejected", paris(11, 24, 9)),
        query("Subvention pour panneaux solaires ?", "forwarded", paris(11, 27, 9)),
        query("Subvention pour panneaux solaires ?", "forwarded", paris(11, 22, 9)),  # before
        query(LONG_QUESTION, "out_of_scope", paris(11, 28, 9)),
        query("   ", "out_of_scope", paris(11, 28, 9)),
    ]
    ratings = [
        (5, paris(11, 23, 12), None),
        (4, paris(11, 24, 12), None),
        (4, paris(11, 25, 12), None),
        (5, paris(11, 26, 12), "  "),
        (3, paris(11, 27, 12), "Rapide, merci"),
        (5, paris(11, 29, 23), None),
        (1, paris(11, 22, 12), "Avant la période"),
        (6, paris(11, 24, 12), None),  # not a 1..5 score
        (5, END.astimezone(UTC), None),  # the end is excluded
    ]
    return {"needs": needs, "events": events, "routings": routings, "queries": queries,
            "ratings": ratings}


def week_stats() -> TerritoryStats:
    return compute_stats(territory_id=TI, start=START, end=END, tz=PARIS, **week_rows())


def empty_stats(start: datetime = START, end: datetime = END) -> TerritoryStats:
    return compute_stats(territory_id=TI, needs=[], routings=[], events=[], queries=[],
                         ratings=[], start=start, end=end, tz=PARIS)


# --- Computation ----------------------------------------------------------------------------


def test_period_is_stored_in_utc() -> None:
    stats = week_stats()
    assert stats.territory_id == TI
    assert stats.period_start == datetime(2026, 11, 22, 23, tzinfo=UTC)
    assert stats.period_end == datetime(2026, 11, 29, 23, tzinfo=UTC)
    assert stats.period_start.tzinfo is UTC


def test_new_needs_by_theme_in_the_period_only() -> None:
    stats = week_stats()
    assert stats.new_by_theme == {"recrutement": 3, "competences": 1, "mobilite": 1}
    assert list(stats.new_by_theme) == ["recrutement", "competences", "mobilite"]


def test_open_and_closed_replay_the_history() -> None:
    stats = week_stats()
    # Open at the end: 1, 2, 4, 6, 8 (reopened), 9 (closed only in December).
    assert stats.open_count == 6
    # Closed in the week and still closed: 3 and 11 (7 was closed before, 8 reopened).
    assert stats.closed_count == 2


def test_closed_need_without_history_uses_its_last_update() -> None:
    rows = [need(1, "export", paris(11, 2, 9), "closed_helped"),
            need(2, "export", paris(11, 2, 9), "cancelled")]
    rows[0].updated_at = paris(11, 25, 9)
    stats = compute_stats(territory_id=TI, needs=rows, routings=[], events=[], queries=[],
                          ratings=[], start=START, end=END, tz=PARIS)
    assert (stats.open_count, stats.closed_count) == (0, 1)


def test_median_ack_hours_per_partner() -> None:
    stats = week_stats()
    assert stats.median_ack_hours_by_partner == {"France Travail Paray": 5.0, "OPCO 2i": 2.5}
    assert list(stats.median_ack_hours_by_partner) == ["France Travail Paray", "OPCO 2i"]


def animator_message(need_id: int, at: datetime, to_kind: str = "firm",
                     author_kind: str = "animator") -> NeedMessage:
    return NeedMessage(need_id=need_id, author_kind=author_kind, author="Claire Martin",
                       to_kind=to_kind, channel="telegram", text="Bonjour", at=at)


def test_median_first_response_of_the_chef_de_projet() -> None:
    needs = [need(1, "recrutement", paris(11, 23, 9)), need(2, "foncier", paris(11, 24, 9)),
             need(3, "export", paris(11, 25, 9)), need(4, "export", paris(11, 16, 9)),
             need(5, "export", paris(11, 27, 9)), need(6, "export", paris(11, 20, 9))]
    events = [
        # Need 1: taken 2 h after creation, then a message: the first one counts (2 h).
        NeedEvent(need_id=1, from_status="routed", to_status="in_progress",
                  actor="animator", at=paris(11, 23, 11)),
        # The system's routing is no response.
        NeedEvent(need_id=2, from_status="submitted", to_status="routed", actor="system",
                  at=paris(11, 24, 9, 1)),
        # Need 4: answered before the period: not counted.
        NeedEvent(need_id=4, from_status="routed", to_status="in_progress",
                  actor="animator", at=paris(11, 17, 9)),
        # Need 6: created before the period, first answered in it (4 days: 96 h).
        NeedEvent(need_id=6, from_status="routed", to_status="closed_helped",
                  actor="animator", at=paris(11, 24, 9)),
    ]
    messages = [
        animator_message(1, paris(11, 23, 15)),
        # Need 2: first message 5 h after; the firm's own message is no response.
        animator_message(2, paris(11, 24, 12), to_kind="animator", author_kind="firm"),
        animator_message(2, paris(11, 24, 14)),
        # Need 3: 10 h.
        animator_message(3, paris(11, 25, 19)),
        # Need 5: answered after the end of the period.
        animator_message(5, paris(11, 30, 9)),
    ]
    stats = compute_stats(territory_id=TI, needs=needs, routings=[], events=events,
                          queries=[], ratings=[], start=START, end=END, tz=PARIS,
                          messages=messages)
    # 2 h, 5 h, 10 h, 96 h → median 7,5 h.
    assert stats.median_first_response_hours == 7.5
    assert "première réponse du chef de projet : 7,5 h" in stats_text(
        stats, tz=PARIS, html=False)
    assert empty_stats().median_first_response_hours is None


def test_late_acks_count_working_days() -> None:
    stats = week_stats()
    assert stats.late_acks == [
        LateAck("TI-2026-0006", "OPCO 2i", paris(11, 10, 10), date(2026, 11, 13), 10),
        LateAck("TI-2026-0008", CCI, paris(11, 20, 16), date(2026, 11, 24), 3),
        LateAck("TI-2026-0002", "CMA", paris(11, 24, 10), date(2026, 11, 25), 2),
    ]


def test_late_ack_across_christmas_and_new_year() -> None:
    start, end = datetime(2026, 12, 28, tzinfo=PARIS), datetime(2027, 1, 4, tzinfo=PARIS)
    needs = [need(1, "export", paris(12, 24, 9), "routed")]
    # Thursday 24 Dec: 25 Dec holiday, weekend, due Tuesday 29; late Wed 30, Thu 31
    # (1 January is a holiday, then the weekend).
    routings = [routing(1, "Bpifrance", paris(12, 24, 10))]
    stats = compute_stats(territory_id=TI, needs=needs, routings=routings, events=[],
                          queries=[], ratings=[], start=start, end=end, tz=PARIS)
    assert stats.late_acks == [
        LateAck("TI-2026-0001", "Bpifrance", paris(12, 24, 10), date(2026, 12, 29), 2)]


def test_satisfaction_summary() -> None:
    summary = week_stats().satisfaction
    assert summary == SatisfactionSummary(
        count=6, mean=4.3, distribution={1: 0, 2: 0, 3: 1, 4: 2, 5: 3},
        comments=("Rapide, merci",))


def test_satisfaction_mean_rounds_half_up() -> None:
    ratings = [(score, paris(11, 24, 9), None) for score in (4, 5, 4, 4)]
    stats = compute_stats(territory_id=TI, needs=[], routings=[], events=[], queries=[],
                          ratings=ratings, start=START, end=END, tz=PARIS)
    assert stats.satisfaction is not None
    assert stats.satisfaction.mean == 4.3  # 4.25, not rounded to even


def test_unanswered_questions_grouped_and_cut() -> None:
    questions = week_stats().unanswered_questions
    long_cut = LONG_QUESTION[:119].rstrip() + "…"
    assert questions == [
        ("Aide à l'embauche d'un apprenti", 4),
        ("Subvention pour panneaux solaires ?", 2),
        (long_cut, 1),
    ]
    assert len(long_cut) <= 120


def test_unanswered_questions_keep_ten() -> None:
    queries = [query(f"Question {n:02d}", "uncertain", paris(11, 24, 9)) for n in range(12)]
    queries += [query("question 11", "rejected", paris(11, 25, 9))]
    stats = compute_stats(territory_id=TI, needs=[], routings=[], events=[], queries=queries,
                          ratings=[], start=START, end=END, tz=PARIS)
    assert stats.unanswered_questions[0] == ("Question 11", 2)
    assert [t for t, _ in stats.unanswered_questions[1:]] == [
        f"Question {n:02d}" for n in range(9)]


def test_normalise_question() -> None:
    assert normalise_question("  Élève\tÀ  l'ÉCOLE\n ") == "eleve a l'ecole"
    assert normalise_question("Straße") == "strasse"


def test_empty_period() -> None:
    stats = empty_stats()
    assert stats.new_by_theme == {} and stats.median_ack_hours_by_partner == {}
    assert (stats.open_count, stats.closed_count) == (0, 0)
    assert stats.late_acks == [] and stats.unanswered_questions == []
    assert stats.satisfaction is None


def test_refuses_naive_or_empty_periods() -> None:
    with pytest.raises(ValueError):
        empty_stats(start=datetime(2026, 11, 23), end=END)
    with pytest.raises(ValueError):
        empty_stats(start=END, end=START)


# --- Text -----------------------------------------------------------------------------------


def small_stats() -> TerritoryStats:
    return TerritoryStats(
        territory_id=TI,
        period_start=START.astimezone(UTC),
        period_end=END.astimezone(UTC),
        new_by_theme={"recrutement": 4, "competences": 2, "export": 1},
        open_count=12,
        closed_count=3,
        median_ack_hours_by_partner={"France Travail Paray": 26.4, "A <&> B": 4.25},
        late_acks=[LateAck("TI-2026-0042", "OPCO 2i", paris(11, 20, 9), date(2026, 11, 24), 2),
                   LateAck("TI-2026-0043", "A <&> B", paris(11, 23, 9), date(2026, 11, 25), 1)],
        satisfaction=SatisfactionSummary(6, 4.0, {1: 0, 2: 0, 3: 1, 4: 4, 5: 1}),
        unanswered_questions=[("Aide <embauche> & apprenti ?", 3), ("Export", 1)],
        median_first_response_hours=3.5,
    )


SMALL_PLAIN = (
    "Semaine du 23 au 29 novembre 2026\n"
    "Nouvelles demandes : 7 (Recrutement 4, Compétences et formation 2, Export 1)\n"
    "Ouvertes : 12 · closes cette semaine : 3\n"
    "Délai médian d'accusé de réception : France Travail Paray 26 h, A <&> B 4,3 h\n"
    "Délai médian de première réponse du chef de projet : 3,5 h\n"
    "En retard : TI-2026-0042 (OPCO 2i, 2 j ouvrés), TI-2026-0043 (A <&> B, 1 j ouvré)\n"
    "Satisfaction : 4,0/5 (6 réponses)\n"
    "Questions sans réponse : « Aide <embauche> & apprenti ? » (3), « Export » (1)"
)
SMALL_HTML = (
    "<b>Semaine du 23 au 29 novembre 2026</b>\n"
    "Nouvelles demandes : 7 (Recrutement 4, Compétences et formation 2, Export 1)\n"
    "Ouvertes : 12 · closes cette semaine : 3\n"
    "Délai médian d'accusé de réception : France Travail Paray 26 h, A &lt;&amp;&gt; B 4,3 h\n"
    "Délai médian de première réponse du chef de projet : 3,5 h\n"
    "En retard : TI-2026-0042 (OPCO 2i, 2 j ouvrés), TI-2026-0043 (A &lt;&amp;&gt; B, 1 j ouvré)\n"
    "Satisfaction : 4,0/5 (6 réponses)\n"
    "Questions sans réponse : « Aide &lt;embauche&gt; &amp; apprenti ? » (3), « Export » (1)"
)


def test_stats_text_plain() -> None:
    assert stats_text(small_stats(), tz=PARIS, html=False) == SMALL_PLAIN


def test_stats_text_html_escapes_data() -> None:
    assert stats_text(small_stats(), tz=PARIS, html=True) == SMALL_HTML


def test_stats_text_empty() -> None:
    assert stats_text(empty_stats(), tz=PARIS, html=True) == (
        "<b>Semaine du 23 au 29 novembre 2026</b>\n"
        "Nouvelles demandes : aucune\n"
        "Ouvertes : 0 · closes cette semaine : 0\n"
        "Délai médian d'accusé de réception : aucun accusé de réception\n"
        "Délai médian de première réponse du chef de projet : aucune réponse sur la période\n"
        "En retard : aucun\n"
        "Satisfaction : aucune réponse\n"
        "Questions sans réponse : aucune"
    )


def test_stats_text_of_the_computed_week() -> None:
    lines = stats_text(week_stats(), tz=PARIS, html=False).split("\n")
    del lines[4]  # the first response line (see its own test)
    assert lines[1:6] == [
        "Nouvelles demandes : 5 (Recrutement 3, Compétences et formation 1, "
        "Mobilité des salariés 1)",
        "Ouvertes : 6 · closes cette semaine : 2",
        "Délai médian d'accusé de réception : France Travail Paray 5 h, OPCO 2i 2,5 h",
        "En retard : TI-2026-0006 (OPCO 2i, 10 j ouvrés), "
        "TI-2026-0008 (CCI <Saône & Loire>, 3 j ouvrés), TI-2026-0002 (CMA, 2 j ouvrés)",
        "Satisfaction : 4,3/5 (6 réponses)",
    ]


def test_stats_text_cuts_long_lists() -> None:
    late = [LateAck(f"TI-2026-{n:04d}", "OPCO", paris(11, 2, 9), date(2026, 11, 4), 5)
            for n in range(1, 8)]
    stats = TerritoryStats(TI, START, END, {}, 0, 0, {}, late, None, [])
    line = stats_text(stats, tz=PARIS, html=False).split("\n")[5]
    assert line.endswith("TI-2026-0005 (OPCO, 5 j ouvrés) et 2 autres")


@pytest.mark.parametrize(("start", "end", "title"), [
    (START, END, "Semaine du 23 au 29 novembre 2026"),
    (datetime(2026, 11, 30, tzinfo=PARIS), datetime(2026, 12, 7, tzinfo=PARIS),
     "Semaine du 30 novembre au 6 décembre 2026"),
    (datetime(2026, 12, 28, tzinfo=PARIS), datetime(2027, 1, 4, tzinfo=PARIS),
     "Semaine du 28 décembre 2026 au 3 janvier 2027"),
    (datetime(2026, 12, 1, tzinfo=PARIS), datetime(2027, 1, 1, tzinfo=PARIS),
     "Période du 1er au 31 décembre 2026"),
    (datetime(2026, 11, 23, tzinfo=PARIS), datetime(2026, 11, 24, tzinfo=PARIS),
     "Journée du 23 novembre 2026"),
])
def test_period_title(start: datetime, end: datetime, title: str) -> None:
    assert period_title(start.astimezone(UTC), end.astimezone(UTC), PARIS) == title


def test_month_period_text_says_period() -> None:
    stats = empty_stats(datetime(2026, 12, 1, tzinfo=PARIS), datetime(2027, 1, 1, tzinfo=PARIS))
    assert "closes sur la période : 0" in stats_text(stats, tz=PARIS, html=False)


# --- Charts ---------------------------------------------------------------------------------


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the PNG header (IHDR is the first chunk)."""
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.slow
def test_charts_for_the_week() -> None:
    pytest.importorskip("matplotlib")
    charts = charts_png(week_stats(), tz=PARIS)
    assert [name for name, _ in charts] == [
        "besoins-par-theme.png", "delais-accuse-reception.png", "satisfaction.png"]
    for _, data in charts:
        assert len(data) > 1000
        assert png_size(data) == (800, 450)
        assert b"Software" not in data


@pytest.mark.slow
def test_charts_are_deterministic_even_in_threads() -> None:
    pytest.importorskip("matplotlib")
    stats = week_stats()
    first = charts_png(stats, tz=PARIS)
    assert charts_png(stats, tz=PARIS) == first
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: charts_png(stats, tz=PARIS), range(4)))
    assert all(result == first for result in results)


def test_no_chart_without_data() -> None:
    pytest.importorskip("matplotlib")
    assert charts_png(empty_stats(), tz=PARIS) == []
    only_themes = TerritoryStats(TI, START, END, {"export": 2}, 2, 0, {}, [], None, [])
    assert [name for name, _ in charts_png(only_themes, tz=PARIS)] == ["besoins-par-theme.png"]


def test_chart_labels_are_drawn_as_written() -> None:
    pytest.importorskip("matplotlib")
    # "$...$" would be parsed as mathtext (and "$" alone can fail): shown literally instead.
    stats = TerritoryStats(TI, START, END, {}, 0, 0, {"Cabinet $A$ & $": 3.5, "x" * 80: 0.2},
                           [], None, [])
    [(name, data)] = charts_png(stats, tz=PARIS)
    assert name == "delais-accuse-reception.png"
    assert png_size(data) == (800, 450)


def test_charts_are_cached_by_what_they_draw() -> None:
    pytest.importorskip("matplotlib")
    from bot.services import insight

    stats = week_stats()
    first = charts_png(stats, tz=PARIS)
    hits = insight._CHARTS.hits
    again = charts_png(stats, tz=PARIS)
    assert again == first and insight._CHARTS.hits == hits + len(first)
    # Other figures draw another picture; the unchanged charts still come from the cache.
    other = TerritoryStats(TI, stats.period_start, stats.period_end, {"export": 99},
                           stats.open_count, stats.closed_count,
                           stats.median_ack_hours_by_partner, stats.late_acks,
                           stats.satisfaction, stats.unanswered_questions)
    changed = dict(charts_png(other, tz=PARIS))
    assert changed["besoins-par-theme.png"] != dict(first)["besoins-par-theme.png"]
    assert changed["satisfaction.png"] == dict(first)["satisfaction.png"]
    insight.clear_chart_cache()
    assert charts_png(stats, tz=PARIS) == first


def test_chart_ticks_are_round_and_whole_for_counts() -> None:
    from bot.services.charts import nice_ticks

    assert nice_ticks(3.45, integer=True, most=6) == [0, 1, 2, 3]
    assert nice_ticks(0.2, integer=True, most=6) == [0]
    assert nice_ticks(5.75, integer=False, most=6) == [0, 1, 2, 3, 4, 5]
    assert [round(t, 6) for t in nice_ticks(1.15, integer=False, most=6)] == [
        0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(115, integer=True, most=6) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(0, integer=True, most=6) == [0.0]
    for top in (0.7, 1.15, 3.45, 17.2, 230.0, 4600.0):
        for integer in (True, False):
            ticks = nice_ticks(top, integer=integer, most=6)
            assert ticks[0] == 0 and ticks[-1] <= top and len(ticks) <= 7
            assert not integer or all(float(t).is_integer() for t in ticks)


def test_charts_show_bars_in_colour_on_white() -> None:
    """The picture: white ground, the bars in the Relais blue, dark text (title, labels)."""
    import io

    from PIL import Image

    from bot.services import charts

    data = charts.barh_png(["Recrutement", "Export", "Vide"], [3, 1, 0], title="Titre",
                           xlabel="demandes", integer=True, value_text=str)
    picture = Image.open(io.BytesIO(data)).convert("RGB")
    assert picture.size == (800, 450)
    colours = {colour for _, colour in picture.getcolors(800 * 450) or []}
    assert {(255, 255, 255), charts.BAR, (0, 0, 0)} <= colours
    # The title is drawn in the top band, above the plot.
    top = picture.crop((0, 0, 800, 30)).convert("L")
    assert top.getextrema()[0] < 100  # type: ignore[index]
    bars = charts.bars_png([(f"{s}/5", c) for s, c in enumerate([0, 0, 1, 2, 3], 1)],
                           title="Satisfaction", xlabel="note", ylabel="réponses")
    assert Image.open(io.BytesIO(bars)).size == (800, 450)
