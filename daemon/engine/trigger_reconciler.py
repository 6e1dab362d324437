"""Trigger reconciler: make each managed workflow's trigger match its calendar.

Level-triggered: every pass reads every workflow's ``trigger_status`` and compares it with
the desired state at ``now``; it does not matter whether a transition was seen. Passes
run at start-up (healing anything missed while down), at each calendar transition and
periodically as a safety net.

Ownership: aomd re-enables only triggers it disabled itself (journaled), unless the rule
says ``manage: full``. A trigger re-enabled by a person inside a freeze is *drift*: it is
disabled again (``drift: correct``) or only reported (``drift: report``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from daemon.calendar.calendar import Calendar
from daemon.calendar.calendar_spec import TriggerRuleSpec
from daemon.calendar.desired import desired_trigger, first_matching_rule
from daemon.cloud.port import CloudClient
from daemon.engine.executor import Executor
from daemon.engine.notify import Notifier
from daemon.engine.resolution import ReadBack
from daemon.kernel.keys import STREAK_HOLDS, STREAK_RESETS, trigger_key
from daemon.kernel.model import Execution, Status, Workflow
from daemon.kernel.ports import FactsPort, OwnershipPort
from daemon.kernel.writes import WriteIntent

log = structlog.get_logger("aomd.triggers")

HOLDS, RESETS = STREAK_HOLDS, STREAK_RESETS
"""Pseudo-executions in the journal's sightings (``<name>/<account>``, node = workflow):
when a trigger was held for a failure streak, and when a person last released one (only
failures after that count again)."""

NOT_APPLIED = frozenset({"rejected", "failed", "resolved_not_applied", "moot"})
"""Write outcomes after which the trigger certainly kept its state."""


@dataclass(frozen=True, slots=True)
class TriggerStep:
    """What one pass wants done to one workflow (pure result, easy to test and to plan)."""

    workflow_id: str
    enable: bool
    rule: str
    reason: str
    drift: bool
    report_only: bool
    streak: bool = False
    """A disable for a failure streak (``pause_after_failures``): held until a person
    re-enables the trigger."""
    release: bool = False
    """A held trigger a person re-enabled: no write, the hold is given up."""


def streak_failures(executions: Iterable[Execution], since: datetime) -> int:
    """Failed executions that began at or after ``since``: ended ``fail``, or stopped on a
    failed node (a failure someone may still recover from counts while it lasts)."""
    floor = since.timestamp() * 1000
    return sum(
        1
        for e in executions
        if e.begin_time is not None
        and e.begin_time >= floor
        and (e.status is Status.FAIL or any(n.status is Status.FAIL for n in e.nodes))
        and e.status is not Status.SUCCESS
    )


def plan_triggers(
    workflows: Sequence[Workflow],
    rules: Sequence[TriggerRuleSpec],
    calendars: Mapping[str, Calendar],
    owned: set[str],
    now: datetime,
    held: Collection[str] = (),
) -> list[TriggerStep]:
    """Pure: compare desired with observed for every workflow a rule selects.

    ``held`` are triggers disabled for a failure streak: never re-enabled by a calendar;
    once a person re-enables one, it is released (and followed as usual next pass)."""
    steps: list[TriggerStep] = []
    for wf in workflows:
        rule = first_matching_rule(rules, wf)
        if rule is None:
            continue
        if wf.type not in ("cron", ""):
            continue  # only cron workflows have a schedule trigger to switch (as plan())
        observed = wf.trigger_enabled
        if wf.id in held:
            if observed is True:
                steps.append(
                    TriggerStep(
                        wf.id,
                        True,
                        rule.name,
                        "re-enabled by a person after a failure streak; hold released",
                        drift=False,
                        report_only=False,
                        release=True,
                    )
                )
            continue
        want = desired_trigger(rule, calendars, now)
        cal = rule.calendar
        # ``observed`` is None when trigger_status has a value aomd cannot read (the
        # values are not published): one we disabled is re-enabled all the same (the
        # PUT is idempotent), and it is disabled once, not again every pass as "drift".
        if want and (observed is False or (observed is None and wf.id in owned)):
            if rule.manage == "full" or wf.id in owned:
                steps.append(
                    TriggerStep(
                        wf.id,
                        True,
                        rule.name,
                        f"calendar {cal} {'ended' if rule.off_during else 'active'}; re-enabling",
                        drift=False,
                        report_only=False,
                    )
                )
        elif not want and (observed is True or (observed is None and wf.id not in owned)):
            drift = wf.id in owned
            why = (f"calendar {cal} active" if rule.off_during else f"outside calendar {cal}") + (
                "; trigger was re-enabled by someone (drift)" if drift else ""
            )
            steps.append(
                TriggerStep(
                    wf.id,
                    False,
                    rule.name,
                    why,
                    drift=drift,
                    report_only=drift and rule.drift == "report",
                )
            )
    return steps


class TriggerReconciler:
    def __init__(
        self,
        *,
        client: CloudClient,
        ownership: OwnershipPort,
        executor: Executor,
        read_back: ReadBack | None = None,
        account: str,
        streaks: FactsPort | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        """``streaks`` (the journal) keeps failure-streak holds; without it
        ``pause_after_failures`` is not acted on."""
        self.streaks = streaks
        self.notifier = notifier
        self.read_back = read_back or ReadBack(client=client, clock=executor.clock)
        self.client = client
        self.ownership = ownership
        self.executor = executor
        self.account = account
        self.drifts = 0
        self.owned_count = 0

    async def reconcile(
        self,
        rules: Sequence[TriggerRuleSpec],
        calendars: Mapping[str, Calendar],
        now: datetime,
    ) -> list[TriggerStep]:
        if not rules:
            return []
        workflows = await self.client.list_workflows()
        owned = await self.ownership.owned_triggers(self.account)
        streaky = self.streaks is not None and any(r.pause_after_failures for r in rules)
        holds: set[str] = set()
        if streaky:
            holds = set(await self._seen(HOLDS))
        steps = plan_triggers(workflows, rules, calendars, owned, now, held=holds)
        if streaky:
            steps += await self._streak_steps(workflows, rules, holds, steps, now)
        for step in steps:
            if step.release:
                await self._release(step, now)
            else:
                await self._apply(step, now)
        self.owned_count = len(await self.ownership.owned_triggers(self.account))
        return steps

    async def _apply(self, step: TriggerStep, now: datetime) -> None:
        action = "trigger_enable" if step.enable else "trigger_disable"
        if step.drift:
            self.drifts += 1
            log.warning(
                "drift",
                workflow_id=step.workflow_id,
                execution_id=None,
                node_id=None,
                rule=step.rule,
                action=action,
                attempt=1,
                reason=step.reason,
                outcome="reported" if step.report_only else "correcting",
                request_id=None,
                dry_run=self.executor.dry_run,
            )
            if step.report_only:
                return
        key = trigger_key(self.account, step.workflow_id, action, now, drift=step.drift)
        intent = WriteIntent(
            key=key,
            kind=action,
            workflow_id=step.workflow_id,
            rule=step.rule,
            reason=step.reason,
            observed="enabled" if not step.enable else "disabled",
        )

        async def call() -> object:
            if not step.enable:
                # Claim ownership *before* disabling: the call runs inside the executor's
                # in-flight window (a SIGTERM drain waits for it) and a kill -9 after the
                # PUT still leaves the claim, so the trigger is re-enabled after the
                # window. Recorded only after the call, a stop between the two lost it and
                # left the trigger disabled for good (found by the e2e restart test).
                await self.ownership.set_trigger_owned(
                    step.workflow_id, True, reason=step.reason, at=now, account=self.account
                )
                if step.streak and self.streaks is not None:
                    # held before the PUT for the same reason as the claim
                    await self.streaks.saw(self._pseudo(HOLDS), step.workflow_id, now)
            return await self.client.set_trigger(step.workflow_id, step.enable)

        report = await self.executor.write(
            intent, call, self.read_back.trigger(step.workflow_id, step.enable)
        )
        if report.outcome in ("applied", "resolved_applied"):
            await self.ownership.set_trigger_owned(
                step.workflow_id, not step.enable, reason=step.reason, at=now, account=self.account
            )
            if step.streak and self.notifier is not None:
                self.notifier.notify(
                    "failure_streak",
                    {"workflow_id": step.workflow_id, "rule": step.rule, "reason": step.reason},
                )
            if step.streak:
                log.warning(
                    "failure_streak_paused",
                    workflow_id=step.workflow_id,
                    execution_id=None,
                    node_id=None,
                    rule=step.rule,
                    action=action,
                    attempt=1,
                    reason=step.reason,
                    outcome=report.outcome,
                    request_id=None,
                    dry_run=self.executor.dry_run,
                )
        elif step.streak and report.outcome in NOT_APPLIED and self.streaks is not None:
            await self.streaks.forget_seen(self._pseudo(HOLDS), step.workflow_id)
            await self.ownership.set_trigger_owned(
                step.workflow_id, False, reason=step.reason, at=now, account=self.account
            )
        elif not step.enable and not step.drift and report.outcome in NOT_APPLIED:
            # The early claim was for a disable that did not happen: give it back, or a
            # trigger a person disables later would be re-enabled as if it were ours.
            await self.ownership.set_trigger_owned(
                step.workflow_id, False, reason=step.reason, at=now, account=self.account
            )

    # -- failure streaks (pause_after_failures) -------------------------------------------

    def _pseudo(self, what: str) -> str:
        return f"{what}/{self.account}"

    async def _seen(self, what: str) -> Mapping[str, datetime]:
        assert self.streaks is not None
        return (await self.streaks.facts(self._pseudo(what))).first_seen

    async def _streak_steps(
        self,
        workflows: Sequence[Workflow],
        rules: Sequence[TriggerRuleSpec],
        holds: Collection[str],
        planned: Sequence[TriggerStep],
        now: datetime,
    ) -> list[TriggerStep]:
        busy = {s.workflow_id for s in planned}
        resets = await self._seen(RESETS)
        out: list[TriggerStep] = []
        for wf in workflows:
            rule = first_matching_rule(rules, wf)
            streak = rule.pause_after_failures if rule is not None else None
            if rule is None or streak is None or wf.id in holds or wf.id in busy:
                continue
            if wf.type not in ("cron", "") or wf.trigger_enabled is not True:
                continue
            since = now - streak.within
            reset = resets.get(wf.id)
            if reset is not None and reset > since:
                since = reset
            failed = streak_failures(await self.client.list_executions(wf.id), since)
            if failed >= streak.count:
                within = _hours(streak.within)
                out.append(
                    TriggerStep(
                        wf.id,
                        False,
                        rule.name,
                        f"failure streak: {failed} failed executions within {within} "
                        f"(pause_after_failures {streak.count}); held until a person "
                        "re-enables it",
                        drift=False,
                        report_only=False,
                        streak=True,
                    )
                )
        return out

    async def _release(self, step: TriggerStep, now: datetime) -> None:
        assert self.streaks is not None
        holds, resets = self._pseudo(HOLDS), self._pseudo(RESETS)
        await self.streaks.forget_seen(resets, step.workflow_id)
        await self.streaks.saw(resets, step.workflow_id, now)
        await self.streaks.forget_seen(holds, step.workflow_id)
        await self.ownership.set_trigger_owned(
            step.workflow_id, False, reason=step.reason, at=now, account=self.account
        )
        log.info(
            "failure_streak_released",
            workflow_id=step.workflow_id,
            execution_id=None,
            node_id=None,
            rule=step.rule,
            action="trigger_enable",
            attempt=None,
            reason=step.reason,
            outcome="released",
            request_id=None,
            dry_run=self.executor.dry_run,
        )


def _hours(td: timedelta) -> str:
    hours = td.total_seconds() / 3600
    return f"{hours:g}h"
