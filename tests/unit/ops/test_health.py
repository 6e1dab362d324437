"""HealthState on a fake clock: stale loops, readiness reasons, roles."""

from __future__ import annotations

from daemon.ops.health import HealthState
from tests.support.clocks import FakeClock


def test_no_loops_is_alive() -> None:
    assert HealthState().liveness().ok


def test_stale_loop_is_named() -> None:
    clock = FakeClock(mono=1000.0)
    h = HealthState(clock=clock.monotonic)
    h.register("watcher", max_age=10)
    h.register("triggers", max_age=100)
    clock.advance(5)
    h.beat("watcher")
    assert h.alive()
    clock.advance(11)
    probe = h.liveness()
    assert not probe.ok
    assert probe.body["stale"] == ["watcher"]
    assert probe.body["loops"]["triggers"]["stale"] is False
    h.beat("watcher")
    assert h.alive()


def test_loop_that_never_beats_goes_stale_from_registration() -> None:
    clock = FakeClock(mono=1000.0)
    h = HealthState(clock=clock.monotonic)
    h.register("stuck", max_age=3)
    clock.advance(4)
    assert h.stale_loops() == ["stuck"]
    h.unregister("stuck")
    assert h.alive()


def test_readiness_needs_all_three_facts() -> None:
    clock = FakeClock(mono=1000.0)
    h = HealthState(clock=clock.monotonic, cloud_stale_after=60)
    probe = h.readiness()
    assert not probe.ok
    assert probe.body["role"] == "unknown"
    assert len(probe.body["reasons"]) == 3
    h.set_ready(policies_loaded=True)
    h.cloud_ok()
    assert not h.readiness().ok
    h.set_ready(leader=False)
    probe = h.readiness()
    assert probe.ok
    assert probe.body["role"] == "follower"
    assert probe.body["reasons"] == []
    h.set_ready(leader=True)
    assert h.readiness().body["role"] == "leader"
    clock.advance(61)
    probe = h.readiness()
    assert not probe.ok
    assert probe.body["reasons"] == ["no successful cloud call in the last 60 seconds"]
    h.set_ready(cloud_reachable=True)
    assert h.readiness().ok
    h.set_ready(cloud_reachable=False, detail="journal read-only")
    probe = h.readiness()
    assert not probe.ok
    assert probe.body["detail"] == "journal read-only"


def test_engine_short_forms() -> None:
    h = HealthState()
    h.set_policy_loaded(True)
    h.mark_cloud_ok()
    h.set_leader(True)
    assert h.readiness().ok
    assert h.healthy()
    h.set_leader(None)
    assert h.readiness().body["role"] == "unknown"
