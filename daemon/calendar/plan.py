"""``aomd plan``: every trigger change and scheduled run in a period, computed purely.

The lead passes the pieces of a policy snapshot (built calendars, trigger rules in order,
schedules) and the workflows last listed from the cloud. Each calendar is expanded once for
the whole period and shared by every rule and schedule that uses it; workflows selected by
the same rules share one timeline; and the rows are a stream, made as they are taken
(``iter_plan``, ``Plan``), so a year for 10,000 workflows (millions of rows) takes about a
second and memory that does not grow with the rows (``bench/plan.py``).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
from array import array
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import repeat
from operator import itemgetter
from typing import Any, Literal, NamedTuple, Protocol

from daemon.calendar.calendar import Calendar
from daemon.calendar.calendar_spec import TriggerRuleSpec
from daemon.calendar.firetimes import ScheduleSources, ScheduleTiming, raw_fires
from daemon.calendar.overrides import apply_calendar_overrides
from daemon.calendar.window import Window, require_aware, subtract, union
from daemon.kernel.model import Workflow
from daemon.kernel.overrides import Override
from daemon.kernel.workflow_match import matching_positions

__all__ = [
    "Plan",
    "PlanItem",
    "PlannedSchedule",
    "iter_plan",
    "plan",
    "plan_table_lines",
    "plan_table_widths",
    "render_plan_table",
]


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
    """Every row of ``iter_plan`` in one list, for callers that need them all at once
    (a short period, one workflow, the ICS/HTML views). Printing uses ``iter_plan``."""
    rows = iter_plan(
        calendars,
        triggers,
        schedules,
        workflows,
        start,
        end,
        schedule_sources=schedule_sources,
        workflows_known=workflows_known,
        overrides=overrides,
    )
    with _gc_paused():
        return list(rows)


def iter_plan(
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
) -> Iterator[PlanItem]:
    """Trigger changes and scheduled runs in ``[start, end)``, in order, one at a time.

    Every trigger rule that selects a workflow counts: its trigger is planned on only
    while each allows it (deny beats allow). Only workflows whose type is ``cron`` or
    unknown (empty) are considered, since others have no cron trigger. With
    ``workflows_known=False`` (an offline plan of stand-ins) a schedule naming a workflow
    that is not among them is said to be resolved at run time, not flagged. ``overrides``
    win as they do in the daemon: calendar overrides reshape the calendars, rule overrides
    force a rule's vote, workflow overrides force (or hold) one trigger; each is listed
    as an ``override`` row where it starts and ends.

    Order: by time; at one instant the trigger changes by workflow id (workflows that
    share an id in the order given), then the runs by schedule name (one schedule's in
    the order it makes them), then the override rows and the trigger changes workflow
    overrides make, in the order of ``overrides``.

    Why a stream: 10,000 workflows over a year are millions of rows, but workflows
    selected by the same rules (and no workflow override) share one timeline. Each
    distinct timeline is computed once and its rows are made only when the consumer gets
    to their instant, so memory grows with the workflows and the calendar edges, never
    with the rows, and the first row comes as soon as the timelines are known.
    ``tests/unit/calendar/test_plan_grouped.py`` proves the rows equal to the plain
    per-workflow computation (``tests/support/plan_reference.py``).
    """
    return Plan(
        calendars,
        triggers,
        schedules,
        workflows,
        start,
        end,
        schedule_sources=schedule_sources,
        workflows_known=workflows_known,
        overrides=overrides,
    ).rows()


class Plan:
    """A plan whose rows are made on demand, as often as asked (``iter_plan``'s rows).

    The timelines, the runs and the overrides' edits are computed once, on the first
    demand, and kept (they grow with workflows and calendar edges, not with rows). The
    text table asks twice: ``distinct_rows`` for its column widths, then ``rows``.
    """

    def __init__(
        self,
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
    ) -> None:
        require_aware(start, end)
        self._start, self._end = start.astimezone(UTC), end.astimezone(UTC)
        self._calendars = calendars
        self._triggers = triggers
        self._schedules = schedules
        self._workflows = workflows
        self._sources = schedule_sources
        self._known = workflows_known
        self._overrides = overrides
        self._ready: _Ready | None = None
        self._runs: list[PlanItem] | None = None

    def rows(self) -> Iterator[PlanItem]:
        """Every row, in order (see ``iter_plan``)."""
        return itertools.chain.from_iterable(self._chunks(distinct=False))

    def distinct_rows(self) -> Iterator[PlanItem]:
        """Some of the rows, in order: for every row of ``rows``, one that differs from it
        at most in ``at`` and ``reason``. For a workflow, a timeline's edge that repeats
        an earlier one's rule, calendar and state is left out, and so is a run like an
        earlier one, so a year for the bench's 10,000 workflows is some 42,000 rows
        instead of 2.8 million. Any filter that keeps or drops a trigger row by its
        workflow, kind and ``initial`` (``aomd plan --live`` does) keeps the same. What
        it is for: the column widths of the text table, which depend on neither the time
        (one width) nor the reason (the last column)."""
        return itertools.chain.from_iterable(self._chunks(distinct=True))

    def _setup(self) -> _Ready:
        if self._ready is None:
            self._ready = _Ready(
                self._calendars,
                self._triggers,
                self._workflows,
                self._start,
                self._end,
                self._overrides,
            )
        return self._ready

    def _runs_made(self, calendars: Mapping[str, Calendar]) -> list[PlanItem]:
        if self._runs is None:
            self._runs = _run_items(
                calendars,
                self._schedules,
                self._workflows,
                self._start,
                self._end,
                self._sources,
                self._known,
            )
        return self._runs

    def _chunks(self, *, distinct: bool) -> Iterator[Iterable[PlanItem]]:
        """The rows in order, in runs (an instant's trigger changes, its runs, ...)."""
        start, end = self._start, self._end
        if end <= start:
            return
        with _gc_paused():  # a setup's ~300,000 objects: see _gc_paused
            ready = self._setup()
        fleet, touched, extras = ready.fleet, ready.touched, ready.extras
        nothing: dict[int, PlanItem] = {}
        # the state at the start first: it needs neither the rest of the timelines nor
        # the runs
        yield fleet.initial_rows(start, touched.get(start, nothing))
        with _gc_paused():
            changes = fleet.changes_at(distinct=distinct)
            instants = sorted({start}.union(changes, touched, (i.at for i in extras)))
            runs = self._runs_made(ready.calendars)
        if distinct:
            runs = _distinct_runs(runs)
        j = k = 0
        for t in instants:
            if j < len(runs) and runs[j].at < t:  # runs at instants without a change
                i = j
                while j < len(runs) and runs[j].at < t:
                    j += 1
                yield runs[i:j]
            if t != start:
                yield fleet.rows_at(t, changes.get(t, ()), touched.get(t, nothing))
            i = j
            while j < len(runs) and runs[j].at == t:
                j += 1
            if i < j:
                yield runs[i:j]
            i = k
            while k < len(extras) and extras[k].at == t:
                k += 1
            if i < k:
                yield extras[i:k]
        yield runs[j:]


class _Ready:
    """What every pass over a plan's rows starts from."""

    def __init__(
        self,
        calendars: Mapping[str, Calendar],
        triggers: Sequence[TriggerRuleSpec],
        workflows: Sequence[Workflow],
        start: datetime,
        end: datetime,
        overrides: Sequence[Override],
    ) -> None:
        if overrides:
            calendars = apply_calendar_overrides(calendars, overrides)
        self.calendars = calendars
        names = {wf.id: wf.name for wf in workflows}
        targets = {
            o.target
            for o in overrides
            if o.target_kind == "workflow" and o.target in names and _in_period(o, start, end)
        }
        self.fleet = _Fleet(calendars, triggers, workflows, start, end, overrides, targets)
        self.touched, self.extras = _workflow_overrides(self.fleet, overrides, names, start, end)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """A year's plan in one list is millions of acyclic tuples, and a stream's setup
    (timelines, runs) some 300,000 objects that live as long as it; the cyclic
    collector would rescan the growing heap over and over for nothing (40% of the time
    in bench/plan.py when the plan was a list; two or three full collections, ~0.1 s,
    in a stream's setup). Nothing here creates reference cycles, so pausing it loses
    nothing; it is restored on exit, and never held across a ``yield``: the stream's
    rows die young and need no pause."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_new = tuple.__new__
_BY_TIME = itemgetter(0)
_BY_TIME_SCHEDULE = itemgetter(0, 8)
_MERGED_CACHE = 64
"""Merged workflow orders kept for instants where several timelines change at once
(e.g. a freeze every group shares): at most 64 x 8 bytes x workflows."""


class _Fleet:
    """The managed workflows, grouped by the rules that select them, each group with its
    one timeline. Workflows are numbered by rank: their place in (id, input order), the
    order their rows take at one instant."""

    def __init__(
        self,
        calendars: Mapping[str, Calendar],
        triggers: Sequence[TriggerRuleSpec],
        workflows: Sequence[Workflow],
        start: datetime,
        end: datetime,
        overrides: Sequence[Override],
        touched: Collection[str],
    ) -> None:
        keyed: dict[tuple[int, ...], int] = {}  # rule positions (specs do not hash) -> group
        members: list[tuple[str, int, int, Workflow]] = []
        cron = [wf for wf in workflows if wf.type in ("cron", "")]
        picks: list[list[int]] = [[] for _ in cron]
        for i, rule in enumerate(triggers):  # a rule at a time over the whole fleet
            sel = rule.select
            for n in matching_positions(cron, ids=sel.ids, names=sel.names, tags=sel.tags.items()):
                picks[n].append(i)
        for n, (wf, picked) in enumerate(zip(cron, picks, strict=True)):
            if picked:
                members.append((wf.id, n, keyed.setdefault(tuple(picked), len(keyed)), wf))
        members.sort(key=_BY_ID_THEN_INPUT)
        self.wids = [m[0] for m in members]
        self.names = [m[3].name for m in members]
        self.group = [m[2] for m in members]
        self.enabled = [m[3].trigger_enabled for m in members]
        self.touched = [wid in touched for wid in self.wids]
        forced = _rule_spans(overrides)
        expanded: dict[str, list[Window]] = {}

        def windows_of(name: str) -> list[Window]:
            found = expanded.get(name)
            if found is None:
                found = expanded[name] = calendars[name].windows(start, end)
            return found

        # each group's state at the start now (the first rows), the rest of its timeline
        # when it is first needed
        self._sweeps: list[Iterator[_Edge]] = []
        for key in keyed:
            rules = [triggers[i] for i in key]
            wins = [_forced(r, windows_of(r.calendar), forced.get(r.name)) for r in rules]
            self._sweeps.append(_sweep(rules, wins, start, end))
        self.firsts = [next(sweep) for sweep in self._sweeps]
        self._timelines: list[list[_Edge]] | None = None
        # per group, its workflows without a workflow override (their rows are streamed
        # from the timeline), in rank order
        self.ranks: list[list[int]] = [[] for _ in keyed]
        for r, gi in enumerate(self.group):
            if not self.touched[r]:
                self.ranks[gi].append(r)
        self.gwids = [[self.wids[r] for r in rs] for rs in self.ranks]
        self.gnames = [[self.names[r] for r in rs] for rs in self.ranks]
        self._merged: dict[tuple[int, ...], tuple[array[int], list[str], list[str]]] = {}

    @property
    def timelines(self) -> list[list[_Edge]]:
        """Each group's timeline: its state at the start, then every change."""
        if self._timelines is None:
            self._timelines = [
                [first, *sweep] for first, sweep in zip(self.firsts, self._sweeps, strict=True)
            ]
        return self._timelines

    def merged(self, groups: tuple[int, ...]) -> tuple[array[int], list[str], list[str]]:
        """The streamed workflows of ``groups`` in rank order: for each, the place of its
        group in ``groups``, its id and its name. About 17 bytes a workflow (the strings
        are shared), kept for the last few combinations (a year of the bench has 20)."""
        found = self._merged.get(groups)
        if found is None:
            if len(self._merged) >= _MERGED_CACHE:
                self._merged.pop(next(iter(self._merged)))
            order = sorted(itertools.chain.from_iterable(self.ranks[g] for g in groups))
            slot = {g: s for s, g in enumerate(groups)}
            found = (
                array("H", [slot[g] for g in map(self.group.__getitem__, order)]),
                list(map(self.wids.__getitem__, order)),
                list(map(self.names.__getitem__, order)),
            )
            self._merged[groups] = found
        return found

    def changes_at(self, *, distinct: bool = False) -> dict[datetime, list[tuple[int, _Edge]]]:
        """Per instant after the start: the groups whose timeline changes there (with
        ``distinct``, only at an edge whose rule, calendar and state the group's timeline
        has not had before)."""
        out: dict[datetime, list[tuple[int, _Edge]]] = {}
        for gi, timeline in enumerate(self.timelines):
            if not self.ranks[gi]:
                continue
            seen: set[tuple[str, str, bool]] = set()
            for edge in timeline[1:]:
                if distinct:
                    shape = (edge.rule.name, edge.rule.calendar, edge.enable)
                    if shape in seen:
                        continue
                    seen.add(shape)
                out.setdefault(edge.at, []).append((gi, edge))
        return out

    def initial_rows(self, start: datetime, touched: Mapping[int, PlanItem]) -> list[PlanItem]:
        """The state at the start, for each trigger whose observed state differs from it
        or is unknown."""
        out: list[PlanItem] = []
        firsts = self.firsts
        for r, gi in enumerate(self.group):
            if self.touched[r]:
                item = touched.get(r)
                if item is not None:
                    out.append(item)
                continue
            first, now = firsts[gi], self.enabled[r]
            if now is None or now != first.enable:
                out.append(_initial_item(first, start, self.wids[r], self.names[r]))
        return out

    def rows_at(
        self, t: datetime, changed: Sequence[tuple[int, _Edge]], touched: Mapping[int, PlanItem]
    ) -> Iterator[PlanItem]:
        """The trigger changes at ``t`` (after the start), in rank order.

        This is where a year for 10,000 workflows spends its time, so a row costs no
        Python bytecode: ``zip`` lines up the fields (the same for the whole instant,
        or per group through the slot of each workflow) and ``tuple.__new__`` makes the
        ``PlanItem``, one at a time as the consumer takes them. One at a time also
        matters to the cyclic collector: a ``PlanItem`` (a tuple subclass) is never
        untracked, and an instant's 10,000 of them made at once and alive across its
        young collections were promoted to the old generation and made full collections
        (45% of the time)."""
        if touched:
            return iter(self._rows_with(t, changed, touched))
        if len(changed) == 1:  # one timeline changes: its rows are already in order
            gi, (_, enable, rule, why) = changed[0]
            wids, names = self.gwids[gi], self.gnames[gi]
            return map(
                _new,
                repeat(PlanItem),
                zip(
                    repeat(t), repeat("trigger"), repeat(rule.name), repeat(rule.calendar),
                    wids, names, repeat(enable), repeat(False), repeat(None), repeat(None),
                    repeat(False), repeat(why), repeat(False),
                ),
            )  # fmt: skip
        slots, wids, names = self.merged(tuple(gi for gi, _ in changed))
        shapes = {(e.rule.name, e.rule.calendar, e.enable, e.reason) for _, e in changed}
        if len(shapes) == 1:  # the groups change alike (a third of the bench's rows)
            ((rule_name, cal, enable, why),) = shapes
            return map(
                _new,
                repeat(PlanItem),
                zip(
                    repeat(t), repeat("trigger"), repeat(rule_name), repeat(cal),
                    wids, names, repeat(enable), repeat(False), repeat(None), repeat(None),
                    repeat(False), repeat(why), repeat(False),
                ),
            )  # fmt: skip
        rules = [e.rule.name for _, e in changed]
        cals = [e.rule.calendar for _, e in changed]
        states = [e.enable for _, e in changed]
        whys = [e.reason for _, e in changed]
        return map(
            _new,
            repeat(PlanItem),
            zip(
                repeat(t), repeat("trigger"), map(rules.__getitem__, slots),
                map(cals.__getitem__, slots), wids, names, map(states.__getitem__, slots),
                repeat(False), repeat(None), repeat(None), repeat(False),
                map(whys.__getitem__, slots), repeat(False),
            ),
        )  # fmt: skip

    def _rows_with(
        self, t: datetime, changed: Sequence[tuple[int, _Edge]], touched: Mapping[int, PlanItem]
    ) -> list[PlanItem]:
        """``rows_at`` where overridden workflows have rows too (rare: a row at a time)."""
        order = sorted(
            [*itertools.chain.from_iterable(self.ranks[gi] for gi, _ in changed), *touched]
        )
        shape = dict(changed)
        out: list[PlanItem] = []
        for r in order:
            item = touched.get(r)
            if item is None:
                _, enable, rule, why = shape[self.group[r]]
                item = PlanItem(
                    t, "trigger", rule.name, rule.calendar, self.wids[r], self.names[r], enable,
                    reason=why,
                )  # fmt: skip
            out.append(item)
        return out

    def original_rows(self, r: int, start: datetime) -> list[PlanItem]:
        """All the rows of one workflow, as if it had no workflow override."""
        first, *edges = self.timelines[self.group[r]]
        wid, wname, now = self.wids[r], self.names[r], self.enabled[r]
        out = []
        if now is None or now != first.enable:
            out.append(_initial_item(first, start, wid, wname))
        for at, enable, rule, why in edges:
            out.append(
                PlanItem(at, "trigger", rule.name, rule.calendar, wid, wname, enable, reason=why)
            )
        return out


_BY_ID_THEN_INPUT = itemgetter(0, 1)


def _initial_item(first: _Edge, start: datetime, wid: str, wname: str) -> PlanItem:
    return PlanItem(
        start,
        "trigger",
        first.rule.name,
        first.rule.calendar,
        wid,
        wname,
        first.enable,
        True,
        reason=first.reason,
    )


def _distinct_runs(runs: list[PlanItem]) -> list[PlanItem]:
    """The first run of each shape (all but the time and the reason)."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for run in runs:
        shape = (run[1:11], run[12])
        if shape not in seen:
            seen.add(shape)
            out.append(run)
    return out


def _in_period(o: Override, start: datetime, end: datetime) -> bool:
    return o.end > start and max(o.start or start, start) < end


def _run_items(
    calendars: Mapping[str, Calendar],
    schedules: Sequence[PlannedSchedule],
    workflows: Sequence[Workflow],
    start: datetime,
    end: datetime,
    schedule_sources: ScheduleSources | None,
    workflows_known: bool,
) -> list[PlanItem]:
    """Every schedule's runs (and skips and catch-ups), sorted by (time, schedule name).
    A list: runs are few next to trigger changes (a year of 10 schedules is ~55k)."""
    runs: list[PlanItem] = []
    names = {wf.name for wf in workflows}
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
    return runs


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
    ``start`` (first edge) and every instant it changes. On only while every rule allows."""
    return list(_sweep(rules, windows, start, end))


def _sweep(
    rules: Sequence[TriggerRuleSpec],
    windows: Sequence[Sequence[Window]],
    start: datetime,
    end: datetime,
) -> Iterator[_Edge]:
    """``_timeline`` as it is found: the state at ``start`` comes before the sweep, so
    the plan's first rows need no more.

    A sweep over all the rules' window edges in time order; an instant where one rule
    releases and another takes hold at once changes nothing and yields no edge."""
    offs = [r.off_during is not None for r in rules]
    want = [
        (bool(ws) and ws[0].start == start) != off for ws, off in zip(windows, offs, strict=True)
    ]

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
    yield _Edge(start, state, *first)
    events: list[tuple[datetime, int, bool]] = []  # (instant, rule index, calendar active)
    for i, ws in enumerate(windows):
        for w in ws:
            if w.start > start:
                events.append((w.start, i, True))
            if w.end < end:
                events.append((w.end, i, False))
    events.sort(key=_BY_TIME)
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
            yield _Edge(at, now, rule, why)


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


def _workflow_overrides(
    fleet: _Fleet,
    overrides: Sequence[Override],
    names: Mapping[str, str],
    start: datetime,
    end: datetime,
) -> tuple[dict[datetime, dict[int, PlanItem]], list[PlanItem]]:
    """Workflow overrides replace that trigger's changes inside their span (``hold``:
    none), and every override in the period gets a row where it starts and ends.

    Returns the rows that remain of the overridden workflows (per instant, by rank: they
    take their usual place among the others) and the rows the overrides add, by time
    and then in the order they were made (after everything else at their instant).
    Overrides are applied in order, each seeing what the earlier ones left, so a later
    override on the same workflow can replace the rows of an earlier one."""
    rank_of: dict[int, int] = {}  # id(original row) -> rank; `kept` keeps the ids valid
    kept: list[PlanItem] = []
    mine_of: dict[str, list[PlanItem]] = {}
    for r, wid in enumerate(fleet.wids):
        if fleet.touched[r]:
            rows = fleet.original_rows(r, start)
            kept.extend(rows)
            rank_of.update((id(i), r) for i in rows)
            mine_of.setdefault(wid, []).extend(rows)
    for rows in mine_of.values():
        rows.sort(key=lambda i: (i.at, rank_of[id(i)]))
    extras: list[PlanItem] = []
    for o in overrides:
        if not _in_period(o, start, end):
            continue
        begin = max(o.start or start, start)
        if o.target_kind == "workflow" and o.target in names:
            mine = mine_of.get(o.target, [])
            drop = {id(i) for i in mine if begin <= i.at < o.end}
            # what the calendars want when it ends: the last change at or before the end
            after_state = next((i.enable for i in reversed(mine) if i.at <= o.end), None)
            mine = mine_of[o.target] = [i for i in mine if id(i) not in drop]
            extras = [i for i in extras if id(i) not in drop]
            added = []
            if o.state != "hold":
                added.append(
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
                added.append(
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
            mine.extend(added)
            extras.extend(added)
        extras.append(PlanItem(begin, "override", f"override:{o.id}", reason=o.describe()))
        if o.end < end:
            extras.append(
                PlanItem(o.end, "override", f"override:{o.id}", reason=f"override {o.id} ends")
            )
    remaining: dict[datetime, dict[int, PlanItem]] = {}
    for rows in mine_of.values():
        for i in rows:
            rank = rank_of.get(id(i))
            if rank is not None:
                remaining.setdefault(i.at, {})[rank] = i
    extras.sort(key=_BY_TIME)
    return remaining, extras


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


_HEADER = ("TIME (UTC)", "KIND", "TARGET", "CHANGE", "RULE/SCHEDULE", "CALENDAR", "NOTE")
_TIME = "%Y-%m-%d %H:%M:%S"


def _cells(it: PlanItem, when: str) -> tuple[str, str, str, str, str, str, str]:
    target, change, who = _middle(it[1:11], it.catch_up)
    return (when, it.kind, target, change, who, it.calendar or "", it.reason or "")


def _middle(fields: tuple[Any, ...], catch_up: bool) -> tuple[str, str, str]:
    """TARGET, CHANGE and RULE/SCHEDULE from a row's fields ``kind`` to ``skipped``."""
    kind, rule, _, wid, wname, enable, _, schedule, action, skipped = fields
    if kind == "override":
        return "", "override", rule or ""
    if kind == "trigger":
        return wname or wid or "", "enable" if enable else "disable", rule or ""
    return action or "", "skip" if skipped else ("catch-up" if catch_up else "run"), schedule or ""


def plan_table_widths(items: Iterable[PlanItem]) -> list[int]:
    """The column widths of the table of ``items``: a first pass, so that the lines can
    be written as a second pass makes them. The last column (the note) is never padded,
    so its width does not matter: ``Plan.distinct_rows`` give the same table.

    Each distinct cell is measured once: a trigger row's target (its workflow) apart
    from its edge (rule, calendar, state), other rows by all but time and reason, and
    the time by its year (``bench/plan.py --live`` times this pass)."""
    widths = [len(h) for h in _HEADER]
    targets: set[str] = set()  # trigger rows: workflow names (or ids)
    triggers: set[tuple[str | None, str | None, bool | None]] = set()  # rule, calendar, state
    others: set[tuple[tuple[Any, ...], bool]] = set()  # runs, overrides: all but time, reason
    years: set[int] = set()
    reasons: set[str | None] = set()
    for it in items:
        if it[1] == "trigger":
            targets.add(it[5] or it[4] or "")
            triggers.add((it[2], it[3], it[6]))
        else:
            others.add((it[1:11], it[12]))
        years.add(it[0].year)
        reasons.add(it[11])
    cells: list[tuple[str, ...]] = [(_fmt(year),) for year in years]
    if triggers:
        cells.append(("", "trigger", max(targets, key=len)))
    cells.extend(
        ("", "", "", "enable" if on else "disable", rule or "", cal or "")
        for rule, cal, on in triggers
    )
    cells.extend(
        ("", fields[0], *_middle(fields, catch_up), fields[2] or "") for fields, catch_up in others
    )
    cells.append(("",) * 6 + (max((r or "" for r in reasons), key=len, default=""),))
    for row in cells:
        for i, cell in enumerate(row):
            if len(cell) > widths[i]:
                widths[i] = len(cell)
    return widths


def _fmt(year: int) -> str:
    return datetime(year, 1, 1).strftime(_TIME)


def plan_table_lines(items: Iterable[PlanItem], widths: Sequence[int]) -> Iterator[str]:
    """The table's lines (header first), one per item as it comes, with ``widths`` from
    ``plan_table_widths`` over the same items."""

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    yield line(_HEADER)
    empty = True
    at, when = None, ""
    for it in items:
        empty = False
        if it.at is not at:  # an instant's rows share their datetime: format it once
            at, when = it.at, it.at.strftime(_TIME)
        yield line(_cells(it, when))
    if empty:
        yield "(nothing planned)"


def render_plan_table(items: Sequence[PlanItem]) -> str:
    """A plain-text table for humans, one line per item."""
    return "\n".join(plan_table_lines(items, plan_table_widths(items)))
