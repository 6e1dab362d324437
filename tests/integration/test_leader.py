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
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from daemon.ops.lease_election import LeaseElector, LeaseTiming
from daemon.ops.lease_kubernetes import KubernetesLeaseApi
from tests.support.leases import NAME, NS, FakeLeaseApi

pytest.importorskip("kubernetes_asyncio")

TIMING = LeaseTiming(lease_duration=1.0, renew_deadline=0.6, retry_period=0.15)


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


async def test_an_unreachable_api_server_is_a_lease_api_error() -> None:
    """Refused connections must reach the elector as its own error (retried next
    period), not as aiohttp's, which would crash the election loop."""
    import socket

    from daemon.ops.lease_api import LeaseApiError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens
    api = KubernetesLeaseApi.for_host(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(LeaseApiError, match="GET lease aomd/x"):
            await api.get("aomd", "x")
        with pytest.raises(LeaseApiError, match="LIST leases in aomd"):
            await api.list("aomd", "a=b")
    finally:
        await api.close()
