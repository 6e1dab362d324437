"""The fake clock every test uses, and the clock that reads an emulator's emulated time.

Both satisfy ``daemon.kernel.clock.Clock`` (``now()`` aware UTC, ``monotonic()``), so
production objects take them unchanged; nothing here sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from daemon.emulator import Emulator

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
"""The instant engine and journal tests start at (a Thursday)."""


class FakeClock:
    """Settable time: ``now`` and ``monotonic`` move together via ``advance``.

    ``monotonic`` is a bound method, so code that takes a bare ``Callable[[], float]``
    (health, leader election) gets ``clock.monotonic``. ``t`` and ``mono`` are plain
    attributes for the tests that set an instant rather than a step.
    """

    def __init__(self, start: datetime = T0, *, mono: float = 1000.0) -> None:
        self.t = start
        self.mono = mono

    def now(self) -> datetime:
        return self.t

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)
        self.mono += seconds


class EmulatorClock:
    """An emulator's emulated ``now`` with a separate ``monotonic``.

    Why not ``FakeClock``: the engine must see the cloud's time, and the emulator's time
    moves by itself (cron ticks, ``emu.advance``), so the clock has to read it.
    """

    def __init__(self, now: Callable[[], datetime], monotonic: Callable[[], float]) -> None:
        self._now = now
        self._monotonic = monotonic

    @classmethod
    def of(cls, emu: Emulator, *, mono: float = 1000.0) -> EmulatorClock:
        """An in-process emulator (speed 0: time moves only with ``emu.advance``); the
        monotonic clock stands still, so rate guards never refill by themselves."""
        return cls(emu.now, lambda: mono)

    @classmethod
    def mirror(cls, anchor: datetime, mono: float, speed: float) -> EmulatorClock:
        """An emulator in another process, from one ``(emu.now(), time.monotonic())``
        pair read there: ``CLOCK_MONOTONIC`` is system-wide on Linux, so
        ``anchor + (monotonic - mono) * speed`` is the same emulated instant here, as
        long as nobody changes that emulator's speed or advances it meanwhile."""

        def now() -> datetime:
            return anchor + timedelta(seconds=(time.monotonic() - mono) * speed)

        return cls(now, time.monotonic)

    def now(self) -> datetime:
        return self._now()

    def monotonic(self) -> float:
        return self._monotonic()
