"""Wake a reconciler at an instant of (possibly emulated) time, via APScheduler.

Why APScheduler rather than ``asyncio.sleep``: a calendar transition can be months away;
a date job survives reloads (``replace_existing``) and wakes on wall-clock time even
after the machine was suspended, where a monotonic sleep would oversleep. An emulated
clock runs ``speed`` times faster, so the wall-clock delay is divided by it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from daemon.kernel.clock import SYSTEM_CLOCK, Clock

#: APScheduler holds a date job for at most this long; later instants wake early and
#: re-arm, which also bounds the damage of a wall clock that jumps.
MAX_ARM = timedelta(days=1)


class Waker:
    """One named wake-up slot; ``arm`` replaces any earlier instant."""

    def __init__(
        self,
        scheduler: AsyncIOScheduler,
        name: str,
        clock: Clock,
        speed: float,
        *,
        wall: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.scheduler = scheduler
        self.name = name
        self.clock = clock
        self.wall = wall
        """Real time: APScheduler runs date jobs on the wall clock, ``clock`` may be emulated."""
        self.speed = speed if speed > 0 else 1.0
        self.event = asyncio.Event()
        self.armed_for: datetime | None = None

    async def _fire(self) -> None:
        # A coroutine job runs on the event loop itself (AsyncIOExecutor), so setting
        # the event here is safe; a plain function would run in a worker thread.
        self.event.set()

    def nudge(self) -> None:
        """Wake the loop now (this replica just became the leader): its pass is due."""
        self.event.set()

    def arm(self, when: datetime | None) -> None:
        self.armed_for = when
        if when is None:
            if self.scheduler.get_job(self.name) is not None:
                self.scheduler.remove_job(self.name)
            return
        delay = (when - self.clock.now()).total_seconds() / self.speed
        delay = max(0.0, min(delay, MAX_ARM.total_seconds()))
        self.scheduler.add_job(
            self._fire,
            "date",
            run_date=self.wall.now() + timedelta(seconds=delay),
            id=self.name,
            replace_existing=True,
            misfire_grace_time=None,
        )

    async def wait(self, *others: asyncio.Event, seconds: float) -> bool:
        """Until this slot fires, one of ``others`` is set, or ``seconds`` real seconds pass.

        Returns True when woken (fired or nudged), False on a plain timeout, so a caller
        can tell a heartbeat wake-up from a reason to reconcile."""
        events = (self.event, *others)
        waiters = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            done, _ = await asyncio.wait(
                waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for w in waiters:
                w.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        woken = bool(done) or any(e.is_set() for e in events)
        self.event.clear()
        return woken
