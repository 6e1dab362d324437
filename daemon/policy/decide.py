"""``decide``: one observed execution + rules + journal facts + now -> actions or a time to look again.

Pure: no I/O, no clock, no randomness (backoff jitter is derived from a hash of the
idempotency key, so every replica and every replay computes the same time). The engine
calls it on every poll (level-triggered) and hands the actions to the executor, which
journals each under its key before the API call.

How the past is counted (``facts.writes`` for the stopped node, matched by key segment
``exec/<execution>/<node>/<action>/<attempt>``):

* An attempt is *used* when its outcome could have had an effect or was a real answer:
  ``pending``, ``applied``, ``unknown``, ``resolved_applied``, ``rejected``, ``moot``.
* ``failed`` and ``resolved_not_applied`` (the executor's RETRYABLE_OUTCOMES) are not
  used: the same key is sent again (the executor re-opens it): a ``failed`` one at
  ``facts.retry_at[key]`` (the executor's prompt retry, seconds away) while that is
  given, otherwise after ``backoff.initial``.
* ``dry_run`` outcomes count like real ones when this decision is itself a dry run (so a
  dry-run daemon logs each step once instead of on every poll); when acting for real they
  are ignored, except that their attempt numbers are never reused (the executor would
  report the key as a duplicate).
* If the latest counted write for the node was decided on exactly the state we see now
  (``observed`` fingerprint), the cloud has not moved since we acted: no action, look
  again soon. A ``pending``/``unknown`` one is listed in ``Decision.pending_keys`` so the
  engine can resolve it by reading state.
* The fallback (``skip``/``terminate``/``leave``) is keyed ``fallback-<kind>`` with
  attempt 1 and fires exactly once; ``leave`` is a ``notify`` action for a human.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from daemon.calendar.calendar import Calendar
from daemon.calendar.counting import counted_until
from daemon.kernel.facts import ExecutionFacts, PastWrite
from daemon.kernel.keys import execution_key, key_segment
from daemon.kernel.model import Execution, NodeRun, Status, Workflow
from daemon.kernel.outcomes import RETRYABLE_OUTCOMES, UNRESOLVED
from daemon.policy.observe import observed as observe
from daemon.policy.observe import same_stop
from daemon.policy.rule import Rule

__all__ = [
    "RECHECK_SOON",
    "Action",
    "Decision",
    "decide",
    "stopped_node",
    "stopped_nodes",
]

RECHECK_SOON = timedelta(seconds=10)
"""How soon to look again after acting, or while waiting for the cloud to reflect a write."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Action:
    """One write (or notification) that ``decide`` asks the executor for."""

    kind: str
    """restart | skip | continue | terminate (API writes) or notify (webhook only)."""
    workflow_id: str
    execution_id: str
    node_id: str
    attempt: int
    """Part of the idempotency key: a retry is a new attempt, never a resend."""
    rule: str
    reason: str
    key: str
    """``exec/<execution_id>/<node_id>/<restart|...|fallback-skip>/<attempt>``."""
    observed: str
    """Node fingerprint (``resolve.fingerprint(...).dumps()``) at decision time."""
    dry_run: bool = False
    notify: bool = False
    """Send a notification about this action (to ``webhook`` or the global one)."""
    webhook: str | None = None
    fallback: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    actions: tuple[Action, ...] = ()
    recheck_at: datetime | None = None
    """Look at this execution again no later than this (None: no time-based reason to)."""
    unhandled_node: str | None = None
    """A stopped node no rule matches: log once, count, notify (the first of
    ``unhandled_nodes``)."""
    unhandled_nodes: tuple[str, ...] = ()
    """Every stopped node no rule matches (parallel branches can stop together)."""
    cannot_act: tuple[tuple[str, str], ...] = ()
    """``(node_id or "", reason)`` for each stop the documented operations cannot act on
    (an execution ended ``fail``, an approval, a status aomd does not know): the engine
    logs and notifies each once."""
    reasons: tuple[str, ...] = ()
    """Why nothing (more) was done, for logs and ``aomd plan``."""
    node_id: str | None = None
    rule: str | None = None
    held: str | None = None
    """An action is due but a calendar gate holds it: why (logged once as ``action_held``)."""
    held_until: datetime | None = None
    pending_keys: tuple[str, ...] = field(default=())
    """The latest write for the node is ``pending`` or ``unknown`` and the state has not
    moved since: decide will not act again until it is resolved, so the engine should
    resolve it by reading the execution (``resolve.resolve``) and journal
    ``resolved_not_applied`` (then decide re-sends the same key) or ``resolved_applied``."""

    @property
    def unhandled(self) -> bool:
        return self.unhandled_node is not None


