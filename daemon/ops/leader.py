"""Leader election as the engine sees it: ask before each write, run the loop.

With several replicas only the leader writes; a single replica is always the leader.
The Lease-based election behind it is in ``lease_election`` (the algorithm),
``lease_api`` (the three Lease calls), ``lease_kubernetes`` (those calls over
``kubernetes_asyncio``) and ``leader_config`` (settings, token file, in-cluster defaults).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from daemon.kernel.shards import Shard


@runtime_checkable
class LeaderElector(Protocol):
    """What the engine needs: ask before each write, run the loop in the TaskGroup."""

    @property
    def is_leader(self) -> bool:
        """May write anything at all (with shards: holds at least one)."""
        ...

    def may_write(self, shard: Shard | None = None) -> bool:
        """May write for ``shard`` now; an elector that does not shard ignores it."""
        ...

    @property
    def shards(self) -> Mapping[Shard, bool] | None:
        """Every shard and whether this replica holds it; None when not sharding."""
        ...

    async def run(self) -> None: ...


class AlwaysLeader:
    """Single replica: always the leader, ``run`` returns at once."""

    @property
    def is_leader(self) -> bool:
        return True

    def may_write(self, shard: Shard | None = None) -> bool:
        return True

    @property
    def shards(self) -> Mapping[Shard, bool] | None:
        return None

    async def run(self) -> None:
        return None
