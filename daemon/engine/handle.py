"""Turn one observed execution into journaled writes: the glue around pure ``decide``.

Reads the journal's facts, records when a stopped node was first seen, asks ``decide``
what to do, and sends each action through the executor (which owns exactly-once).
Returns when to look at this execution again so the watcher can poll sooner.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog

from daemon.calendar.calendar import Calendar
from daemon.cloud.port import CloudClient
from daemon.engine.decision_log import log_decision
from daemon.engine.executor import Executor
from daemon.engine.notify import Notifier
from daemon.engine.overrides import OverrideBook
from daemon.engine.resolution import ReadBack
from daemon.kernel.actions import OPERATIONS
from daemon.kernel.clock import Clock
from daemon.kernel.facts import ExecutionFacts, PastWrite
from daemon.kernel.keys import cannot_act_key, unhandled_key
from daemon.kernel.model import Execution, Workflow
from daemon.kernel.outcomes import RETRYABLE_OUTCOMES
from daemon.kernel.ports import FactsPort
from daemon.kernel.shards import ShardOf, no_shard
from daemon.kernel.writes import WriteIntent, WriteReport
from daemon.policy import Action, decide, observed, stopped_nodes
from daemon.policy.observe import find_node

log = structlog.get_logger("aomd.decide")

CANNOT_ACT_MEMORY = 10_000
"""How many reported stops the handler remembers to skip the journal on every poll."""


class ExecutionHandler:
    def __init__(
        self,
        *,
        client: CloudClient,
        journal: FactsPort,
        read_back: ReadBack | None = None,
        executor: Executor,
        clock: Clock,
        notifier: Notifier | None,
        rules: Callable[[], Sequence[Any]],
        calendars: Callable[[], Mapping[str, Calendar]],
        on_unhandled: Callable[[int], None] | None = None,
        overrides: OverrideBook | None = None,
        shard_of: ShardOf = no_shard,
    ) -> None:
        self.overrides = overrides
        self.shard_of = shard_of
        self.held: dict[tuple[str, str], str] = {}
        """(execution, node) whose action an override or a calendar gate holds -> why;
        logged once each (``action_held``) and counted (``aomd_held_stops``)."""
        self._held_of: dict[str, str] = {}
        """execution -> workflow, for executions with a ``held`` entry (``retire``)."""
        self.client = client
        self.journal = journal
        self.read_back = read_back or ReadBack(client=client, clock=clock)
        self.executor = executor
        self.clock = clock
        self.notifier = notifier
        self.rules = rules
        self.calendars = calendars
        self.on_unhandled = on_unhandled
        self.unhandled: dict[tuple[str, str], datetime] = {}
        """(execution, node) paused with no matching rule; logged once each."""
        self.cannot_act: dict[tuple[str, str, str], str] = {}
        """(execution, node or "", status) -> reason, for stops the API cannot act on, reported
        once; the oldest are forgotten past ``CANNOT_ACT_MEMORY`` (the journal still
        holds every report, so a forgotten one is not told twice)."""
        self._settled: dict[tuple[str, str, int | None], None] = {}
        """Ended executions with nothing left to do, by (id, status, last update): an
        insertion-ordered set, oldest forgotten first."""
        self._workflow_of: dict[str, str] = {}
        self._sighted: dict[str, str] = {}
        """execution -> workflow, for executions with journaled sightings: once the
        execution is no longer active they are deleted (``retire``), not kept until
        retention (a row per stop, millions at a large fleet)."""
        """execution -> workflow, for executions with an ``unhandled`` entry (``retire``)."""

    async def __call__(self, workflow: Workflow, execution: Execution) -> datetime | None:
        ended = _ended_state(execution)
        if ended is not None and ended in self._settled:
            return None  # an ended execution already dealt with, unchanged since
        now = self.clock.now()
        facts = await self.journal.facts(execution.execution_id)
        retry_at = {
            w.key: due
            for w in facts.writes
            if w.outcome == "failed" and (due := self.executor.retries.due(w.key)) is not None
        }
        if retry_at:
            facts = dataclasses.replace(facts, retry_at=retry_at)
        nodes = [n.node_id for n, _ in stopped_nodes(execution, workflow)]
        stale = [
            n for n in facts.first_seen if n not in nodes or _stopped_anew(facts, execution, n)
        ]
        if stale:
            # A sighting is of one stop: once the node ran again (seen running, or
            # stopped in a new state since our write) its next stop waits its own
            # ``delay`` instead of inheriting the first one's.
            for n in stale:
                await self.journal.forget_seen(execution.execution_id, n)
            first_seen = {n: at for n, at in facts.first_seen.items() if n not in stale}
            facts = dataclasses.replace(facts, first_seen=first_seen)
        for node in nodes:
            if node not in facts.first_seen:
                await self.journal.saw(execution.execution_id, node, now)
                facts = dataclasses.replace(facts, first_seen={**facts.first_seen, node: now})
        if facts.first_seen and not execution.status.finished:
            # (an ended one handed on for a day keeps them: retire would drop and the
            # next hand-on write them again, every poll)
            self._sighted[execution.execution_id] = workflow.id
        decision = decide(
            execution,
            workflow,
            self.rules(),
            facts,
            now,
            self.calendars(),
            dry_run=self.executor.dry_run,
        )
        await self._track_unhandled(workflow, execution, decision.unhandled_nodes, now)
        for node, why in decision.cannot_act:
            await self._cannot_act(workflow, execution, node, why)
        held = (
            self.overrides.held(workflow.id, decision.rule, now)
            if self.overrides is not None and decision.actions
            else None
        )
        if held is not None:
            self._track_held(execution, decision.node_id, held.describe(), held.end, decision.rule)
            recheck = decision.recheck_at
            return held.end if recheck is None else min(recheck, held.end)
        self._track_held(
            execution, decision.node_id, decision.held, decision.held_until, decision.rule
        )
        for key in decision.pending_keys:
            # A write whose outcome we never learned (crash, lost reply): resolve it by
            # reading the execution; decide re-sends the same key only if not applied.
            past = next((w for w in facts.writes if w.key == key), None)
            if past is not None:
                await self._resolve_past(workflow, execution, past)
        recheck = decision.recheck_at
        for action in decision.actions:
            report = await self._act(workflow, execution, action)
            if report.retry_at is not None and (recheck is None or report.retry_at < recheck):
                # A write that failed without effect: look again when its prompt retry
                # is due (seconds), and decide then on fresh state.
                recheck = report.retry_at
            if report.outcome in ("refused", "unknown", "failed"):
                # A refused or unresolved write is retried by the next level-triggered
                # pass (at most the watcher's fast interval away), never by a blind
                # resend here. Not sooner: while a guard refuses for up to a minute, a
                # poll per second per workflow would spike API calls exactly when aomd
                # should calm down.
                break
        if (
            ended is not None
            and not decision.actions
            and not decision.pending_keys
            and recheck is None
        ):
            # Ended (fail / approvalFailed) and nothing left to do: the watcher hands it
            # on every poll for a day, so remember it instead of reading the journal.
            self._settled[ended] = None
            while len(self._settled) > CANNOT_ACT_MEMORY:
                del self._settled[next(iter(self._settled))]
        return recheck

    def _track_held(
        self,
        execution: Execution,
        node: str | None,
        why: str | None,
        until: datetime | None,
        rule: str | None = None,
    ) -> None:
        """Log a hold once per stop and reason, and keep the held-stops gauge's set."""
        eid = execution.execution_id
        stale = [k for k in self.held if k[0] == eid and (k[1] != node or why is None)]
        for key in stale:
            del self.held[key]
        if node is None or why is None or self.held.get((eid, node)) == why:
            if stale and self.on_unhandled is not None:
                self.on_unhandled(len(self.unhandled))
            return
        self.held[(eid, node)] = why
        self._held_of[eid] = execution.workflow_id
        if self.on_unhandled is not None:  # the pump sets both gauges
            self.on_unhandled(len(self.unhandled))
        log_decision(
            log.info,
            "action_held",
            workflow_id=execution.workflow_id,
            execution_id=eid,
            node_id=node,
            rule=rule,
            action="hold",
            attempt=None,
            reason=why,
            outcome="held",
            dry_run=self.executor.dry_run,
            until=None if until is None else until.isoformat(),
        )

    async def _track_unhandled(
        self, workflow: Workflow, execution: Execution, nodes: Sequence[str], now: datetime
    ) -> None:
        key_prefix = execution.execution_id
        for key in [k for k in self.unhandled if k[0] == key_prefix and k[1] not in nodes]:
            del self.unhandled[key]
        if not nodes:
            self._workflow_of.pop(key_prefix, None)
        for node in nodes:
            await self._report_once(workflow, execution, node, now)
        if self.on_unhandled is not None:
            self.on_unhandled(len(self.unhandled))

    async def _report_once(
        self, workflow: Workflow, execution: Execution, node: str, now: datetime
    ) -> None:
        key_prefix = execution.execution_id
        if (key_prefix, node) not in self.unhandled:
            self.unhandled[(key_prefix, node)] = now
            self._workflow_of[key_prefix] = workflow.id
            reason = "no rule matches this stopped node; left for a human"
            first = await self.executor.record(
                WriteIntent(
                    key=unhandled_key(execution.execution_id, node),
                    kind="unhandled",
                    workflow_id=workflow.id,
                    execution_id=execution.execution_id,
                    node_id=node,
                    reason=reason,
                    dry_run=self.executor.dry_run,
                ),
                "reported",
            )
            if first:  # told once, not again after every restart
                self._report_unhandled(workflow, execution, node, reason)

    async def _cannot_act(
        self, workflow: Workflow, execution: Execution, node: str, reason: str
    ) -> None:
        run = find_node(execution, node) if node else None
        status = (
            (run.raw_status or run.status.value)
            if run is not None
            else (execution.raw_status or execution.status.value)
        )
        seen = (execution.execution_id, node, status)
        if seen in self.cannot_act:
            return
        self.cannot_act[seen] = reason
        while len(self.cannot_act) > CANNOT_ACT_MEMORY:
            del self.cannot_act[next(iter(self.cannot_act))]
        first = await self.executor.record(
            WriteIntent(
                key=cannot_act_key(execution.execution_id, node, status),
                kind="cannot_act",
                workflow_id=workflow.id,
                execution_id=execution.execution_id,
                node_id=node or None,
                reason=reason,
                dry_run=self.executor.dry_run,
            ),
            "reported",
        )
        if not first:  # told before, maybe by an earlier run of aomd
            return
        log_decision(
            log.warning,
            "stop_not_actionable",
            workflow_id=workflow.id,
            execution_id=execution.execution_id,
            node_id=node or None,
            rule=None,
            action="leave",
            attempt=None,
            reason=reason,
            outcome="cannot_act",
            dry_run=self.executor.dry_run,
        )
        if self.notifier is not None:
            self.notifier.notify(
                "cannot_act",
                {
                    "workflow_id": workflow.id,
                    "workflow_name": workflow.name,
                    "execution_id": execution.execution_id,
                    "execution_status": execution.raw_status or execution.status.value,
                    "node_id": node or None,
                    "reason": reason,
                },
            )

    def _report_unhandled(
        self, workflow: Workflow, execution: Execution, node: str, reason: str
    ) -> None:
        log_decision(
            log.warning,
            "unhandled_pause",
            workflow_id=workflow.id,
            execution_id=execution.execution_id,
            node_id=node,
            rule=None,
            action="leave",
            attempt=None,
            reason=reason,
            outcome="unhandled",
            dry_run=self.executor.dry_run,
        )
        if self.notifier is not None:
            self.notifier.notify(
                "unhandled_pause",
                {
                    "workflow_id": workflow.id,
                    "workflow_name": workflow.name,
                    "execution_id": execution.execution_id,
                    "node_id": node,
                },
            )

    def retire(self, workflow_id: str, active: Collection[str] | None) -> Awaitable[None] | None:
        """The watcher's ``retire`` hook: ``active`` are the executions of ``workflow_id``
        still running. Entries of the others are dropped; without this an execution
        finished by a person while unhandled would stay counted (and held) forever.
        Returns the deletion of their journaled sightings, when there are any.

        ``None``: the workflow left this replica's watch (the policy's scope, or its
        shard moved to another replica). Only what this process holds in memory is
        dropped: its executions may still be running, and the journal's sightings are
        what the next holder's delays count from."""
        gone = active is None
        active = () if active is None else active
        for key in [
            k for k in self.held if k[0] not in active and self._held_of.get(k[0]) == workflow_id
        ]:
            del self.held[key]
            self._held_of.pop(key[0], None)
        self._drop(
            [
                k
                for k in self.unhandled
                if k[0] not in active and self._workflow_of.get(k[0]) == workflow_id
            ]
        )
        over = [e for e, w in self._sighted.items() if w == workflow_id and e not in active]
        if gone:
            for eid in over:
                self._sighted.pop(eid, None)
            return None
        return self._forget(over) if over else None

    async def _forget(self, executions: list[str]) -> None:
        for eid in executions:
            await self.journal.forget_execution(eid)
            self._sighted.pop(eid, None)

    def _drop(self, keys: list[tuple[str, str]]) -> None:
        for key in keys:
            del self.unhandled[key]
            self._workflow_of.pop(key[0], None)
        if keys and self.on_unhandled is not None:
            self.on_unhandled(len(self.unhandled))

    async def _resolve_past(
        self, workflow: Workflow, execution: Execution, past: PastWrite
    ) -> None:
        intent = _intent(workflow.id, execution.execution_id, past)
        await self.executor.resolve_open(
            intent,
            self.read_back.operation(
                workflow.id,
                execution.execution_id,
                past.kind,
                past.node_id,
                past.observed,
                workflow,
            ),
            shard=self.shard_of(workflow.id),
        )

    async def _act(self, workflow: Workflow, execution: Execution, action: Action) -> WriteReport:
        wid, eid = workflow.id, execution.execution_id
        intent = _intent(wid, eid, action, reason=action.reason, dry_run=action.dry_run)

        async def call() -> object:
            if action.kind in OPERATIONS:
                assert action.node_id is not None
                return await self.client.operate(
                    wid,
                    eid,
                    action.kind,  # type: ignore[arg-type]  # narrowed by OPERATIONS
                    action.node_id,
                )
            if action.kind == "terminate":
                return await self.client.terminate(wid, eid)
            if action.kind == "notify":
                if self.notifier is not None:
                    self.notifier.notify(
                        "gave_up",
                        {
                            "workflow_id": wid,
                            "workflow_name": workflow.name,
                            "execution_id": eid,
                            "node_id": action.node_id,
                            "rule": action.rule,
                            "reason": action.reason,
                        },
                        action.webhook,
                    )
                return None
            raise ValueError(f"unknown action kind {action.kind!r}")

        read_back = self.read_back.operation(
            wid, eid, action.kind, action.node_id, action.observed, workflow
        )
        report = await self.executor.write(
            intent, call, read_back if action.kind != "notify" else None, shard=self.shard_of(wid)
        )
        if (
            (action.kind == "terminate" or action.notify)
            and action.kind != "notify"
            and report.outcome in ("applied", "resolved_applied")
            and self.notifier is not None
        ):
            self.notifier.notify(
                "terminated" if action.kind == "terminate" else action.kind,
                {
                    "workflow_id": wid,
                    "workflow_name": workflow.name,
                    "execution_id": eid,
                    "rule": action.rule,
                    "reason": action.reason,
                },
                action.webhook,
            )
        return report


