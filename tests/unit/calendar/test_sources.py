"""ICS, holidays, combinations, build errors and spec validation messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from daemon.calendar import Calendar, Window, build_calendars
from daemon.calendar.calendar_spec import CalendarSpec, TriggerRuleSpec
from daemon.kernel.errors import ConfigError
from daemon.policy.schedule_spec import ScheduleSpec


def build(specs: dict[str, dict[str, Any]], base_dir: Path = Path(".")) -> dict[str, Calendar]:
    return build_calendars({k: CalendarSpec.model_validate(v) for k, v in specs.items()}, base_dir)


def wall(tz: str, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz), fold=fold).astimezone(UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# Weekly Monday 22:00-02:00 maintenance in a VTIMEZONE whose TZID is not an IANA name;
# 9 March excluded, 16 March moved to Tuesday 23:00-01:00, an extra RDATE on 1 April,
# an all-day event and a floating one (both read in the calendar's own zone).
ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//aomd//test//EN
BEGIN:VTIMEZONE
TZID:Custom Berlin
BEGIN:STANDARD
DTSTART:19701025T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700329T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
UID:maint@aomd
DTSTAMP:20260101T000000Z
DTSTART;TZID=Custom Berlin:20260302T220000
DTEND;TZID=Custom Berlin:20260303T020000
RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=6
EXDATE;TZID=Custom Berlin:20260309T220000
RDATE;TZID=Custom Berlin:20260401T220000
SUMMARY:Maintenance
END:VEVENT
BEGIN:VEVENT
UID:maint@aomd
DTSTAMP:20260101T000000Z
RECURRENCE-ID;TZID=Custom Berlin:20260316T220000
DTSTART;TZID=Custom Berlin:20260317T230000
DTEND;TZID=Custom Berlin:20260318T010000
SUMMARY:Maintenance (moved)
END:VEVENT
BEGIN:VEVENT
UID:allday@aomd
DTSTAMP:20260101T000000Z
DTSTART;VALUE=DATE:20260501
DTEND;VALUE=DATE:20260503
SUMMARY:Freeze
END:VEVENT
BEGIN:VEVENT
UID:floating@aomd
DTSTAMP:20260101T000000Z
DTSTART:20260601T100000
DURATION:PT1H
SUMMARY:Floating
END:VEVENT
END:VCALENDAR
"""

TZ = "Europe/Berlin"


def test_ics_rrule_exdate_rdate_recurrence_id_vtimezone(tmp_path: Path) -> None:
    (tmp_path / "maint.ics").write_text(ICS)
    cal = build({"m": {"timezone": TZ, "ics": "maint.ics"}}, tmp_path)["m"]
    got = cal.windows(utc(2026, 3, 1), utc(2026, 7, 1))
    expected = [
        Window(wall(TZ, 2026, 3, 2, 22), wall(TZ, 2026, 3, 3, 2)),
        # 9 March: EXDATE
        Window(wall(TZ, 2026, 3, 17, 23), wall(TZ, 2026, 3, 18, 1)),  # RECURRENCE-ID override
        Window(wall(TZ, 2026, 3, 23, 22), wall(TZ, 2026, 3, 24, 2)),
        Window(wall(TZ, 2026, 3, 30, 22), wall(TZ, 2026, 3, 31, 2)),  # after DST: +02:00
        Window(wall(TZ, 2026, 4, 1, 22), wall(TZ, 2026, 4, 2, 2)),  # RDATE
        Window(wall(TZ, 2026, 4, 6, 22), wall(TZ, 2026, 4, 7, 2)),  # COUNT=6 ends here
        Window(wall(TZ, 2026, 5, 1), wall(TZ, 2026, 5, 3)),  # all-day, local midnight
        Window(wall(TZ, 2026, 6, 1, 10), wall(TZ, 2026, 6, 1, 11)),  # floating
    ]
    assert got == expected
    assert got[3].start == utc(2026, 3, 30, 20)
    # A window that began before the query range is clipped, not lost.
    assert cal.windows(utc(2026, 3, 3), utc(2026, 3, 4)) == [
        Window(utc(2026, 3, 3), utc(2026, 3, 3, 1))
    ]