_WAITS = frozenset({Status.PAUSING, Status.FAIL})
"""Execution statuses in which a failed node waits: ``pausing`` as assumed, and ``fail``
should the cloud report it that way (``_ended_fail``)."""


def stopped_nodes(execution: Execution, workflow: Workflow | None) -> list[tuple[NodeRun, str]]:
    """Every node the execution waits on, in the order they appear: ``(node, state)``.

    With the workflow's graph (``parent_node``) known, a node waits when its latest run
    is ``pausing``, or ``fail`` while the execution is ``pausing``, and none of its
    children has started (a skipped node stays ``fail`` but its children run). Without
    the graph aomd cannot tell branches from a sequence: only the latest stop counts,
    as ``stopped_node`` always did.
    """
    if workflow is None or not workflow.is_graph:
        one = stopped_node(execution)
        return [one] if one is not None else []
    started = {n.node_id for n in execution.nodes}
    latest: dict[str, NodeRun] = {}
    for node in execution.nodes:
        latest[node.node_id] = node  # a restarted node appears again later in the list
    out: list[tuple[NodeRun, str]] = []
    for node in latest.values():
        if workflow.children_of(node.node_id) & started:
            continue
        if node.status is Status.PAUSING:
            out.append((node, "paused"))
        elif node.status is Status.FAIL and execution.status in _WAITS:
            out.append((node, "failed"))
    return out


def stopped_node(execution: Execution) -> tuple[NodeRun, str] | None:
    """The node the execution waits on: ``(node, "failed" | "paused")`` or None.

    A node failed while the execution is pausing (or reported ``fail``), or a pause node
    is pausing. Only the
    latest run of each node counts (a restarted node appears again in the list).
    """
    seen: set[str] = set()
    for node in reversed(execution.nodes):
        if node.node_id in seen:
            continue
        seen.add(node.node_id)
        if node.status is Status.PAUSING:
            return node, "paused"
        if node.status is Status.FAIL and execution.status in _WAITS:
            return node, "failed"
    return None


def decide(
    execution: Execution,
    workflow: Workflow | None,
    rules: Sequence[Rule],
    facts: ExecutionFacts,
    now: datetime,
    calendars: Mapping[str, Calendar] | None = None,
    *,
    dry_run: bool = False,
) -> Decision:
    """What to do about ``execution`` at ``now``; ``dry_run`` is the daemon's global mode."""
    if execution.status is Status.FAIL:
        return _ended_fail(execution, workflow, rules, facts, now, calendars, dry_run)
    if execution.finished:
        blocked = _unactionable(execution, workflow)
        return Decision(
            cannot_act=blocked if execution.status is Status.APPROVAL_FAILED else (),
            reasons=(f"execution is {execution.status.value}: nothing to do",),
        )
    blocked = _unactionable(execution, workflow)
    decision = _decide_stops(execution, workflow, rules, facts, now, calendars, dry_run)
    if not blocked:
        return decision
    return replace(
        decision,
        cannot_act=blocked,
        reasons=(*decision.reasons, *(f"{n or 'execution'}: {why}" for n, why in blocked)),
    )


_UNACTIONABLE = {
    Status.WAIT_APPROVAL: "waits for an approval, which is given in the console "
    "(no documented operation approves)",
    Status.APPROVAL_FAILED: "its approval was rejected (no documented operation "
    "re-runs an approval)",
}


def _unactionable(execution: Execution, workflow: Workflow | None) -> tuple[tuple[str, str], ...]:
    """Stops the documented operations cannot act on, with the reason for a person."""
    out: list[tuple[str, str]] = []
    if execution.status is Status.UNKNOWN:
        out.append(
            (
                "",
                f"execution status {execution.raw_status!r} is not one aomd knows; "
                "it does not act on it",
            )
        )
    latest: dict[str, NodeRun] = {n.node_id: n for n in execution.nodes}
    for node in latest.values():
        label = _label(workflow, node.node_id)
        if node.status in _UNACTIONABLE:
            out.append((node.node_id, f"node {label} {_UNACTIONABLE[node.status]}"))
        elif node.status is Status.UNKNOWN:
            out.append(
                (
                    node.node_id,
                    f"node {label} reports status {node.raw_status!r}, which aomd "
                    "does not know; it does not act on it",
                )
            )
    if execution.status is Status.APPROVAL_FAILED and not out:
        out.append(("", "execution ended approvalFailed"))
    return tuple(out)


