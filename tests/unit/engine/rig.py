"""An in-process aomd pass loop: real Watcher + ExecutionHandler + Executor on the
emulator, emulated time moved by ``emu.advance`` (speed 0), so scenarios are exact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from daemon.cloud.client import AomClient
from daemon.emulator import Emulator
from daemon.engine.handle import ExecutionHandler
from daemon.engine.notify import Notifier
from daemon.engine.watcher import Watcher
from daemon.journal import MemoryJournal, SqliteJournal
from daemon.policy import in_scope, load_policy_dir
from tests.unit.engine.conftest import EmuClock, make_executor


class Rig:
    def __init__(
        self,
        emu: Emulator,
        client: AomClient,
        journal: MemoryJournal | SqliteJournal,
        policies: Path,
        notifier: Notifier | None = None,
    ) -> None:
        self.emu = emu
        policy = load_policy_dir(policies)
        self.clock = EmuClock(emu)
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
