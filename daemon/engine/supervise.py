"""Keep a long-lived loop alive: a crash is logged and the loop restarted with backoff.

Without this a bug in one loop either kills the whole process silently (TaskGroup
cancels its siblings) or leaves it hanging half-dead; neither is what an operator wants.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger("aomd.supervise")


async def supervised(
    name: str,
    body: Callable[[], Awaitable[None]],
    *,
    initial_backoff: float = 1.0,
    max_backoff: float = 60.0,
    healthy_after: float = 60.0,
) -> None:
    """Run ``body`` until cancelled; restart it with exponential backoff when it raises."""
    loop = asyncio.get_running_loop()
    backoff = initial_backoff
    while True:
        started = loop.time()
        try:
            await body()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            if loop.time() - started >= healthy_after:
                backoff = initial_backoff
            log.exception("loop_crashed", loop=name, restart_in=round(backoff, 2))
            await asyncio.sleep(backoff)
            backoff = min(max_backoff, backoff * 2)