def _ended_fail(
    execution: Execution,
    workflow: Workflow | None,
    rules: Sequence[Rule],
    facts: ExecutionFacts,
    now: datetime,
    calendars: Mapping[str, Calendar] | None,
    dry_run: bool,
) -> Decision:
    """An execution reported ``fail``: ended, as the API reference reads, or a failed node
    reported that way (the status semantics are assumed). A matching rule may try its
    action once per failed node; ``AOM.31001418`` (journaled ``rejected``) means "not
    allowed here" and is never retried. Everything else is left for a person, said once."""
    failed = [(n, st) for n, st in stopped_nodes(execution, workflow) if st == "failed"]
    parts: list[Decision] = []
    blocked: list[tuple[str, str]] = []
    for node, state in failed:
        label = _label(workflow, node.node_id)
        tried = [w for w in facts.writes_for(node.node_id) if w.outcome not in RETRYABLE_OUTCOMES]
        if tried:
            last = _latest(tried)
            if last.outcome in UNRESOLVED:
                parts.append(
                    Decision(
                        recheck_at=now + RECHECK_SOON,
                        reasons=(
                            f"node {label}: {last.kind} outcome {last.outcome}; resolving it",
                        ),
                        node_id=node.node_id,
                        pending_keys=(last.key,),
                    )
                )
                continue
            why = (
                f"{last.kind} was rejected by the API (not allowed here); never retried"
                if last.outcome == "rejected"
                else f"{last.kind} was tried once ({last.outcome})"
            )
            blocked.append(
                (node.node_id, f"execution ended fail at node {label}; {why}; left for a human")
            )
            continue
        d = _decide_node(execution, workflow, rules, facts, now, calendars, dry_run, node, state)
        if d.actions or (d.rule is not None and d.recheck_at is not None):
            parts.append(d)  # acting, or a matching rule waits (delay, backoff, gate)
        else:
            blocked.append(
                (
                    node.node_id,
                    f"execution ended fail at node {label}; no rule acts on it now; "
                    "left for a human",
                )
            )
    if not failed:
        blocked.append(("", "execution ended fail; no failed node to act on; left for a human"))
    rechecks = [d.recheck_at for d in parts if d.recheck_at is not None]
    return Decision(
        actions=tuple(a for d in parts for a in d.actions),
        recheck_at=min(rechecks) if rechecks else None,
        cannot_act=tuple(blocked),
        reasons=(*(r for d in parts for r in d.reasons), *(why for _, why in blocked)),
        node_id=failed[0][0].node_id if failed else None,
        pending_keys=tuple(k for d in parts for k in d.pending_keys),
    )


def _decide_stops(
    execution: Execution,
    workflow: Workflow | None,
    rules: Sequence[Rule],
    facts: ExecutionFacts,
    now: datetime,
    calendars: Mapping[str, Calendar] | None,
    dry_run: bool,
) -> Decision:
    found = stopped_nodes(execution, workflow)
    if not found:
        running = _running_node(execution) if any("running" in r.status for r in rules) else None
        found = [running] if running is not None else []
    if not found:
        return Decision(reasons=("no failed or paused node",))
    if len(found) == 1:
        return _decide_node(execution, workflow, rules, facts, now, calendars, dry_run, *found[0])
    # Parallel branches: each stopped node on its own (attempts, backoff, deadline and
    # keys are per node), in one pass, so two failed branches restart together.
    parts = [
        _decide_node(execution, workflow, rules, facts, now, calendars, dry_run, node, state)
        for node, state in found
    ]
    rechecks = [d.recheck_at for d in parts if d.recheck_at is not None]
    unhandled = tuple(n for d in parts for n in d.unhandled_nodes)
    return Decision(
        actions=tuple(a for d in parts for a in d.actions),
        recheck_at=min(rechecks) if rechecks else None,
        unhandled_node=unhandled[0] if unhandled else None,
        unhandled_nodes=unhandled,
        reasons=tuple(r for d in parts for r in d.reasons),
        node_id=parts[0].node_id,
        rule=next((d.rule for d in parts if d.rule is not None), None),
        held=next((d.held for d in parts if d.held is not None), None),
        held_until=next((d.held_until for d in parts if d.held is not None), None),
        pending_keys=tuple(k for d in parts for k in d.pending_keys),
    )


