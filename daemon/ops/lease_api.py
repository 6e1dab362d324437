"""The Lease calls the electors make, on plain JSON dicts, and their two failures.

Why a protocol of dicts: the election algorithm is tested against an in-memory Lease
store and a fake API server; only ``lease_kubernetes`` knows the Kubernetes client.
"""

from __future__ import annotations

from typing import Any, Protocol

from daemon.kernel.errors import AomdError


class LeaseConflict(AomdError):
    """Someone else changed (or created) the Lease first: HTTP 409."""


class LeaseApiError(AomdError):
    """The Lease API failed in a way that is not a conflict (network, 5xx, 403)."""


class LeaseApi(Protocol):
    """The Lease calls, on plain JSON dicts (``metadata``/``spec`` camelCase)."""

    async def list(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """Every Lease whose labels match (``k=v,k2=v2``): the shard elector reads the
        members and the shards of its group in one call."""
        ...

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Lease, or ``None`` when it does not exist (404)."""
        ...

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST; raises ``LeaseConflict`` when it already exists."""
        ...

    async def replace(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT with ``metadata.resourceVersion``; raises ``LeaseConflict`` when stale."""
        ...

    async def close(self) -> None: ...
