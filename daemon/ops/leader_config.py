"""Settings -> elector: the ``[leader]`` table, the API server token file, in-cluster
credentials and the identity/namespace defaults a pod provides."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path

from daemon.kernel.errors import ConfigError
from daemon.ops.leader import AlwaysLeader, LeaderElector
from daemon.ops.lease_api import LeaseApi
from daemon.ops.lease_election import LeaseElector, LeaseTiming
from daemon.ops.lease_kubernetes import KubernetesLeaseApi
from daemon.ops.logging import register_secret
from daemon.ops.shard_election import ShardElector
from daemon.settings import LeaderSettings

NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def elector_from_settings(
    settings: LeaderSettings,
    *,
    on_change: Callable[[bool], None] | None = None,
    shard_plan: Mapping[str, int] | None = None,
) -> LeaderElector:
    """``AlwaysLeader`` unless ``leader.enabled``; then an in-cluster ``LeaseElector``, or
    with ``leader.sharded`` a ``ShardElector`` over ``shard_plan`` (account -> shards)."""
    if not settings.enabled:
        return AlwaysLeader()
    if settings.sharded:
        return ShardElector(
            lease_api(settings),
            group=settings.lease_name,
            namespace=settings.namespace or default_namespace(),
            identity=settings.identity or default_identity(),
            timing=lease_timing(settings),
            plan=shard_plan or {},
            on_change=on_change,
        )
    return lease_elector(settings, on_change=on_change)


def lease_elector(
    settings: LeaderSettings, *, on_change: Callable[[bool], None] | None = None
) -> LeaseElector:
    """In-cluster elector from ``[leader]`` settings (needs ``aomd[k8s]``)."""
    return LeaseElector(
        lease_api(settings),
        name=settings.lease_name,
        namespace=settings.namespace or default_namespace(),
        identity=settings.identity or default_identity(),
        timing=lease_timing(settings),
        on_change=on_change,
    )


def lease_api(settings: LeaderSettings) -> LeaseApi:
    """The in-cluster Lease API; with ``leader.api_server`` an explicit API server, its
    token read from ``token_file``."""
    api: LeaseApi | None = None
    if settings.api_server is not None:
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
    return api


def lease_timing(settings: LeaderSettings) -> LeaseTiming:
    """``lease_seconds`` is the lease duration and ``renew_seconds`` the retry period;
    the renew deadline leaves one retry period of margin before expiry (15/10/5 by
    default)."""
    return LeaseTiming(
        lease_duration=settings.lease_seconds,
        renew_deadline=settings.lease_seconds - settings.renew_seconds,
        retry_period=settings.renew_seconds,
    )


def default_identity() -> str:
    """The pod name (``HOSTNAME`` in Kubernetes), else host name plus pid."""
    return os.environ.get("HOSTNAME") or f"{socket.gethostname()}-{os.getpid()}"


def default_namespace() -> str:
    try:
        return NAMESPACE_FILE.read_text(encoding="utf-8").strip() or "default"
    except OSError:
        return "default"
