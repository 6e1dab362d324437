"""Liveness and readiness as plain state the engine updates and the server reads.

Why a separate object (not the server): the engine must not know about HTTP, and the
same state feeds the systemd watchdog (``alive()``) and the probes. All times come
from an injectable monotonic clock so tests need no sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from daemon.kernel.clock import SYSTEM_CLOCK

Role = Literal["leader", "follower", "unknown"]


class _Unset:
    pass


_UNSET: Final = _Unset()


@dataclass(frozen=True, slots=True)
class Probe:
    """One probe answer: ``ok`` picks 200/503, ``body`` is the JSON document."""

    ok: bool
    body: dict[str, Any]


class HealthState:
    """Heartbeats of the long-lived loops plus the readiness facts.

    A loop is *stale* when it has not called ``beat`` within its ``max_age`` (set at
    ``register``); a loop that never beat counts from its registration, so a loop stuck
    before its first pass is caught too.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = SYSTEM_CLOCK.monotonic,
        cloud_stale_after: float = 300.0,
        default_max_age: float = 120.0,
    ) -> None:
        self._clock = clock
        self.cloud_stale_after = cloud_stale_after
        self.default_max_age = default_max_age
        self._max_age: dict[str, float] = {}
        self._last_beat: dict[str, float] = {}
        self.policies_loaded = False
        self._cloud_ok_at: float | None = None
        self.leader: bool | None = None
        self.detail: str | None = None

    # -- liveness -----------------------------------------------------------------
    def register(self, loop_name: str, max_age: float | None = None) -> None:
        """Expect ``loop_name`` to beat at least every ``max_age`` seconds from now on."""
        self._max_age[loop_name] = self.default_max_age if max_age is None else max_age
        self._last_beat[loop_name] = self._clock()

    def unregister(self, loop_name: str) -> None:
        self._max_age.pop(loop_name, None)
        self._last_beat.pop(loop_name, None)

    def beat(self, loop_name: str) -> None:
        """Record that ``loop_name`` made progress; registers it with the default age."""
        if loop_name not in self._max_age:
            self._max_age[loop_name] = self.default_max_age
        self._last_beat[loop_name] = self._clock()

    def stale_loops(self) -> list[str]:
        now = self._clock()
        return sorted(
            name for name, age in self._max_age.items() if now - self._last_beat[name] > age
        )

    def alive(self) -> bool:
        """True when every registered loop beat recently (feeds the systemd watchdog)."""
        return not self.stale_loops()

    def liveness(self) -> Probe:
        now = self._clock()
        stale = self.stale_loops()
        loops = {
            name: {
                "age_seconds": round(now - self._last_beat[name], 3),
                "max_age_seconds": age,
                "stale": name in stale,
            }
            for name, age in sorted(self._max_age.items())
        }
        return Probe(not stale, {"alive": not stale, "stale": stale, "loops": loops})

    # -- readiness ----------------------------------------------------------------
    def set_ready(
        self,
        *,
        policies_loaded: bool | _Unset = _UNSET,
        cloud_reachable: bool | _Unset = _UNSET,
        leader: bool | _Unset | None = _UNSET,
        detail: str | _Unset | None = _UNSET,
    ) -> None:
        """Update any of the readiness facts; omitted ones keep their value.

        ``cloud_reachable=True`` is the same as ``cloud_ok()``; ``leader=None`` means
        the election has not decided yet.
        """
        if not isinstance(policies_loaded, _Unset):
            self.policies_loaded = policies_loaded
        if not isinstance(cloud_reachable, _Unset):
            if cloud_reachable:
                self.cloud_ok()
            else:
                self._cloud_ok_at = None
        if not isinstance(leader, _Unset):
            self.leader = leader
        if not isinstance(detail, _Unset):
            self.detail = detail

    def cloud_ok(self) -> None:
        """Record a successful cloud call (any operation)."""
        self._cloud_ok_at = self._clock()

    # short forms the engine uses
    def mark_cloud_ok(self) -> None:
        self.cloud_ok()

    def set_policy_loaded(self, loaded: bool) -> None:
        self.policies_loaded = loaded

    def set_leader(self, leader: bool | None) -> None:
        self.leader = leader

    def healthy(self) -> bool:
        return self.alive()

    def cloud_reachable(self) -> bool:
        if self._cloud_ok_at is None:
            return False
        return self._clock() - self._cloud_ok_at <= self.cloud_stale_after

    @property
    def role(self) -> Role:
        if self.leader is None:
            return "unknown"
        return "leader" if self.leader else "follower"

    def readiness(self) -> Probe:
        reasons: list[str] = []
        if not self.policies_loaded:
            reasons.append("policies not loaded")
        if self._cloud_ok_at is None:
            reasons.append("no successful cloud call yet")
        elif not self.cloud_reachable():
            reasons.append(
                f"no successful cloud call in the last {self.cloud_stale_after:g} seconds"
            )
        if self.leader is None:
            reasons.append("leader election undecided")
        last_ok = None if self._cloud_ok_at is None else round(self._clock() - self._cloud_ok_at, 3)
        body: dict[str, Any] = {
            "ready": not reasons,
            "role": self.role,
            "reasons": reasons,
            "policies_loaded": self.policies_loaded,
            "cloud_reachable": self.cloud_reachable(),
            "last_cloud_ok_seconds_ago": last_ok,
        }
        if self.detail:
            body["detail"] = self.detail
        return Probe(not reasons, body)
