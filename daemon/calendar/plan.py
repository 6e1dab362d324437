"""``aomd plan``: every trigger change and scheduled run in a period, computed purely.

The lead passes the pieces of a policy snapshot (built calendars, trigger rules in order,
schedules) and the workflows last listed from the cloud. Each calendar is expanded once for
the whole period and shared by every rule and schedule that uses it, so a year for
thousands of workflows stays well under a second.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, Literal, NamedTuple, Protocol

from daemon.calendar.calendar import Calendar
from daemon.calendar.calendar_spec import TriggerRuleSpec
from daemon.calendar.desired import first_matching_rule
from daemon.calendar.firetimes import ScheduleSources, ScheduleTiming, raw_fires
from daemon.calendar.window import Window, require_aware
from daemon.kernel.model import Workflow

__all__ = ["PlanItem", "PlannedSchedule", "plan", "render_plan_table"]


class _WorkflowTarget(Protocol):
    @property
    def workflow_id(self) -> str | None: ...
    @property
    def workflow_name(self) -> str | None: ...


class _PlannedAction(Protocol):
    @property
    def execute(self) -> _WorkflowTarget | None: ...
    def describe(self) -> str: ...


class PlannedSchedule(ScheduleTiming, Protocol):
    """What the plan reads of a schedule: its timing, and its action to name the run (the
    policy's ``ScheduleSpec``; its model lives above this package)."""

    @property
    def action(self) -> _PlannedAction: ...


class PlanItem(NamedTuple):
    """One planned event: a trigger change or a scheduled run.

    A NamedTuple rather than a frozen dataclass on purpose: a year's plan holds hundreds of
    thousands of these, and a tuple is about three times cheaper to create (bench/plan.py).
    It is just as immutable.
    """

    at: datetime
    """Aware UTC."""
    kind: Literal["trigger", "run"]
    rule: str | None = None
    calendar: str | None = None
    """For ``trigger``: the rule's calendar. For ``run``: the calendar that blocked it."""
    workflow_id: str | None = None
    workflow_name: str | None = None
    enable: bool | None = None
    """For ``trigger``: the desired state from ``at`` on."""
    initial: bool = False
    """For ``trigger``: the state at the start of the period, not a calendar edge. Listed
    when the observed state differs from it or is unknown."""
    schedule: str | None = None
    action: str | None = None
    skipped: bool = False
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, for ``aomd plan --json``."""
        return {
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "kind": self.kind,
            "rule": self.rule,
            "calendar": self.calendar,
            "workflow_id": self.workflow_id,
            "workflow_name": self.workflow_name,
            "enable": self.enable,
            "initial": self.initial,
            "schedule": self.schedule,
            "action": self.action,
            "skipped": self.skipped,
            "reason": self.reason,
        }


def plan(
    calendars: Mapping[str, Calendar],
    triggers: Sequence[TriggerRuleSpec],
    schedules: Sequence[PlannedSchedule],
    workflows: Sequence[Workflow],
    start: datetime,
    end: datetime,
    *,
    schedule_sources: ScheduleSources | None = None,
) -> list[PlanItem]:
    """Trigger changes and scheduled runs in ``[start, end)``, sorted by time.

    Each workflow is managed by the first trigger rule that selects it; only workflows whose
    type is ``cron`` or unknown (empty) are considered, since others have no cron trigger.
    """
    require_aware(start, end)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        return []
    with _gc_paused():
        return _plan(calendars, triggers, schedules, workflows, start, end, schedule_sources)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """A year's plan allocates ~250k acyclic tuples; the cyclic collector would rescan the
    growing heap over and over for nothing (40% of the time in bench/plan.py). Nothing here
    creates reference cycles, so pausing it loses nothing; it is restored on exit."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _plan(
    calendars: Mapping[str, Calendar],
    triggers: Sequence[TriggerRuleSpec],
    schedules: Sequence[PlannedSchedule],
    workflows: Sequence[Workflow],
    start: datetime,
    end: datetime,
    schedule_sources: ScheduleSources | None,
) -> list[PlanItem]:
    expanded: dict[str, list[Window]] = {}

    def windows_of(name: str) -> list[Window]:
        found = expanded.get(name)
        if found is None:
            found = expanded[name] = calendars[name].windows(start, end)
        return found

    managed: dict[str, list[Workflow]] = {}
    by_name = {rule.name: rule for rule in triggers}
    for wf in workflows:
        if wf.type not in ("cron", ""):
            continue
        rule = first_matching_rule(triggers, wf)
        if rule is not None:
            managed.setdefault(rule.name, []).append(wf)

    # Built as sorted runs and sorted with C-level keys (``itemgetter``): a year for 1,000
    # workflows is ~250k items and a Python key function per item would be a third of the
    # whole time. Order: time, then trigger changes (by workflow id) before runs (by name).
    changes: list[PlanItem] = []
    for rule_name, wfs in managed.items():
        rule = by_name[rule_name]
        changes.extend(_trigger_items(rule, windows_of(rule.calendar), wfs, start, end))
    changes.sort(key=_BY_TIME_WORKFLOW)

    runs: list[PlanItem] = []
    names = {wf.name: wf for wf in workflows}
    for spec in schedules:
        action = spec.action.describe()
        note = None
        ex = spec.action.execute
        if ex is not None and ex.workflow_name is not None and ex.workflow_name not in names:
            note = f"no workflow named {ex.workflow_name!r} at plan time"
        wid = ex.workflow_id if ex else None
        wname = ex.workflow_name if ex else None
        sname = spec.name
        blocked_note: dict[str, str] = {}
        for at, blocker in raw_fires(spec, calendars, start, end, schedule_sources):
            if blocker is None:
                reason = note
            else:
                reason = blocked_note.get(blocker)
                if reason is None:
                    reason = blocked_note[blocker] = f"blocked by calendar {blocker!r}"
            runs.append(
                _new(
                    PlanItem,
                    (
                        at,
                        "run",
                        None,
                        blocker,
                        wid,
                        wname,
                        None,
                        False,
                        sname,
                        action,
                        blocker is not None,
                        reason,
                    ),
                )
            )
    runs.sort(key=_BY_TIME_SCHEDULE)
    items = changes + runs
    items.sort(key=_BY_TIME)  # stable: keeps changes before runs at equal times
    return items


