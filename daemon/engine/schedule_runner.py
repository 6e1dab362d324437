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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from daemon.calendar.calendar import Calendar
from daemon.calendar.firetimes import Fire, ScheduleSources, fire_times, next_fire
from daemon.cloud.port import CloudClient
from daemon.engine.executor import Executor
from daemon.engine.notify import Notifier
from daemon.engine.resolution import ExecuteEvidence, ReadBack
from daemon.journal.store import Journal
from daemon.kernel.keys import schedule_key
from daemon.kernel.outcomes import RETRYABLE_OUTCOMES, UNRESOLVED
from daemon.kernel.writes import WriteIntent, WriteReport
from daemon.policy.schedule_spec import ScheduleSpec

log = structlog.get_logger("aomd.schedules")

LOOKBACK = timedelta(days=1)
"""How far back a start-up looks for fire times it may have slept through."""


@dataclass(frozen=True, slots=True)
class FireResult:
    schedule: str
    fire_time: datetime
    outcome: str


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
    ) -> None:
        self.notifier = notifier
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
        """The soonest fire time of any schedule (the waker's next instant)."""
        fires = [f.time for s in schedules if (f := next_fire(s, calendars, after, sources))]
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
        self._last_tick = now
        await self._save_checkpoint(now)
        return [r for r in results if r.outcome != "duplicate"]

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
        return FireResult(spec.name, fire.time, outcome)

    def _log(
        self, level: str, event: str, spec: ScheduleSpec, fire: Fire, reason: str, outcome: str
    ) -> None:
        """A schedule decision with the stable keys every decision event carries."""
        getattr(log, level)(
            event,
            workflow_id=_target(spec),
            execution_id=None,
            node_id=None,
            rule=spec.name,
            action=spec.action.describe(),
            attempt=1,
            reason=reason,
            outcome=outcome,
            request_id=None,
            dry_run=self.executor.dry_run,
            fire_time=fire.time.isoformat(),
        )

    async def _run(self, spec: ScheduleSpec, fire: Fire, now: datetime) -> FireResult:
        result, report = await self._send(spec, fire)
        at = report.retry_at if report is not None else None
        if at is not None and (self.retry_at is None or at < self.retry_at):
            self.retry_at = at
        return result

    async def _send(self, spec: ScheduleSpec, fire: Fire) -> tuple[FireResult, WriteReport | None]:
        action = spec.action
        reason = f"scheduled at {fire.time.isoformat()}"
        if action.execute is not None:
            ex = action.execute
            workflow_id = ex.workflow_id or await self._resolve_name(ex.workflow_name or "")
            if workflow_id is None:
                why = f"no workflow named {ex.workflow_name!r}"
                self._log("error", "scheduled_run_failed", spec, fire, why, "failed")
                return FireResult(spec.name, fire.time, "failed"), None
            report = await self._execute(spec, fire, workflow_id, reason)
        else:
            da = action.dataarts
            assert da is not None  # ActionSpec guarantees exactly one
            workspace = da.workspace or self.default_workspace
            intent = WriteIntent(
                key=self._key(spec, fire),
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
            report = await self.executor.write(intent, call, None)
            if report.outcome == "unknown":
                self._notify("outcome_unknown", spec, fire, intent.workflow_id, intent.key)
        return FireResult(spec.name, fire.time, report.outcome), report

    async def _execute(
        self,
        spec: ScheduleSpec,
        fire: Fire,
        workflow_id: str,
        reason: str,
    ) -> WriteReport:
        key = self._key(spec, fire)
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
            evidence = ExecuteEvidence.before_send(self.executor.clock.now(), existing)
            intent = dataclasses.replace(intent, observed=evidence.dumps())
        report = await self.executor.write(
            intent, call, self.read_back.execute(workflow_id, evidence)
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

    def _notify(self, kind: str, spec: ScheduleSpec, fire: Fire, target: str, key: str) -> None:
        if self.notifier is not None:
            self.notifier.notify(
                kind,
                {
                    "workflow_id": target,
                    "schedule": spec.name,
                    "fire_time": fire.time.isoformat(),
                    "key": key,
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
