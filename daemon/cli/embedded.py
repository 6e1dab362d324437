"""The embedded emulator, started only by the commands (``run``, ``demo``, ``plan --live``).

The engine must not import the fake cloud, so it asks for one through the
``StartEmulator`` callback of ``daemon.engine.connect`` and gets plain values back: the
account wired to the emulator's URL and a fresh random token (registered for redaction),
and the emulated clock the daemon runs on.
"""

from __future__ import annotations

import contextlib
import secrets
from datetime import datetime
from pathlib import Path

import structlog
from pydantic import SecretStr

from daemon.emulator import Emulator
from daemon.emulator.simclock import EmuClock
from daemon.engine.connect import Embedded
from daemon.kernel.clock import Clock, SystemClock
from daemon.ops.logging import register_secret
from daemon.settings import Account, EmulatorSettings, Endpoints

log = structlog.get_logger("aomd.daemon")

DEMO_SCENARIO = Path(__file__).resolve().parent.parent / "emulator" / "scenarios" / "demo.yaml"


class EmulatedClock:
    """The daemon's clock when it drives the embedded emulator: emulated ``now``, real
    monotonic time (rate limits and breakers stay in real seconds)."""

    def __init__(self, emulated: EmuClock, wall: Clock | None = None) -> None:
        self._emulated = emulated
        self._wall = wall or SystemClock()

    def now(self) -> datetime:
        return self._emulated.now()

    def monotonic(self) -> float:
        return self._wall.monotonic()


class EmbeddedEmulators:
    """Starts one in-process emulator per ``emulator = true`` account; keeps them so the
    demo can read what the cloud saw."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.started: list[Emulator] = []

    async def start(self, account: Account, stack: contextlib.AsyncExitStack) -> Embedded:
        es = self.settings
        token = secrets.token_urlsafe(24)
        register_secret(token)
        emu = Emulator(
            project_id=account.project_id,
            token=token,
            speed=es.speed,
            seed=es.seed,
            start_time=es.start,
        )
        emu.load_scenario(es.scenario or DEMO_SCENARIO)
        emu.set_speed(es.speed)  # the settings win over a speed written in the scenario
        url = await emu.start()
        stack.push_async_callback(emu.stop)
        self.started.append(emu)
        log.info("emulator_started", url=url, account=account.name, speed=es.speed)
        wired = account.model_copy(
            update={"token": SecretStr(token), "endpoints": Endpoints(aom=url, dataarts=url)}
        )
        return Embedded(account=wired, clock=EmulatedClock(emu.clock))
