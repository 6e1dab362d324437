"""Who holds which shard, read from the Leases, for ``aomd status``.

One-shot, so expiry cannot be judged the way the electors judge it (by watching a Lease
change on a local clock); the renew time written in the Lease is shown instead, with
its age on this machine's clock, which is good enough for a person to read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from daemon.kernel.shards import Shard, all_shards
from daemon.settings import Settings


@dataclass(frozen=True, slots=True)
class ShardView:
    shard: Shard
    holder: str
    """Empty when nobody holds it (never taken, or handed back)."""
    renewed: datetime | None
    lease_seconds: float

    def live_at(self, now: datetime) -> bool:
        return (
            bool(self.holder)
            and self.renewed is not None
            and (now - self.renewed).total_seconds() < self.lease_seconds
        )

    def describe(self, now: datetime) -> str:
        if not self.holder or self.renewed is None:
            return f"{self.shard.label}: free"
        age = max(0.0, (now - self.renewed).total_seconds())  # its clock may run ahead
        state = "" if self.live_at(now) else " (expired: being taken over)"
        return f"{self.shard.label}: held by {self.holder}, renewed {age:.0f}s ago{state}"


async def shard_holders(settings: Settings) -> list[ShardView] | None:
    """Every shard of the settings and its holder; None when the replicas do not shard."""
    if not (settings.leader.enabled and settings.leader.sharded):
        return None
    from daemon.ops.leader_config import default_namespace, lease_api
    from daemon.ops.shard_election import GROUP_LABEL, shard_lease_name

    leader = settings.leader
    group = leader.lease_name
    api = lease_api(leader)
    try:
        leases = await api.list(leader.namespace or default_namespace(), f"{GROUP_LABEL}={group}")
    finally:
        await api.close()
    found = {str((lease.get("metadata") or {}).get("name")): lease for lease in leases}
    views = []
    for shard in all_shards({a.name: a.shards for a in settings.accounts}):
        lease = found.get(shard_lease_name(group, shard)) or {}
        spec = lease.get("spec") or {}
        renew = spec.get("renewTime")
        views.append(
            ShardView(
                shard=shard,
                holder=str(spec.get("holderIdentity") or ""),
                renewed=_parse(renew) if isinstance(renew, str) else None,
                lease_seconds=float(spec.get("leaseDurationSeconds") or leader.lease_seconds),
            )
        )
    return views


def _parse(stamp: str) -> datetime | None:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
