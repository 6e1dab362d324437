"""``aomd plan``: every trigger change and scheduled run in a period, computed purely.

The lead passes the pieces of a policy snapshot (built calendars, trigger rules in order,
schedules) and the workflows last listed from the cloud. Each calendar is expanded once for
the whole period and shared by every rule and schedule that uses it, so a year for
thousands of workflows stays well under a second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from daemon.calendar.calendar import Calendar
from daemon.calendar.schedules import ScheduleSources, fire_times
from daemon.calendar.spec import ScheduleSpec, TriggerRuleSpec
from daemon.calendar.triggers import first_matching_rule
from daemon.calendar.window import Window, require_aware
from daemon.model import Workflow

__all__ = ["PlanItem", "plan", "render_plan_table"]


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
    schedules: Sequence[ScheduleSpec],
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
    items: list[PlanItem] = []
    if end <= start:
        return items
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

    for rule_name, wfs in managed.items():
        rule = by_name[rule_name]
        items.extend(_trigger_items(rule, windows_of(rule.calendar), wfs, start, end))

    names = {wf.name: wf for wf in workflows}
    for spec in schedules:
        action = spec.action.describe()
        note = None
        ex = spec.action.execute
        if ex is not None and ex.workflow_name is not None and ex.workflow_name not in names:
            note = f"no workflow named {ex.workflow_name!r} at plan time"
        # Calendar.windows memoises (start, end), so blockers are expanded once per period.
        for fire in fire_times(spec, calendars, start, end, schedule_sources):
            items.append(
                PlanItem(
                    at=fire.time,
                    kind="run",
                    schedule=spec.name,
                    action=action,
                    calendar=fire.blocked_by,
                    skipped=fire.blocked_by is not None,
                    reason=f"blocked by calendar {fire.blocked_by!r}" if fire.blocked_by else note,
                    workflow_id=ex.workflow_id if ex else None,
                    workflow_name=ex.workflow_name if ex else None,
                )
            )
    items.sort(key=_order)
    return items


def _trigger_items(
    rule: TriggerRuleSpec,
    windows: Sequence[Window],
    workflows: Sequence[Workflow],
    start: datetime,
    end: datetime,
) -> list[PlanItem]:
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
    out: list[PlanItem] = []
    for wf in workflows:
        wid, wname = wf.id, wf.name
        if wf.trigger_enabled is None or wf.trigger_enabled != desired:
            out.append(
                PlanItem(
                    start,
                    "trigger",
                    name,
                    calendar,
                    wid,
                    wname,
                    desired,
                    True,
                    reason="state at start of period",
                )
            )
        out.extend(
            [
                PlanItem(at, "trigger", name, calendar, wid, wname, enable, False, reason=why)
                for at, enable, why in edges
            ]
        )
    return out


def _order(item: PlanItem) -> tuple[datetime, int, str, str]:
    return (
        item.at,
        0 if item.kind == "trigger" else 1,
        item.workflow_id or "",
        item.schedule or "",
    )


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
