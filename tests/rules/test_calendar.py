"""Business hours: follow-ups due outside them wait for the next opening, across DST too."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.rules.calendar import BusinessCalendar

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = {0, 1, 2, 3, 4}


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


def calendar(**kw: object) -> BusinessCalendar:
    args: dict[str, object] = dict(timezone="Europe/Berlin", days=WEEKDAYS, open=time(9),
                                   close=time(17), holidays={date(2026, 12, 25)})
    args.update(kw)
    return BusinessCalendar(**args)  # type: ignore[arg-type]


def test_inside_business_hours_is_returned_unchanged_in_utc() -> None:
    when = berlin(2026, 11, 25, 10, 30)  # a Wednesday
    result = calendar().next_open(when)
    assert result == when and result.tzinfo == UTC
    assert calendar().is_open(when)


def test_friday_evening_waits_for_monday_morning() -> None:
    friday_evening = berlin(2026, 11, 27, 18, 0)
    monday = calendar().next_open(friday_evening)
    assert monday == berlin(2026, 11, 30, 9, 0)
    assert not calendar().is_open(friday_evening)


def test_before_opening_waits_for_the_same_morning() -> None:
    assert calendar().next_open(berlin(2026, 11, 25, 6, 0)) == berlin(2026, 11, 25, 9, 0)


def test_closing_time_itself_is_closed() -> None:
    assert calendar().next_open(berlin(2026, 11, 25, 17, 0)) == berlin(2026, 11, 26, 9, 0)


def test_holidays_are_skipped() -> None:
    christmas_eve_evening = berlin(2026, 12, 24, 18, 0)  # Thursday; Friday is a holiday
    assert calendar().next_open(christmas_eve_evening) == berlin(2026, 12, 28, 9, 0)


def test_naive_datetimes_are_utc() -> None:
    naive = datetime(2026, 11, 28, 12, 0)  # a Saturday
    assert calendar().next_open(naive) == berlin(2026, 11, 30, 9, 0)


def test_opening_is_local_time_on_both_sides_of_dst() -> None:
    # Berlin moves from +01:00 to +02:00 on 2026-03-29 and back on 2026-10-25.
    before_spring = calendar().next_open(berlin(2026, 3, 27, 18, 0))
    assert before_spring == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    before_autumn = calendar().next_open(berlin(2026, 10, 23, 18, 0))
    assert before_autumn == datetime(2026, 10, 26, 8, 0, tzinfo=UTC)


def test_an_opening_in_the_dst_gap_still_opens_once() -> None:
    cal = calendar(days={6}, open=time(2, 30), close=time(5, 0))
    result = cal.next_open(datetime(2026, 3, 28, 12, 0, tzinfo=UTC))
    assert result.date() == date(2026, 3, 29) and cal.is_open(result)


def test_invalid_calendars_are_refused() -> None:
    with pytest.raises(ValueError):
        calendar(days=set())
    with pytest.raises(ValueError):
        calendar(open=time(17), close=time(9))


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)))
def test_next_open_is_open_and_never_earlier(naive: datetime) -> None:
    cal = calendar(holidays={date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 31)})
    moment = naive.replace(tzinfo=UTC)
    result = cal.next_open(moment)
    assert result >= moment
    assert cal.is_open(result)
    assert result - moment < timedelta(days=6)
    if result > moment:
        assert not cal.is_open(moment)
