"""Trigger reconciler: make each managed workflow's trigger match its calendar.

Level-triggered: every pass reads every workflow's ``trigger_status`` and compares it with
the desired state at ``now``; it does not matter whether a transition was seen. Passes
run at start-up (healing anything missed while down), at each calendar transition and
periodically as a safety net.

Ownership: aomd re-enables only triggers it disabled itself (journaled), unless the rule
says ``manage: full``. A trigger re-enabled by a person inside a freeze is *drift*: it is
disabled again (``drift: correct``) or only reported (``drift: report``).

A change that failed without effect (429, 5xx, refused connection) is retried under the
same key when the executor's prompt retry is due (``retry_at``: seconds away, not the next
transition or ``reconcile_interval``). A trigger that still is not in its desired state
is *unreconciled*: logged on every pass (``trigger_unreconciled``), counted by a gauge,
notified once, and looked at again every ``STUCK_RECHECK`` until it is (then
``trigger_reconciled``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import structlog

from daemon.calendar.calendar import Calendar
from daemon.calendar.calendar_spec import TriggerRuleSpec
from daemon.calendar.desired import Verdict, first_matching_rule, selecting_rules, verdict
from daemon.calendar.sources import cron_times
from daemon.cloud.port import CloudClient
from daemon.engine.decision_log import log_decision
from daemon.engine.executor import Executor
from daemon.engine.notify import Notifier
from daemon.engine.resolution import ExecuteEvidence, ReadBack
from daemon.journal.store import Journal
from daemon.kernel.keys import STREAK_HOLDS, STREAK_RESETS, release_key, trigger_key
from daemon.kernel.model import Execution, Status, Workflow
from daemon.kernel.outcomes import RETRYABLE_OUTCOMES, UNRESOLVED
from daemon.kernel.overrides import Override, active_overrides, latest_for
from daemon.kernel.ports import FactsPort, OwnershipPort
from daemon.kernel.shards import ShardOf, no_shard
from daemon.kernel.writes import WriteIntent, WriteReport

log = structlog.get_logger("aomd.triggers")

HOLDS, RESETS = STREAK_HOLDS, STREAK_RESETS
"""Pseudo-executions in the journal's sightings (``<name>/<account>``, node = workflow):
when a trigger was held for a failure streak, and when a person last released one (only
failures after that count again)."""

NOT_APPLIED = frozenset({"rejected", "failed", "resolved_not_applied", "moot"})
"""Write outcomes after which the trigger certainly kept its state."""

REACHED = frozenset({"applied", "resolved_applied", "dry_run", "duplicate"})
"""Write outcomes after which the trigger is (or, in a dry run, would be) as desired."""

STUCK_RECHECK = timedelta(seconds=60)
"""How soon (daemon clock) an unreconciled trigger is tried again once its prompt
retries are spent: well inside a freeze, far from a request storm."""


@dataclass(slots=True)
class Unreconciled:
    """A trigger aomd could not put in its desired state (yet)."""

    action: str
    since: datetime
    rule: str
    outcome: str
    tries: int = 0
    notified: bool = False
    error: str | None = field(default=None)


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
    run_once: tuple[str, str] | None = None
    """For an enable: ``(trigger_cron, timezone)`` of an ``on_release: run_once`` rule."""


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
    overrides: Sequence[Override] = (),
) -> list[TriggerStep]:
    """Pure: compare desired with observed for every workflow a rule selects.

    Every selecting rule votes (``daemon.calendar.desired.verdict``): the trigger is wanted
    on only when all allow it, and the stricter ``manage``/``drift`` applies. Overrides in
    force win: a workflow's forces its trigger (``hold``: left alone), a rule's forces
    that rule's vote (``hold``: its workflows left alone). Calendar overrides are already
    in ``calendars`` (``daemon.calendar.overrides``). ``held`` are triggers disabled for a
    failure streak: never re-enabled by a calendar; once a person re-enables one, it is
    released (and followed as usual next pass)."""
    active = active_overrides(overrides, now)
    forced = {
        o.target: o.state == "on" for o in active if o.target_kind == "rule" and o.state != "hold"
    }
    held_rules = {o.target for o in active if o.target_kind == "rule" and o.state == "hold"}
    steps: list[TriggerStep] = []
    for wf in workflows:
        if wf.type not in ("cron", ""):
            continue  # only cron workflows have a schedule trigger to switch (as plan())
        selecting = selecting_rules(rules, wf)
        if not selecting:
            continue
        observed = wf.trigger_enabled
        if wf.id in held:
            if observed is True:
                steps.append(
                    TriggerStep(
                        wf.id,
                        True,
                        selecting[0].name,
                        "re-enabled by a person after a failure streak; hold released",
                        drift=False,
                        report_only=False,
                        release=True,
                    )
                )
            continue
        mine = latest_for(active, "workflow", wf.id)
        if (mine is not None and mine.state == "hold") or any(
            r.name in held_rules for r in selecting
        ):
            continue
        v = verdict(selecting, calendars, now, forced)
        if mine is not None:
            # A person's explicit state: enforced whoever changed the trigger.
            v = dataclasses.replace(v, enable=mine.state == "on", manage="full", drift="correct")
        want = v.enable
        rule = v.deciding
        # ``observed`` is None when trigger_status has a value aomd cannot read (the
        # values are not published): one we disabled is re-enabled all the same (the
        # PUT is idempotent), and it is disabled once, not again every pass as "drift".
        if want and (observed is False or (observed is None and wf.id in owned)):
            if v.manage == "full" or wf.id in owned:
                once = next((r for r in selecting if r.on_release == "run_once"), None)
                steps.append(
                    TriggerStep(
                        wf.id,
                        True,
                        rule.name,
                        f"{_why(v, mine)}; re-enabling",
                        drift=False,
                        report_only=False,
                        run_once=(
                            (once.trigger_cron or "", once.trigger_timezone)
                            if once is not None and wf.id in owned
                            else None
                        ),
                    )
                )
        elif not want and (observed is True or (observed is None and wf.id not in owned)):
            drift = wf.id in owned
            why = _why(v, mine) + ("; trigger was re-enabled by someone (drift)" if drift else "")
            steps.append(
                TriggerStep(
                    wf.id,
                    False,
                    rule.name,
                    why,
                    drift=drift,
                    report_only=drift and v.drift == "report",
                )
            )
    return steps


def _why(v: Verdict, override: Override | None) -> str:
    if override is not None:
        return override.describe()
    return v.reason()


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
        journal: Journal | None = None,
        shard_of: ShardOf = no_shard,
        mine: Callable[[str], bool] = lambda _wid: True,
    ) -> None:
        """``streaks`` (the journal) keeps failure-streak holds; without it
        ``pause_after_failures`` is not acted on. ``journal``: for ``on_release:
        run_once``, the run's journaled evidence after a restart."""
        self.streaks = streaks
        self.shard_of = shard_of
        self.mine = mine
        """Whether this replica holds the workflow's shard: a pass looks only at those."""
        self.notifier = notifier
        self.journal = journal
        self.read_back = read_back or ReadBack(client=client, clock=executor.clock)
        self.client = client
        self.ownership = ownership
        self.executor = executor
        self.account = account
        self.drifts = 0
        self.owned_count = 0
        self.unreconciled: dict[str, Unreconciled] = {}
        """workflow id -> the change that did not take (a gauge, and the slow lane)."""
        self.retry_at: datetime | None = None
        """Earliest prompt retry asked for by the last pass (the loop arms its waker)."""
        self._failed_keys: dict[tuple[str, str], str] = {}
        """(workflow, action) -> key of its last ``failed`` change, sent again as is."""

    async def reconcile(
        self,
        rules: Sequence[TriggerRuleSpec],
        calendars: Mapping[str, Calendar],
        now: datetime,
        overrides: Sequence[Override] = (),
    ) -> list[TriggerStep]:
        if not rules:
            return []
        workflows = [w for w in await self.client.list_workflows() if self.mine(w.id)]
        owned = {w for w in await self.ownership.owned_triggers(self.account) if self.mine(w)}
        streaky = self.streaks is not None and any(r.pause_after_failures for r in rules)
        holds: set[str] = set()
        if streaky:
            holds = set(await self._seen(HOLDS))
        steps = plan_triggers(
            workflows, rules, calendars, owned, now, held=holds, overrides=overrides
        )
        if streaky:
            steps += await self._streak_steps(workflows, rules, holds, steps, now)
        self.retry_at = None
        retries: list[tuple[datetime, int, TriggerStep]] = []
        applied: dict[tuple[bool, str], list[str]] = {}
        for i, step in enumerate(steps):
            if step.release:
                await self._release(step, now)
                continue
            done, at = await self._apply(step, now)
            if done and not step.drift and not step.streak:
                applied.setdefault((step.enable, step.rule), []).append(step.workflow_id)
            if at is not None:
                retries.append((at, i, step))
            # A pass over hundreds of triggers takes tens of seconds: a change that
            # failed early in it is sent again as soon as its retry is due, not after
            # the pass (nothing was applied, so the decision of this pass still holds).
            retries = await self._retry_due(retries, now)
        self.retry_at = min((at for at, _, _ in retries), default=None)
        self._tell_freezes(applied, {r.name: r for r in rules}, steps, now)
        self._settle({s.workflow_id for s in steps if not s.report_only}, now)
        # the shards this replica holds only: summed over replicas, each counted once
        self.owned_count = sum(
            1 for w in await self.ownership.owned_triggers(self.account) if self.mine(w)
        )
        return steps

    async def _run_once(self, step: TriggerStep, now: datetime) -> bool:
        """``on_release: run_once``: before re-enabling a trigger aomd disabled, run the
        workflow once if a fire of its cron fell while it was off. Sent before the
        enable under a key of the disable's time, so a restart between the two finds it
        journaled (resolved from its evidence, never resent). False: try again later."""
        assert step.run_once is not None
        since = await self.ownership.owned_since(step.workflow_id, self.account)
        if since is None:
            return True
        cron, tz = step.run_once
        after = since + timedelta(seconds=1)  # a fire at the disable itself was not held off
        suppressed = next(iter(cron_times(cron, ZoneInfo(tz), after, now)), None)
        if suppressed is None:
            return True
        wid = step.workflow_id
        key = release_key(self.account, wid, since)
        intent = WriteIntent(
            key=key,
            kind="execute",
            workflow_id=wid,
            rule=step.rule,
            reason=f"on_release: run_once (the {suppressed.isoformat()} fire was suppressed "
            "while aomd held the trigger off)",
        )
        row = await self.journal.intent(key) if self.journal is not None else None
        if row is not None and row.outcome in UNRESOLVED:
            evidence = ExecuteEvidence.loads(row.observed)
            intent = dataclasses.replace(intent, observed=row.observed)
        elif row is not None and row.outcome not in RETRYABLE_OUTCOMES:
            return True  # ran already
        else:
            existing = await self.client.list_executions(wid)
            evidence = ExecuteEvidence.before_send(self.executor.clock.now(), existing)
            intent = dataclasses.replace(intent, observed=evidence.dumps())

        async def call() -> object:
            return await self.client.execute_workflow(wid)

        report = await self.executor.write(
            intent, call, self.read_back.execute(wid, evidence), shard=self.shard_of(wid)
        )
        if report.outcome == "refused":
            return False
        log_decision(
            log.info,
            "released_run",
            workflow_id=wid,
            rule=step.rule,
            action="execute",
            reason=intent.reason,
            outcome=report.outcome,
            request_id=report.request_id,
            dry_run=self.executor.dry_run,
        )
        if self.notifier is not None and report.outcome != "duplicate":
            self.notifier.notify(
                "released_run",
                {"workflow_id": wid, "rule": step.rule, "key": key, "outcome": report.outcome},
            )
        return True

    def _tell_freezes(
        self,
        applied: dict[tuple[bool, str], list[str]],
        rules: dict[str, TriggerRuleSpec],
        steps: list[TriggerStep],
        now: datetime,
    ) -> None:
        """One ``freeze_started`` / ``freeze_ended`` per rule whose calendar change this
        pass switched triggers (not per workflow; a restart finds them switched already)."""
        if self.notifier is None:
            return
        reasons = {(s.enable, s.rule): s.reason for s in steps}
        for (enable, rule_name), wids in applied.items():
            rule = rules.get(rule_name)
            self.notifier.notify(
                "freeze_ended" if enable else "freeze_started",
                {
                    "rule": rule_name,
                    "calendar": rule.calendar if rule is not None else None,
                    "workflow_ids": sorted(wids),
                    "reason": reasons.get((enable, rule_name), ""),
                    "at": now.isoformat(),
                },
            )

    async def _retry_due(
        self, retries: list[tuple[datetime, int, TriggerStep]], now: datetime
    ) -> list[tuple[datetime, int, TriggerStep]]:
        later = []
        for at, i, step in sorted(retries):
            if at > self.executor.clock.now():
                later.append((at, i, step))
                continue
            _, retry_at = await self._apply(step, now, again=True)
            if retry_at is not None:
                later.append((retry_at, i, step))
        return later

    def next_pass(self, now: datetime) -> datetime | None:
        """When the loop must look again for a change that did not take: its prompt
        retry, else ``STUCK_RECHECK`` while any trigger is unreconciled."""
        if self.retry_at is not None:
            return self.retry_at
        return now + STUCK_RECHECK if self.unreconciled else None

    def _settle(self, wanted: set[str], now: datetime) -> None:
        """Triggers with no step this pass are as desired (or no rule selects them now)."""
        for wid in [w for w in self.unreconciled if w not in wanted]:
            self._reconciled(wid, now)
        for key in [k for k in self._failed_keys if k[0] not in wanted]:
            del self._failed_keys[key]

    def _reconciled(self, wid: str, now: datetime) -> None:
        gone = self.unreconciled.pop(wid, None)
        if gone is not None:
            log.info(
                "trigger_reconciled",
                workflow_id=wid,
                action=gone.action,
                rule=gone.rule,
                tries=gone.tries,
                stuck_seconds=round((now - gone.since).total_seconds(), 3),
            )

    def _track(
        self, step: TriggerStep, action: str, key: str, report: WriteReport, now: datetime
    ) -> None:
        wid = step.workflow_id
        if report.outcome == "failed":
            self._failed_keys[(wid, action)] = key
        else:
            self._failed_keys.pop((wid, action), None)
        if report.retry_at is not None and (
            self.retry_at is None or report.retry_at < self.retry_at
        ):
            self.retry_at = report.retry_at
        if report.outcome in REACHED:
            self._reconciled(wid, now)
            return
        if report.outcome == "refused" and not self.executor.leader.may_write(self.shard_of(wid)):
            return  # not this replica's to do
        stuck = self.unreconciled.get(wid)
        if stuck is None or stuck.action != action:
            stuck = self.unreconciled[wid] = Unreconciled(action, now, step.rule, report.outcome)
        stuck.tries += 1
        stuck.outcome = report.outcome
        stuck.error = report.error
        log_decision(
            log.warning,
            "trigger_unreconciled",
            workflow_id=wid,
            rule=step.rule,
            action=action,
            attempt=stuck.tries,
            reason=step.reason,
            outcome=report.outcome,
            request_id=report.request_id,
            dry_run=self.executor.dry_run,
            error=report.error,
            since=stuck.since.isoformat(),
            retry_at=report.retry_at.isoformat() if report.retry_at is not None else None,
        )
        if report.retry_at is None and not stuck.notified and self.notifier is not None:
            # Prompt retries spent (or a final answer such as a rejection): a person
            # should know the trigger is not where the calendar wants it.
            stuck.notified = True
            self.notifier.notify(
                "trigger_unreconciled",
                {
                    "workflow_id": wid,
                    "action": action,
                    "rule": step.rule,
                    "reason": step.reason,
                    "outcome": report.outcome,
                    "error": report.error,
                    "since": stuck.since.isoformat(),
                    "tries": stuck.tries,
                },
            )

    async def _apply(
        self, step: TriggerStep, now: datetime, *, again: bool = False
    ) -> tuple[bool, datetime | None]:
        """Make one change: (the trigger now is as the step wanted, when to send it again
        if it failed without effect). ``again``: a prompt retry within the pass (its
        drift was reported already)."""
        action = "trigger_enable" if step.enable else "trigger_disable"
        if step.drift and not again:
            self.drifts += 1
            log_decision(
                log.warning,
                "drift",
                workflow_id=step.workflow_id,
                rule=step.rule,
                action=action,
                reason=step.reason,
                outcome="reported" if step.report_only else "correcting",
                dry_run=self.executor.dry_run,
            )
            if step.report_only:
                return False, None
        if step.enable and step.run_once is not None and not await self._run_once(step, now):
            return False, None  # refused for now: the next pass tries the run and the enable
        key = self._failed_keys.get((step.workflow_id, action)) or trigger_key(
            self.account, step.workflow_id, action, now, drift=step.drift
        )
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
            intent,
            call,
            self.read_back.trigger(step.workflow_id, step.enable),
            shard=self.shard_of(step.workflow_id),
        )
        self._track(step, action, key, report, now)
        if report.outcome in ("applied", "resolved_applied"):
            await self.ownership.set_trigger_owned(
                step.workflow_id, not step.enable, reason=step.reason, at=now, account=self.account
            )
            self._streak_told(step, action, report.outcome)
            return True, None
        if step.streak and report.outcome in NOT_APPLIED and self.streaks is not None:
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
        return False, report.retry_at

    def _streak_told(self, step: TriggerStep, action: str, outcome: str) -> None:
        if not step.streak:
            return
        if self.notifier is not None:
            self.notifier.notify(
                "failure_streak",
                {"workflow_id": step.workflow_id, "rule": step.rule, "reason": step.reason},
            )
        log_decision(
            log.warning,
            "failure_streak_paused",
            workflow_id=step.workflow_id,
            rule=step.rule,
            action=action,
            reason=step.reason,
            outcome=outcome,
            dry_run=self.executor.dry_run,
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
        log_decision(
            log.info,
            "failure_streak_released",
            workflow_id=step.workflow_id,
            rule=step.rule,
            action="trigger_enable",
            attempt=None,
            reason=step.reason,
            outcome="released",
            dry_run=self.executor.dry_run,
        )


def _hours(td: timedelta) -> str:
    hours = td.total_seconds() / 3600
    return f"{hours:g}h"
