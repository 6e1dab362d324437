"""What one write is: the intent journaled before the call and the report after it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from daemon.kernel.outcomes import Outcome


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteIntent:
    """One write aomd means to make; ``key`` makes it happen at most once."""

    key: str
    """Idempotency key, built by ``daemon.kernel.keys`` and nowhere else."""
    kind: str
    """restart | skip | continue | terminate | notify | trigger_enable | trigger_disable |
    execute | dataarts_start | dataarts_schedule | dataarts_stop | scheduled_<outcome>"""
    workflow_id: str
    execution_id: str | None = None
    node_id: str | None = None
    attempt: int = 1
    rule: str = ""
    reason: str = ""
    dry_run: bool = False
    observed: str = ""
    """What the execution/trigger looked like when we decided (to resolve a lost reply)."""


@dataclass(frozen=True, slots=True)
class WriteReport:
    outcome: Outcome
    request_id: str | None = None
    error: str | None = None
    result: Any = None
    retry_after: float | None = None
    """Seconds the server asked to wait (``Retry-After`` on a 429), when it did."""
    retry_at: datetime | None = None
    """For a ``failed`` write within its prompt-retry budget: when to send the same key
    again (``daemon.engine.write_retry``). None: the writer's slow lane retries it."""
