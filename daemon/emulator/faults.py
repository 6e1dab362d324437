"""Fault injection: make chosen requests slow, throttled, failing, cut or lost.

A fault matches by path regex (``re.search`` on the decoded path) and method, fires at
most ``times`` times (None = until cleared) with ``probability`` drawn from a seeded
generator, so a failing test replays identically. The first matching fault wins.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any, Literal

FaultKind = Literal[
    "latency", "throttle", "server_error", "reset", "hang", "malformed", "applied_then_lost"
]
FAULT_KINDS: tuple[str, ...] = (
    "latency",
    "throttle",
    "server_error",
    "reset",
    "hang",
    "malformed",
    "applied_then_lost",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """One injected misbehaviour."""

    kind: FaultKind
    path: str | None = None
    """Regex searched in the request path; None matches every API path."""
    method: str | None = None
    """HTTP method to match (case-insensitive); None matches all."""
    times: int | None = None
    """How many requests it affects; None = until cleared."""
    probability: float = 1.0
    delay: float = 0.0
    """``latency``: real seconds to wait before answering normally."""
    retry_after: float | None = None
    """``throttle``: value of the Retry-After header (default 1)."""
    status: int | None = None
    """``server_error``: status to send (default 500); ``throttle`` default 429."""
    body: str | None = None
    """``malformed``: body to send (default: truncated, invalid JSON)."""
    apply: bool = False
    """``malformed``: serve the request first (a write takes effect), then send the
    malformed body instead of the real reply; False answers without serving it."""

    @property
    def serves_first(self) -> bool:
        """Whether the request is served (its write applied) before the fault answers."""
        return self.kind == "applied_then_lost" or (self.kind == "malformed" and self.apply)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, not {self.kind!r}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        if self.times is not None and self.times < 0:
            raise ValueError("times must be >= 0")
        if self.path is not None:
            re.compile(self.path)
        if self.apply and self.kind != "malformed":
            raise ValueError(
                "apply is only for malformed faults (applied_then_lost always applies)"
            )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        allowed = set(cls.__dataclass_fields__)
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(slots=True)
class _Armed:
    fault: Fault
    pattern: re.Pattern[str] | None
    remaining: int | None
    fired: int = field(default=0)


class FaultSet:
    """The faults currently armed, consulted once per API request."""

    def __init__(self, seed: int = 0) -> None:
        self._armed: list[_Armed] = []
        self._rng = random.Random(seed)

    def add(self, fault: Fault) -> Fault:
        pattern = re.compile(fault.path) if fault.path is not None else None
        self._armed.append(_Armed(fault, pattern, fault.times))
        return fault

    def reseed(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def clear(self) -> None:
        self._armed.clear()

    def __len__(self) -> int:
        return len(self._armed)

    def list(self) -> list[dict[str, Any]]:
        return [
            {**a.fault.to_json(), "remaining": a.remaining, "fired": a.fired} for a in self._armed
        ]

    def match(self, method: str, path: str) -> Fault | None:
        """The fault to apply to this request, if any (consumes one of its ``times``)."""
        if not self._armed:
            return None
        for armed in self._armed:
            f = armed.fault
            if armed.remaining is not None and armed.remaining <= 0:
                continue
            if f.method is not None and f.method.upper() != method:
                continue
            if armed.pattern is not None and not armed.pattern.search(path):
                continue
            if f.probability < 1.0 and self._rng.random() >= f.probability:
                continue
            if armed.remaining is not None:
                armed.remaining -= 1
            armed.fired += 1
            return f
        return None
