"""Sharded election: N replicas split the accounts (and hash buckets) between them.

Each shard (``daemon.kernel.shards``) has a Lease of its own, held with the same
client-go algorithm as the single leader (``lease_election``), so only one replica at a
time may write for it. Each replica also holds a *member* Lease named after itself; one
LIST per period (by the group's label) shows every member and every shard. A replica
asks for the shards that rendezvous hashing with bounded load (``kernel.shards.assign``)
gives it among the live members, hands
back (releases) the ones it holds that another live member should hold, and takes any
shard left without a live holder for longer than the lease duration, whoever it
prefers: the preference balances, the Lease decides.

When a replica dies, its member Lease and its shard Leases stop changing; once a lease
duration has passed since they were last seen to change (judged on each observer's own
monotonic clock, as client-go does), the dead member drops out of the others'
rendezvous and its shards' new owners take them at their next period. The bound is the
lease duration plus one retry period, then one poll interval before the watcher looks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import structlog

from daemon.kernel.clock import SYSTEM_CLOCK
from daemon.kernel.errors import AomdError
from daemon.kernel.shards import Shard, all_shards, assign, lease_name
from daemon.ops.lease_api import LeaseApi
from daemon.ops.lease_election import LeaseElector, LeaseTiming

log = structlog.get_logger("aomd.shards")

GROUP_LABEL = "aomd.io/group"
ROLE_LABEL = "aomd.io/role"
ACCOUNT_LABEL = "aomd.io/account"
BUCKET_LABEL = "aomd.io/bucket"


class ShardElector:
    """Holds the shards this replica should hold; see the module docstring."""

    def __init__(
        self,
        api: LeaseApi,
        *,
        group: str,
        namespace: str,
        identity: str,
        timing: LeaseTiming,
        plan: Mapping[str, int],
        clock: Callable[[], float] = SYSTEM_CLOCK.monotonic,
        now: Callable[[], datetime] = SYSTEM_CLOCK.now,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.api = api
        self.group = group
        self.namespace = namespace
        self.identity = identity
        self.timing = timing
        self._clock = clock
        self.on_change = on_change

        def elector(name: str, labels: dict[str, str]) -> LeaseElector:
            return LeaseElector(
                api,
                name=name,
                namespace=namespace,
                identity=identity,
                timing=timing,
                clock=clock,
                now=now,
                labels={GROUP_LABEL: group, **labels},
            )

        self.member = elector(lease_name(group, "member", identity), {ROLE_LABEL: "member"})
        self.electors: dict[Shard, LeaseElector] = {
            shard: elector(
                lease_name(group, shard.account, str(shard.bucket)),
                {
                    ROLE_LABEL: "shard",
                    ACCOUNT_LABEL: lease_name("a", shard.account),
                    BUCKET_LABEL: f"{shard.bucket}-of-{shard.of}",
                },
            )
            for shard in all_shards(plan)
        }
        self._by_name = {el.name: shard for shard, el in self.electors.items()}
        self._members: dict[str, tuple[tuple[Any, ...], float, float]] = {}
        """member lease name -> (what it said, when that was first seen, its duration)."""
        self._vacant_since: dict[Shard, float] = {}
        self._held: frozenset[Shard] = frozenset()
        self.live_members: frozenset[str] = frozenset({identity})

    # -- what the engine asks -----------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        return any(el.may_write() for el in self.electors.values())

    def may_write(self, shard: Shard | None = None) -> bool:
        """Only for a shard this replica holds; never for "everything" (``None``), so a
        write that does not say its shard is refused rather than made by two replicas."""
        if shard is None:
            return False
        el = self.electors.get(shard)
        return el is not None and el.may_write()

    @property
    def shards(self) -> Mapping[Shard, bool]:
        return {shard: el.may_write() for shard, el in self.electors.items()}

    # -- the loop -----------------------------------------------------------------------
    async def run(self) -> None:
        log.info(
            "shard_election_started",
            group=self.group,
            namespace=self.namespace,
            identity=self.identity,
            shards=len(self.electors),
        )
        try:
            while True:
                await self.step()
                await asyncio.sleep(self.timing.retry_period)
        except asyncio.CancelledError:
            held = [el for el in (*self.electors.values(), self.member) if el.may_write()]
            for el in self.electors.values():
                el.step_down("stopping")  # writes stop before the release
            try:
                async with asyncio.timeout(self.timing.retry_period):
                    await asyncio.gather(*(el.release() for el in held))
            except (TimeoutError, AomdError) as exc:
                log.warning("shard_release_failed", error=str(exc))
            raise

    async def step(self) -> frozenset[Shard]:
        """One period: renew the member Lease, list the group, ask for / renew / hand back
        shards. Returns the shards held afterwards."""
        started = self._clock()
        await self.member.step()
        try:
            async with asyncio.timeout(self.timing.retry_period):
                leases = await self.api.list(self.namespace, f"{GROUP_LABEL}={self.group}")
        except (TimeoutError, AomdError) as exc:
            log.warning("shard_list_failed", group=self.group, error=str(exc) or "timeout")
            leases = None
        if leases is not None:
            self._observe(leases, started)
        wanted = assign(self.electors, self.live_members)
        work: list[Awaitable[object]] = []
        for shard, el in self.electors.items():
            preferred = wanted.get(shard)
            held = el.may_write()
            if held and preferred != self.identity:
                work.append(self._hand_back(shard, el, preferred))
            elif held or preferred == self.identity or self._abandoned(shard, started):
                work.append(el.step())
        await asyncio.gather(*work)
        self._changed()
        return self._held

    async def _hand_back(self, shard: Shard, el: LeaseElector, to: str | None) -> None:
        log.info("shard_handed_back", shard=shard.label, identity=self.identity, to=to)
        try:
            await el.release()
        except AomdError as exc:  # it expires by itself; the next owner waits that long
            log.warning("shard_release_failed", shard=shard.label, error=str(exc))

    def _observe(self, leases: list[dict[str, Any]], now: float) -> None:
        members: dict[str, tuple[tuple[Any, ...], float, float]] = {}
        listed = {str((lease.get("metadata") or {}).get("name") or "") for lease in leases}
        for each, el in self.electors.items():
            if el.name not in listed:  # never created (or deleted): nobody holds it
                self._vacant_since.setdefault(each, now)
        for lease in leases:
            meta = lease.get("metadata") or {}
            spec = lease.get("spec") or {}
            name = str(meta.get("name") or "")
            shard = self._by_name.get(name)
            if shard is not None:
                el = self.electors[shard]
                el.observe(lease, now)
                if el.holder and not el.expired(now):
                    self._vacant_since.pop(shard, None)
                else:
                    self._vacant_since.setdefault(shard, now)
                continue
            if (meta.get("labels") or {}).get(ROLE_LABEL) != "member":
                continue
            said = (spec.get("holderIdentity"), spec.get("renewTime"), meta.get("resourceVersion"))
            duration = float(spec.get("leaseDurationSeconds") or self.timing.lease_duration)
            old = self._members.get(name)
            members[name] = (said, old[1] if old and old[0] == said else now, duration)
        self._members = members
        live = {self.identity}
        for said, seen, duration in members.values():
            if said[0] and now < seen + duration:
                live.add(str(said[0]))
        if live != self.live_members:
            log.info("shard_members", group=self.group, members=sorted(live))
        self.live_members = frozenset(live)

    def _abandoned(self, shard: Shard, now: float) -> bool:
        """No live holder for a lease duration: whoever prefers it has not taken it (a
        replica whose view of the members differs, or that cannot reach the API)."""
        since = self._vacant_since.get(shard)
        return since is not None and now - since >= self.timing.lease_duration

    def _changed(self) -> None:
        held = frozenset(shard for shard, el in self.electors.items() if el.may_write())
        if held == self._held:
            return
        for shard in sorted(held - self._held):
            log.info("shard_acquired", shard=shard.label, identity=self.identity)
        for shard in sorted(self._held - held):
            log.warning("shard_lost", shard=shard.label, identity=self.identity)
        gained = bool(held - self._held)
        self._held = held
        if self.on_change is not None:
            self.on_change(gained)

    async def close(self) -> None:
        await self.api.close()
