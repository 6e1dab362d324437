"""DST behaviour of recurring windows, ranges and cron schedules.

Rule under test (daemon/calendar/window.py): a start inside a spring-forward gap opens at
the end of the gap; a start inside a fall-back repeat uses its first occurrence; durations
are elapsed time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from daemon.calendar import Calendar, Window, build_calendars, fire_times, localize
from daemon.calendar.calendar_spec import CalendarSpec
from daemon.policy.schedule_spec import ScheduleSpec


def one(spec: dict[str, Any]) -> Calendar:
    return build_calendars({"c": CalendarSpec.model_validate(spec)}, Path("."))["c"]


def wall(tz: str, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz), fold=fold).astimezone(UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# (zone, spring-forward day, fall-back day, a wall time in the gap, a wall time in the repeat)
ZONES = [
    ("Europe/Berlin", (2026, 3, 29), (2026, 10, 25), (2, 30), (2, 30)),
    ("America/New_York", (2026, 3, 8), (2026, 11, 1), (2, 30), (1, 30)),
    ("Asia/Shanghai", (1986, 5, 4), (1986, 9, 14), (2, 30), (1, 30)),  # China had DST 1986-91
]


@pytest.mark.parametrize(("tz", "spring", "_fall", "gap", "_rep"), ZONES)
def test_window_starting_in_gap_opens_at_end_of_gap(
    tz: str, spring: tuple[int, int, int], _fall: object, gap: tuple[int, int], _rep: object
) -> None:
    cal = one(
        {"timezone": tz, "recurring": [{"cron": f"{gap[1]} {gap[0]} * * *", "duration": "1h"}]}
    )
    day = datetime(*spring)
    got = cal.windows(
        wall(tz, *spring) - timedelta(hours=12), wall(tz, *spring) + timedelta(days=1)
    )
    transition = wall(tz, *spring, 3, 0)  # 03:00 new local time == the jump instant
    assert transition.astimezone(ZoneInfo(tz)).hour == 3
    assert Window(transition, transition + timedelta(hours=1)) in got
    # Same wall time the day before and after is an ordinary window.
    before = wall(tz, *(day - timedelta(days=1)).timetuple()[:3], *gap)
    after = wall(tz, *(day + timedelta(days=1)).timetuple()[:3], *gap)
    assert cal.active_at(after)
    assert not cal.active_at(after - timedelta(seconds=1))
    assert cal.windows(before - timedelta(hours=1), before + timedelta(hours=2)) == [
        Window(before, before + timedelta(hours=1))
    ]


@pytest.mark.parametrize(("tz", "_spring", "fall", "_gap", "rep"), ZONES)
def test_window_in_fall_back_repeat_uses_first_occurrence_and_elapsed_duration(
    tz: str, _spring: object, fall: tuple[int, int, int], _gap: object, rep: tuple[int, int]
) -> None:
    cal = one(
        {"timezone": tz, "recurring": [{"cron": f"{rep[1]} {rep[0]} * * *", "duration": "1h"}]}
    )
    first = wall(tz, *fall, *rep, fold=0)
    second = wall(tz, *fall, *rep, fold=1)
    assert second - first == timedelta(hours=1)
    got = cal.windows(first - timedelta(hours=3), first + timedelta(hours=5))
    # One window, 1 h of elapsed time, ending exactly at the second reading of the wall time.
    assert got == [Window(first, second)]
    assert cal.next_transition(first) == second
    assert not cal.active_at(second)


@pytest.mark.parametrize(("tz", "spring", "fall", "_gap", "_rep"), ZONES)
def test_daily_0230_window_across_both_transitions(
    tz: str, spring: tuple[int, int, int], fall: tuple[int, int, int], _gap: object, _rep: object
) -> None:
    cal = one({"timezone": tz, "recurring": [{"cron": "30 2 * * *", "duration": "2h"}]})
    start = wall(tz, *spring) - timedelta(days=3)
    end = wall(tz, *fall) + timedelta(days=3)
    got = cal.windows(start, end)
    assert all(w.duration == timedelta(hours=2) for w in got)
    assert got == sorted(got)
    zone = ZoneInfo(tz)
    opened = [w.start.astimezone(zone) for w in got]
    days = [(o.year, o.month, o.day) for o in opened]
    assert len(days) == len(set(days)), "exactly one window per local day"
    for o in opened:
        if (o.year, o.month, o.day) == spring:
            assert (o.hour, o.minute) == (3, 0)
        else:
            assert (o.hour, o.minute) == (2, 30)


def test_naive_range_in_gap_and_aware_range() -> None:
    tz = "Europe/Berlin"
    cal = one(
        {
            "timezone": tz,
            "ranges": [
                {"start": "2026-03-29T02:15:00", "end": "2026-03-29T04:00:00"},
                {"start": "2026-06-01T00:00:00Z", "end": "2026-06-01T01:00:00Z"},
            ],
        }
    )
    got = cal.windows(utc(2026, 1, 1), utc(2027, 1, 1))
    assert got == [
        Window(wall(tz, 2026, 3, 29, 3, 0), wall(tz, 2026, 3, 29, 4, 0)),
        Window(utc(2026, 6, 1), utc(2026, 6, 1, 1)),
    ]


def test_localize_rules() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert localize(datetime(2026, 3, 29, 2, 30), berlin) == utc(2026, 3, 29, 1)
    assert localize(datetime(2026, 3, 29, 2, 0), berlin) == utc(2026, 3, 29, 1)
    assert localize(datetime(2026, 10, 25, 2, 30), berlin) == utc(2026, 10, 25, 0, 30)
    assert localize(datetime(2026, 7, 1, 12), ZoneInfo("Asia/Shanghai")) == utc(2026, 7, 1, 4)


def test_cron_schedule_fires_once_in_gap_and_once_in_repeat() -> None:
    tz = "America/New_York"
    spec = ScheduleSpec.model_validate(
        {
            "name": "s",
            "cron": "30 1,2 * * *",
            "timezone": tz,
            "action": {"execute": {"workflow_id": "w"}},
        }
    )
    spring = fire_times(spec, {}, wall(tz, 2026, 3, 8), wall(tz, 2026, 3, 9))
    assert [f.time for f in spring] == [wall(tz, 2026, 3, 8, 1, 30), wall(tz, 2026, 3, 8, 3, 0)]
    fall = fire_times(spec, {}, wall(tz, 2026, 11, 1), wall(tz, 2026, 11, 2))
    # 01:30 occurs twice on the fall-back night; it fires at the first one only.
    assert [f.time for f in fall] == [
        wall(tz, 2026, 11, 1, 1, 30, fold=0),
        wall(tz, 2026, 11, 1, 2, 30),
    ]


def test_shanghai_has_no_dst_today() -> None:
    cal = one({"timezone": "Asia/Shanghai", "recurring": [{"cron": "0 9 * * *", "duration": "9h"}]})
    got = cal.windows(utc(2026, 1, 1), utc(2027, 1, 1))
    assert len(got) == 365
    assert all(w.start.hour == 1 and w.end.hour == 10 for w in got)
