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
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any, Literal, NamedTuple, Protocol

from daemon.calendar.calendar import Calendar
from daemon.calendar.calendar_spec import TriggerRuleSpec
from daemon.calendar.desired import rule_matches
from daemon.calendar.firetimes import ScheduleSources, ScheduleTiming, raw_fires
from daemon.calendar.overrides import apply_calendar_overrides
from daemon.calendar.window import Window, require_aware, subtract, union
from daemon.kernel.model import Workflow
from daemon.kernel.overrides import Override

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
    @property
    def catch_up(self) -> str: ...
    @property
    def catch_up_window(self) -> timedelta: ...


class PlanItem(NamedTuple):
    """One planned event: a trigger change or a scheduled run.

    A NamedTuple rather than a frozen dataclass on purpose: a year's plan holds hundreds of
    thousands of these, and a tuple is about three times cheaper to create (bench/plan.py).
    It is just as immutable.
    """

    at: datetime
    """Aware UTC."""
    kind: Literal["trigger", "run", "override"]
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
    catch_up: bool = False
    """For ``run``: a catch-up of a blocked fire time, at the blocking calendar's end."""

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
            "catch_up": self.catch_up,
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
    workflows_known: bool = True,
    overrides: Sequence[Override] = (),
) -> list[PlanItem]:
    """Trigger changes and scheduled runs in ``[start, end)``, sorted by time.

    Every trigger rule that selects a workflow counts: its trigger is planned on only
    while each allows it (deny beats allow). Only workflows whose type is ``cron`` or
    unknown (empty) are considered, since others have no cron trigger. With
    ``workflows_known=False`` (an offline plan of stand-ins) a schedule naming a workflow
    that is not among them is said to be resolved at run time, not flagged. ``overrides``
    win as they do in the daemon: calendar overrides reshape the calendars, rule overrides
    force a rule's vote, workflow overrides force (or hold) one trigger; each is listed
    as an ``override`` row where it starts and ends.
    """
    require_aware(start, end)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        return []
    if overrides:
        calendars = apply_calendar_overrides(calendars, overrides)
    with _gc_paused():
        items = _plan(
            calendars,
            triggers,
            schedules,
            workflows,
            start,
            end,
            schedule_sources,
            workflows_known,
            overrides,
        )
    if overrides:
        items = _with_overrides(items, overrides, workflows, start, end)
    return items


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
    workflows_known: bool,
    overrides: Sequence[Override] = (),
) -> list[PlanItem]:
    forced = _rule_spans(overrides)
    expanded: dict[str, list[Window]] = {}

    def windows_of(name: str) -> list[Window]:
        found = expanded.get(name)
        if found is None:
            found = expanded[name] = calendars[name].windows(start, end)
        return found

    # Workflows selected by the same rules share one timeline: computed once per group.
    # (Keyed by rule positions: the specs hold dicts and do not hash.)
    managed: dict[tuple[int, ...], list[Workflow]] = {}
    for wf in workflows:
        if wf.type not in ("cron", ""):
            continue
        group = tuple(i for i, rule in enumerate(triggers) if rule_matches(rule, wf))
        if group:
            managed.setdefault(group, []).append(wf)

    # Built as sorted runs and sorted with C-level keys (``itemgetter``): a year for 1,000
    # workflows is ~250k items and a Python key function per item would be a third of the
    # whole time. Order: time, then trigger changes (by workflow id) before runs (by name).
    changes: list[PlanItem] = []
    for group, wfs in managed.items():
        rules = [triggers[i] for i in group]
        wins = [_forced(r, windows_of(r.calendar), forced.get(r.name)) for r in rules]
        timeline = _timeline(rules, wins, start, end)
        changes.extend(_trigger_items(timeline, wfs, start))
    changes.sort(key=_BY_TIME_WORKFLOW)

    runs: list[PlanItem] = []
    names = {wf.name: wf for wf in workflows}
    for spec in schedules:
        action = spec.action.describe()
        note = None
        ex = spec.action.execute
        if ex is not None and ex.workflow_name is not None and ex.workflow_name not in names:
            note = (
                f"no workflow named {ex.workflow_name!r} at plan time"
                if workflows_known
                else f"workflow {ex.workflow_name!r} is resolved by name at run time"
            )
        wid = ex.workflow_id if ex else None
        wname = ex.workflow_name if ex else None
        sname = spec.name
        blocked_note: dict[str, str] = {}
        fires = raw_fires(spec, calendars, start, end, schedule_sources)
        for at, blocker in fires:
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
                        False,
                    ),
                )
            )
        if spec.catch_up != "skip":
            runs.extend(_catch_up_items(spec, fires, calendars, end, wid, wname, action))
    runs.sort(key=_BY_TIME_SCHEDULE)
    items = changes + runs
    items.sort(key=_BY_TIME)  # stable: keeps changes before runs at equal times
    return items


