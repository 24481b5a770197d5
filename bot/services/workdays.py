"""Working days in France: weekends and public holidays (the `holidays` library) excluded."""

from __future__ import annotations

from bisect import bisect_right
from datetime import date, timedelta
from functools import cache, lru_cache

import holidays

__all__ = ["add_working_days", "is_working_day", "working_days_between"]


@cache
def _french_holidays(year: int) -> frozenset[date]:
    # A plain set of dates: `day in holidays.France(...)` converts and checks its key on
    # every call, which cost ~100 µs a late acknowledgement in the weekly figures.
    return frozenset(holidays.France(years=year))


@cache
def _weekday_holidays(year: int) -> tuple[date, ...]:
    """The year's holidays that fall on a weekday, in order (they are the ones that count)."""
    return tuple(sorted(day for day in _french_holidays(year)
                        if day.year == year and day.weekday() < 5))


def is_working_day(day: date) -> bool:
    """Monday to Friday, and not a French public holiday."""
    return day.weekday() < 5 and day not in _french_holidays(day.year)


# Routings of the same day share their deadline: thousands of late acknowledgements in a
# busy territory's figures ask for a few hundred distinct (day, delay) pairs.
@lru_cache(maxsize=4096)
def add_working_days(start: date, days: int) -> date:
    """The date `days` working days after `start` (start itself does not count)."""
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if is_working_day(current):
            remaining -= 1
    return current


def working_days_between(after: date, until: date) -> int:
    """Working days in (after, until]: counted by weeks, not day by day (long delays)."""
    if until <= after:
        return 0
    weeks, rest = divmod((until - after).days, 7)
    count = weeks * 5 + sum((after.weekday() + i) % 7 < 5 for i in range(1, rest + 1))
    for year in range(after.year, until.year + 1):
        days = _weekday_holidays(year)
        count -= bisect_right(days, until) - bisect_right(days, after)
    return count
