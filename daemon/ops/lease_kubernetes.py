"""``LeaseApi`` over ``kubernetes_asyncio`` (extra ``aomd[k8s]``), imported lazily so a
single-replica install does not need it."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from daemon.ops.lease_api import LeaseApiError, LeaseConflict


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

    async def _call(self, what: str, call: Awaitable[Any]) -> Any:
        """The API server unreachable (refused, reset, DNS) is a ``LeaseApiError`` like a
        5xx: the electors retry it next period instead of crashing their loop."""
        import aiohttp

        try:
            return await call
        except (aiohttp.ClientError, OSError) as exc:
            raise LeaseApiError(f"{what}: {type(exc).__name__}") from None

    def _status(self, exc: BaseException) -> int | None:
        status = getattr(exc, "status", None)
        return status if isinstance(status, int) else None

    def _to_dict(self, obj: Any) -> dict[str, Any]:
        data = self._api_client.sanitize_for_serialization(obj)
        return data if isinstance(data, dict) else {}

    async def list(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            obj = await self._call(
                f"LIST leases in {namespace}",
                self._api.list_namespaced_lease(namespace, label_selector=label_selector),
            )
        except ApiException as exc:
            raise LeaseApiError(f"LIST leases in {namespace}: HTTP {exc.status}") from None
        items = self._to_dict(obj).get("items") or []
        return [item for item in items if isinstance(item, dict)]

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            obj = await self._call(
                f"GET lease {namespace}/{name}", self._api.read_namespaced_lease(name, namespace)
            )
        except ApiException as exc:
            if self._status(exc) == 404:
                return None
            raise LeaseApiError(f"GET lease {namespace}/{name}: HTTP {exc.status}") from None
        return self._to_dict(obj)

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            obj = await self._call(
                f"POST lease in {namespace}", self._api.create_namespaced_lease(namespace, body)
            )
        except ApiException as exc:
            if self._status(exc) == 409:
                raise LeaseConflict("lease already exists") from None
            raise LeaseApiError(f"POST lease in {namespace}: HTTP {exc.status}") from None
        return self._to_dict(obj)

    async def replace(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            obj = await self._call(
                f"PUT lease {namespace}/{name}",
                self._api.replace_namespaced_lease(name, namespace, body),
            )
        except ApiException as exc:
            if self._status(exc) == 409:
                raise LeaseConflict("lease changed since it was read") from None
            raise LeaseApiError(f"PUT lease {namespace}/{name}: HTTP {exc.status}") from None
        return self._to_dict(obj)

    async def close(self) -> None:
        await self._api_client.close()
