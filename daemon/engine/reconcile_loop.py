"""The level-triggered loops of the trigger reconciler and the schedule runner.

A step runs on start-up, when its waker's instant (the next calendar transition or fire
time) is reached, after a reload, at once when this replica becomes the leader, and
every ``reconcile_interval`` as a safety net; the loop heartbeats in between. A follower
runs no step: it could write nothing, and it must not move the shared schedule
checkpoint past fire times it did not run (a leader killed a second after taking over
would otherwise never run a trigger pass or a due fire time).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

import structlog

from daemon.calendar.calendar import Calendar
from daemon.engine.assemble import AccountRuntime
from daemon.engine.reload import PolicyRef
from daemon.engine.wake import Waker
from daemon.kernel.clock import Clock
from daemon.kernel.errors import AomdError, CloudError
from daemon.ops.metrics import Metrics
from daemon.policy import PolicySet

log = structlog.get_logger("aomd.daemon")

HEARTBEAT_SECONDS = 5.0
"""Reconcile loops wake at least this often (real seconds) to heartbeat and check dues."""

FOLLOWER_LOOK = 1.0
"""How often (real seconds) a follower checks whether it has become the leader."""

Step = Callable[[PolicySet, datetime], Awaitable[datetime | None]]
"""One pass at ``now``; returns the instant the next pass is due (or None)."""


async def reconcile_loop(
    name: str,
    waker: Waker,
    step: Step,
    *,
    policy: PolicyRef,
    clock: Clock,
    interval: float,
    speed: float,
    beat: Callable[[str], None],
    poll: Callable[[], Awaitable[bool]] | None = None,
    leading: Callable[[], object] = lambda: True,
) -> None:
    """``poll`` (checked every heartbeat) says the step is due for another reason: an
    override added or ended on the command line. ``leading``: what this replica leads
    (falsy: nothing); any change of it makes a pass due, so a replica that gains a
    second shard of an account reconciles that shard's workflows at once."""
    last_run = -float("inf")
    last_version = -1
    led: object = False
    while True:
        version = policy.version
        armed = waker.armed_for
        lead = leading()
        due = bool(lead) and (
            lead != led
            or version != last_version
            or (armed is not None and clock.now() >= armed)
            or clock.monotonic() - last_run >= interval
        )
        led = lead
        if not due and lead and poll is not None:
            try:
                due = await poll()
            except AomdError as exc:
                log.warning(f"{name}_poll_failed", error=str(exc))
        if due:
            last_run, last_version = clock.monotonic(), version
            now = clock.now()
            try:
                waker.arm(await step(policy.current, now))
            except CloudError as exc:
                log.warning(
                    f"{name}_failed",
                    error=type(exc).__name__,
                    error_code=exc.error_code,
                    request_id=exc.request_id,
                )
                waker.arm(now + timedelta(seconds=5 * speed))
        beat(f"{name}:{waker.name.split(':', 1)[-1]}")
        # a follower looks again soon: leadership may come at any moment
        await waker.wait(
            seconds=min(HEARTBEAT_SECONDS, interval, FOLLOWER_LOOK if not lead else interval)
        )


def trigger_step(rt: AccountRuntime, metrics: Metrics, wall: Clock) -> Step:
    async def step(policy: PolicySet, now: datetime) -> datetime | None:
        policy = policy.for_account(rt.account.name)
        drifts = rt.triggers.drifts
        overrides = await rt.overrides.refresh(policy, now)
        calendars = rt.overrides.calendars(policy)
        await rt.triggers.reconcile(policy.triggers, calendars, now, overrides)
        metrics.drift(rt.triggers.drifts - drifts)
        metrics.set_triggers_owned(rt.triggers.owned_count)
        metrics.reconciled(wall.now().timestamp())
        nxt = next_trigger_transition(policy, now, calendars)
        ends = [o.end for o in overrides if o.end > now and o.target_kind != "calendar"]
        ends += [o.start for o in overrides if o.start is not None and o.start > now]
        nxt = min([t for t in (nxt, *ends) if t is not None], default=None)
        # one second past the transition so ``active_at`` already reads the new state
        wake = nxt + timedelta(seconds=1) if nxt else None
        again = rt.triggers.next_pass(now)
        return again if again is not None and (wake is None or again < wake) else wake

    return step


def schedule_step(rt: AccountRuntime) -> Step:
    async def step(policy: PolicySet, now: datetime) -> datetime | None:
        policy = policy.for_account(rt.account.name)
        calendars, sources = rt.overrides.calendars(policy), policy.schedule_sources
        await rt.schedules.tick(policy.schedules, calendars, sources, now)
        nxt = rt.schedules.next_fire(policy.schedules, calendars, sources, now)
        again = rt.schedules.retry_at
        return again if again is not None and (nxt is None or again < nxt) else nxt

    return step


def next_trigger_transition(
    policy: PolicySet, after: datetime, calendars: Mapping[str, Calendar] | None = None
) -> datetime | None:
    """The first instant after ``after`` where any trigger rule's calendar flips
    (``calendars``: the policy's with overrides applied)."""
    calendars = policy.built_calendars if calendars is None else calendars
    best: datetime | None = None
    for name in {rule.calendar for rule in policy.triggers}:
        cal = calendars.get(name)
        t = cal.next_transition(after) if cal is not None else None
        if t is not None and (best is None or t < best):
            best = t
    return best
