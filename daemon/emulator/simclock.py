"""The emulated clock: real monotonic time scaled by ``speed``, anchored at a wall time.

Why not the loop clock: the emulator must run inside a test's loop and as a process, at
any speed, and keep continuity when the speed changes (a jump would fire crons twice or
skip node due times). ``advance`` lets tests jump forward without sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime

from daemon.kernel.clock import Clock, SystemClock


class EmuClock:
    """emulated now = anchor + (monotonic - anchor_monotonic) * speed."""

    def __init__(
        self, *, speed: float = 1.0, wall: Clock | None = None, start: datetime | None = None
    ) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self._wall = wall or SystemClock()
        begin = start or self._wall.now()
        self._anchor_ms = begin.timestamp() * 1000.0
        self._anchor_mono = self._wall.monotonic()
        self._speed = float(speed)

    @property
    def speed(self) -> float:
        return self._speed

    def now_ms(self) -> int:
        return int(
            self._anchor_ms + (self._wall.monotonic() - self._anchor_mono) * self._speed * 1000.0
        )

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ms() / 1000.0, UTC)

    def set_speed(self, speed: float) -> None:
        """Change the rate without a jump: re-anchor at the current emulated time."""
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self._anchor_ms = float(self.now_ms())
        self._anchor_mono = self._wall.monotonic()
        self._speed = float(speed)

    def advance(self, seconds: float) -> None:
        """Jump emulated time forward (tests; never backwards)."""
        if seconds < 0:
            raise ValueError("cannot go back in time")
        self._anchor_ms += seconds * 1000.0

    def wall_now(self) -> datetime:
        """The real wall clock (signature date checks use this, not emulated time)."""
        return self._wall.now()


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, UTC)
