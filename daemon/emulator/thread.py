"""Run an ``Emulator`` on its own loop in a background thread, for synchronous callers.

Why: the official SDK, benchmarks and sync test code block their thread, so the
emulator cannot share it. All emulator calls go through ``call`` so state is only ever
touched on the emulator's loop (the emulator is not thread-safe).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from daemon.emulator.emulator import Emulator

T = TypeVar("T")
START_TIMEOUT = 10.0


class EmulatorThread:
    """``with EmulatorThread(project_id=..., token=...) as et: et.url; et.call(lambda e: ...)``."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **emulator_kwargs: Any) -> None:
        self._host = host
        self._port = port
        self._kwargs = emulator_kwargs
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="emulator", daemon=True)
        self._emu: Emulator | None = None
        self.url = ""

    def __enter__(self) -> EmulatorThread:
        self._thread.start()

        async def boot() -> str:
            self._emu = Emulator(**self._kwargs)
            return await self._emu.start(host=self._host, port=self._port)

        self.url = asyncio.run_coroutine_threadsafe(boot(), self._loop).result(START_TIMEOUT)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._emu is not None:
            future = asyncio.run_coroutine_threadsafe(self._emu.stop(), self._loop)
            future.result(START_TIMEOUT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(START_TIMEOUT)
        self._loop.close()

    def call(self, fn: Callable[[Emulator], T]) -> T:
        """Run ``fn(emulator)`` on the emulator's loop and return its result."""
        if self._emu is None:
            raise RuntimeError("emulator thread not started")
        emu = self._emu
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(fn(emu))
            except BaseException as exc:  # handed to the caller's thread, not swallowed
                done.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return done.result(START_TIMEOUT)
