"""Scheduled work: run workflows and DataArts task actions at their fire times, once.

Each fire time has the idempotency key ``schedule/<account>/<name>/<fire time>``. The
journal intent is written before the call, so a restart around the fire time finds the
key and never runs it twice. Before an execute is sent, the executions that already exist
are journaled with the intent as evidence: a lost or unreadable reply is then resolved
from the executions that appeared *after* we sent (``resolution.resolve_execute``), so a
cron or manual run near the fire time can never pass for ours. Fire times inside a
``blocked_by`` calendar are journaled as skipped, late ones beyond
``misfire_grace_seconds`` as missed (each in one atomic step), and with ``coalesce``
only the latest of several due fire times runs. The first start on an empty journal
looks at nothing before it started.

Catch-up (``catch_up: once|all``): once no ``blocked_by`` calendar is active, the blocked
fire times since the schedule's last regular fire time (and within ``catch_up_window``)
run under their own ``catchup/...`` key, so a restart at the freeze end, or a daemon down
across it, runs them once, never twice. ``overlap`` looks at the executions read for the
evidence anyway: a still running one makes the run skipped (journaled) or is terminated
first, under an ``overlap/...`` key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import structlog

from daemon.calendar.calendar import Calendar
from daemon.calendar.firetimes import Fire, ScheduleSources, fire_times, next_fire
from daemon.cloud.port import CloudClient
from daemon.engine.decision_log import log_decision
from daemon.engine.executor import Executor
from daemon.engine.notify import Notifier
from daemon.engine.resolution import ExecuteEvidence, ReadBack
from daemon.journal.store import Journal
from daemon.kernel.keys import catch_up_key, overlap_key, schedule_key
from daemon.kernel.model import Execution
from daemon.kernel.outcomes import RETRYABLE_OUTCOMES, UNRESOLVED
from daemon.kernel.shards import ShardOf, no_shard
from daemon.kernel.writes import WriteIntent, WriteReport
from daemon.policy.observe import observed
from daemon.policy.schedule_spec import ScheduleSpec

log = structlog.get_logger("aomd.schedules")

LOOKBACK = timedelta(days=1)
"""How far back a start-up looks for fire times it may have slept through."""


@dataclass(frozen=True, slots=True)
class FireResult:
    schedule: str
    fire_time: datetime
    outcome: str
    catch_up: bool = False
    """A catch-up run of a blocked fire time (``fire_time`` is the blocked one)."""


class ScheduleRunner:
    def __init__(
        self,
        *,
        client: CloudClient,
        journal: Journal,
        executor: Executor,
        read_back: ReadBack | None = None,
        account: str,
        default_workspace: str | None = None,
        notifier: Notifier | None = None,
        shard_of: ShardOf = no_shard,
    ) -> None:
        """``shard_of``: with hash-sharded accounts every schedule of the account is the
        first bucket's (one runner per account, whatever workflows it starts)."""
        self.notifier = notifier
        self.shard_of = shard_of
        self.read_back = read_back or ReadBack(client=client, clock=executor.clock)
        self.client = client
        self.journal = journal
        self.executor = executor
        self.account = account
        self.default_workspace = default_workspace
        self._last_tick: datetime | None = None
        self.retry_at: datetime | None = None
        """Earliest prompt retry of a run that failed without effect in the last tick: the
        loop wakes then, and the fire time (still inside its misfire grace) is sent again
        under the same key."""
        self._first_tick: datetime | None = None
        self._born = executor.clock.now()
        """When this runner was built: on an empty journal, fire times from here on are
        aomd's (start-up may take a while, many emulated minutes on a fast clock)."""
        """When this account's runner first ever ticked (journaled): fire times before
        it were never aomd's to run, report or coalesce."""

    def next_fire(
        self,
        schedules: Sequence[ScheduleSpec],
        calendars: Mapping[str, Calendar],
        sources: ScheduleSources,
        after: datetime,
    ) -> datetime | None:
        """The soonest fire time of any schedule (the waker's next instant), or the end
        of a blocking calendar where a schedule catches up then (one second past it, so
        ``active_at`` already reads it closed)."""
        fires = [f.time for s in schedules if (f := next_fire(s, calendars, after, sources))]
        for spec in schedules:
            if spec.catch_up == "skip":
                continue
            for name in spec.blocked_by:
                edge = calendars[name].next_transition(after)
                if edge is not None:
                    fires.append(edge + timedelta(seconds=1))
        return min(fires, default=None)

    async def tick(
        self,
        schedules: Sequence[ScheduleSpec],
        calendars: Mapping[str, Calendar],
        sources: ScheduleSources,
        now: datetime,
    ) -> list[FireResult]:
        last = self._last_tick or await self._checkpoint(now)
        first = self._first_tick = self._first_tick or await self._first(now)
        # Bounded like the journaled checkpoint: a wall clock that jumps far ahead must
        # not turn into one journaled "missed" row per fire time since the last tick.
        since = max(last, now - LOOKBACK) if last is not None else now
        results: list[FireResult] = []
        self.retry_at = None
        for spec in schedules:
            grace = timedelta(seconds=spec.misfire_grace_seconds)
            # A fire time that was due at the last tick but did not run (refused by a
            # guard, a transient error, no workflow of that name) ages out of the grace
            # window between ticks: look back one grace period further so it is
            # journaled as missed instead of vanishing. One that ran is a duplicate.
            # Not on the very first start: nothing before aomd ever ran is its to run.
            start = max(min(since, now) - grace, first)
            fires = fire_times(spec, calendars, start, now + timedelta(microseconds=1), sources)
            due = [f for f in fires if now - f.time <= grace]
            missed = [f for f in fires if now - f.time > grace]
            for fire in missed:
                results.append(await self._record(spec, fire, "missed", "later than misfire grace"))
            runnable = [f for f in due if f.blocked_by is None]
            for fire in due:
                if fire.blocked_by is not None:
                    results.append(
                        await self._record(
                            spec, fire, "skipped", f"inside blocking calendar {fire.blocked_by}"
                        )
                    )
            if spec.coalesce and len(runnable) > 1:
                for fire in runnable[:-1]:
                    results.append(
                        await self._record(spec, fire, "coalesced", "a later fire time ran instead")
                    )
                runnable = runnable[-1:]
            for fire in runnable:
                results.append(await self._run(spec, fire, now))
            if spec.catch_up != "skip" and not runnable:
                results.extend(await self._catch_up(spec, calendars, sources, now, first))
        self._last_tick = now
        await self._save_checkpoint(now)
        return [r for r in results if r.outcome != "duplicate"]

    async def _catch_up(
        self,
        spec: ScheduleSpec,
        calendars: Mapping[str, Calendar],
        sources: ScheduleSources,
        now: datetime,
        first: datetime,
    ) -> list[FireResult]:
        """Run the blocked fire times since the last regular one, once each (``all``) or
        the latest once (``once``), when no blocking calendar is active any more."""
        if any(calendars[name].active_at(now) for name in spec.blocked_by):
            return []
        lo = max(now - spec.catch_up_window, first)
        if lo >= now:
            return []
        stretch: list[tuple[Fire, str]] = []
        for fire in reversed(fire_times(spec, calendars, lo, now, sources)):
            if fire.blocked_by is None:
                break  # a regular fire time came after: it stood in for the blocked ones
            key = catch_up_key(self.account, spec.name, fire.time)
            if spec.catch_up == "once":
                row = await self.journal.intent(key)
                if row is not None and row.outcome not in RETRYABLE_OUTCOMES:
                    if row.outcome in UNRESOLVED and not stretch:
                        stretch.append((fire, key))  # sent, maybe: resolve it, never resend
                    break  # a catch-up ran here: it stands in for the older ones
            stretch.append((fire, key))
        if not stretch:
            return []
        stretch.reverse()
        pairs = stretch[-1:] if spec.catch_up == "once" else stretch
        out = []
        for fire, key in pairs:
            reason = (
                f"catch-up of {fire.time.isoformat()} (blocked by calendar {fire.blocked_by}; "
                f"catch_up: {spec.catch_up})"
            )
            result = await self._run(spec, fire, now, key=key, reason=reason)
            if result.outcome != "duplicate":
                self._log("info", "scheduled_catch_up", spec, fire, reason, result.outcome)
                self._notify(
                    "scheduled_catch_up",
                    spec,
                    fire,
                    _target(spec),
                    key,
                    reason=reason,
                    outcome=result.outcome,
                )
            out.append(dataclasses.replace(result, catch_up=True))
        return out

    @property
    def _checkpoint_id(self) -> str:
        return f"schedules/{self.account}"

    async def _checkpoint(self, now: datetime) -> datetime | None:
        """Where the first tick after a start looks back to: the last tick journaled by an
        earlier run (so fire times missed while aomd was down are reported), or None on a
        fresh journal (nothing before aomd ever ran is "missed" or due)."""
        last = await self.journal.last_tick(self._checkpoint_id)
        return max(last, now - LOOKBACK) if last is not None else None

    async def _first(self, now: datetime) -> datetime:
        scope = f"{self._checkpoint_id}/first"
        first = await self.journal.last_tick(scope)
        if first is None:
            first = min(self._born, now)
            await self.journal.set_last_tick(scope, first)
        return first

    async def _save_checkpoint(self, now: datetime) -> None:
        await self.journal.set_last_tick(self._checkpoint_id, now)

    def _key(self, spec: ScheduleSpec, fire: Fire) -> str:
        return schedule_key(self.account, spec.name, fire.time)

    async def _record(
        self, spec: ScheduleSpec, fire: Fire, outcome: str, reason: str
    ) -> FireResult:
        intent = WriteIntent(
            key=self._key(spec, fire),
            kind="scheduled_" + outcome,
            workflow_id=_target(spec),
            rule=spec.name,
            reason=reason,
        )
        if not await self.executor.record(intent, outcome, at=fire.time):
            return FireResult(spec.name, fire.time, "duplicate")
        self._log("info", "scheduled_run_" + outcome, spec, fire, reason, outcome)
        if outcome in ("skipped", "missed"):  # told once: a restart finds the key recorded
            self._notify(
                "scheduled_run_" + outcome, spec, fire, _target(spec), intent.key, reason=reason
            )
        return FireResult(spec.name, fire.time, outcome)

    def _log(
        self, level: str, event: str, spec: ScheduleSpec, fire: Fire, reason: str, outcome: str
    ) -> None:
        """A schedule decision with the stable keys every decision event carries."""
        log_decision(
            getattr(log, level),
            event,
            workflow_id=_target(spec),
            rule=spec.name,
            action=spec.action.describe(),
            reason=reason,
            outcome=outcome,
            dry_run=self.executor.dry_run,
            fire_time=fire.time.isoformat(),
        )

    async def _run(
        self,
        spec: ScheduleSpec,
        fire: Fire,
        now: datetime,
        *,
        key: str | None = None,
        reason: str | None = None,
    ) -> FireResult:
        result, report = await self._send(spec, fire, key=key, reason=reason)
        at = report.retry_at if report is not None else None
        if at is not None and (self.retry_at is None or at < self.retry_at):
            self.retry_at = at
        return result

    async def _send(
        self, spec: ScheduleSpec, fire: Fire, *, key: str | None, reason: str | None
    ) -> tuple[FireResult, WriteReport | None]:
        action = spec.action
        key = key or self._key(spec, fire)
        reason = reason or f"scheduled at {fire.time.isoformat()}"
        if action.execute is not None:
            ex = action.execute
            workflow_id = ex.workflow_id or await self._resolve_name(ex.workflow_name or "")
            if workflow_id is None:
                why = f"no workflow named {ex.workflow_name!r}"
                self._log("error", "scheduled_run_failed", spec, fire, why, "failed")
                return FireResult(spec.name, fire.time, "failed"), None
            sent = await self._execute(spec, fire, workflow_id, reason, key)
            if sent == "skipped":
                return FireResult(spec.name, fire.time, "skipped"), None
            report = sent
        else:
            da = action.dataarts
            assert da is not None  # ActionSpec guarantees exactly one
            workspace = da.workspace or self.default_workspace
            intent = WriteIntent(
                key=key,
                kind=f"dataarts_{da.action}",
                workflow_id=f"dataarts:{da.task_id}",
                rule=spec.name,
                reason=reason,
            )

            if workspace is None:
                why = "no DataArts workspace: set action.dataarts.workspace or the account's one"
                self._log("error", "scheduled_run_failed", spec, fire, why, "failed")
                return FireResult(spec.name, fire.time, "failed"), None
            ws: str = workspace

            async def call() -> object:
                return await self.client.dataarts_task_action(da.task_id, da.action, ws)

            # DataArts has no read-back for task actions: a lost reply stays "unknown"
            # and is reported, never resent.
            report = await self.executor.write(
                intent, call, None, shard=self.shard_of(intent.workflow_id)
            )
            if report.outcome == "unknown":
                self._notify("outcome_unknown", spec, fire, intent.workflow_id, intent.key)
        return FireResult(spec.name, fire.time, report.outcome), report

    async def _execute(
        self,
        spec: ScheduleSpec,
        fire: Fire,
        workflow_id: str,
        reason: str,
        key: str,
    ) -> WriteReport | Literal["skipped"]:
        """The execute's report, or ``"skipped"`` when ``overlap: skip`` held it."""
        intent = WriteIntent(
            key=key, kind="execute", workflow_id=workflow_id, rule=spec.name, reason=reason
        )

        async def call() -> object:
            return await self.client.execute_workflow(workflow_id)

        row = await self.journal.intent(key)
        if row is not None and row.outcome in UNRESOLVED:
            # sent (or maybe sent) by an earlier pass or process: resolve it from the
            # evidence journaled with it, never with fresh evidence (that would miss it)
            evidence = ExecuteEvidence.loads(row.observed)
            intent = dataclasses.replace(intent, observed=row.observed)
        elif row is not None and row.outcome not in RETRYABLE_OUTCOMES:
            return WriteReport("duplicate")
        else:
            # what exists before we send, journaled with the intent (one read per run)
            existing = await self.client.list_executions(workflow_id)
            running = [e for e in existing if not e.finished]
            if running and spec.overlap == "skip":
                why = f"execution {running[0].execution_id} still runs (overlap: skip)"
                skipped = dataclasses.replace(intent, kind="scheduled_skipped", reason=why)
                if not await self.executor.record(skipped, "skipped", at=fire.time):
                    return WriteReport("duplicate")
                self._log("info", "scheduled_run_skipped", spec, fire, why, "skipped")
                return "skipped"
            if running and spec.overlap == "terminate_previous":
                for execution in running:
                    await self._terminate(spec, fire, workflow_id, execution)
                existing = await self.client.list_executions(workflow_id)
            evidence = ExecuteEvidence.before_send(self.executor.clock.now(), existing)
            intent = dataclasses.replace(intent, observed=evidence.dumps())
        report = await self.executor.write(
            intent,
            call,
            self.read_back.execute(workflow_id, evidence),
            shard=self.shard_of(workflow_id),
        )
        if report.outcome == "ambiguous":
            self._log(
                "error",
                "scheduled_run_ambiguous",
                spec,
                fire,
                "reply lost and several executions appeared since; cannot tell which is ours",
                "ambiguous",
            )
            self._notify("outcome_ambiguous", spec, fire, workflow_id, key)
        return report

    async def _terminate(
        self, spec: ScheduleSpec, fire: Fire, workflow_id: str, execution: Execution
    ) -> WriteReport:
        """``overlap: terminate_previous``: one journaled terminate per running execution."""
        eid = execution.execution_id
        obs = observed(execution, None)
        intent = WriteIntent(
            key=overlap_key(self.account, spec.name, fire.time, eid),
            kind="terminate",
            workflow_id=workflow_id,
            execution_id=eid,
            rule=spec.name,
            reason=f"overlap: terminate_previous before the run at {fire.time.isoformat()}",
            observed=obs,
        )

        async def call() -> object:
            return await self.client.terminate(workflow_id, eid)

        return await self.executor.write(
            intent,
            call,
            self.read_back.operation(workflow_id, eid, "terminate", None, obs),
            shard=self.shard_of(workflow_id),
        )

    def _notify(
        self, kind: str, spec: ScheduleSpec, fire: Fire, target: str, key: str, **extra: str
    ) -> None:
        if self.notifier is not None:
            self.notifier.notify(
                kind,
                {
                    "workflow_id": target,
                    "schedule": spec.name,
                    "fire_time": fire.time.isoformat(),
                    "key": key,
                    **extra,
                },
            )

    async def _resolve_name(self, name: str) -> str | None:
        for wf in await self.client.list_workflows(search=name):
            if wf.name == name:
                return wf.id
        return None


def _target(spec: ScheduleSpec) -> str:
    if spec.action.execute is not None:
        return spec.action.execute.workflow_id or f"name:{spec.action.execute.workflow_name}"
    assert spec.action.dataarts is not None
    return f"dataarts:{spec.action.dataarts.task_id}"
