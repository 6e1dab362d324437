"""Feeding ``Metrics`` and ``HealthState`` from the engine.

Events are counted as they happen (the client's ``on_call``, the executor's
``on_outcome``, the handlers' unhandled pauses, the watchers' cycles); the gauges that
nothing reports (breaker, blast radius, leadership, executions seen, write retries,
unreconciled triggers) are sampled once a
second by ``run``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from daemon.engine.assemble import AccountRuntime
from daemon.engine.executor import Executor
from daemon.engine.watcher import WatchStats
from daemon.kernel.clock import Clock
from daemon.kernel.writes import WriteIntent, WriteReport
from daemon.ops.health import HealthState
from daemon.ops.leader import LeaderElector
from daemon.ops.metrics import Metrics
from daemon.ops.shard_election import ShardElector

SAMPLE_SECONDS = 1.0
FALLBACK_PREFIX = "fallback-"


class MetricsPump:
    def __init__(
        self, metrics: Metrics, health: HealthState, accounts: Sequence[AccountRuntime]
    ) -> None:
        self.metrics = metrics
        self.health = health
        self.accounts = accounts
        """The daemon's own list: accounts assembled later are counted too."""

    def on_call(self, operation: str, status: str, seconds: float) -> None:
        self.metrics.api_call(operation, status, seconds)
        if status.isdigit() and int(status) < 500:
            # The cloud answered (even a 4xx is an answer): it is reachable.
            self.health.cloud_ok()

    def on_outcome(self, intent: WriteIntent, report: WriteReport) -> None:
        self.metrics.write(intent.kind, report.outcome)
        segments = intent.key.split("/")
        if len(segments) >= 2 and segments[-2].startswith(FALLBACK_PREFIX):
            # decide keys a give-up "exec/<execution>/<node>/fallback-<skip|terminate|leave>/1"
            self.metrics.gave_up(segments[-2].removeprefix(FALLBACK_PREFIX))

    def on_unhandled(self, _count: int) -> None:
        """One gauge for all accounts: each handler knows only its own count, so the
        gauge is the sum (set from one handler's count it showed the last poller's)."""
        self.metrics.set_unhandled_pauses(sum(len(rt.handler.unhandled) for rt in self.accounts))
        self.metrics.set_held_stops(sum(len(rt.handler.held) for rt in self.accounts))

    def on_cycle(self, stats: WatchStats) -> None:
        self.metrics.poll_cycle(stats.last_cycle_seconds)

    async def run(self, executor: Executor, elector: LeaderElector, clock: Clock) -> None:
        seen = retried = exhausted = 0
        journal_errors = 0
        while True:
            errors = executor.journal_errors + sum(
                rt.watcher.stats.journal_errors for rt in self.accounts
            )
            self.metrics.journal_errors(errors - journal_errors)
            journal_errors = errors
            self.metrics.set_blast_radius_tripped(executor.blast_tripped)
            self.metrics.set_breaker_open(executor.breaker.is_open(clock.monotonic()))
            leader = elector.is_leader
            self.metrics.set_leader(leader)
            self.health.set_leader(leader)
            if isinstance(elector, ShardElector):
                self.metrics.set_shards(elector.shards, len(elector.live_members))
            total = sum(rt.watcher.stats.executions_seen for rt in self.accounts)
            if total > seen:
                self.metrics.execution_seen(total - seen)
            seen = total
            book = executor.retries
            self.metrics.write_retries(book.retries_scheduled - retried, book.exhausted - exhausted)
            retried, exhausted = book.retries_scheduled, book.exhausted
            self.metrics.set_triggers_unreconciled(
                sum(len(rt.triggers.unreconciled) for rt in self.accounts)
            )
            self.health.beat("metrics")
            await asyncio.sleep(SAMPLE_SECONDS)
