"""A date-only range end is 00:00 of that day (README "Calendars"): ``end: 2026-12-27``
stops at the start of the 27th, in the calendar's time zone."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from daemon.calendar import build_calendars
from daemon.calendar.calendar_spec import CalendarSpec

BERLIN = ZoneInfo("Europe/Berlin")


def test_a_date_only_end_stops_at_midnight_that_day() -> None:
    spec = CalendarSpec.model_validate(
        {
            "timezone": "Europe/Berlin",
            "ranges": [{"start": date(2026, 12, 24), "end": "2026-12-27"}],
        }
    )
    cal = build_calendars({"xmas": spec}, Path())["xmas"]
    assert cal.active_at(datetime(2026, 12, 26, 23, 59, tzinfo=BERLIN))
    assert not cal.active_at(datetime(2026, 12, 27, 0, 0, tzinfo=BERLIN))
    assert cal.active_at(datetime(2026, 12, 24, 0, 0, tzinfo=BERLIN))
