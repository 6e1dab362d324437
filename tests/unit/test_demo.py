"""The demo's emulated start: always a quiet Tuesday evening, whatever today is."""

from __future__ import annotations

from datetime import date, timedelta

import holidays

from daemon.cli.cmd_demo import demo_start


def test_demo_starts_on_a_tuesday_outside_the_example_freezes_all_year() -> None:
    bavaria = holidays.country_holidays("DE", subdiv="BY", years=range(2026, 2030))
    day = date(2026, 1, 1)
    while day < date(2029, 1, 1):
        start = demo_start(day)
        d = start.date()
        assert start.weekday() == 1
        assert (start.hour, start.minute) == (21, 50)
        assert d > day
        assert d - day <= timedelta(days=60)
        assert d not in bavaria
        assert d + timedelta(days=1) not in bavaria
        assert date(d.year, 1, 10) < d < date(d.year, 12, 10)
        day += timedelta(days=1)
