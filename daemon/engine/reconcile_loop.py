"""The level-triggered loops of the trigger reconciler and the schedule runner.

A step runs on start-up, when its waker's instant (the next calendar transition or fire
time) is reached, after a reload, and every ``reconcile_interval`` as a safety net; the
loop heartbeats in between.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog

from daemon.engine.assemble import AccountRuntime
from daemon.engine.reload import PolicyRef
from daemon.engine.wake import Waker
from daemon.kernel.clock import Clock
from daemon.kernel.errors import CloudError
from daemon.ops.metrics import Metrics
from daemon.policy import PolicySet

log = structlog.get_logger("aomd.daemon")

HEARTBEAT_SECONDS = 5.0
"""Reconcile loops wake at least this often (real seconds) to heartbeat and check dues."""

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
) -> None:
    last_run = -float("inf")
    last_version = -1
    while True:
        version = policy.version
        armed = waker.armed_for
        due = (
            version != last_version
            or (armed is not None and clock.now() >= armed)
            or clock.monotonic() - last_run >= interval
        )
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
        await waker.wait(seconds=min(HEARTBEAT_SECONDS, interval))


def trigger_step(rt: AccountRuntime, metrics: Metrics, wall: Clock) -> Step:
    async def step(policy: PolicySet, now: datetime) -> datetime | None:
        policy = policy.for_account(rt.account.name)
        drifts = rt.triggers.drifts
        await rt.triggers.reconcile(policy.triggers, policy.built_calendars, now)
        metrics.drift(rt.triggers.drifts - drifts)
        metrics.set_triggers_owned(rt.triggers.owned_count)
        metrics.reconciled(wall.now().timestamp())
        nxt = next_trigger_transition(policy, now)
        # one second past the transition so ``active_at`` already reads the new state
        wake = nxt + timedelta(seconds=1) if nxt else None
        again = rt.triggers.next_pass(now)
        return again if again is not None and (wake is None or again < wake) else wake

    return step


def schedule_step(rt: AccountRuntime) -> Step:
    async def step(policy: PolicySet, now: datetime) -> datetime | None:
        policy = policy.for_account(rt.account.name)
        calendars, sources = policy.built_calendars, policy.schedule_sources
        await rt.schedules.tick(policy.schedules, calendars, sources, now)
        nxt = rt.schedules.next_fire(policy.schedules, calendars, sources, now)
        again = rt.schedules.retry_at
        return again if again is not None and (nxt is None or again < nxt) else nxt

    return step


def next_trigger_transition(policy: PolicySet, after: datetime) -> datetime | None:
    """The first instant after ``after`` where any trigger rule's calendar flips."""
    best: datetime | None = None
    for name in {rule.calendar for rule in policy.triggers}:
        cal = policy.built_calendars.get(name)
        t = cal.next_transition(after) if cal is not None else None
        if t is not None and (best is None or t < best):
            best = t
    return best
