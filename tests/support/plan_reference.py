"""The straightforward plan, one workflow at a time: the oracle of the grouped, streamed
planner (``tests/unit/calendar/test_plan_grouped.py``).

This is how ``daemon.calendar.plan.plan`` computed the plan before it grouped workflows by
(selecting rules, overrides) and streamed its rows: every managed workflow gets its own
timeline and its own rows, everything is put in one list and sorted, then the workflow
overrides edit that list. Slow and memory-hungry on purpose: simple enough to trust.
The timeline sweep itself (``_timeline``) and the run expansion are shared with the
planner; they have their own tests (``test_plan.py``, ``test_properties.py``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter

from daemon.calendar.calendar import Calendar
from daemon.calendar.calendar_spec import TriggerRuleSpec
from daemon.calendar.desired import selecting_rules, stricter_manage
from daemon.calendar.firetimes import ScheduleSources
from daemon.calendar.overrides import apply_calendar_overrides
from daemon.calendar.plan import (
    PlanItem,
    PlannedSchedule,
    _forced,
    _rule_spans,
    _run_items,
    _timeline,
)
from daemon.kernel.model import Workflow
from daemon.kernel.overrides import Override

_BY_TIME = itemgetter(0)
_BY_TIME_WORKFLOW = itemgetter(0, 4)


def reference_plan(
    calendars: Mapping[str, Calendar],
    triggers: Sequence[TriggerRuleSpec],
    schedules: Sequence[PlannedSchedule],
    workflows: Sequence[Workflow],
    start: datetime,
    end: datetime,
    *,
    schedule_sources: ScheduleSources | None = None,
    workflows_known: bool = True,
    overrides: Sequence[Override] = (),
) -> list[PlanItem]:
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        return []
    if overrides:
        calendars = apply_calendar_overrides(calendars, overrides)
    forced = _rule_spans(overrides)
    changes: list[PlanItem] = []
    for wf in workflows:
        if wf.type not in ("cron", ""):
            continue
        rules = selecting_rules(triggers, wf)
        if not rules:
            continue
        wins = [
            _forced(r, calendars[r.calendar].windows(start, end), forced.get(r.name)) for r in rules
        ]
        timeline = _timeline(rules, wins, start, end)
        first, edges = timeline[0], timeline[1:]
        if wf.trigger_enabled is None or wf.trigger_enabled != first.enable:
            changes.append(
                PlanItem(
                    start,
                    "trigger",
                    first.rule.name,
                    first.rule.calendar,
                    wf.id,
                    wf.name,
                    first.enable,
                    True,
                    reason=first.reason,
                )
            )
        for e in edges:
            changes.append(
                PlanItem(
                    e.at, "trigger", e.rule.name, e.rule.calendar, wf.id, wf.name, e.enable,
                    reason=e.reason,
                )
            )  # fmt: skip
    # Each workflow's own rows are in time order, so this puts them in (time, id) order
    # and keeps workflows that share an id in the order they were given.
    changes.sort(key=_BY_TIME_WORKFLOW)
    runs = _run_items(
        calendars, schedules, workflows, start, end, schedule_sources, workflows_known
    )
    items = changes + runs
    items.sort(key=_BY_TIME)
    if overrides:
        items = _with_overrides(items, overrides, workflows, start, end)
    return items


def _with_overrides(
    items: list[PlanItem],
    overrides: Sequence[Override],
    workflows: Sequence[Workflow],
    start: datetime,
    end: datetime,
) -> list[PlanItem]:
    """Workflow overrides replace that trigger's changes inside their span (``hold``:
    none), and every override in the period gets a row where it starts and ends."""
    names = {wf.id: wf.name for wf in workflows}
    out = list(items)
    for o in overrides:
        begin = max(o.start or start, start)
        if o.end <= start or begin >= end:
            continue
        if o.target_kind == "workflow" and o.target in names:
            inside = [
                i
                for i in out
                if i.kind == "trigger" and i.workflow_id == o.target and begin <= i.at < o.end
            ]
            mine = [i for i in out if i.kind == "trigger" and i.workflow_id == o.target]
            after_state = next((i.enable for i in reversed(mine) if i.at <= o.end), None)
            drop = {id(i) for i in inside}
            out = [i for i in out if id(i) not in drop]
            if o.state != "hold":
                out.append(
                    PlanItem(
                        begin,
                        "trigger",
                        f"override:{o.id}",
                        None,
                        o.target,
                        names[o.target],
                        o.state == "on",
                        reason=o.describe(),
                    )
                )
            if o.end < end and after_state is not None:
                out.append(
                    PlanItem(
                        o.end,
                        "trigger",
                        f"override:{o.id}",
                        None,
                        o.target,
                        names[o.target],
                        after_state,
                        reason=f"override {o.id} ends; calendars decide again",
                    )
                )
        out.append(PlanItem(begin, "override", f"override:{o.id}", reason=o.describe()))
        if o.end < end:
            out.append(
                PlanItem(o.end, "override", f"override:{o.id}", reason=f"override {o.id} ends")
            )
    out.sort(key=_BY_TIME)
    return out


def reference_mark_live(
    items: list[PlanItem],
    workflows: Sequence[Workflow],
    rules: Sequence[TriggerRuleSpec],
    owned: set[str],
    held: Collection[str] = (),
) -> list[PlanItem]:
    """``aomd plan --live``'s marking as it was, over the whole list: the oracle of
    ``daemon.cli.cmd_plan.iter_mark_live``, which streams."""

    state = {wf.id: wf.trigger_enabled for wf in workflows}
    manage = {wf.id: stricter_manage(selecting_rules(rules, wf)) for wf in workflows}
    left_alone = {
        item.workflow_id
        for item in items
        if item.kind == "trigger"
        and item.initial
        and state.get(item.workflow_id or "") is False
        and manage.get(item.workflow_id or "") == "owned"
        and item.workflow_id not in owned
    }
    out = []
    for item in items:
        if item.kind == "trigger" and item.workflow_id in held:
            if item.initial:
                out.append(
                    item._replace(
                        enable=False,
                        reason="held after a failure streak (pause_after_failures); off "
                        "until a person re-enables it",
                    )
                )
            continue
        if item.kind == "trigger" and item.workflow_id in left_alone:
            if item.initial:
                out.append(
                    item._replace(
                        enable=False,
                        reason="disabled by someone else; aomd leaves it off (manage: owned)",
                    )
                )
            continue
        if item.kind == "trigger" and item.initial and item.workflow_id in state:
            current = state[item.workflow_id]
            if current == item.enable:
                continue
            now = "enabled" if current else "disabled"
            verb = "enables" if item.enable else "disables"
            item = item._replace(reason=f"now {now}; aomd {verb} it at once")
        out.append(item)
    return out
