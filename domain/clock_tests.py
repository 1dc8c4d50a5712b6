"""The audience language's clock tests: answers that change as time passes, and when.

Each returns whether it holds at `now` and the earliest time its answer can change while
the field keeps its value (None: never), which the projection stores as `next_flip`.
All times are UTC; a date-only value is midnight UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

Outcome = tuple[bool, datetime | None]
_TICK = timedelta(microseconds=1)


def as_time(value: Any) -> datetime | None:
    """A UTC datetime from an RFC 3339 string, a YYYY-MM-DD date (midnight UTC) or a TOML
    date or datetime (a local one is taken as UTC); None for anything else."""
    if isinstance(value, str):
        try:
            value = (
                datetime.fromisoformat(value.upper())
                if "T" in value.upper()
                else (date.fromisoformat(value))
            )
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


def _shift(moment: datetime, days: float) -> datetime | None:
    """`moment` + N days, or None past the calendar's end (year 9999): never, in effect."""
    try:
        return moment + timedelta(days=days)
    except OverflowError:
        return None


def _just_after(end: datetime | None) -> datetime | None:
    """The first instant after `end`, or None (never) past the calendar's end: a valid
    time of 9999-12-31 plus N days must not stop a projection."""
    try:
        return None if end is None else end + _TICK
    except OverflowError:
        return None


def within_days(actual: Any, days: float, now: datetime) -> Outcome:
    """now - N days <= field <= now."""
    moment = as_time(actual)
    if moment is None:
        return (False, None)
    if moment > now:
        return (False, moment)
    end = _shift(moment, days)
    if end is None or end >= now:
        return (True, _just_after(end))
    return (False, None)


def older_than_days(actual: Any, days: float, now: datetime) -> Outcome:
    """field < now - N days."""
    moment = as_time(actual)
    if moment is None:
        return (False, None)
    end = _shift(moment, days)
    if end is None:
        return (False, None)
    if end < now:
        return (True, None)
    return (False, _just_after(end))


def _month_start(year: int, month: int) -> datetime:
    return datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1, tzinfo=UTC)


def month_is(actual: Any, month: int | str, now: datetime) -> Outcome:
    moment = as_time(actual)
    if moment is None:
        return (False, None)
    if month != "current":
        return (moment.month == month, None)
    if moment.month == now.month:
        return (True, _month_start(now.year, now.month + 1))
    ahead = (moment.month - now.month) % 12
    return (False, _month_start(now.year, now.month + ahead))


def anniversary(day: date, year: int) -> date:
    """The day's anniversary in `year`; 29 February falls on the 28th in common years."""
    try:
        return day.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


def day_of_year_within(actual: Any, days: int, now: datetime) -> Outcome:
    """The field's next anniversary (month and day, from today on) is at most N days ahead."""
    moment = as_time(actual)
    if moment is None:
        return (False, None)
    today = now.date()
    coming = anniversary(moment.date(), today.year)
    if coming < today:
        coming = anniversary(moment.date(), today.year + 1)
    if (coming - today).days <= days:
        return (True, _midnight(coming + timedelta(days=1)))
    return (False, _midnight(coming - timedelta(days=days)))


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
