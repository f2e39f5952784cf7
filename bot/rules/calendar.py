"""Business hours (rules.yaml `settings.business_hours`): when a due follow-up may go out.

Durations stay wall-clock; a follow-up due outside business hours waits for the next
opening (a Friday-evening ask is checked on Monday morning, not on Saturday evening).
Every comparison is made in UTC because Python compares two datetimes of the same zone
by wall time, which is wrong across a DST change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class BusinessCalendar:
    """Open on ``days`` (0 = Monday) from ``open`` to ``close`` local time, except ``holidays``."""

    timezone: str
    days: frozenset[int]
    open: time
    close: time
    holidays: frozenset[date] = frozenset()
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.days or not all(0 <= d <= 6 for d in self.days):
            raise ValueError("business days must be a non-empty set of weekdays 0-6")
        if not self.open < self.close:
            raise ValueError(f"opening time {self.open:%H:%M} must be before closing time "
                             f"{self.close:%H:%M}")
        # Callers may pass plain sets; keep the calendar hashable and immutable.
        object.__setattr__(self, "days", frozenset(self.days))
        object.__setattr__(self, "holidays", frozenset(self.holidays))
        object.__setattr__(self, "_zone", ZoneInfo(self.timezone))

    def _business_day(self, day: date) -> bool:
        return day.weekday() in self.days and day not in self.holidays

    def _hours(self, day: date) -> tuple[datetime, datetime]:
        """That day's opening and closing instants in UTC (a time skipped by DST moves on)."""
        opening = datetime.combine(day, self.open, tzinfo=self._zone).astimezone(UTC)
        closing = datetime.combine(day, self.close, tzinfo=self._zone).astimezone(UTC)
        return opening, closing

    def _local_date(self, dt: datetime) -> date:
        return _aware(dt).astimezone(self._zone).date()

    def is_open(self, dt: datetime) -> bool:
        day = self._local_date(dt)
        if not self._business_day(day):
            return False
        opening, closing = self._hours(day)
        return opening <= _aware(dt).astimezone(UTC) < closing

    def next_open(self, dt: datetime) -> datetime:
        """``dt`` itself (in UTC) when open, else the next opening instant, in UTC."""
        moment = _aware(dt).astimezone(UTC)
        day = self._local_date(moment)
        # Every skipped day is a closed weekday (at most six in a row) or a holiday.
        for _ in range((len(self.holidays) + 1) * 7 + 1):
            if self._business_day(day):
                opening, closing = self._hours(day)
                if moment < opening:
                    return opening
                if moment < closing:
                    return moment
            day += timedelta(days=1)
        raise ValueError("the business calendar never opens")  # unreachable: days is non-empty


def _aware(dt: datetime) -> datetime:
    """Naive datetimes are taken as UTC, the bot's convention for stored times."""
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)
