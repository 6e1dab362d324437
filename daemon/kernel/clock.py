"""The only place aomd reads wall-clock time; everything else takes ``now`` as an argument."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC datetime."""
        ...

    def monotonic(self) -> float: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()
"""The real clock, for defaults (``monotonic=SYSTEM_CLOCK.monotonic``) where a test passes
its own."""


class ScaledClock:
    """Emulated time running ``speed`` times faster than real time from ``anchor``.

    Test-only use: ``aomd run`` with ``emulator.follow`` runs on an external emulator's
    accelerated clock (``bench/soak.py``: days of calendar and retention in an hour).
    ``monotonic`` stays real: rate limits, timeouts and breakers work in real seconds.
    """

    def __init__(self, anchor: datetime, speed: float, mono: float | None = None) -> None:
        self.anchor = anchor
        self.speed = speed
        self.mono = time.monotonic() if mono is None else mono

    def now(self) -> datetime:
        return self.anchor + timedelta(seconds=(time.monotonic() - self.mono) * self.speed)

    def monotonic(self) -> float:
        return time.monotonic()