def test_ics_inline_text_with_summary_filter() -> None:
    cal = build({"f": {"timezone": TZ, "ics": {"text": ICS, "summary": "Freeze*"}}})["f"]
    assert cal.windows(utc(2026, 1, 1), utc(2027, 1, 1)) == [
        Window(wall(TZ, 2026, 5, 1), wall(TZ, 2026, 5, 3))
    ]


def test_bad_ics_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"calendar 'x': ics.text: not a valid iCalendar"):
        build({"x": {"ics": {"text": "BEGIN:VCALENDAR\nthis is not ical"}}})
    with pytest.raises(ConfigError, match=r"calendar 'x': ics.path: cannot read"):
        build({"x": {"ics": {"path": "missing.ics"}}}, tmp_path)


@pytest.mark.parametrize(
    ("country", "sub", "tz", "holiday", "not_holiday"),
    [
        ("DE", "BY", "Europe/Berlin", (2026, 6, 4), (2026, 6, 5)),  # Corpus Christi (Bavaria)
        ("CN", None, "Asia/Shanghai", (2026, 5, 1), (2026, 5, 20)),  # Labour Day (1-5 May)
        ("US", "NY", "America/New_York", (2026, 2, 12), (2026, 2, 13)),  # Lincoln's Birthday (NY)
    ],
)
def test_holiday_is_the_whole_local_day(
    country: str,
    sub: str | None,
    tz: str,
    holiday: tuple[int, int, int],
    not_holiday: tuple[int, int, int],
) -> None:
    spec: dict[str, Any] = {"timezone": tz, "holidays": {"country": country}}
    if sub:
        spec["holidays"]["subdivision"] = sub
    cal = build({"h": spec})["h"]
    day = wall(tz, *holiday)
    got = cal.windows(day - timedelta(hours=1), day + timedelta(days=1, hours=1))
    # Consecutive holidays (Spring Festival) merge into one window.
    assert any(w.start <= day and w.end >= day + timedelta(days=1) for w in got)
    assert cal.active_at(day)
    assert cal.active_at(day + timedelta(hours=23, minutes=59))
    assert not cal.active_at(day - timedelta(microseconds=1))
    assert not cal.active_at(wall(tz, *not_holiday, 12))


def test_subdivision_matters() -> None:
    cals = build(
        {
            "by": {"timezone": TZ, "holidays": {"country": "DE", "subdivision": "BY"}},
            "be": {"timezone": TZ, "holidays": {"country": "DE", "subdivision": "BE"}},
        }
    )
    corpus_christi = wall(TZ, 2026, 6, 4, 12)
    assert cals["by"].active_at(corpus_christi)
    assert cals["by"].windows(utc(2026, 6, 1), utc(2026, 6, 8)) == [
        Window(wall(TZ, 2026, 6, 4), wall(TZ, 2026, 6, 5))
    ]
    assert not cals["be"].active_at(corpus_christi)


def test_union_intersection_except() -> None:
    cals = build(
        {
            "biz": {"timezone": TZ, "recurring": [{"cron": "0 9 * * mon-fri", "duration": "8h"}]},
            "hol": {"timezone": TZ, "holidays": {"country": "DE", "subdivision": "BY"}},
            "lunch": {"timezone": TZ, "recurring": [{"cron": "0 12 * * *", "duration": "1h"}]},
            "weekend": {"timezone": TZ, "recurring": [{"cron": "0 0 * * sat", "duration": "2d"}]},
            "work": {"any_of": ["biz"], "except": ["hol", "lunch"]},
            "busy": {"all_of": ["biz", "lunch"]},
            "off": {"any_of": ["weekend", "hol"]},
        }
    )
    # Week of Corpus Christi (Thursday 4 June 2026).
    s, e = wall(TZ, 2026, 6, 1), wall(TZ, 2026, 6, 8)
    work = cals["work"].windows(s, e)
    assert len(work) == 8  # Mon-Wed + Fri, two windows each (lunch cut out), Thursday a holiday
    assert Window(wall(TZ, 2026, 6, 1, 9), wall(TZ, 2026, 6, 1, 12)) in work
    assert Window(wall(TZ, 2026, 6, 1, 13), wall(TZ, 2026, 6, 1, 17)) in work
    assert not any(w.start.astimezone(ZoneInfo(TZ)).day == 4 for w in work)
    busy = cals["busy"].windows(s, e)
    assert busy == [
        Window(wall(TZ, 2026, 6, d, 12), wall(TZ, 2026, 6, d, 13)) for d in (1, 2, 3, 4, 5)
    ]
    off = cals["off"].windows(s, e)
    assert off == [
        Window(wall(TZ, 2026, 6, 4), wall(TZ, 2026, 6, 5)),
        Window(wall(TZ, 2026, 6, 6), wall(TZ, 2026, 6, 8)),
    ]
    assert cals["work"].next_transition(wall(TZ, 2026, 6, 3, 17)) == wall(TZ, 2026, 6, 5, 9)


