"""Just enough of the Kubernetes API server for Leases (coordination.k8s.io/v1), served
with aiohttp: the Lease keeps a ``resourceVersion`` and a PUT carrying a stale one gets
409, like the real API server. It records every accepted write so tests can check that a
takeover waited for the old holder to stop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

NS, NAME = "aomd", "aomd-leader"
BASE = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"


@dataclass
class FakeLeaseApi:
    """Just enough of the Kubernetes API server for Leases."""

    leases: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    rv: int = 0
    blocked_tokens: set[str] = field(default_factory=set)
    conflicts: int = 0
    lists: int = 0
    # (monotonic time, holder) of every accepted write
    writes: list[tuple[float, str]] = field(default_factory=list)
    # called with (old_holder, new_holder) when an accepted PUT changes the holder
    on_holder_change: Callable[[str, str], None] | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get(BASE, self.list)
        app.router.add_get(BASE + "/{name}", self.get)
        app.router.add_post(BASE, self.post)
        app.router.add_put(BASE + "/{name}", self.put)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token in self.blocked_tokens:  # a replica cut off from the API server
            return _status(503, "ServiceUnavailable")
        resp: web.StreamResponse = await handler(request)
        return resp

    async def get(self, request: web.Request) -> web.Response:
        lease = self.leases.get((request.match_info["ns"], request.match_info["name"]))
        if lease is None:
            return _status(404, "NotFound")
        return web.json_response(lease)

    async def list(self, request: web.Request) -> web.Response:
        ns = request.match_info["ns"]
        wanted = [
            tuple(term.split("=", 1))
            for term in request.query.get("labelSelector", "").split(",")
            if "=" in term
        ]
        items = [
            lease
            for (lns, _), lease in sorted(self.leases.items())
            if lns == ns
            and all((lease["metadata"].get("labels") or {}).get(k) == v for k, v in wanted)
        ]
        self.lists += 1
        return web.json_response(
            {"kind": "LeaseList", "apiVersion": "coordination.k8s.io/v1", "items": items}
        )

    async def post(self, request: web.Request) -> web.Response:
        body = await request.json()
        ns = request.match_info["ns"]
        key = (ns, body["metadata"]["name"])
        if key in self.leases:
            self.conflicts += 1
            return _status(409, "AlreadyExists")
        return web.json_response(self._store(key, body, ns), status=201)

    async def put(self, request: web.Request) -> web.Response:
        body = await request.json()
        ns, name = request.match_info["ns"], request.match_info["name"]
        current = self.leases.get((ns, name))
        if current is None:
            return _status(404, "NotFound")
        if (
            body.get("metadata", {}).get("resourceVersion")
            != current["metadata"]["resourceVersion"]
        ):
            self.conflicts += 1
            return _status(409, "Conflict")
        old = current["spec"].get("holderIdentity") or ""
        new = body["spec"].get("holderIdentity") or ""
        if old != new and new and self.on_holder_change is not None:
            self.on_holder_change(old, new)
        return web.json_response(self._store((ns, name), body, ns))

    def _store(self, key: tuple[str, str], body: dict[str, Any], ns: str) -> dict[str, Any]:
        self.rv += 1
        body = dict(body)
        body["metadata"] = {
            **body.get("metadata", {}),
            "namespace": ns,
            "resourceVersion": str(self.rv),
        }
        self.leases[key] = body
        self.writes.append((time.monotonic(), body["spec"].get("holderIdentity") or ""))
        return body

    def holder(self, name: str = NAME) -> str:
        lease = self.leases.get((NS, name))
        return "" if lease is None else lease["spec"].get("holderIdentity") or ""


def _status(code: int, reason: str) -> web.Response:
    return web.json_response(
        {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code},
        status=code,
    )


@contextlib.contextmanager
def serving(api: FakeLeaseApi) -> Iterator[str]:
    """``api`` on 127.0.0.1 on a loop of its own in a thread (the test itself blocks on
    subprocesses); yields its base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(api.app(), access_log=None)
    port: list[int] = []

    async def boot() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port.append(runner.addresses[0][1])

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(boot(), loop).result(10)
    try:
        yield f"http://127.0.0.1:{port[0]}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


class MemoryLeaseStore:
    """Many Leases in memory, with ``resourceVersion`` conflicts and label LISTs: what
    the shard electors of several replicas share in unit tests (no server, no sleep)."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, Any]] = {}
        self.rv = 0

    def client(self) -> MemoryLeaseClient:
        return MemoryLeaseClient(self)

    def holder(self, name: str) -> str:
        lease = self.leases.get(name)
        return "" if lease is None else lease["spec"].get("holderIdentity") or ""


class MemoryLeaseClient:
    """One replica's view of a ``MemoryLeaseStore``; ``cut`` makes every call fail."""

    def __init__(self, store: MemoryLeaseStore) -> None:
        self.store = store
        self.cut = False
        self.on_call: Callable[[], None] | None = None
        """Run at every call (a test advances its clock here: calls that take time)."""

    def _check(self) -> None:
        from daemon.ops.lease_api import LeaseApiError

        if self.on_call is not None:
            self.on_call()
        if self.cut:
            raise LeaseApiError("HTTP 503")

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        import copy

        self.store.rv += 1
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(self.store.rv)
        self.store.leases[body["metadata"]["name"]] = body
        return copy.deepcopy(body)

    async def list(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        import copy

        self._check()
        wanted = [tuple(t.split("=", 1)) for t in label_selector.split(",") if "=" in t]
        return [
            copy.deepcopy(lease)
            for _, lease in sorted(self.store.leases.items())
            if all((lease["metadata"].get("labels") or {}).get(k) == v for k, v in wanted)
        ]

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        import copy

        self._check()
        return copy.deepcopy(self.store.leases.get(name))

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        from daemon.ops.lease_api import LeaseConflict

        self._check()
        if body["metadata"]["name"] in self.store.leases:
            raise LeaseConflict("exists")
        return self._store(body)

    async def replace(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        from daemon.ops.lease_api import LeaseConflict

        self._check()
        current = self.store.leases[name]
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise LeaseConflict("stale")
        return self._store(body)

    async def close(self) -> None:
        pass
