"""Webhook notifications: a generic JSON POST, retried, never blocking the watch loop.

Sent when aomd gives up on a node (fallback ``leave``), terminates an execution, or finds
a paused execution no rule handles. A notification that cannot be delivered is logged
and dropped: it must never hold up the work it reports on.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from typing import Any

import aiohttp
import structlog

log = structlog.get_logger("aomd.notify")


SCHEMA_VERSION = 1
"""Version of the notification payloads (README "Notifications"): bumped when a field
changes meaning or disappears; new fields and new kinds do not bump it."""


class Notifier:
    """Queue of notifications drained by one long-lived task (owned by the TaskGroup)."""

    def __init__(
        self,
        default_url: str | None,
        *,
        attempts: int = 4,
        timeout: float = 5.0,
        queue_size: int = 1000,
    ) -> None:
        self.default_url = default_url
        self.attempts = attempts
        self.timeout = timeout
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(queue_size)
        self.sent = 0
        self.dropped = 0

    def notify(self, kind: str, payload: Mapping[str, Any], url: str | None = None) -> None:
        target = url or self.default_url
        if target is None:
            return
        # source and kind last: a payload key must not relabel the notification
        body = {**payload, "schema_version": SCHEMA_VERSION, "source": "aomd", "kind": kind}
        try:
            self._queue.put_nowait((target, body))
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("notification_dropped", kind=kind, reason="queue full")

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                url, body = await self._queue.get()
                await self._deliver(session, url, body)

    async def flush(self) -> int:
        """Deliver everything queued now (``aomd run --once`` has no long-lived drain
        task; without this its notifications would be dropped at exit). Returns how
        many were taken off the queue."""
        taken = 0
        if self._queue.empty():
            return 0
        async with aiohttp.ClientSession() as session:
            while not self._queue.empty():
                url, body = self._queue.get_nowait()
                taken += 1
                await self._deliver(session, url, body)
        return taken

    async def _deliver(
        self, session: aiohttp.ClientSession, url: str, body: dict[str, Any]
    ) -> None:
        delay = 0.5
        for attempt in range(1, self.attempts + 1):
            try:
                async with (
                    asyncio.timeout(self.timeout),
                    session.post(url, json=body) as resp,
                ):
                    if resp.status < 400:
                        self.sent += 1
                        log.info("notification_sent", kind=body["kind"], status=resp.status)
                        return
                    status: int | None = resp.status
                    if 400 <= resp.status < 500 and resp.status != 429:
                        break
            except (aiohttp.ClientError, TimeoutError):
                status = None
            if attempt < self.attempts:
                await asyncio.sleep(random.uniform(0, delay))  # jitter, not crypto
                delay *= 2
        self.dropped += 1
        log.warning("notification_failed", kind=body["kind"], status=status, attempts=attempt)