def test_reference_errors_name_calendar_and_field() -> None:
    with pytest.raises(ConfigError, match=r"calendar 'a': any_of\[0\]: unknown calendar 'nope'"):
        build({"a": {"any_of": ["nope"]}})
    with pytest.raises(ConfigError, match=r"reference cycle a -> b -> c -> a"):
        build(
            {"a": {"any_of": ["b"]}, "b": {"all_of": ["c"]}, "c": {"ranges": [], "any_of": ["a"]}}
        )
    with pytest.raises(ConfigError, match=r"calendar 'a': except\[0\]: reference cycle a -> a"):
        build({"a": {"holidays": {"country": "DE"}, "except": ["a"]}})
    with pytest.raises(ConfigError, match=r"calendar 'r': ranges\[0\]: end .* is not after start"):
        build({"r": {"ranges": [{"start": "2026-01-02T00:00", "end": "2026-01-01T00:00"}]}})


@pytest.mark.parametrize(
    ("model", "data", "message"),
    [
        (CalendarSpec, {"timezone": "Europe/Berln", "any_of": ["x"]}, "did you mean Europe/Berlin"),
        (CalendarSpec, {"recurring": [{"cron": "0 9 * *", "duration": "1h"}]}, "5-field cron"),
        (
            CalendarSpec,
            {"recurring": [{"cron": "0 9 * * *", "duration": "soon"}]},
            "expected e.g. '8h'",
        ),
        (
            CalendarSpec,
            {"recurring": [{"cron": "0 9 * * *", "duration": "0s"}]},
            "must be positive",
        ),
        (CalendarSpec, {"holidays": {"country": "XX"}}, "ISO 3166-1 alpha-2"),
        (CalendarSpec, {"holidays": {"country": "DE", "subdivision": "ZZ"}}, "expected one of: BB"),
        (CalendarSpec, {"timezone": "UTC"}, "needs at least one source"),
        (CalendarSpec, {"any_of": ["a"], "colour": "red"}, "Extra inputs"),
        (CalendarSpec, {"ics": {"path": "a.ics", "text": "x"}}, "exactly one of 'path'"),
        (TriggerRuleSpec, {"name": "r", "select": {"names": ["*"]}}, "exactly one of 'off_during'"),
        (TriggerRuleSpec, {"name": "r", "select": {}, "off_during": "c"}, "at least one of ids"),
        (
            ScheduleSpec,
            {"name": "s", "action": {"execute": {"workflow_id": "w"}}},
            "exactly one of 'cron'",
        ),
        (ScheduleSpec, {"name": "s", "cron": "@daily", "action": {}}, "exactly one of 'execute'"),
        (
            ScheduleSpec,
            {
                "name": "s",
                "cron": "@daily",
                "action": {"dataarts": {"task_id": "t", "action": "go"}},
            },
            "'start', 'schedule' or 'stop'",
        ),
    ],
)
def test_spec_messages_say_what_is_expected(model: Any, data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        model.model_validate(data)


def test_spec_accepts_documented_shapes() -> None:
    spec = CalendarSpec.model_validate(
        {"recurring": [{"cron": "0 9 * * mon-fri", "duration": "1h30m"}], "except": ["x"]}
    )
    assert spec.recurring[0].duration == timedelta(minutes=90)
    assert spec.except_ == ("x",)
    assert CalendarSpec.model_validate({"ics": "a.ics"}).ics is not None
    assert CalendarSpec.model_validate({"recurring": [{"cron": "@daily", "duration": "PT2H"}]})
    assert CalendarSpec.model_validate({"recurring": [{"cron": "@daily", "duration": 60}]})
    schema = CalendarSpec.model_json_schema()
    assert "except" in schema["properties"]
    assert schema["properties"]["timezone"]["description"]
