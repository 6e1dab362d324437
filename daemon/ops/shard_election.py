"""Sharded election: N replicas split the accounts (and hash buckets) between them.

Each shard (``daemon.kernel.shards``) has a Lease of its own, held with the same
client-go algorithm as the single leader (``lease_election``), so only one replica at a
time may write for it. Each replica also holds a *member* Lease named after itself,
annotated with a digest of its shard plan; one LIST per period (by the group's label)
shows every member and every shard. A replica asks for the shards that rendezvous
hashing with bounded load (``kernel.shards.assign``) gives it among the live members
with the same plan, steps down from the ones another such member should hold (it stops
writing at once and lets the Lease run out, so the next holder gets the same margin
as after a crash), and takes any shard left without a live holder for longer than the
lease duration: the preference balances, the Lease decides.

Two barriers keep two writers apart while a fleet changes shape. While a live member
has another plan (a rolling update that changes ``accounts`` or ``shards``: the shards
themselves differ, so their Leases cannot keep the two apart), or while the single
leader's Lease of the same name is held (moving from the ``ha`` overlay), a replica
takes no new shard; the ones it holds it keeps. So during such a rollout the old
replicas go on working and the new ones wait until the last old one has gone.

When a replica dies, its member Lease and its shard Leases stop changing; once a lease
duration has passed since they were last seen to change (judged on each observer's own
monotonic clock, read after the answer arrived, as client-go does), the dead member
drops out of the others' assignment and its shards' new owners take them at their next
period: the lease duration plus one or two retry periods.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
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
PLAN_ANNOTATION = "aomd.io/plan"


def plan_digest(plan: Mapping[str, int]) -> str:
    """Equal for replicas that split the work the same way (accounts and their shards)."""
    text = json.dumps(sorted((a, max(1, n)) for a, n in plan.items()))
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def shard_lease_name(group: str, shard: Shard) -> str:
    """The bucket count is in the name: ``prod`` in 1 shard and ``prod`` in 4 are
    different Leases, never one Lease meaning two different sets of workflows."""
    return lease_name(group, shard.account, f"{shard.bucket}-of-{shard.of}")


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
        self.plan = plan_digest(plan)
        self._clock = clock
        self.on_change = on_change

        def elector(
            name: str, labels: dict[str, str], annotations: dict[str, str] | None = None
        ) -> LeaseElector:
            return LeaseElector(
                api,
                name=name,
                namespace=namespace,
                identity=identity,
                timing=timing,
                clock=clock,
                now=now,
                labels={GROUP_LABEL: group, **labels},
                annotations=annotations,
            )

        self.member = elector(
            lease_name(group, "member", identity),
            {ROLE_LABEL: "member"},
            {PLAN_ANNOTATION: self.plan},
        )
        self.electors: dict[Shard, LeaseElector] = {
            shard: elector(
                shard_lease_name(group, shard),
                {
                    ROLE_LABEL: "shard",
                    ACCOUNT_LABEL: lease_name("a", shard.account),
                    BUCKET_LABEL: f"{shard.bucket}-of-{shard.of}",
                },
            )
            for shard in all_shards(plan)
        }
        self.single = self._observer(group)
        """The single leader's Lease of the same name: only observed, never asked for."""
        self._by_name = {el.name: shard for shard, el in self.electors.items()}
        self._members: dict[str, tuple[LeaseElector, str]] = {}
        """member lease -> (an elector that only observes it, the member's plan)."""
        self._vacant_since: dict[Shard, float] = {}
        self._held: frozenset[Shard] = frozenset()
        self._blocked: str | None = None
        self.live_members: frozenset[str] = frozenset({identity})
        """Live members with this replica's plan (itself included)."""

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
            plan=self.plan,
        )
        try:
            while True:
                started = self._clock()
                await self.step()
                await asyncio.sleep(max(0.0, self.timing.retry_period - (self._clock() - started)))
        except asyncio.CancelledError:
            await self._release_all()
            raise

    async def _release_all(self) -> None:
        """On the way out (the daemon drained its writes first): every Lease this replica
        still holds, or may still be named in, goes back at once."""
        mine = [
            el
            for el in (*self.electors.values(), self.member)
            if el.may_write() or el.holder == self.identity
        ]
        for el in self.electors.values():
            el.step_down("stopping")
        try:
            async with asyncio.timeout(self.timing.retry_period):
                await asyncio.gather(*(el.release() for el in mine))
        except (TimeoutError, AomdError) as exc:
            log.warning("shard_release_failed", error=str(exc) or "timeout")

    async def step(self) -> frozenset[Shard]:
        """One period. First, at once: renew the member Lease and the held shards, LIST
        the group and read the single leader's Lease; then ask for the shards this
        replica should have and step down from the ones it should not. Returns the
        shards held afterwards."""
        held = [el.step() for el in self.electors.values() if el.may_write()]
        _, leases, single, *_ = await asyncio.gather(
            self.member.step(), self._list(), self._single(), *held
        )
        now = self._clock()
        if single is not None:
            self.single.observe(single, now)
        if leases is not None:
            self._observe(leases, now)
        self._blocked = self._barrier(now)
        wanted = assign(self.electors, self.live_members)
        work: list[Awaitable[object]] = []
        for shard, el in self.electors.items():
            preferred = wanted.get(shard)
            if el.may_write():
                if preferred is not None and preferred != self.identity:
                    log.info("shard_handed_over", shard=shard.label, to=preferred)
                    el.step_down(f"handed over to {preferred}")
            elif self._blocked is None and (
                preferred == self.identity or self._abandoned(shard, now)
            ):
                work.append(el.step())
        await asyncio.gather(*work)
        self._changed()
        return self._held

    async def _list(self) -> list[dict[str, Any]] | None:
        try:
            async with asyncio.timeout(self.timing.retry_period):
                return await self.api.list(self.namespace, f"{GROUP_LABEL}={self.group}")
        except (TimeoutError, AomdError) as exc:
            log.warning("shard_list_failed", group=self.group, error=str(exc) or "timeout")
            return None

    async def _single(self) -> dict[str, Any] | None:
        try:
            async with asyncio.timeout(self.timing.retry_period):
                return await self.api.get(self.namespace, self.group)
        except (TimeoutError, AomdError):
            return None  # not seen is not seen free: the last observation stands

    def _barrier(self, now: float) -> str | None:
        """Why this replica must take no new shard now, or None."""
        why = None
        if not self.single.expired(now):
            why = f"the single leader {self.single.holder!r} holds Lease {self.group!r}"
        else:
            foreign = sorted(
                str(seen.holder)
                for seen, plan in self._members.values()
                if not seen.expired(now) and plan != self.plan
            )
            if foreign:
                why = (
                    f"members {', '.join(foreign)} split the work differently (their "
                    "accounts or accounts[].shards differ from ours)"
                )
        if why != self._blocked:
            if why is not None:
                log.warning("shards_blocked", group=self.group, reason=why)
            else:
                log.info("shards_unblocked", group=self.group)
        return why

    def _observe(self, leases: list[dict[str, Any]], now: float) -> None:
        members: dict[str, tuple[LeaseElector, str]] = {}
        listed = {str((lease.get("metadata") or {}).get("name") or "") for lease in leases}
        for each, el in self.electors.items():
            if el.name not in listed:  # never created (or deleted): nobody holds it
                self._vacant_since.setdefault(each, now)
        for lease in leases:
            meta = lease.get("metadata") or {}
            name = str(meta.get("name") or "")
            shard = self._by_name.get(name)
            if shard is not None:
                el = self.electors[shard]
                el.observe(lease, now)
                if el.expired(now):
                    self._vacant_since.setdefault(shard, now)
                else:
                    self._vacant_since.pop(shard, None)
                continue
            if (meta.get("labels") or {}).get(ROLE_LABEL) != "member":
                continue
            old = self._members.get(name)
            seen = old[0] if old is not None else self._observer(name)
            seen.observe(lease, now)  # expiry judged as for any Lease: by its last change
            plan = str((meta.get("annotations") or {}).get(PLAN_ANNOTATION) or "")
            members[name] = (seen, plan)
        self._members = members
        live = {self.identity}
        for seen, plan in members.values():
            if not seen.expired(now) and plan == self.plan:
                live.add(str(seen.holder))
        if live != self.live_members:
            log.info("shard_members", group=self.group, members=sorted(live))
        self.live_members = frozenset(live)

    def _observer(self, name: str) -> LeaseElector:
        """An elector for another replica's Lease that never asks for it: it only keeps
        the observation its expiry is judged by."""
        return LeaseElector(
            self.api,
            name=name,
            namespace=self.namespace,
            identity=self.identity,
            timing=self.timing,
            clock=self._clock,
        )

    def _abandoned(self, shard: Shard, now: float) -> bool:
        """No live holder for a lease duration: whoever it is assigned to has not taken
        it (a replica whose view of the members differs, or that cannot reach the API)."""
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
