"""``aomd run --once``: one full pass (discover, poll every watched workflow, triggers,
schedules) for cron jobs and smoke tests, then an exit code."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from daemon.engine.assemble import AccountRuntime
from daemon.engine.notify import Notifier
from daemon.engine.reload import PolicyRef
from daemon.kernel.clock import Clock
from daemon.kernel.errors import CloudError

log = structlog.get_logger("aomd.daemon")


async def run_once(
    accounts: Sequence[AccountRuntime], policy: PolicyRef, clock: Clock, notifier: Notifier
) -> int:
    """0 when every account's pass went through, 1 when any failed on a cloud error."""
    now = clock.now()
    failures = 0
    for rt in accounts:
        try:
            await rt.watcher.discover()
            await rt.watcher.poll_all()
            p = policy.current.for_account(rt.account.name)
            overrides = await rt.overrides.refresh(p, now)
            calendars = rt.overrides.calendars(p)
            await rt.triggers.reconcile(p.triggers, calendars, now, overrides)
            await rt.schedules.tick(p.schedules, calendars, p.schedule_sources, now)
        except CloudError as exc:
            failures += 1
            log.error(
                "once_failed",
                account=rt.account.name,
                error=type(exc).__name__,
                request_id=exc.request_id,
            )
    # --once runs no notifier task: deliver what the pass queued before exiting
    await notifier.flush()
    return 1 if failures else 0