def _ended_state(execution: Execution) -> tuple[str, str, int | None] | None:
    """The identity of an ended execution's state (None while it runs): a person
    restarting it changes the status or the update time, and it is looked at again."""
    if not execution.finished:
        return None
    status = execution.raw_status or execution.status.value
    return (execution.execution_id, status, execution.last_update_time)


def _stopped_anew(facts: ExecutionFacts, execution: Execution, node_id: str) -> bool:
    """Whether ``node_id`` stopped again since it was first seen stopped: a write for it
    went out after the sighting and the node's state has moved since that write (the
    node may have failed again between two polls, never seen running)."""
    seen_at = facts.first_seen[node_id]
    now = observed(execution, node_id)
    return any(
        w.node_id == node_id
        and w.at >= seen_at
        and w.outcome not in RETRYABLE_OUTCOMES
        and w.observed
        and w.observed != now
        for w in facts.writes
    )


def _intent(
    wid: str, eid: str, src: Action | PastWrite, *, reason: str = "", dry_run: bool = False
) -> WriteIntent:
    """The intent for a decided action, or for re-resolving a past write (same key)."""
    return WriteIntent(
        key=src.key,
        kind=src.kind,
        workflow_id=wid,
        execution_id=eid,
        node_id=src.node_id,
        attempt=src.attempt,
        rule=src.rule,
        reason=reason,
        dry_run=dry_run,
        observed=src.observed,
    )
