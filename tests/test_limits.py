"""The counting of `bot.services.limits.RateWindow`: a sliding window, one notice, silence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.services.limits import ChatLimits, RateWindow, Verdict

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_beyond_the_limit_one_notice_then_silence_until_the_window_is_over() -> None:
    window = RateWindow(3, timedelta(minutes=1))
    assert [window.hit(1, at(s)) for s in (0, 10, 20)] == [Verdict.OK] * 3
    assert window.hit(1, at(30)) is Verdict.NOTICE
    # Silent until the oldest counted event (t=0) leaves the window, however many come.
    assert {window.hit(1, at(s)) for s in range(31, 60)} == {Verdict.SILENT}
    assert window.hit(2, at(45)) is Verdict.OK  # another person is not concerned
    # Then the count starts afresh: three more, then one notice again.
    assert [window.hit(1, at(s)) for s in (60, 61, 62, 63)] == [
        Verdict.OK, Verdict.OK, Verdict.OK, Verdict.NOTICE]


def test_a_steady_pace_under_the_limit_is_never_refused() -> None:
    window = RateWindow(20, timedelta(minutes=1))
    assert {window.hit(7, at(4 * i)) for i in range(500)} == {Verdict.OK}


def test_zero_is_no_limit_and_the_chefs_de_projet_are_exempt() -> None:
    assert {RateWindow(0, timedelta(minutes=1)).hit(1, T0) for _ in range(100)} == {Verdict.OK}
    limits = ChatLimits(messages_per_minute=1, questions_per_minute=1, exempt={42})
    assert {limits.message(42, T0) for _ in range(50)} == {Verdict.OK}
    assert [limits.message(1, T0) for _ in range(3)] == [
        Verdict.OK, Verdict.NOTICE, Verdict.SILENT]


def test_idle_people_are_forgotten_so_memory_stays_bounded() -> None:
    window = RateWindow(5, timedelta(minutes=1), max_keys=100)
    for person in range(1000):
        window.hit(person, at(person))  # one event each, one second apart
    assert len(window) <= 100
