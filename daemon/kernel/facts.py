"""What the journal remembers about one execution, as frozen values for ``decide``.

``decide`` is pure, so everything it needs to know about the past (which writes were
made, when a pause was first seen) is read from the journal by the engine and handed
in as these values. Attempt counts are derived from ``writes`` by the core, never
stored as a counter that could drift from the intents themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class PastWrite:
    """One journaled intent and its outcome so far (``pending`` when none yet)."""

    key: str
    kind: str
    """restart | skip | continue | terminate | notify | ..."""
    node_id: str | None
    attempt: int
    rule: str
    outcome: str
    at: datetime
    observed: str = ""
    """The node fingerprint seen when the write was decided (``resolve.Fingerprint.dumps``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionFacts:
    execution_id: str
    writes: tuple[PastWrite, ...] = ()
    first_seen: Mapping[str, datetime] = field(default_factory=dict)
    """node_id -> when aomd first saw that node stopped (failed or paused)."""
    retry_at: Mapping[str, datetime] = field(default_factory=dict)
    """key -> when a ``failed`` write may be sent again promptly (the executor's retry
    book, in memory); a failed key not listed waits the rule's ``backoff.initial``."""

    def writes_for(self, node_id: str | None) -> tuple[PastWrite, ...]:
        return tuple(w for w in self.writes if w.node_id == node_id)
