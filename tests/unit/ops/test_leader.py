"""LeaseElector logic on a fake clock and an in-memory Lease store (the Kubernetes API
is external, so a dict standing in for it is a fake of *their* service, not ours)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from daemon.kernel.errors import ConfigError
from daemon.ops.leader import AlwaysLeader, LeaderElector
from daemon.ops.leader_config import elector_from_settings, lease_timing
from daemon.ops.lease_api import LeaseApiError, LeaseConflict
from daemon.ops.lease_election import LeaseElector, LeaseTiming
from daemon.settings import LeaderSettings
from tests.support.clocks import FakeClock

TIMING = LeaseTiming(lease_duration=15, renew_deadline=10, retry_period=5)


class MemoryLeases:
    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.rv = 0
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise LeaseApiError("HTTP 503")

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(self.rv)
        self.lease = body
        return copy.deepcopy(body)

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._check()
        return copy.deepcopy(self.lease)

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check()
        if self.lease is not None:
            raise LeaseConflict("exists")
        return self._store(body)

    async def replace(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check()
        assert self.lease is not None
        if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise LeaseConflict("stale")
        return self._store(body)

    async def close(self) -> None:
        pass


def _pair() -> tuple[FakeClock, MemoryLeases, LeaseElector, LeaseElector]:
    clock, api = FakeClock(mono=100.0), MemoryLeases()
    a, b = (
        LeaseElector(
            api, name="l", namespace="ns", identity=i, timing=TIMING, clock=clock.monotonic
        )
        for i in ("a", "b")
    )
    return clock, api, a, b


async def test_first_acquires_second_follows() -> None:
    _clock, api, a, b = _pair()
    assert await a.step()
    assert not await b.step()
    assert a.may_write()
    assert a.is_leader
    assert not b.may_write()
    assert b.holder == "a"
    assert api.lease is not None
    assert api.lease["spec"]["leaseDurationSeconds"] == 15


async def test_may_write_stops_at_renew_deadline_before_the_lease_expires() -> None:
    clock, api, a, b = _pair()
    await a.step()
    await b.step()  # b observes a's record at t=100
    api.down = True  # a can no longer renew
    clock.advance(10)
    assert a.may_write()  # exactly at the deadline: still allowed
    clock.advance(0.001)
    assert not a.may_write()  # past it: refused without any loop having run
    assert not await a.step()
    api.down = False
    clock.mono = 100 + 14.9
    assert not await b.step()  # lease not expired yet for b
    clock.mono = 100 + 15.1
    assert await b.step()  # expired: b takes over
    assert api.lease is not None
    assert api.lease["spec"]["holderIdentity"] == "b"
    assert api.lease["spec"]["leaseTransitions"] == 1


async def test_renewing_keeps_the_lease_and_follower_clock_restarts() -> None:
    clock, _api, a, b = _pair()
    await a.step()
    for _ in range(10):
        clock.advance(5)
        assert await a.step()
        assert not await b.step()
    assert a.may_write()
    assert not b.may_write()


async def test_leader_that_sees_another_holder_steps_down() -> None:
    clock, api, a, _b = _pair()
    await a.step()
    assert api.lease is not None
    api.lease["spec"]["holderIdentity"] = "b"  # someone took it (e.g. after a long pause)
    api.rv += 1
    api.lease["metadata"]["resourceVersion"] = str(api.rv)
    clock.advance(1)
    assert not await a.step()
    assert not a.may_write()


async def test_stale_resource_version_loses() -> None:
    _clock, api, a, _b = _pair()
    await a.step()
    real_replace = api.replace

    async def racing_replace(ns: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        api.rv += 1  # another writer got in between our GET and PUT
        assert api.lease is not None
        api.lease["metadata"]["resourceVersion"] = str(api.rv)
        return await real_replace(ns, name, body)

    api.replace = racing_replace  # type: ignore[method-assign]
    assert await a.step()  # still within the deadline: one failed renew is tolerated
    _clock.advance(10.5)
    assert not await a.step()


def test_timing_validation_and_settings_mapping() -> None:
    with pytest.raises(ConfigError):
        LeaseTiming(lease_duration=10, renew_deadline=10, retry_period=2)
    with pytest.raises(ConfigError):
        lease_timing(LeaderSettings(lease_seconds=10, renew_seconds=5))
    t = lease_timing(LeaderSettings())
    assert (t.lease_duration, t.renew_deadline, t.retry_period) == (15, 10, 5)


async def test_always_leader() -> None:
    e = elector_from_settings(LeaderSettings(enabled=False))
    assert isinstance(e, AlwaysLeader)
    assert isinstance(e, LeaderElector)
    assert e.may_write()
    assert e.is_leader
    await e.run()


def test_enabled_outside_a_pod_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("kubernetes_asyncio")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    with pytest.raises(ConfigError, match=r"leader\.enabled"):
        elector_from_settings(LeaderSettings(enabled=True))