def _decide_node(
    execution: Execution,
    workflow: Workflow | None,
    rules: Sequence[Rule],
    facts: ExecutionFacts,
    now: datetime,
    calendars: Mapping[str, Calendar] | None,
    dry_run: bool,
    node: NodeRun,
    state: str,
) -> Decision:
    """``decide`` for one stopped (or running) node."""
    begin = _ms(execution.begin_time)
    age = now - begin if begin is not None else None
    later: list[datetime] = []
    for index, rule in enumerate(rules):
        matched, at = _matches(rule, workflow, execution, node, state, begin, age)
        if at is not None and at > now:
            later.append(at)
        if matched:
            # The first match picks the action, but every matching rule's calendar gate
            # holds it (deny beats allow): a later "never during change-freeze" rule is not
            # escaped by an earlier, narrower rule that forgot its gate.
            gates = tuple(
                other
                for other in rules[index + 1 :]
                if other.gate is not None
                and _matches(other, workflow, execution, node, state, begin, age)[0]
            )
            return _Apply(
                rule,
                execution,
                workflow,
                node,
                state,
                facts,
                now,
                calendars or {},
                dry_run,
                begin,
                gates,
            ).run()
    label = _label(workflow, node.node_id)
    return Decision(
        recheck_at=min(later) if later else None,
        unhandled_node=node.node_id if state != "running" else None,
        unhandled_nodes=(node.node_id,) if state != "running" else (),
        reasons=(f"node {label} {state}: no rule matches",),
        node_id=node.node_id,
    )


def _running_node(execution: Execution) -> tuple[NodeRun, str] | None:
    """The node a running execution is at (for opt-in ``status: running`` rules)."""
    if execution.status is not Status.EXECUTING or not execution.nodes:
        return None
    return execution.nodes[-1], "running"


def _ms(value: int | None) -> datetime | None:
    """Epoch milliseconds as a datetime; None when absent or out of range: a malformed
    reply (year 10**7) must read as "time unknown", not raise on every poll."""
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _node_name(workflow: Workflow | None, node_id: str) -> str | None:
    if workflow is None:
        return None
    for wn in workflow.nodes:
        if wn.id == node_id:
            return wn.name or None
    return None


def _node_category(workflow: Workflow | None, node_id: str) -> str | None:
    if workflow is None:
        return None
    return next((wn.category or None for wn in workflow.nodes if wn.id == node_id), None)


def _label(workflow: Workflow | None, node_id: str) -> str:
    name = _node_name(workflow, node_id)
    return f"{name} ({node_id})" if name and name != node_id else node_id


def _output_text(output: Mapping[str, object]) -> str:
    parts = []
    for value in output.values():
        parts.append(value if isinstance(value, str) else json.dumps(value, default=str))
    return "\n".join(parts)


def _matches(
    rule: Rule,
    workflow: Workflow | None,
    execution: Execution,
    node: NodeRun,
    state: str,
    begin: datetime | None,
    age: timedelta | None,
) -> tuple[bool, datetime | None]:
    """(matches now, the time it starts to match if only ``min_age`` or
    ``not_finished_by`` is missing)."""
    if state not in rule.status:
        return False, None
    if not rule.matches_workflow(execution.workflow_id, workflow):
        return False, None
    if rule.node_id is not None and node.node_id != rule.node_id:
        return False, None
    if rule.node_name is not None:
        name = _node_name(workflow, node.node_id)
        if name is None or not fnmatch.fnmatchcase(name, rule.node_name):
            return False, None
    if rule.node_category is not None:
        category = _node_category(workflow, node.node_id)
        if category is None or not fnmatch.fnmatchcase(category, rule.node_category):
            return False, None
    if rule.output_regex is not None and not rule.output_regex.search(_output_text(node.output)):
        return False, None
    if rule.not_finished_by is not None:
        if begin is None or age is None:
            return False, None
        due = _first_clock_time(begin, *rule.not_finished_by)
        if begin + age < due:
            return False, due
    if rule.min_age is not None or rule.max_age is not None:
        if age is None or begin is None:
            return False, None
        if rule.max_age is not None and age > rule.max_age:
            return False, None
        if rule.min_age is not None and age < rule.min_age:
            return False, begin + rule.min_age
    return True, None


