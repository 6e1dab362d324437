"""What the engine may ask of the journal, and the one row type it hands back.

The journal is the daemon's only memory across restarts: write intents and their
outcomes (exactly-once effect), the triggers aomd itself disabled (ownership), and when a
stopped node was first seen (delays before acting). Everything else is re-observed from
the cloud on every pass, so nothing here is a cache that could go stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, Self

from daemon.kernel.facts import ExecutionFacts
from daemon.kernel.overrides import Override
from daemon.kernel.ports import JournalPort, OwnershipPort


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryRow:
    """One journaled intent as stored: what aomd meant to do, why, and what came of it."""

    at: datetime
    """When the intent was (last) journaled; a retryable intent sent again moves it."""
    key: str
    """Idempotency key (``exec/<execution>/<node or ->/<action>/<attempt>`` etc.)."""
    kind: str
    workflow_id: str
    execution_id: str | None
    node_id: str | None
    attempt: int
    rule: str
    reason: str
    outcome: str
    """``pending`` until ``finish``; then the executor's outcome."""
    request_id: str | None
    error: str | None
    dry_run: bool
    finished_at: datetime | None
    observed: str = ""
    """Fingerprint of the state the decision was made on (to resolve a lost reply)."""
    tries: int = 1
    """How many times the key was begun: 1 + the resets after a retryable outcome."""
    repeats: int = 1
    """How many like writes this row stands for: compaction folds a day's trigger
    toggles of one workflow, rule, action and outcome into their latest row."""
    first_at: datetime | None = None
    """The earliest of the writes folded into this row (None when ``repeats`` is 1)."""


class Journal(JournalPort, OwnershipPort, Protocol):
    """The whole journal: the executor's and trigger reconciler's ports plus the reads
    the watcher, ``aomd history`` and retention need. ``SqliteJournal`` and
    ``MemoryJournal`` implement it with the same semantics (one contract test suite)."""

    async def open(self) -> None:
        """Make the store usable (create / migrate the schema). Idempotent."""
        ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        """``open``; every store is also an async context manager."""
        ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def facts(self, execution_id: str) -> ExecutionFacts:
        """All intents of the execution (oldest first) and its first sightings."""
        ...

    async def saw(self, execution_id: str, node_id: str, at: datetime) -> None:
        """Remember when a node was first seen stopped; later calls keep the first time."""
        ...

    async def forget_seen(self, execution_id: str, node_id: str) -> None:
        """The node runs again: its next stop starts a new sighting."""
        ...

    async def history(
        self,
        since: datetime | None = None,
        workflow_id: str | None = None,
        limit: int | None = None,
    ) -> list[HistoryRow]:
        """Intents journaled at or after ``since``, oldest first; with ``limit`` the newest
        ``limit`` of them (still oldest first)."""
        ...

    async def intent(self, key: str) -> HistoryRow | None:
        """The row of one key as journaled now, None if there is none."""
        ...

    async def unresolved(self) -> list[HistoryRow]:
        """Every intent still ``pending`` or ``unknown``, oldest first: the writes whose
        outcome must still be found out by reading the cloud."""
        ...

    async def last_tick(self, scope: str) -> datetime | None:
        """When the schedule runner of ``scope`` last looked at its fire times."""
        ...

    async def set_last_tick(self, scope: str, at: datetime) -> None: ...

    async def compact(self, older_than: datetime, since: datetime | None = None) -> int:
        """Fold repetitive rows journaled before ``older_than`` (and at or after ``since``)
        into one row per UTC day (see ``core.compact_in``). Returns rows removed."""
        ...

    async def forget_execution(self, execution_id: str) -> None:
        """The execution is over: drop its sightings."""
        ...

    async def reclaim(self) -> int:
        """Give space freed by pruning and compaction back to the system; bytes freed
        (0 where the store does it by itself, as PostgreSQL's autovacuum)."""
        ...

    def size(self) -> int:
        """Bytes the journal takes on disk (0 where the store cannot tell cheaply)."""
        ...

    async def prune(self, older_than: datetime) -> int:
        """Delete finished intents finished before ``older_than`` and sightings first seen
        before it. Pending intents and owned triggers are never pruned. Returns rows deleted."""
        ...

    async def overrides(self) -> list[Override]:
        """Every override added (ended and expired ones too), oldest first."""
        ...

    async def add_override(self, override: Override, at: datetime) -> None:
        """Store a new override and journal an ``override_add`` row in one step."""
        ...

    async def end_override(self, override_id: str, by: str, at: datetime) -> Override | None:
        """End an override now; None when there is none of that id."""
        ...
