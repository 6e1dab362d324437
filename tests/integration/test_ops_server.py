"""The ops HTTP server, for real on 127.0.0.1:0."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon.ops.metrics import Metrics
from daemon.ops.server import HealthServer, HealthState
from tests.support.clocks import FakeClock


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, HealthState, Metrics, FakeClock]]:
    clock = FakeClock(mono=0.0)
    health, metrics = HealthState(clock=clock.monotonic), Metrics()
    async with HealthServer("127.0.0.1", 0, metrics, health) as server:
        assert server.bound_port
        yield f"http://127.0.0.1:{server.bound_port}", health, metrics, clock


async def test_probes_and_metrics(served: tuple[str, HealthState, Metrics, FakeClock]) -> None:
    url, health, metrics, clock = served
    health.register("watcher", max_age=30)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        async with http.get(url + "/healthz") as r:
            assert r.status == 200
            assert (await r.json())["alive"] is True

        clock.advance(31)
        async with http.get(url + "/healthz") as r:
            assert r.status == 503
            assert (await r.json())["stale"] == ["watcher"]
        health.beat("watcher")
        async with http.get(url + "/healthz") as r:
            assert r.status == 200

        async with http.get(url + "/readyz") as r:
            assert r.status == 503
            body = await r.json()
            assert body["ready"] is False
            assert body["role"] == "unknown"
            assert "policies not loaded" in body["reasons"]
        health.set_ready(policies_loaded=True, cloud_reachable=True, leader=False)
        async with http.get(url + "/readyz") as r:
            assert r.status == 200
            body = await r.json()
            assert body == {
                "ready": True,
                "role": "follower",
                "reasons": [],
                "policies_loaded": True,
                "cloud_reachable": True,
                "last_cloud_ok_seconds_ago": 0.0,
            }

        metrics.set_leader(False)
        metrics.api_call("get_execution", 200, 0.02)
        async with http.get(url + "/metrics") as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain")
            text = await r.text()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert families["aomd_leader"].samples[0].value == 0
        assert "aomd_api_latency_seconds" in families

        async with http.get(url + "/nope") as r:
            assert r.status == 404


async def test_two_servers_on_port_zero_get_distinct_ports() -> None:
    a = HealthServer("127.0.0.1", 0, Metrics(), HealthState())
    b = HealthServer("127.0.0.1", 0, Metrics(), HealthState())
    pa, pb = await a.start(), await b.start()
    try:
        assert pa != pb
        with pytest.raises(RuntimeError):
            await a.start()
    finally:
        await a.stop()
        await b.stop()
    await a.stop()  # idempotent