_new = tuple.__new__
_BY_TIME = itemgetter(0)
_BY_TIME_WORKFLOW = itemgetter(0, 4)
_BY_TIME_SCHEDULE = itemgetter(0, 8)


class _Edge(NamedTuple):
    at: datetime
    enable: bool
    rule: TriggerRuleSpec
    reason: str


def _timeline(
    rules: Sequence[TriggerRuleSpec],
    windows: Sequence[Sequence[Window]],
    start: datetime,
    end: datetime,
) -> list[_Edge]:
    """The combined desired state of a trigger selected by ``rules``: the state at
    ``start`` (first edge) and every instant it changes. On only while every rule allows.

    A sweep over all the rules' window edges in time order; an instant where one rule
    releases and another takes hold at once changes nothing and yields no edge."""
    offs = [r.off_during is not None for r in rules]
    want = [
        (bool(ws) and ws[0].start == start) != off for ws, off in zip(windows, offs, strict=True)
    ]
    events: list[tuple[datetime, int, bool]] = []  # (instant, rule index, calendar active)
    for i, ws in enumerate(windows):
        for w in ws:
            if w.start > start:
                events.append((w.start, i, True))
            if w.end < end:
                events.append((w.end, i, False))
    events.sort(key=_BY_TIME)

    def state_of(i: int) -> str:
        cal = rules[i].calendar
        if offs[i]:
            return f"calendar {cal} {'inactive' if want[i] else 'active'}"
        return f"{'inside' if want[i] else 'outside'} calendar {cal}"

    def deny_reason(changed: Sequence[int]) -> tuple[TriggerRuleSpec, str]:
        deny = [i for i in range(len(rules)) if not want[i]]
        cause = next((i for i in changed if not want[i]), deny[0])
        rule = rules[cause]
        if changed:
            what = "calendar window opens" if offs[cause] else "calendar window closes"
        else:
            what = f"state at start of period: {state_of(cause)}"
        allow = [rules[i].name for i in range(len(rules)) if want[i]]
        if allow:
            what += f" (rule {rule.name}); deny beats allow of {', '.join(allow)}"
        return rule, what

    def allow_reason(changed: Sequence[int]) -> tuple[TriggerRuleSpec, str]:
        cause = changed[0] if changed else 0
        if changed:
            what = "calendar window closes" if offs[cause] else "calendar window opens"
        else:
            what = f"state at start of period: {state_of(cause)}"
        if len(rules) > 1:
            what += f" (rule {rules[cause].name}); every selecting rule allows"
        return rules[cause], what

    state = all(want)
    first = allow_reason([]) if state else deny_reason([])
    out = [_Edge(start, state, *first)]
    k = 0
    while k < len(events):
        at = events[k][0]
        changed: list[int] = []
        while k < len(events) and events[k][0] == at:
            _, i, active = events[k]
            want[i] = active != offs[i]
            changed.append(i)
            k += 1
        now = all(want)
        if now != state:
            state = now
            rule, why = allow_reason(changed) if now else deny_reason(changed)
            out.append(_Edge(at, now, rule, why))
    return out


def _trigger_items(
    timeline: Sequence[_Edge], workflows: Sequence[Workflow], start: datetime
) -> list[PlanItem]:
    """The timeline's changes for its workflows, sorted by (time, workflow id)."""
    initial, edges = timeline[0], timeline[1:]
    ordered = sorted(workflows, key=lambda wf: wf.id)
    out: list[PlanItem] = [
        PlanItem(
            start,
            "trigger",
            initial.rule.name,
            initial.rule.calendar,
            wf.id,
            wf.name,
            initial.enable,
            True,
            reason=initial.reason,
        )
        for wf in ordered
        if wf.trigger_enabled is None or wf.trigger_enabled != initial.enable
    ]
    pairs = [(wf.id, wf.name) for wf in ordered]
    tail = (None, None, False)
    for at, enable, rule, why in edges:
        name, calendar = rule.name, rule.calendar
        out.extend(
            [
                _new(
                    PlanItem,
                    (at, "trigger", name, calendar, wid, wname, enable, False, *tail, why, False),
                )
                for wid, wname in pairs
            ]
        )
    return out


