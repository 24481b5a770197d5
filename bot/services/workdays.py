"""Working days in France: weekends and public holidays (the `holidays` library) excluded."""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache

import holidays

__all__ = ["add_working_days", "is_working_day"]


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
