"""Journal upkeep, hourly: prune rows past ``journal.retention_days``, fold repetitive
rows older than ``journal.compact_after_hours`` (trigger toggles: one row per workflow,
action and day), and give the freed pages back to the file system.

Why all three: pruning alone deletes rows but a SQLite file never shrinks by itself, and
a calendar toggling every few minutes writes most of the rows of a large fleet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from daemon.journal.store import Journal
from daemon.kernel.clock import Clock

log = structlog.get_logger("aomd.daemon")

RETENTION_PERIOD_SECONDS = 3600.0


async def upkeep(
    journal: Journal,
    now: datetime,
    *,
    days: int,
    compact_after: timedelta,
    since: datetime | None,
) -> tuple[int, int, int]:
    """One round: ``(rows pruned, rows folded, bytes freed)``."""
    pruned = await journal.prune(now - timedelta(days=days))
    folded = await journal.compact(now - compact_after, since)
    freed = await journal.reclaim()
    return pruned, folded, freed


async def prune_forever(
    journal: Journal,
    clock: Clock,
    days: int,
    *,
    compact_after: timedelta = timedelta(hours=6),
    on_size: Callable[[int], None] | None = None,
    period: float = RETENTION_PERIOD_SECONDS,
) -> None:
    since: datetime | None = None  # the first round folds everything (an old journal)
    while True:
        now = clock.now()
        pruned, folded, freed = await upkeep(
            journal, now, days=days, compact_after=compact_after, since=since
        )
        # Later rounds look back two days: enough for the day groups still growing.
        cutoff = now - compact_after
        since = datetime.combine(cutoff.date(), datetime.min.time(), cutoff.tzinfo) - timedelta(
            days=1
        )
        if pruned or folded or freed:
            log.info(
                "journal_pruned",
                rows=pruned,
                older_than_days=days,
                folded=folded,
                bytes_freed=freed,
                bytes=journal.size(),
            )
        if on_size is not None:
            on_size(journal.size())
        await asyncio.sleep(period)
