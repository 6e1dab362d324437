"""Trigger rules, schedules and the plan."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from daemon.calendar import (
    Calendar,
    Fire,
    build_calendars,
    build_schedule_sources,
    desired_trigger,
    fire_times,
    first_matching_rule,
    next_fire,
    plan,
    render_plan_table,
    rule_matches,
)
from daemon.calendar.calendar_spec import CalendarSpec, TriggerRuleSpec
from daemon.kernel.errors import ConfigError
from daemon.kernel.model import Workflow
from daemon.policy.schedule_spec import ScheduleSpec

TZ = "Europe/Berlin"


def wall(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(TZ)).astimezone(UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def cals() -> dict[str, Calendar]:
    specs = {
        "freeze": {
            "timezone": TZ,
            "ranges": [{"start": "2026-12-21T00:00", "end": "2027-01-04T00:00"}],
        },
        "hol": {"timezone": TZ, "holidays": {"country": "DE", "subdivision": "BY"}},
        "no-change": {"any_of": ["freeze", "hol"]},
        "night": {"timezone": TZ, "recurring": [{"cron": "0 22 * * *", "duration": "8h"}]},
    }
    return build_calendars({k: CalendarSpec.model_validate(v) for k, v in specs.items()}, Path("."))


def rule(name: str, select: dict[str, Any], **kw: Any) -> TriggerRuleSpec:
    return TriggerRuleSpec.model_validate({"name": name, "select": select, **kw})


def wf(
    id: str, name: str = "", tags: dict[str, str] | None = None, trigger: str | None = "enable"
) -> Workflow:
    return Workflow(id=id, name=name or id, type="cron", tags=tags or {}, trigger_status=trigger)


def test_selector_all_criteria_must_match() -> None:
    r = rule(
        "r",
        {"ids": ["w1", "w2"], "names": ["patch-*"], "tags": {"team": "ops", "env": "prod*"}},
        off_during="x",
    )
    assert rule_matches(r, wf("w1", "patch-linux", {"team": "ops", "env": "prod-eu"}))
    assert not rule_matches(r, wf("w3", "patch-linux", {"team": "ops", "env": "prod"}))
    assert not rule_matches(r, wf("w1", "backup", {"team": "ops", "env": "prod"}))
    assert not rule_matches(r, wf("w1", "patch-linux", {"team": "ops"}))
    assert not rule_matches(r, wf("w1", "patch-linux", {"team": "dev", "env": "prod"}))


def test_first_matching_rule_wins() -> None:
    rules = [
        rule("db", {"tags": {"kind": "db"}}, on_only_during="night"),
        rule("all", {"names": ["*"]}, off_during="no-change"),
    ]
    assert first_matching_rule(rules, wf("a", tags={"kind": "db"})) is rules[0]
    assert first_matching_rule(rules, wf("b")) is rules[1]
    assert first_matching_rule(rules[:1], wf("b")) is None


def test_desired_trigger(cals: dict[str, Calendar]) -> None:
    off = rule("off", {"names": ["*"]}, off_during="no-change")
    on = rule("on", {"names": ["*"]}, on_only_during="night")
    christmas, normal = wall(2026, 12, 25, 12), wall(2026, 11, 10, 12)
    assert desired_trigger(off, cals, christmas) is False
    assert desired_trigger(off, cals, normal) is True
    assert desired_trigger(off, wf("a"), cals, normal) is True  # interfaces.md form
    assert desired_trigger(on, cals, wall(2026, 11, 10, 23)) is True
    assert desired_trigger(on, cals, normal) is False
    assert off.manage == "owned"
    assert off.drift == "correct"


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


def test_plan_lists_trigger_changes_and_runs_sorted(cals: dict[str, Calendar]) -> None:
    rules = [
        rule("db-nights", {"tags": {"kind": "db"}}, on_only_during="night"),
        rule("freeze", {"names": ["*"]}, off_during="no-change"),
    ]
    schedules = [
        ScheduleSpec.model_validate(
            {
                "name": "backup",
                "cron": "0 3 * * *",
                "timezone": TZ,
                "action": {"execute": {"workflow_name": "backup"}},
                "blocked_by": ["hol"],
            }
        )
    ]
    workflows = [
        wf("w-app", "app", trigger="enable"),
        wf("w-db", "db", {"kind": "db"}, trigger="disable"),
        Workflow(id="w-manual", name="manual", type="manual"),
    ]
    start, end = wall(2026, 12, 24), wall(2026, 12, 27)
    items = plan(cals, rules, schedules, workflows, start, end)
    assert items == sorted(items, key=lambda i: (i.at, i.kind != "trigger"))
    app = [(i.at, i.enable, i.initial) for i in items if i.workflow_id == "w-app"]
    # Freeze covers the whole period: disabled at start (observed enabled), no edges inside.
    assert app == [(start, False, True)]
    db = [(i.at, i.enable) for i in items if i.workflow_id == "w-db" and i.kind == "trigger"]
    # 00:00 is inside the 22:00-06:00 night window: desired enabled, observed disabled.
    assert db[0] == (start, True)
    assert (wall(2026, 12, 24, 6), False) in db
    assert (wall(2026, 12, 24, 22), True) in db
    runs = [(i.at, i.skipped, i.calendar) for i in items if i.kind == "run"]
    assert runs == [
        (wall(2026, 12, 24, 3), False, None),
        (wall(2026, 12, 25, 3), True, "hol"),
        (wall(2026, 12, 26, 3), True, "hol"),
    ]
    assert not any(i.workflow_id == "w-manual" for i in items)
    doc = json.loads(json.dumps([i.to_dict() for i in items]))
    assert doc[0]["at"].endswith("Z")
    assert doc[0]["kind"] == "trigger"
    table = render_plan_table(items)
    assert "TIME (UTC)" in table.splitlines()[0]
    assert "blocked by calendar 'hol'" in table
    assert "disable" in table
    assert render_plan_table([]).endswith("(nothing planned)")


def test_plan_is_deterministic_and_bounded(cals: dict[str, Calendar]) -> None:
    rules = [rule("n", {"names": ["*"]}, off_during="night")]
    workflows = [wf(f"w{i}") for i in range(5)]
    start = utc(2026, 3, 1)
    a = plan(cals, rules, [], workflows, start, start + timedelta(days=31))
    b = plan(cals, rules, [], workflows, start, start + timedelta(days=31))
    assert a == b
    assert all(start <= i.at < start + timedelta(days=31) for i in a)
    assert plan(cals, rules, [], workflows, start, start) == []


def test_plan_order_ties_and_gc_restored(cals: dict[str, Calendar]) -> None:
    """At one instant: trigger changes by workflow id (across rules), then runs by name;
    the cyclic GC paused during planning is back on afterwards."""
    import gc

    rules = [
        rule("b-rule", {"names": ["b*"]}, off_during="night"),
        rule("a-rule", {"names": ["a*"]}, off_during="night"),
    ]
    workflows = [wf("w-b", "b1"), wf("w-a", "a1"), wf("w-c", "b2")]
    start = wall(2026, 3, 2)
    items = plan(cals, rules, [], workflows, start, start + timedelta(days=2))
    keys = [(i.at, i.workflow_id) for i in items]
    assert keys == sorted(keys)
    assert len({i.at for i in items}) < len(items)  # there are ties to order
    assert gc.isenabled()
    gc.disable()
    try:
        plan(cals, rules, [], workflows, start, start + timedelta(days=1))
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()
