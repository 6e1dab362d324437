"""Leader election: with several replicas only the leader writes.

Why a ``coordination.k8s.io/v1`` Lease and this exact algorithm (the one client-go
uses): the API server's optimistic concurrency (``resourceVersion``; a stale PUT gets
409) makes acquiring and renewing atomic, and judging expiry by *when this replica
observed* the record change (local monotonic clock) instead of the timestamps inside it
makes the scheme immune to clock skew between nodes.

Safety rule: ``may_write()`` turns False as soon as ``renew_deadline`` has passed since
the start of the last successful renew, which is ``lease_duration - renew_deadline``
seconds before any other replica may consider the lease expired. It is computed on each
call, so a stuck election loop cannot leave a stale True behind.

Transport: ``kubernetes_asyncio`` (extra ``aomd[k8s]``), imported lazily so a
single-replica install does not need it. The elector itself talks to a tiny
``LeaseApi`` protocol of plain JSON dicts.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

import structlog

from daemon.kernel.errors import AomdError, ConfigError
from daemon.ops.logging import register_secret
from daemon.settings import LeaderSettings

log = structlog.get_logger("aomd.leader")

NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class LeaseConflict(AomdError):
    """Someone else changed (or created) the Lease first: HTTP 409."""


class LeaseApiError(AomdError):
    """The Lease API failed in a way that is not a conflict (network, 5xx, 403)."""


@runtime_checkable
class LeaderElector(Protocol):
    """What the engine needs: ask before each write, run the loop in the TaskGroup."""

    @property
    def is_leader(self) -> bool: ...

    def may_write(self) -> bool: ...

    async def run(self) -> None: ...


class AlwaysLeader:
    """Single replica: always the leader, ``run`` returns at once."""

    @property
    def is_leader(self) -> bool:
        return True

    def may_write(self) -> bool:
        return True

    async def run(self) -> None:
        return None


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

    @classmethod
    def from_settings(cls, settings: LeaderSettings) -> LeaseTiming:
        """``lease_seconds`` is the lease duration and ``renew_seconds`` the retry period;
        the renew deadline leaves one retry period of margin before expiry (15/10/5 by
        default)."""
        return cls(
            lease_duration=settings.lease_seconds,
            renew_deadline=settings.lease_seconds - settings.renew_seconds,
            retry_period=settings.renew_seconds,
        )


class LeaseApi(Protocol):
    """The three Lease calls, on plain JSON dicts (``metadata``/``spec`` camelCase)."""

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


class KubernetesLeaseApi:
    """``LeaseApi`` over ``kubernetes_asyncio``'s ``CoordinationV1Api``."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes_asyncio import client

        self._api_client = api_client
        self._api: Any = client.CoordinationV1Api(api_client)

    @classmethod
    def for_host(cls, host: str, *, token: str | None = None) -> KubernetesLeaseApi:
        """A client for an explicit API server URL (tests, out-of-cluster use)."""
        from kubernetes_asyncio import client

        cfg = client.Configuration()
        cfg.host = host
        if token is not None:
            cfg.api_key = {"BearerToken": token}
            cfg.api_key_prefix = {"BearerToken": "Bearer"}
        return cls(client.ApiClient(configuration=cfg))

    @classmethod
    def in_cluster(cls) -> KubernetesLeaseApi:
        """Service-account token and CA from the pod (token refresh included)."""
        from kubernetes_asyncio import client, config

        cfg = client.Configuration()
        load: Any = config.load_incluster_config  # untyped in the library
        load(client_configuration=cfg)
        return cls(client.ApiClient(configuration=cfg))

    def _status(self, exc: BaseException) -> int | None:
        status = getattr(exc, "status", None)
        return status if isinstance(status, int) else None

    def _to_dict(self, obj: Any) -> dict[str, Any]:
        data = self._api_client.sanitize_for_serialization(obj)
        return data if isinstance(data, dict) else {}

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            obj = await self._api.read_namespaced_lease(name, namespace)
        except ApiException as exc:
            if self._status(exc) == 404:
                return None
            raise LeaseApiError(f"GET lease {namespace}/{name}: HTTP {exc.status}") from None
        return self._to_dict(obj)

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            obj = await self._api.create_namespaced_lease(namespace, body)
        except ApiException as exc:
            if self._status(exc) == 409:
                raise LeaseConflict("lease already exists") from None
            raise LeaseApiError(f"POST lease in {namespace}: HTTP {exc.status}") from None
        return self._to_dict(obj)

    async def replace(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            obj = await self._api.replace_namespaced_lease(name, namespace, body)
        except ApiException as exc:
            if self._status(exc) == 409:
                raise LeaseConflict("lease changed since it was read") from None
            raise LeaseApiError(f"PUT lease {namespace}/{name}: HTTP {exc.status}") from None
        return self._to_dict(obj)

    async def close(self) -> None:
        await self._api_client.close()


def default_identity() -> str:
    """The pod name (``HOSTNAME`` in Kubernetes), else host name plus pid."""
    return os.environ.get("HOSTNAME") or f"{socket.gethostname()}-{os.getpid()}"


def default_namespace() -> str:
    try:
        return NAMESPACE_FILE.read_text(encoding="utf-8").strip() or "default"
    except OSError:
        return "default"


def _now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
        clock: Callable[[], float] = time.monotonic,
        release_on_cancel: bool = True,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.api = api
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.timing = timing
        self._clock = clock
        self.release_on_cancel = release_on_cancel
        self.on_change = on_change
        self._leader = False
        self._renewed_at: float | None = None  # monotonic start of the last good renew
        self._observed: _Observed | None = None
        self._observed_at = 0.0

    @classmethod
    def from_settings(
        cls,
        settings: LeaderSettings,
        *,
        api: LeaseApi | None = None,
        on_change: Callable[[bool], None] | None = None,
    ) -> LeaseElector:
        """In-cluster elector from ``[leader]`` settings (needs ``aomd[k8s]``)."""
        if api is None and settings.api_server is not None:
            token = None
            if settings.token_file is not None:
                try:
                    token = settings.token_file.read_text(encoding="utf-8").strip()
                except OSError as exc:
                    raise ConfigError(
                        f"leader.token_file {str(settings.token_file)!r}: {exc.strerror}"
                    ) from None
                register_secret(token)
            api = KubernetesLeaseApi.for_host(settings.api_server, token=token)
        if api is None:
            try:
                api = KubernetesLeaseApi.in_cluster()
            except ImportError:
                raise ConfigError(
                    "leader.enabled needs the Kubernetes client: pip install 'aomd[k8s]'"
                ) from None
            except Exception as exc:  # kubernetes_asyncio's ConfigException and kin
                raise ConfigError(
                    "leader.enabled = true but no in-cluster Kubernetes credentials were "
                    f"found ({exc}); leader election runs only inside a pod - set "
                    "leader.enabled = false for a single replica"
                ) from None
        return cls(
            api,
            name=settings.lease_name,
            namespace=settings.namespace or default_namespace(),
            identity=settings.identity or default_identity(),
            timing=LeaseTiming.from_settings(settings),
            on_change=on_change,
        )

    # -- what the engine asks ---------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        return self.may_write()

    def may_write(self) -> bool:
        """True only while the last renew is younger than ``renew_deadline``."""
        if not self._leader or self._renewed_at is None:
            return False
        return self._clock() - self._renewed_at <= self.timing.renew_deadline

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
                        await self._release()
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
        stamp = _now_micro()
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(stamp, stamp, 0),
            }
            try:
                created = await self.api.create(self.namespace, body)
            except LeaseConflict:
                return False
            self._observe(created, now)
            return True

        self._observe(lease, now)
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
            "metadata": dict(lease.get("metadata") or {}),
            "spec": self._spec(acquire, stamp, transitions),
        }
        try:
            replaced = await self.api.replace(self.namespace, self.name, new)
        except LeaseConflict:
            return False
        self._observe(replaced, now)
        return True

    def _spec(self, acquire: str, renew: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, math.ceil(self.timing.lease_duration)),
            "acquireTime": acquire,
            "renewTime": renew,
            "leaseTransitions": transitions,
        }

    def _observe(self, lease: dict[str, Any], now: float) -> None:
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

    async def _release(self) -> None:
        """Give the lease up on shutdown so a standby takes over without waiting."""
        lease = await self.api.get(self.namespace, self.name)
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        spec = dict(lease.get("spec") or {})
        spec["holderIdentity"] = ""
        spec["leaseDurationSeconds"] = 1
        spec["renewTime"] = _now_micro()
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


def elector_from_settings(
    settings: LeaderSettings, *, on_change: Callable[[bool], None] | None = None
) -> LeaderElector:
    """``AlwaysLeader`` unless ``leader.enabled``; then an in-cluster ``LeaseElector``."""
    if not settings.enabled:
        return AlwaysLeader()
    return LeaseElector.from_settings(settings, on_change=on_change)


# names the engine imports
Elector = LeaderElector
make_elector = elector_from_settings