def _first_clock_time(begin: datetime, hour: int, minute: int, zone: str) -> datetime:
    """The first instant at or after ``begin`` whose wall-clock time in ``zone`` is
    ``hour:minute`` (a time in a DST gap falls at the end of the gap, UTC arithmetic)."""
    tz = ZoneInfo(zone)
    local = begin.astimezone(tz)
    for days in range(3):
        day = local.date() + timedelta(days=days)
        at = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
        at = at.astimezone(UTC).astimezone(tz)  # normalise a time in a DST gap
        if at >= local:
            return at.astimezone(UTC)
    return (local + timedelta(days=1)).astimezone(UTC)  # unreachable: a day has every time


def _split_key(write: PastWrite) -> tuple[str, int]:
    """(action segment, attempt) of a journaled key; falls back to kind/attempt."""
    return key_segment(write.key) or (write.kind, write.attempt)


def _latest(writes: Sequence[PastWrite]) -> PastWrite:
    """The most recent write; on equal times the later one in journal order."""
    return max(enumerate(writes), key=lambda iw: (iw[1].at, iw[0]))[1]


def _jitter_unit(key: str) -> float:
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _counting(calendar: str | None) -> str:
    return f" counted in calendar {calendar!r}" if calendar else ""


def _fmt(td: timedelta) -> str:
    total = round(td.total_seconds())
    if total <= 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            out.append(f"{total // size}{unit}")
            total %= size
    return "".join(out)


