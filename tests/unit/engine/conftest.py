"""Shared engine-test wiring: a real emulator on 127.0.0.1, the real client, real journals.

Nothing here replaces our own code: the clock and the leader are test data (tiny classes
with the two methods the Protocols ask for), everything else is the production object.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from daemon.cloud.client import AomClient
from daemon.emulator import Emulator
from daemon.engine.connect import client_for_account
from daemon.engine.executor import Executor
from daemon.engine.safety import BlastRadius, CircuitBreaker
from daemon.journal import MemoryJournal, SqliteJournal
from daemon.settings import Account, Endpoints

PID = "e" * 32
TOKEN = "tok-engine-tests"
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
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


class FakeClock:
    """Settable time: ``now`` (aware UTC) and ``monotonic`` move together via ``advance``."""

    def __init__(self, start: datetime = T0) -> None:
        self.t = start
        self.mono = 1000.0

    def now(self) -> datetime:
        return self.t

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)
        self.mono += seconds


class EmuClock:
    """The emulator's ``now`` (speed 0: moves only with ``emu.advance``) and a settable
    monotonic clock for the rate guards."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.mono = 1000.0

    def now(self) -> datetime:
        return self.emu.now()

    def monotonic(self) -> float:
        return self.mono


class Leader:
    def __init__(self, leading: bool = True) -> None:
        self.leading = leading

    def may_write(self) -> bool:
        return self.leading


def make_executor(
    journal: MemoryJournal | SqliteJournal,
    clock: FakeClock | EmuClock,
    *,
    dry_run: bool = False,
    per_minute: int = 1000,
    per_workflow: int = 1000,
    breaker: CircuitBreaker | None = None,
) -> Executor:
    return Executor(
        journal=journal,
        clock=clock,
        blast=BlastRadius(per_minute, per_workflow),
        breaker=breaker or CircuitBreaker(error_ratio=1.0, min_calls=1000, cooldown=60.0),
        leader=Leader(),
        dry_run=dry_run,
    )


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    e = Emulator(project_id=PID, token=TOKEN, speed=0, seed=1, start_time=T0)
    await e.start()
    try:
        yield e
    finally:
        await e.stop()


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[AomClient]:
    account = Account(
        name="t",
        project_id=PID,
        token=SecretStr(TOKEN),
        endpoints=Endpoints(aom=emu.url, dataarts=emu.url),
        read_retries=0,
        requests_per_second=10_000,
        burst=10_000,
    )
    c = client_for_account(account)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def journal() -> AsyncIterator[MemoryJournal]:
    j = MemoryJournal()
    await j.open()
    try:
        yield j
    finally:
        await j.close()


class Webhook:
    """A real HTTP receiver on 127.0.0.1:0 for the Notifier; answers ``statuses`` in turn."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.received: list[dict[str, Any]] = []
        self.hits = 0
        self.delivered = asyncio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _post(self, request: web.Request) -> web.Response:
        self.hits += 1
        status = self.statuses.pop(0) if self.statuses else 200
        if status < 400:
            self.received.append(await request.json())
            self.delivered.set()
        return web.Response(status=status)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self._post)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    hook = Webhook()
    await hook.start()
    try:
        yield hook
    finally:
        await hook.stop()


def write_rules(tmp_path: Path, text: str) -> Path:
    d = tmp_path / "policies"
    d.mkdir(exist_ok=True)
    (d / "rules.yaml").write_text(text, encoding="utf-8")
    return d
