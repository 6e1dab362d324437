"""The journal as the engine sees it: small Protocols declared below both.

The executor, the trigger reconciler and the execution handler depend on these; the
journal package implements them. Declared in the kernel so that neither side imports the
other (kopf declares ``HandlerState`` beside its user for the same reason).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from daemon.kernel.facts import ExecutionFacts
from daemon.kernel.shards import Shard
from daemon.kernel.writes import WriteIntent


class JournalPort(Protocol):
    """What the executor needs of the journal."""

    async def begin(self, intent: WriteIntent, at: datetime) -> str | None:
        """Record the intent. Returns None when newly recorded, else the existing outcome
        (``"pending"`` when the key has an intent but no outcome yet)."""
        ...

    async def record(self, intent: WriteIntent, outcome: str, at: datetime) -> str | None:
        """Record a decision that calls nothing, with its final outcome, atomically (no
        kill can leave it pending). None when newly recorded, else the existing outcome."""
        ...

    async def finish(
        self,
        key: str,
        outcome: str,
        *,
        request_id: str | None,
        error: str | None,
        at: datetime,
    ) -> None: ...


class OwnershipPort(Protocol):
    """Triggers aomd disabled itself, so it re-enables only those."""

    async def owned_triggers(self, account: str | None = None) -> set[str]:
        """The account's triggers (plus any journaled before ownership had an account);
        None: every account's."""
        ...

    async def owned_since(self, workflow_id: str, account: str = "") -> datetime | None:
        """When aomd last claimed the trigger for ``account`` (or before ownership had an
        account); None if it does not own it."""
        ...

    async def set_trigger_owned(
        self, workflow_id: str, owned: bool, *, reason: str, at: datetime, account: str = ""
    ) -> None: ...


class FactsPort(Protocol):
    """What the execution handler reads and records per execution."""

    async def facts(self, execution_id: str) -> ExecutionFacts: ...

    async def saw(self, execution_id: str, node_id: str, at: datetime) -> None: ...

    async def forget_seen(self, execution_id: str, node_id: str) -> None: ...

    async def forget_execution(self, execution_id: str) -> None: ...


class WriteGuard(Protocol):
    """May this replica write now (the leader elector): for ``shard``, or with a single
    leader (``shard`` None, or an elector that does not shard) for everything."""

    def may_write(self, shard: Shard | None = None) -> bool: ...
