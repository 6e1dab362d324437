"""Scheduled work: run workflows and DataArts task actions at their fire times, once.

Each fire time has the idempotency key ``schedule/<name>/<fire time>``. The journal
intent is written before the call, so a restart around the fire time finds the key and
never runs it twice; a lost reply is resolved by looking for an execution that began at
or after the fire time. Fire times inside a ``blocked_by`` calendar are journaled as
skipped, late ones beyond ``misfire_grace_seconds`` as missed, and with ``coalesce`` only
the latest of several due fire times runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from daemon.calendar.calendar import Calendar
from daemon.calendar.calendar_spec import ScheduleSpec
from daemon.calendar.firetimes import Fire, ScheduleSources, fire_times
from daemon.cloud.port import CloudClient
from daemon.engine.executor import Executor
from daemon.journal.store import Journal
from daemon.kernel.keys import schedule_key
from daemon.kernel.outcomes import RETRYABLE_OUTCOMES, Resolution
from daemon.kernel.writes import WriteIntent

log = structlog.get_logger("aomd.schedules")

LOOKBACK = timedelta(days=1)
"""How far back a start-up looks for fire times it may have slept through."""
CHECKPOINT_NODE = "last-tick"
"""The journal's sightings double as the scheduler's durable "last tick" mark."""
CLOCK_SKEW_ALLOWANCE = timedelta(minutes=5)
"""A lost execute reply counts as applied if an execution began this long before its
fire time or later: the cloud's clock may be behind aomd's."""


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
        account: str,
        default_workspace: str | None = None,
    ) -> None:
        self.client = client
        self.journal = journal
        self.executor = executor
        self.account = account
        self.default_workspace = default_workspace
        self._last_tick: datetime | None = None

    def next_fire(
        self,
        schedules: Sequence[ScheduleSpec],
        calendars: Mapping[str, Calendar],
        sources: ScheduleSources,
        after: datetime,
    ) -> datetime | None:
        best: datetime | None = None
        for spec in schedules:
            for horizon in (timedelta(days=2), timedelta(days=400)):
                fires = fire_times(
                    spec, calendars, after + timedelta(microseconds=1), after + horizon, sources
                )
                if fires:
                    if best is None or fires[0].time < best:
                        best = fires[0].time
                    break
        return best

    async def tick(
        self,
        schedules: Sequence[ScheduleSpec],
        calendars: Mapping[str, Calendar],
        sources: ScheduleSources,
        now: datetime,
    ) -> list[FireResult]:
        since = self._last_tick or await self._checkpoint(now)
        # Bounded like the journaled checkpoint: a wall clock that jumps far ahead must
        # not turn into one journaled "missed" row per fire time since the last tick.
        since = max(since, now - LOOKBACK)
        results: list[FireResult] = []
        for spec in schedules:
            grace = timedelta(seconds=spec.misfire_grace_seconds)
            # A fire time that was due at the last tick but did not run (refused by a
            # guard, a transient error, no workflow of that name) ages out of the grace
            # window between ticks: look back one grace period further so it is
            # journaled as missed instead of vanishing. One that ran is a duplicate.
            start = min(since, now) - grace
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

    async def _checkpoint(self, now: datetime) -> datetime:
        """Where the first tick after a start looks back to: the last tick journaled by an
        earlier run (so fire times missed while aomd was down are reported), or, on a
        fresh journal, ``now`` (nothing before aomd ever ran is "missed")."""
        facts = await self.journal.facts(self._checkpoint_id)
        last = facts.first_seen.get(CHECKPOINT_NODE)
        return max(last, now - LOOKBACK) if last is not None else now

    async def _save_checkpoint(self, now: datetime) -> None:
        await self.journal.forget_seen(self._checkpoint_id, CHECKPOINT_NODE)
        await self.journal.saw(self._checkpoint_id, CHECKPOINT_NODE, now)

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
        existing = await self.journal.begin(intent, fire.time)
        if existing is not None and existing not in RETRYABLE_OUTCOMES:
            return FireResult(spec.name, fire.time, "duplicate")
        await self.journal.finish(intent.key, outcome, request_id=None, error=None, at=fire.time)
        self._log("info", "scheduled_run_" + outcome, spec, fire, reason, outcome)
        return FireResult(spec.name, fire.time, outcome)

    def _log(
        self, level: str, event: str, spec: ScheduleSpec, fire: Fire, reason: str, outcome: str
    ) -> None:
        """A schedule decision with the stable decision keys (issue #4)."""
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
        action = spec.action
        reason = f"scheduled at {fire.time.isoformat()}"
        if action.execute is not None:
            ex = action.execute
            workflow_id = ex.workflow_id or await self._resolve_name(ex.workflow_name or "")
            if workflow_id is None:
                why = f"no workflow named {ex.workflow_name!r}"
                self._log("error", "scheduled_run_failed", spec, fire, why, "failed")
                return FireResult(spec.name, fire.time, "failed")
            intent = WriteIntent(
                key=self._key(spec, fire),
                kind="execute",
                workflow_id=workflow_id,
                rule=spec.name,
                reason=reason,
            )
            params = dict(ex.parameters)

            async def call() -> object:
                return await self.client.execute_workflow(workflow_id, params or None)

            async def resolve() -> Resolution:
                # begin_time is the cloud's clock, fire.time ours: allow for skew, erring
                # on "applied" (a run reported, never a second run of the workflow).
                since_ms = int((fire.time - CLOCK_SKEW_ALLOWANCE).timestamp() * 1000)
                for e in await self.client.list_executions(workflow_id):
                    if e.begin_time is not None and e.begin_time >= since_ms:
                        return "applied"
                return "not_applied"

            report = await self.executor.write(intent, call, resolve)
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
                return FireResult(spec.name, fire.time, "failed")
            ws: str = workspace

            async def call() -> object:
                return await self.client.dataarts_task_action(da.task_id, da.action, ws)

            # DataArts has no read-back for task actions: a lost reply stays "unknown"
            # and is reported, never resent.
            report = await self.executor.write(intent, call, None)
        return FireResult(spec.name, fire.time, report.outcome)

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
