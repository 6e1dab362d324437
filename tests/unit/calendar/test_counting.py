"""Durations counted inside a calendar ("two working hours"): pure, with properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.calendar import build_calendars
from daemon.calendar.calendar_spec import CalendarSpec
from daemon.calendar.counting import NEVER, counted_until

BERLIN = ZoneInfo("Europe/Berlin")
CALS = build_calendars(
    {
        "work": CalendarSpec.model_validate(
            {
                "timezone": "Europe/Berlin",
                "recurring": [{"cron": "0 9 * * mon-fri", "duration": "9h"}],
            }
        ),
        "past": CalendarSpec.model_validate(
            {
                "timezone": "UTC",
                "ranges": [{"start": "2020-01-01T00:00:00", "end": "2020-01-02T00:00:00"}],
            }
        ),
    },
    Path(),
)
WORK = CALS["work"]


def berlin(year: int, month: int, day: int, hour: int) -> datetime:
    return datetime(year, month, day, hour, tzinfo=BERLIN)


def test_two_working_hours_from_friday_evening_end_on_monday_morning() -> None:
    assert counted_until(WORK, berlin(2026, 1, 9, 17), timedelta(hours=2)) == berlin(
        2026, 1, 12, 10
    )
    # from a Saturday: counting starts at Monday's opening
    assert counted_until(WORK, berlin(2026, 1, 10, 12), timedelta(hours=2)) == berlin(
        2026, 1, 12, 11
    )
    # within one day: plain addition
    assert counted_until(WORK, berlin(2026, 1, 7, 10), timedelta(hours=2)) == berlin(2026, 1, 7, 12)
    # no calendar: wall time; a calendar that never opens again: never
    start = datetime(2026, 1, 7, tzinfo=UTC)
    assert counted_until(None, start, timedelta(hours=2)) == start + timedelta(hours=2)
    assert counted_until(CALS["past"], start, timedelta(hours=2)) == start + NEVER


@settings(max_examples=40, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    minutes=st.integers(0, 5 * 9 * 60 * 2),  # up to two working weeks
)
def test_exactly_the_duration_is_counted_inside_the_calendar(start: datetime, minutes: int) -> None:
    duration = timedelta(minutes=minutes)
    end = counted_until(WORK, start, duration)
    assert end >= start + duration  # counting only some of the time never ends sooner
    inside = sum((w.end - w.start for w in WORK.windows(start, end)), timedelta(0))
    assert inside == duration
    if minutes:
        assert WORK.active_at(end - timedelta(microseconds=1))  # it ends while counting