_new = tuple.__new__
_BY_TIME = itemgetter(0)
_BY_TIME_WORKFLOW = itemgetter(0, 4)
_BY_TIME_SCHEDULE = itemgetter(0, 8)


def _trigger_items(
    rule: TriggerRuleSpec,
    windows: Sequence[Window],
    workflows: Sequence[Workflow],
    start: datetime,
    end: datetime,
) -> list[PlanItem]:
    """The rule's changes for its workflows, sorted by (time, workflow id)."""
    off = rule.off_during is not None
    name, calendar = rule.name, rule.calendar
    opened, closed = "calendar window opens", "calendar window closes"
    edges: list[tuple[datetime, bool, str]] = []  # (instant, desired enable, reason)
    for w in windows:
        if w.start > start:
            edges.append((w.start, not off, opened))
        if w.end < end:
            edges.append((w.end, off, closed))
    desired = (bool(windows) and windows[0].start == start) != off
    ordered = sorted(workflows, key=lambda wf: wf.id)
    out: list[PlanItem] = [
        PlanItem(
            start,
            "trigger",
            name,
            calendar,
            wf.id,
            wf.name,
            desired,
            True,
            reason="state at start of period",
        )
        for wf in ordered
        if wf.trigger_enabled is None or wf.trigger_enabled != desired
    ]
    pairs = [(wf.id, wf.name) for wf in ordered]
    tail = (None, None, False)
    for at, enable, why in edges:
        out.extend(
            [
                _new(
                    PlanItem, (at, "trigger", name, calendar, wid, wname, enable, False, *tail, why)
                )
                for wid, wname in pairs
            ]
        )
    return out


def render_plan_table(items: Sequence[PlanItem]) -> str:
    """A plain-text table for humans, one line per item."""
    header = ("TIME (UTC)", "KIND", "TARGET", "CHANGE", "RULE/SCHEDULE", "CALENDAR", "NOTE")
    rows = [header]
    for it in items:
        if it.kind == "trigger":
            target = it.workflow_name or it.workflow_id or ""
            change = "enable" if it.enable else "disable"
            who = it.rule or ""
        else:
            target = it.action or ""
            change = "skip" if it.skipped else "run"
            who = it.schedule or ""
        rows.append(
            (
                it.at.strftime("%Y-%m-%d %H:%M:%S"),
                it.kind,
                target,
                change,
                who,
                it.calendar or "",
                it.reason or "",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    if not items:
        lines.append("(nothing planned)")
    return "\n".join(lines)
