"""Leader election on a Kubernetes Lease: with several replicas only the leader writes.

Why a ``coordination.k8s.io/v1`` Lease and this exact algorithm (the one client-go
uses): the API server's optimistic concurrency (``resourceVersion``; a stale PUT gets
409) makes acquiring and renewing atomic, and judging expiry by *when this replica
observed* the record change (local monotonic clock) instead of the timestamps inside it
makes the scheme immune to clock skew between nodes.

Safety rule: ``may_write()`` turns False as soon as ``renew_deadline`` has passed since
the start of the last successful renew, which is ``lease_duration - renew_deadline``
seconds before any other replica may consider the lease expired. It is computed on each
call, so a stuck election loop cannot leave a stale True behind.

The elector talks to the tiny ``LeaseApi`` protocol of plain JSON dicts (``lease_api``);
``lease_kubernetes`` implements it and ``leader_config`` builds an elector from settings.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

import structlog

from daemon.kernel.clock import SYSTEM_CLOCK
from daemon.kernel.errors import AomdError, ConfigError
from daemon.kernel.shards import Shard
from daemon.ops.lease_api import LeaseApi, LeaseConflict

log = structlog.get_logger("aomd.leader")


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """``lease_duration`` > ``renew_deadline`` > ``retry_period`` (seconds)."""

    lease_duration: float
    renew_deadline: float
    retry_period: float

    def __post_init__(self) -> None:
        if not (0 < self.retry_period < self.renew_deadline < self.lease_duration):
            raise ConfigError(
                "leader election needs 0 < retry_period < renew_deadline < lease_duration "
                f"(got {self.retry_period:g} < {self.renew_deadline:g} < "
                f"{self.lease_duration:g}); raise leader.lease_seconds or lower "
                "leader.renew_seconds"
            )


@dataclass(frozen=True, slots=True)
class _Observed:
    holder: str
    renew_time: str | None
    resource_version: str | None
    lease_seconds: float


class LeaseElector:
    """Client-go style leader election on one Lease; see the module docstring."""

    def __init__(
        self,
        api: LeaseApi,
        *,
        name: str,
        namespace: str,
        identity: str,
        timing: LeaseTiming,
        clock: Callable[[], float] = SYSTEM_CLOCK.monotonic,
        now: Callable[[], datetime] = SYSTEM_CLOCK.now,
        release_on_cancel: bool = True,
        on_change: Callable[[bool], None] | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        self.api = api
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.timing = timing
        self._clock = clock
        self._now = now
        """Only for the timestamps written into the Lease; expiry is judged on ``clock``."""
        self.release_on_cancel = release_on_cancel
        self.on_change = on_change
        self.labels = dict(labels or {})
        """Kept on the Lease (a shard group lists by them)."""
        self.annotations = dict(annotations or {})
        """Kept on the Lease (a member's shard plan)."""
        self._leader = False
        self._renewed_at: float | None = None  # monotonic start of the last good renew
        self._observed: _Observed | None = None
        self._observed_at = 0.0

    # -- what the engine asks ---------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        return self.may_write()

    def may_write(self, shard: Shard | None = None) -> bool:
        """True only while the last renew is younger than ``renew_deadline`` (one Lease
        for everything: ``shard`` does not matter)."""
        if not self._leader or self._renewed_at is None:
            return False
        return self._clock() - self._renewed_at <= self.timing.renew_deadline

    @property
    def shards(self) -> Mapping[Shard, bool] | None:
        return None

    @property
    def holder(self) -> str | None:
        """The holder last seen in the Lease (may be another replica)."""
        return self._observed.holder if self._observed else None

    # -- the loop ---------------------------------------------------------------------
    async def run(self) -> None:
        """Acquire, then renew every ``retry_period``; forever, until cancelled."""
        log.info(
            "leader_election_started",
            lease=self.name,
            namespace=self.namespace,
            identity=self.identity,
        )
        try:
            while True:
                await self.step()
                await asyncio.sleep(self.timing.retry_period)
        except asyncio.CancelledError:
            was = self._leader
            self._set_leader(False, reason="stopping")
            if was and self.release_on_cancel:
                try:
                    async with asyncio.timeout(self.timing.retry_period):
                        await self.release()
                except (TimeoutError, AomdError) as exc:
                    log.warning("leader_release_failed", error=str(exc))
            raise

    async def step(self) -> bool:
        """One acquire-or-renew attempt; returns whether this replica now leads."""
        started = self._clock()
        try:
            async with asyncio.timeout(self.timing.retry_period):
                ok = await self._try_acquire_or_renew(started)
        except (TimeoutError, AomdError) as exc:
            log.warning(
                "leader_renew_failed",
                lease=self.name,
                error=str(exc) or type(exc).__name__,
            )
            ok = False
        if ok:
            self._renewed_at = started
            self._set_leader(True)
        elif self._leader and not self.may_write():
            self._set_leader(False, reason="renew deadline passed")
        return self.may_write()

    async def _try_acquire_or_renew(self, now: float) -> bool:
        lease = await self.api.get(self.namespace, self.name)
        stamp = self._stamp()
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": self._metadata({"name": self.name, "namespace": self.namespace}),
                "spec": self._spec(stamp, stamp, 0),
            }
            try:
                created = await self.api.create(self.namespace, body)
            except LeaseConflict:
                return False
            self.observe(created, self._clock())
            return True

        # observed when the answer came, not when the step began: an observation dated
        # early would let this replica judge the holder's term over early
        self.observe(lease, self._clock())
        obs = self._observed
        assert obs is not None
        spec: dict[str, Any] = lease.get("spec") or {}
        held_by_other = bool(obs.holder) and obs.holder != self.identity
        if held_by_other and now < self._observed_at + obs.lease_seconds:
            if self._leader:
                self._set_leader(False, reason=f"lease held by {obs.holder}")
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        if obs.holder == self.identity:
            acquire = spec.get("acquireTime") or stamp
        else:
            acquire = stamp
            transitions += 1
        new = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": self._metadata(dict(lease.get("metadata") or {})),
            "spec": self._spec(acquire, stamp, transitions),
        }
        try:
            replaced = await self.api.replace(self.namespace, self.name, new)
        except LeaseConflict:
            return False
        self.observe(replaced, self._clock())
        return True

    def _metadata(self, meta: dict[str, Any]) -> dict[str, Any]:
        """``meta`` with this elector's labels and annotations (a Lease made by an older
        version, or by a replica with another plan, gets them on the next renew)."""
        for key, ours in (("labels", self.labels), ("annotations", self.annotations)):
            if ours:
                meta[key] = {**(meta.get(key) or {}), **ours}
        return meta

    def _spec(self, acquire: str, renew: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, math.ceil(self.timing.lease_duration)),
            "acquireTime": acquire,
            "renewTime": renew,
            "leaseTransitions": transitions,
        }

    def observe(self, lease: dict[str, Any], now: float) -> None:
        """Note the Lease as read at monotonic ``now``; expiry counts from the last time
        it was seen to change. Public so a shard elector can feed it the Leases it
        lists each period: a replica that never asked for a shard must still know how
        long it has been unrenewed when its holder dies."""
        spec = lease.get("spec") or {}
        meta = lease.get("metadata") or {}
        seen = _Observed(
            holder=str(spec.get("holderIdentity") or ""),
            renew_time=None if spec.get("renewTime") is None else str(spec.get("renewTime")),
            resource_version=meta.get("resourceVersion"),
            lease_seconds=float(spec.get("leaseDurationSeconds") or self.timing.lease_duration),
        )
        if seen != self._observed:
            self._observed = seen
            self._observed_at = now

    async def release(self) -> None:
        """Give the lease up (on shutdown, or a shard handed to the replica that should
        hold it) so another replica takes over without waiting for expiry."""
        self._set_leader(False, reason="released")
        lease = await self.api.get(self.namespace, self.name)
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        spec = dict(lease.get("spec") or {})
        spec["holderIdentity"] = ""
        spec["leaseDurationSeconds"] = 1
        spec["renewTime"] = self._stamp()
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": dict(lease.get("metadata") or {}),
            "spec": spec,
        }
        try:
            await self.api.replace(self.namespace, self.name, body)
        except LeaseConflict:
            return
        log.info("leader_released", lease=self.name, identity=self.identity)

    def expired(self, now: float) -> bool:
        """Whether the Lease, as last observed, has no holder whose term is still running
        at monotonic ``now`` (nothing observed yet counts as expired)."""
        obs = self._observed
        return obs is None or not obs.holder or now >= self._observed_at + obs.lease_seconds

    def step_down(self, reason: str) -> None:
        """Stop writing at once (the Lease is left to expire or to ``release``)."""
        self._set_leader(False, reason=reason)

    def _stamp(self) -> str:
        return self._now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def _set_leader(self, leader: bool, *, reason: str | None = None) -> None:
        if leader == self._leader:
            return
        self._leader = leader
        if leader:
            log.info("leader_acquired", lease=self.name, identity=self.identity)
        else:
            self._renewed_at = None
            log.warning("leader_lost", lease=self.name, identity=self.identity, reason=reason)
        if self.on_change is not None:
            self.on_change(leader)

    async def close(self) -> None:
        await self.api.close()

    async def __aenter__(self) -> LeaseElector:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
