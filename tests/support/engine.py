"""The engine wired as the daemon wires it, minus the process: an executor, and an
in-process pass loop (real Watcher + ExecutionHandler + Executor) on the emulator.

Nothing here replaces our own code: the clock and the leader are test data (tiny classes
with the methods the Protocols ask for), everything else is the production object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from daemon.cloud.client import AomClient
from daemon.emulator import Emulator
from daemon.engine.executor import Executor
from daemon.engine.handle import ExecutionHandler
from daemon.engine.notify import Notifier
from daemon.engine.safety import BlastRadius, CircuitBreaker
from daemon.engine.watcher import Watcher
from daemon.journal import Journal
from daemon.kernel.clock import Clock
from daemon.policy import in_scope, load_policy_dir
from tests.support.clocks import EmulatorClock

DECISION_KEYS = frozenset(
    {
        "event",
        "workflow_id",
        "execution_id",
        "node_id",
        "rule",
        "action",
        "attempt",
        "reason",
        "outcome",
        "request_id",
        "dry_run",
    }
)
"""Every decision and write event carries these (issue #4)."""


class Leader:
    def __init__(self, leading: bool = True) -> None:
        self.leading = leading

    def may_write(self, shard: object = None) -> bool:
        return self.leading


def make_executor(
    journal: Journal,
    clock: Clock,
    *,
    dry_run: bool = False,
    per_minute: int = 1000,
    per_workflow: int = 1000,
    breaker: CircuitBreaker | None = None,
) -> Executor:
    """An executor whose guards stay out of the way unless a test narrows them."""
    return Executor(
        journal=journal,
        clock=clock,
        blast=BlastRadius(per_minute, per_workflow),
        breaker=breaker or CircuitBreaker(error_ratio=1.0, min_calls=1000, cooldown=60.0),
        leader=Leader(),
        dry_run=dry_run,
    )


class Rig:
    """An in-process aomd pass loop on the emulator, emulated time moved by
    ``emu.advance`` (speed 0), so scenarios are exact."""

    def __init__(
        self,
        emu: Emulator,
        client: AomClient,
        journal: Journal,
        policies: Path,
        notifier: Notifier | None = None,
    ) -> None:
        self.emu = emu
        policy = load_policy_dir(policies)
        self.clock = EmulatorClock.of(emu)
        self.executor = make_executor(journal, self.clock)
        self.handler = ExecutionHandler(
            client=client,
            journal=journal,
            executor=self.executor,
            clock=self.clock,
            notifier=notifier,
            rules=lambda: policy.rules,
            calendars=lambda: policy.built_calendars,
        )

        def scope() -> Any:
            return lambda wf: in_scope(policy.rules, wf)

        self.watcher = Watcher(
            client=client,
            clock=self.clock,
            handler=self.handler,
            scope=scope,
            fast_interval=1.0,
            slow_interval=5.0,
            discovery_interval=60.0,
            concurrency=4,
            retire=self.handler.retire,
        )

    async def run(self, emulated_seconds: float, step: float = 5.0) -> None:
        """Poll every watched workflow, then let ``step`` emulated seconds pass."""
        await self.watcher.discover()
        elapsed = 0.0
        while elapsed <= emulated_seconds:
            await self.watcher.poll_all()
            self.emu.advance(step)
            elapsed += step
