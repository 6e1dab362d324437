"""Schedules: when they fire and which calendar blocks a fire (``daemon.calendar.firetimes``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.calendar import (
    Calendar,
    Fire,
    build_schedule_sources,
    fire_times,
    next_fire,
)
from daemon.kernel.errors import ConfigError
from daemon.policy.schedule_spec import ScheduleSpec
from tests.support.calendars import TZ, utc, wall


def test_fire_times_blocked_and_ics(cals: dict[str, Calendar], tmp_path: Path) -> None:
    spec = ScheduleSpec.model_validate(
        {
            "name": "nightly",
            "cron": "0 2 * * *",
            "timezone": TZ,
            "action": {"dataarts": {"task_id": "t1", "action": "start"}},
            "blocked_by": ["freeze", "hol"],
        }
    )
    fires = fire_times(spec, cals, wall(2026, 12, 19), wall(2026, 12, 23))
    assert [(f.time, f.blocked_by) for f in fires] == [
        (wall(2026, 12, 19, 2), None),
        (wall(2026, 12, 20, 2), None),
        (wall(2026, 12, 21, 2), "freeze"),
        (wall(2026, 12, 22, 2), "freeze"),
    ]
    assert spec.misfire_grace_seconds == 300
    assert spec.coalesce is True
    (tmp_path / "runs.ics").write_text(
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//t//t//EN\nBEGIN:VEVENT\nUID:r\nDTSTAMP:20260101T000000Z\n"
        "DTSTART;TZID=Europe/Berlin:20260105T060000\nDTEND;TZID=Europe/Berlin:20260105T070000\n"
        "RRULE:FREQ=WEEKLY;COUNT=3\nEXDATE;TZID=Europe/Berlin:20260112T060000\nEND:VEVENT\nEND:VCALENDAR\n"
    )
    ics = ScheduleSpec.model_validate(
        {"name": "weekly", "ics": "runs.ics", "action": {"execute": {"workflow_name": "report"}}}
    )
    sources = build_schedule_sources([ics], tmp_path)
    got = fire_times(ics, cals, utc(2026, 1, 1), utc(2026, 2, 1), sources)
    assert [f.time for f in got] == [wall(2026, 1, 5, 6), wall(2026, 1, 19, 6)]
    with pytest.raises(ConfigError, match=r"schedule 'weekly': ics.path: cannot read"):
        build_schedule_sources([ics], tmp_path / "elsewhere")


def test_next_fire_is_the_first_fire_time_after_blocked_or_not(cals: dict[str, Calendar]) -> None:
    spec = ScheduleSpec.model_validate(
        {
            "name": "nightly",
            "cron": "0 2 * * *",
            "timezone": TZ,
            "action": {"execute": {"workflow_name": "backup"}},
            "blocked_by": ["freeze"],
        }
    )
    after_one = next_fire(spec, cals, wall(2026, 12, 19, 2))
    assert after_one == Fire(time=wall(2026, 12, 20, 2), schedule="nightly")
    blocked = next_fire(spec, cals, wall(2026, 12, 20, 2))
    assert blocked == Fire(time=wall(2026, 12, 21, 2), schedule="nightly", blocked_by="freeze")


def test_shift_moves_fire_times_off_holidays_keeping_the_wall_time() -> None:
    from daemon.policy.schedule_spec import ScheduleSpec
    from tests.support.calendars import berlin_calendars, wall

    cals = berlin_calendars()

    def spec(to: str, **cal: str) -> ScheduleSpec:
        return ScheduleSpec.model_validate(
            {
                "name": "s",
                "cron": "0 6 * * *",
                "timezone": "Europe/Berlin",
                "action": {"execute": {"workflow_name": "w"}},
                "shift": {"to": to, **cal},
            }
        )

    start, end = wall(2026, 12, 23), wall(2026, 12, 29)
    nxt = [f.time for f in fire_times(spec("next_business_day", avoid="hol"), cals, start, end)]
    # 25 and 26 December are Bavarian holidays: both move to the 27th, which fires once.
    assert nxt == [wall(2026, 12, d, 6) for d in (23, 24, 27, 28)]
    prev = [
        f.time for f in fire_times(spec("previous_business_day", avoid="hol"), cals, start, end)
    ]
    assert prev == [wall(2026, 12, d, 6) for d in (23, 24, 27, 28)]
    # ``within``: business time is the night calendar (22:00-06:00): 06:00 is outside it
    # every day, so every fire time has no business day near and stays put.
    within = spec("next_business_day", within="night")
    assert [f.time for f in fire_times(within, cals, start, end)] == [
        wall(2026, 12, d, 6) for d in range(23, 29)
    ]