def _rule_spans(overrides: Sequence[Override]) -> dict[str, list[tuple[Window, bool]]]:
    """Per rule: the spans where an override forces its vote (True = allow)."""
    out: dict[str, list[tuple[Window, bool]]] = {}
    for o in overrides:
        if o.target_kind == "rule" and o.state != "hold":
            begin = o.start or datetime(1970, 1, 1, tzinfo=UTC)
            if begin < o.end:
                out.setdefault(o.target, []).append((Window(begin, o.end), o.state == "on"))
    return out


def _forced(
    rule: TriggerRuleSpec, windows: list[Window], spans: list[tuple[Window, bool]] | None
) -> list[Window]:
    """The rule's calendar windows with its vote forced inside override spans: a forced
    "allow" of an ``off_during`` rule removes the calendar there, and so on."""
    if not spans:
        return windows
    off = rule.off_during is not None
    out = windows
    for span, allow in spans:
        # off_during+allow, or on_only_during+deny: the calendar counts as inactive
        out = subtract(out, [span]) if allow == off else union([out, [span]])
    return out


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
            # what the calendars want when it ends: the last change at or before the end
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


def _catch_up_items(
    spec: PlannedSchedule,
    fires: Sequence[tuple[datetime, str | None]],
    calendars: Mapping[str, Calendar],
    end: datetime,
    wid: str | None,
    wname: str | None,
    action: str,
) -> list[PlanItem]:
    """The runs ``catch_up`` adds (as the schedule runner does): when no ``blocked_by``
    calendar is active any more, the blocked fire times since the last regular one and
    within ``catch_up_window`` run once each (``all``) or the latest once (``once``)."""
    out: list[PlanItem] = []
    stretch: list[tuple[datetime, str]] = []
    for k, (at, blocker) in enumerate(fires):
        if blocker is None:
            stretch = []
            continue
        stretch.append((at, blocker))
        nxt = fires[k + 1][0] if k + 1 < len(fires) else None
        release = _released(spec.blocked_by, calendars, at)
        if release is None or release >= end or (nxt is not None and nxt <= release):
            continue  # still blocked at the next fire time: the stretch goes on
        due = [(t, b) for t, b in stretch if release - t <= spec.catch_up_window]
        chosen = due[-1:] if spec.catch_up == "once" else due
        for t, b in chosen:
            why = f"catch-up of {t:%Y-%m-%d %H:%M} UTC (blocked by calendar {b!r})"
            out.append(
                PlanItem(
                    release,
                    "run",
                    calendar=b,
                    workflow_id=wid,
                    workflow_name=wname,
                    schedule=spec.name,
                    action=action,
                    reason=why,
                    catch_up=True,
                )
            )
        stretch = []
    return out


def _released(
    blocked_by: Sequence[str], calendars: Mapping[str, Calendar], at: datetime
) -> datetime | None:
    """The first instant after ``at`` when none of ``blocked_by`` is active."""
    t = at
    for _ in range(64):  # calendars chained end to start; more is a policy to rethink
        active = [calendars[c] for c in blocked_by if calendars[c].active_at(t)]
        if not active:
            return t
        ends = [e for c in active if (e := c.next_transition(t)) is not None]
        if not ends:
            return None
        t = min(ends)
    return None


def render_plan_table(items: Sequence[PlanItem]) -> str:
    """A plain-text table for humans, one line per item."""
    header = ("TIME (UTC)", "KIND", "TARGET", "CHANGE", "RULE/SCHEDULE", "CALENDAR", "NOTE")
    rows = [header]
    for it in items:
        if it.kind == "override":
            target, change, who = "", "override", it.rule or ""
        elif it.kind == "trigger":
            target = it.workflow_name or it.workflow_id or ""
            change = "enable" if it.enable else "disable"
            who = it.rule or ""
        else:
            target = it.action or ""
            change = "skip" if it.skipped else ("catch-up" if it.catch_up else "run")
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
