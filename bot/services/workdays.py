"""Working days in France: weekends and public holidays (the `holidays` library) excluded."""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache

import holidays

__all__ = ["add_working_days", "is_working_day", "working_days_between"]


@cache
def _french_holidays(year: int) -> holidays.HolidayBase:
    return holidays.France(years=year)


def is_working_day(day: date) -> bool:
    """Monday to Friday, and not a French public holiday."""
    return day.weekday() < 5 and day not in _french_holidays(day.year)


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
        count -= sum(1 for day in _french_holidays(year)
                     if day.year == year and after < day <= until and day.weekday() < 5)
    return count
