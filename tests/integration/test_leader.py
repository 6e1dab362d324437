"""Leader election against a fake coordination.k8s.io/v1 Lease API on 127.0.0.1.

The fake server keeps the Lease with a ``resourceVersion`` and answers a PUT carrying a
stale one with 409, like the real API server. Two real ``LeaseElector`` objects talk
to it through ``kubernetes_asyncio``. Safety is checked two ways: a sampler asserts the
two never both say ``may_write()``, and the server itself checks, at the moment it
accepts a change of holder, that the previous holder already refuses writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from daemon.ops.lease_election import LeaseElector, LeaseTiming
from daemon.ops.lease_kubernetes import KubernetesLeaseApi

pytest.importorskip("kubernetes_asyncio")

NS, NAME = "aomd", "aomd-leader"
BASE = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
TIMING = LeaseTiming(lease_duration=1.0, renew_deadline=0.6, retry_period=0.15)


@dataclass
class FakeLeaseApi:
    """Just enough of the Kubernetes API server for Leases."""

    leases: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    rv: int = 0
    blocked_tokens: set[str] = field(default_factory=set)
    conflicts: int = 0
    # (monotonic time, holder) of every accepted write
    writes: list[tuple[float, str]] = field(default_factory=list)
    # called with (old_holder, new_holder) when an accepted PUT changes the holder
    on_holder_change: Callable[[str, str], None] | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
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

    def holder(self) -> str:
        lease = self.leases.get((NS, NAME))
        return "" if lease is None else lease["spec"].get("holderIdentity") or ""


def _status(code: int, reason: str) -> web.Response:
    return web.json_response(
        {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code},
        status=code,
    )


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeLeaseApi, str]]:
    api = FakeLeaseApi()
    runner = web.AppRunner(api.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield api, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _elector(url: str, identity: str, *, release: bool = False) -> LeaseElector:
    return LeaseElector(
        KubernetesLeaseApi.for_host(url, token=f"tok-{identity}"),
        name=NAME,
        namespace=NS,
        identity=identity,
        timing=TIMING,
        release_on_cancel=release,
    )


class Sampler:
    """Samples both electors every few ms; records any moment both may write."""

    def __init__(self, electors: dict[str, LeaseElector]) -> None:
        self.electors = electors
        self.both = 0
        self.samples = 0
        self.led: set[str] = set()

    async def run(self) -> None:
        while True:
            writers = [n for n, e in self.electors.items() if e.may_write()]
            self.samples += 1
            self.led.update(writers)
            if len(writers) > 1:
                self.both += 1
            await asyncio.sleep(0.005)


async def _until(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _run_pair(
    fake: tuple[FakeLeaseApi, str], *, release: bool, partition: bool
) -> tuple[FakeLeaseApi, Sampler, list[str]]:
    api, url = fake
    a, b = _elector(url, "a", release=release), _elector(url, "b", release=release)
    electors = {"a": a, "b": b}
    violations: list[str] = []

    def check(old: str, new: str) -> None:
        # the instant the server hands the lease to `new`, `old` must refuse writes
        if old in electors and electors[old].may_write():
            violations.append(f"{new} took the lease while {old} may still write")

    api.on_holder_change = check
    sampler = Sampler(electors)
    tasks = {n: asyncio.create_task(e.run()) for n, e in electors.items()}
    sampling = asyncio.create_task(sampler.run())
    try:
        await _until(lambda: a.may_write() or b.may_write())
        first = "a" if a.may_write() else "b"
        other = "b" if first == "a" else "a"
        # let a few renew rounds pass with both running: the follower must stay out
        renewals = len(api.writes)
        await _until(lambda: len(api.writes) >= renewals + 4)
        # (a starved loop may have let the lease move meanwhile: ask again)
        await _until(lambda: a.may_write() or b.may_write())
        first = "a" if a.may_write() else "b"
        other = "b" if first == "a" else "a"
        assert not electors[other].may_write()

        if partition:
            api.blocked_tokens.add(f"tok-{first}")  # the leader loses the API server
        else:
            await _stop(tasks.pop(first))  # the leader stops
        await _until(lambda: electors[other].may_write())
        assert api.holder() == other
        if partition:
            assert not electors[first].may_write()
        seen = sampler.samples
        await _until(lambda: sampler.samples > seen + 10)
    finally:
        for t in [*tasks.values(), sampling]:
            await _stop(t)
        for e in electors.values():
            await e.close()
    return api, sampler, [*violations, first]


def _assert_takeovers_waited_for_expiry(api: FakeLeaseApi) -> None:
    """Every change of holder (not via a release) came at least a lease duration after
    the previous holder's last write, measured on the server's clock."""
    takeovers = 0
    prev_holder, prev_at = "", 0.0
    for at, holder in api.writes:
        if holder != prev_holder and prev_holder and holder:
            assert at - prev_at >= TIMING.lease_duration
            takeovers += 1
        prev_holder, prev_at = holder, at
    assert takeovers >= 1


async def test_leader_stops_without_release_other_takes_over_after_expiry(fake: Any) -> None:
    api, sampler, rest = await _run_pair(fake, release=False, partition=False)
    *violations, first = rest
    assert violations == []
    assert sampler.both == 0
    assert sampler.led == {"a", "b"}
    assert first in sampler.led
    _assert_takeovers_waited_for_expiry(api)


async def test_leader_partitioned_from_api_stops_writing_before_takeover(fake: Any) -> None:
    api, sampler, rest = await _run_pair(fake, release=False, partition=True)
    *violations, _first = rest
    assert violations == []
    assert sampler.both == 0
    assert sampler.led == {"a", "b"}
    _assert_takeovers_waited_for_expiry(api)


async def test_graceful_stop_releases_the_lease(fake: Any) -> None:
    api, sampler, rest = await _run_pair(fake, release=True, partition=False)
    *violations, first = rest
    assert violations == []
    assert sampler.both == 0
    # the release write (empty holder) came from the stopped leader
    assert any(h == "" for _, h in api.writes)
    assert first in sampler.led


async def test_concurrent_create_only_one_wins(fake: Any) -> None:
    api, url = fake
    electors = [_elector(url, f"r{i}") for i in range(4)]
    try:
        results = await asyncio.gather(*(e.step() for e in electors))
        assert sum(results) == 1
        assert api.holder() == next(e.identity for e in electors if e.may_write())
        # a second round keeps the same single leader
        results = await asyncio.gather(*(e.step() for e in electors))
        assert sum(results) == 1
    finally:
        for e in electors:
            await e.close()
