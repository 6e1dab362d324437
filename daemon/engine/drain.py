"""Stopping without losing a write: no new writes, and in-flight ones get a bounded time
to finish and be journaled (SIGTERM must end well inside systemd's 10 s)."""

from __future__ import annotations

import asyncio

import structlog

from daemon.engine.executor import Executor
from daemon.kernel.clock import Clock

log = structlog.get_logger("aomd.daemon")

STOP_GRACE_SECONDS = 6.0
"""In-flight writes get this long after SIGTERM; the unit's TimeoutStopSec is 10 s."""


async def drain(executor: Executor, clock: Clock, grace: float = STOP_GRACE_SECONDS) -> None:
    executor.stopping = True
    deadline = clock.monotonic() + grace
    # Polling a counter (not an Event): in-flight writes live in many tasks and the
    # executor must stay free of shutdown plumbing.
    while executor.in_flight and clock.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    if executor.in_flight:
        log.warning("stopping_with_writes_in_flight", in_flight=executor.in_flight)