class _Apply:
    """Applying one matched rule to the stopped node (a class only to share the inputs)."""

    def __init__(
        self,
        rule: Rule,
        execution: Execution,
        workflow: Workflow | None,
        node: NodeRun,
        state: str,
        facts: ExecutionFacts,
        now: datetime,
        calendars: Mapping[str, Calendar],
        global_dry_run: bool,
        begin: datetime | None,
        other_gates: tuple[Rule, ...] = (),
    ) -> None:
        self.rule = rule
        self.gated = tuple(r for r in (rule, *other_gates) if r.gate is not None)
        self.execution = execution
        self.node = node
        self.state = state
        self.facts = facts
        self.now = now
        self.calendars = calendars
        self.dry = global_dry_run or rule.dry_run
        self.fp = observe(execution, node.node_id)
        self.graph = workflow is not None and workflow.is_graph
        self.label = _label(workflow, node.node_id)
        self.deadline_at = (
            self._after(begin, rule.deadline, rule.deadline_counting)
            if begin and rule.deadline
            else None
        )
        self.age = now - begin if begin is not None else None
        self.writes = facts.writes_for(node.node_id)

    # -- helpers ---------------------------------------------------------------------
    def _after(self, start: datetime, duration: timedelta, counting: str | None) -> datetime:
        """``start + duration``, counting only time inside ``counting`` when given."""
        if counting is None:
            return start + duration
        return counted_until(self.calendars.get(counting), start, duration)

    def _visible(self, w: PastWrite) -> bool:
        return w.outcome != "dry_run" or self.dry

    def _resend_at(self, w: PastWrite) -> datetime:
        """When a write that changed nothing goes out again under the same key: at the
        executor's prompt retry while its budget lasts, else after ``backoff.initial``."""
        prompt = self.facts.retry_at.get(w.key) if w.outcome == "failed" else None
        return prompt if prompt is not None else w.at + self.rule.backoff.initial

    def _done(self, why: str, recheck: datetime | None = None) -> Decision:
        return Decision(
            recheck_at=self._clamp(recheck),
            reasons=(why,),
            node_id=self.node.node_id,
            rule=self.rule.name,
        )

    def _clamp(self, at: datetime | None) -> datetime | None:
        if at is None:
            return None
        return at if at > self.now else self.now + RECHECK_SOON

    def _soonest(self, *times: datetime | None) -> datetime | None:
        real = [t for t in times if t is not None and t > self.now]
        return min(real) if real else None

    def _gate(self) -> tuple[bool, datetime | None, str]:
        """(open now, next change, description): closed while any matching rule's gate is."""
        for rule in self.gated:
            name = rule.gate
            assert name is not None  # only gated rules are kept
            cal = self.calendars.get(name)
            if cal is None:
                return False, None, f"calendar {name!r} is unknown"
            inside = rule.gate_inside is not None
            if cal.active_at(self.now) == inside:
                continue
            nxt = cal.next_transition(self.now)
            where = "inside" if inside else "outside"
            held = "" if rule is self.rule else f" (gate of rule {rule.name!r})"
            return False, nxt, f"waiting to be {where} calendar {name!r}{held}"
        return True, None, ""

    def _action(
        self, kind: str, segment: str, attempt: int, reason: str, *, fallback: bool
    ) -> Decision:
        is_open, nxt, why = self._gate()
        if not is_open:
            waiting = self._done(
                f"node {self.label} {self.state}: {segment} {why}",
                self._soonest(nxt, None if fallback else self.deadline_at),
            )
            return dataclasses.replace(waiting, held=f"{segment} {why}", held_until=nxt)
        notify = self.rule.notify
        if notify is None:
            notify = kind in ("terminate", "notify")
        action = Action(
            kind=kind,
            workflow_id=self.execution.workflow_id,
            execution_id=self.execution.execution_id,
            node_id=self.node.node_id,
            attempt=attempt,
            rule=self.rule.name,
            reason=reason,
            key=execution_key(self.execution.execution_id, self.node.node_id, segment, attempt),
            observed=self.fp,
            dry_run=self.dry,
            notify=notify,
            webhook=self.rule.webhook,
            fallback=fallback,
        )
        return Decision(
            actions=(action,),
            recheck_at=self.now + RECHECK_SOON,
            node_id=self.node.node_id,
            rule=self.rule.name,
        )

    # -- the decision ------------------------------------------------------------------
    def run(self) -> Decision:
        rule = self.rule
        segs = [(w, *_split_key(w)) for w in self.writes]
        visible = [(w, s, n) for w, s, n in segs if self._visible(w)]

        fallback = [(w, s, n) for w, s, n in visible if s.startswith("fallback-")]
        for w, s, _ in fallback:
            if w.outcome in UNRESOLVED:
                # Sent, or maybe sent (a kill or a lost reply): resolved by reading state
                # like any other write, never taken as done nor resent blindly.
                return Decision(
                    recheck_at=self.now + RECHECK_SOON,
                    reasons=(
                        f"node {self.label} {self.state}: fallback {s[9:]} outcome "
                        f"{w.outcome}; resolving it by reading state",
                    ),
                    node_id=self.node.node_id,
                    rule=rule.name,
                    pending_keys=(w.key,),
                )
            if w.outcome not in RETRYABLE_OUTCOMES:
                return self._done(
                    f"node {self.label} {self.state}: fallback {s[9:]} already sent "
                    f"({w.outcome}); nothing more to do"
                )
        main: list[tuple[PastWrite, str, int]] = [
            (w, s, n) for w, s, n in visible if s == rule.action
        ]
        used = [(w, n) for w, _, n in main if w.outcome not in RETRYABLE_OUTCOMES]
        if rule.action == "notify" and used:
            return self._done(f"node {self.label} {self.state}: already notified")

        counted = [w for w, _, _ in visible if w.outcome not in RETRYABLE_OUTCOMES]
        if counted:
            latest = _latest(counted)
            # In a graph another branch moving changes the execution's current node but
            # not this stop: compare this node (and the execution's status) only.
            if latest.observed == self.fp or (self.graph and same_stop(latest.observed, self.fp)):
                return Decision(
                    recheck_at=self.now + RECHECK_SOON,
                    reasons=(
                        f"node {self.label} {self.state}: unchanged since {_split_key(latest)[0]} "
                        f"attempt {_split_key(latest)[1]} ({latest.outcome}); waiting for it to "
                        "take effect",
                    ),
                    node_id=self.node.node_id,
                    rule=rule.name,
                    pending_keys=(latest.key,) if latest.outcome in UNRESOLVED else (),
                )

        retry_fb = [(w, s, n) for w, s, n in fallback if w.outcome in RETRYABLE_OUTCOMES]
        limit = 1 if rule.action == "notify" else rule.max_attempts
        past_deadline = self.deadline_at is not None and self.now >= self.deadline_at
        if retry_fb or len(used) >= limit or past_deadline:
            return self._fallback(len(used), limit, past_deadline, retry_fb, segs)
        return self._main(main, used, limit, segs)

    def _fallback(
        self,
        used: int,
        limit: int,
        past_deadline: bool,
        retry: list[tuple[PastWrite, str, int]],
        segs: list[tuple[PastWrite, str, int]],
    ) -> Decision:
        rule = self.rule
        segment = f"fallback-{rule.fallback}"
        kind: str = "notify" if rule.fallback == "leave" else rule.fallback
        if retry:
            w, segment, attempt = max(retry, key=lambda x: (x[0].at, x[2]))
            kind = w.kind
            wait_until = self._resend_at(w)
            if wait_until > self.now:
                return self._done(
                    f"node {self.label} {self.state}: resending {segment} after {w.outcome} "
                    f"at {wait_until.isoformat()}",
                    wait_until,
                )
            why = f"resending after outcome {w.outcome}"
        else:
            attempt = 1 + max((n for _, s, n in segs if s == segment), default=0)
            if past_deadline and self.age is not None:
                assert rule.deadline is not None
                why = (
                    f"deadline {_fmt(rule.deadline)} passed (execution age {_fmt(self.age)}, "
                    f"{used} of {limit} attempts used)"
                )
            else:
                why = f"{used} of {limit} attempts used"
        what = {
            "skip": "fallback: skip the node",
            "terminate": "fallback: terminate the execution",
            "leave": "fallback: leave it for a human",
        }[rule.fallback]
        reason = f"node {self.label} {self.state}, {why}; {what}"
        return self._action(kind, segment, attempt, reason, fallback=True)

    def _main(
        self,
        main: list[tuple[PastWrite, str, int]],
        used: list[tuple[PastWrite, int]],
        limit: int,
        segs: list[tuple[PastWrite, str, int]],
    ) -> Decision:
        rule = self.rule
        now = self.now
        latest = max(main, key=lambda x: (x[0].at, x[2]))[0] if main else None
        waits: list[tuple[datetime, str]] = []
        notes: list[str] = []
        if latest is not None and latest.outcome in RETRYABLE_OUTCOMES:
            attempt = _split_key(latest)[1]
            waits.append((self._resend_at(latest), f"resend after {latest.outcome}"))
            notes.append(f"resending after outcome {latest.outcome}")
        else:
            attempt = 1 + max((n for _, s, n in segs if s == rule.action), default=0)
        key = execution_key(self.execution.execution_id, self.node.node_id, rule.action, attempt)
        if used:
            last = _latest([w for w, _ in used])
            wait = rule.backoff.wait(len(used), _jitter_unit(key))
            # Back off from the new failure, not from our last write: a node that ran
            # longer than the backoff must still get its pause before the next try.
            base = last.at
            ended = _ms(self.node.end_time)
            if ended is not None:
                base = max(base, ended)
            waits.append(
                (
                    self._after(base, wait, rule.backoff.counting),
                    f"backoff {_fmt(wait)}{_counting(rule.backoff.counting)}",
                )
            )
            notes.append(f"backoff {_fmt(wait)} elapsed")
        if rule.delay > timedelta(0):
            first = self.facts.first_seen.get(self.node.node_id, now)
            waits.append(
                (
                    self._after(first, rule.delay, rule.delay_counting),
                    f"delay {_fmt(rule.delay)}{_counting(rule.delay_counting)}",
                )
            )
            stopped_for = now - first
            notes.append(f"{self.state} for {_fmt(stopped_for)} (delay {_fmt(rule.delay)})")
        pending = [(t, what) for t, what in waits if t > now]
        if pending:
            ready, what = max(pending)
            return self._done(
                f"node {self.label} {self.state}: {rule.action} attempt {len(used) + 1} of "
                f"{limit} waits for {what} until {ready.isoformat()}",
                self._soonest(ready, self.deadline_at),
            )
        verb = {
            "restart": "restart",
            "skip": "skip",
            "continue": "continue",
            "terminate": "terminate the execution",
            "notify": "notify",
        }[rule.action]
        tail = f", {', '.join(notes)}" if notes else ""
        if rule.action in ("terminate", "notify") and not used:
            # one terminate ends the execution: "attempt 1 of 3" read as if it would be
            # terminated three times; the count matters only when a send is repeated
            counted = ""
        else:
            counted = f" (attempt {len(used) + 1} of {limit})"
        reason = f"node {self.label} {self.state}{counted}{tail}; {verb}"
        return self._action(rule.action, rule.action, attempt, reason, fallback=False)
