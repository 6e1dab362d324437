"""Feeding ``Metrics`` and ``HealthState`` from the engine.

Events are counted as they happen (the client's ``on_call``, the executor's
``on_outcome``, the handlers' unhandled pauses, the watchers' cycles); the gauges that
nothing reports (breaker, blast radius, leadership, executions seen, write retries,
unreconciled triggers, each account's watch plan and calls a minute against its budget)
are sampled once a second by ``run``.
"""

from __future__ import annotations

import asyncio
from collections import deque
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
CALLS_WINDOW_SECONDS = 60.0
FALLBACK_PREFIX = "fallback-"


class MetricsPump:
    def __init__(
        self, metrics: Metrics, health: HealthState, accounts: Sequence[AccountRuntime]
    ) -> None:
        self.metrics = metrics
        self.health = health
        self.accounts = accounts
        """The daemon's own list: accounts assembled later are counted too."""
        self._calls: dict[str, deque[tuple[float, int]]] = {}
        """account -> (monotonic, attempts so far) samples of the last minute."""

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

    def sample_budget(self, now: float) -> None:
        """Per account: the watch plan, and the calls of the last minute from the
        client's attempt counter (every attempt goes through the account's bucket)."""
        for rt in self.accounts:
            name = rt.account.name
            total = sum(rt.client.stats.values())
            window = self._calls.setdefault(name, deque())
            window.append((now, total))
            while len(window) > 1 and now - window[0][0] > CALLS_WINDOW_SECONDS:
                window.popleft()
            t0, c0 = window[0]
            span = now - t0
            per_minute = (total - c0) * 60.0 / span if span >= 1.0 else 0.0
            plan = rt.watcher.plan
            self.metrics.watch_budget(
                name,
                scan_period=plan.scan,
                stretch=plan.stretch,
                planned_per_minute=plan.demand * 60.0,
                calls_per_minute=per_minute,
                budget_per_minute=rt.account.requests_per_second * 60.0,
            )

    async def run(self, executor: Executor, elector: LeaderElector, clock: Clock) -> None:
        seen = retried = exhausted = 0
        journal_errors = 0
        while True:
            self.sample_budget(clock.monotonic())
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
