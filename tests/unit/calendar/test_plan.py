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
    # db-nights would enable it at night, but the freeze selects it too and covers the
    # whole period: deny beats allow, so it stays off (observed off: nothing listed).
    assert db == []
    allowed = plan(cals, rules, schedules, workflows, wall(2027, 1, 5), wall(2027, 1, 7))
    db = [(i.at, i.enable) for i in allowed if i.workflow_id == "w-db"]
    # After the freeze only the night calendar decides.
    assert (wall(2027, 1, 5, 6), False) in db
    assert (wall(2027, 1, 5, 22), True) in db
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


def test_deny_beats_allow_whatever_the_rule_order(cals: dict[str, Calendar]) -> None:
    """An allow rule placed before a freeze no longer escapes it; the plan names both."""
    allow = trigger_rule("cn-batch", {"tags": {"region": "cn"}}, on_only_during="night")
    freeze = trigger_rule("freeze", {"names": ["*"]}, off_during="no-change")
    wf = cron_workflow("w-cn", "etl", {"region": "cn"}, trigger="enable")
    start, end = wall(2026, 12, 19), wall(2026, 12, 23)
    for rules in ([allow, freeze], [freeze, allow]):
        items = [i for i in plan(cals, rules, [], [wf], start, end) if i.kind == "trigger"]
        on = [i.at for i in items if i.enable]
        frozen = cals["no-change"].windows(start, end)
        assert frozen, "the fixture freeze must fall inside the period"
        for t in on:
            assert not any(w.start <= t < w.end for w in frozen), t
        assert on, "the night rule alone enables it before the freeze"
        [held] = [i for i in items if not i.enable and i.at == wall(2026, 12, 21)]
        assert held.rule == "freeze"
        assert held.reason == "calendar window opens (rule freeze); deny beats allow of cn-batch"


def test_offline_plan_says_a_named_workflow_is_resolved_at_run_time(
    cals: dict[str, Calendar],
) -> None:
    sched = ScheduleSpec.model_validate(
        {"name": "b", "cron": "0 3 * * *", "action": {"execute": {"workflow_name": "backup"}}}
    )
    start = utc(2026, 3, 2)
    [offline] = plan(cals, [], [sched], [], start, start + timedelta(days=1), workflows_known=False)
    assert offline.reason == "workflow 'backup' is resolved by name at run time"
    [live] = plan(cals, [], [sched], [], start, start + timedelta(days=1))
    assert live.reason == "no workflow named 'backup' at plan time"


def test_plan_lists_catch_up_runs_at_the_end_of_the_blocking_calendar(
    cals: dict[str, Calendar],
) -> None:
    def sched(mode: str, window: str = "30d") -> ScheduleSpec:
        return ScheduleSpec.model_validate(
            {
                "name": f"b-{mode}",
                "cron": "0 3 * * *",
                "timezone": TZ,
                "action": {"execute": {"workflow_name": "backup"}},
                "blocked_by": ["freeze"],
                "catch_up": mode,
                "catch_up_window": window,
            }
        )

    start, end = wall(2027, 1, 1), wall(2027, 1, 6)
    once = plan(cals, [], [sched("once")], [], start, end)
    caught = [i for i in once if i.catch_up]
    # The freeze ends 2027-01-04 00:00 Berlin: the blocked 03:00 of the 3rd runs then.
    assert [(i.at, i.reason) for i in caught] == [
        (wall(2027, 1, 4), "catch-up of 2027-01-03 02:00 UTC (blocked by calendar 'freeze')")
    ]
    assert "catch-up" in render_plan_table(once)
    every = [i for i in plan(cals, [], [sched("all")], [], start, end) if i.catch_up]
    assert len(every) == 3  # the 1st, 2nd and 3rd (the period starts on the 1st)
    short = [i for i in plan(cals, [], [sched("all", "1d")], [], start, end) if i.catch_up]
    assert len(short) == 1  # only the 3rd is within a day of the freeze end
    assert plan(cals, [], [sched("once")], [], start, wall(2027, 1, 3)) == [
        i for i in once if i.at < wall(2027, 1, 3)
    ]  # a freeze that outlasts the period: no catch-up yet
