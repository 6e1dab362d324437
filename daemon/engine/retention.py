"""Journal retention: rows older than ``journal.retention_days`` are pruned hourly."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog

from daemon.journal.store import Journal
from daemon.kernel.clock import Clock

log = structlog.get_logger("aomd.daemon")

RETENTION_PERIOD_SECONDS = 3600.0


async def prune_forever(journal: Journal, clock: Clock, days: int) -> None:
    while True:
        pruned = await journal.prune(clock.now() - timedelta(days=days))
        if pruned:
            log.info("journal_pruned", rows=pruned, older_than_days=days)
        await asyncio.sleep(RETENTION_PERIOD_SECONDS)
