"""The plan: trigger changes and scheduled runs ahead, in order (``daemon.calendar.plan``)."""

from __future__ import annotations

import json
from datetime import timedelta

from daemon.calendar import (
    Calendar,
    plan,
    render_plan_table,
)
from daemon.kernel.model import Workflow
from daemon.policy.schedule_spec import ScheduleSpec
from tests.support.calendars import TZ, cron_workflow, trigger_rule, utc, wall


def test_plan_lists_trigger_changes_and_runs_sorted(cals: dict[str, Calendar]) -> None:
    rules = [
        trigger_rule("db-nights", {"tags": {"kind": "db"}}, on_only_during="night"),
        trigger_rule("freeze", {"names": ["*"]}, off_during="no-change"),
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
        cron_workflow("w-app", "app", trigger="enable"),
        cron_workflow("w-db", "db", {"kind": "db"}, trigger="disable"),
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
    rules = [trigger_rule("n", {"names": ["*"]}, off_during="night")]
    workflows = [cron_workflow(f"w{i}") for i in range(5)]
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
        trigger_rule("b-rule", {"names": ["b*"]}, off_during="night"),
        trigger_rule("a-rule", {"names": ["a*"]}, off_during="night"),
    ]
    workflows = [cron_workflow("w-b", "b1"), cron_workflow("w-a", "a1"), cron_workflow("w-c", "b2")]
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
