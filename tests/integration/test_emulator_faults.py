"""Every fault kind, as a client sees it, and what the ledger records for it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from daemon.emulator import Emulator, Fault

PID = "0123456789abcdef0123456789abcdef"
TOKEN = "tok-faults"
HDRS = {"X-Auth-Token": TOKEN}


@pytest.fixture
def emulator_options() -> dict[str, Any]:
    """The ``emu`` fixture (tests/conftest.py) with this module's credentials."""
    return {"project_id": PID, "token": TOKEN, "seed": 5}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=HDRS, timeout=aiohttp.ClientTimeout(total=5)) as s:
        yield s


def _setup(emu: Emulator) -> tuple[str, str, str]:
    wid = emu.add_workflow(
        name="w", nodes=[{"id": "a", "duration": 1, "behaviour": "fail"}, {"id": "b"}]
    )
    eid = emu.start_execution(wid)
    emu.advance(2)
    return wid, eid, f"{emu.url}/v1/{PID}/cms/workflow/{wid}/executions"


async def test_latency_then_normal(emu: Emulator, http: aiohttp.ClientSession) -> None:
    _, _, url = _setup(emu)
    emu.faults.add(Fault(kind="latency", delay=0.2, times=1))
    start = time.monotonic()
    async with http.get(url) as resp:
        assert resp.status == 200
    assert time.monotonic() - start >= 0.2
    async with http.get(url) as resp:  # times=1: the next request is not delayed
        assert resp.status == 200
    assert emu.ledger[0].fault == "latency"
    assert emu.ledger[1].fault is None


async def test_throttle(emu: Emulator, http: aiohttp.ClientSession) -> None:
    _, _, url = _setup(emu)
    emu.faults.add(Fault(kind="throttle", method="GET", times=2))
    for _ in range(2):
        async with http.get(url) as resp:
            body = await resp.json()
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "1"
            assert body["error_code"].startswith("APIGW.")
            assert body["error_msg"]
            assert resp.headers["X-Request-Id"]
    async with http.get(url) as resp:
        assert resp.status == 200
    assert [e.status for e in emu.ledger] == [429, 429, 200]


async def test_server_error_only_on_matching_path_and_method(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    _wid, eid, url = _setup(emu)
    emu.faults.add(Fault(kind="server_error", path=r"/status$", method="GET"))
    async with http.get(f"{url}/{eid}/status") as resp:
        assert resp.status == 500
        assert (await resp.json())["error_code"] == "AOM.31001305"
    async with http.get(url) as resp:
        assert resp.status == 200
    emu.faults.clear()
    async with http.get(f"{url}/{eid}/status") as resp:
        assert resp.status == 200


async def test_reset_closes_without_reply_and_applies_nothing(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    wid, eid, url = _setup(emu)
    emu.faults.add(Fault(kind="reset", method="POST", times=1))
    with pytest.raises(aiohttp.ClientError):
        async with http.post(f"{url}/{eid}/operation?action=skip&node_id=a") as resp:
            await resp.read()
    assert emu.execution(wid, eid).status == "pausing"
    assert emu.ledger[-1].fault == "reset"
    assert emu.ledger[-1].status is None
    assert emu.ledger[-1].change is None


async def test_hang_until_client_gives_up(emu: Emulator) -> None:
    _, _, url = _setup(emu)
    emu.faults.add(Fault(kind="hang", times=1))
    async with aiohttp.ClientSession(headers=HDRS) as http:
        with pytest.raises(asyncio.TimeoutError):
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=0.3)) as resp:
                await resp.read()
        async with http.get(url) as resp:  # the next one is served
            assert resp.status == 200
    assert emu.ledger[0].fault == "hang"


async def test_hang_is_released_by_stop() -> None:
    emu = Emulator(project_id=PID, token=TOKEN)
    await emu.start()
    _, _, url = _setup(emu)
    emu.faults.add(Fault(kind="hang"))
    async with aiohttp.ClientSession(headers=HDRS) as http:
        request = asyncio.ensure_future(http.get(url, timeout=aiohttp.ClientTimeout(total=5)))
        await asyncio.sleep(0.1)
        start = time.monotonic()
        await emu.stop()
        assert time.monotonic() - start < 2
        with pytest.raises(aiohttp.ClientError):
            await request


async def test_malformed_bodies(emu: Emulator, http: aiohttp.ClientSession) -> None:
    _, _, url = _setup(emu)
    emu.faults.add(Fault(kind="malformed", times=1))
    emu.faults.add(Fault(kind="malformed", times=1, body='{"unexpected": true}'))
    async with http.get(url) as resp:
        assert resp.status == 200
        with pytest.raises(json.JSONDecodeError):
            await resp.json()
    async with http.get(url) as resp:
        assert await resp.json() == {"unexpected": True}  # valid JSON, wrong shape


async def test_applied_then_lost(emu: Emulator, http: aiohttp.ClientSession) -> None:
    wid, eid, url = _setup(emu)
    emu.faults.add(Fault(kind="applied_then_lost", path="/operation$", times=1))
    with pytest.raises(aiohttp.ClientError):
        async with http.post(f"{url}/{eid}/operation?action=skip&node_id=a") as resp:
            await resp.read()
    ex = emu.execution(wid, eid)
    assert ex.runs["a"].output["skipped"] is True  # the write happened
    entry = emu.ledger[-1]
    assert entry.fault == "applied_then_lost"
    assert entry.status is None
    assert entry.change == {
        "kind": "operation",
        "workflow_id": wid,
        "execution_id": eid,
        "node_id": "a",
        "action": "skip",
        "status": "executing",  # the skip moved the execution on to the next node
    }
    # A blind resend is now refused: exactly the hazard the client must avoid.
    async with http.post(f"{url}/{eid}/operation?action=skip&node_id=a") as resp:
        assert resp.status == 500  # seed 001 has no 4xx: a refused operation is its 500
        assert (await resp.json())["error_code"] == "AOM.31001418"


async def test_probability_is_seeded() -> None:
    outcomes = []
    for _ in range(2):
        emu = Emulator(project_id=PID, token=TOKEN, seed=11)
        emu.faults.add(Fault(kind="server_error", probability=0.5))
        outcomes.append([emu.faults.match("GET", "/x") is not None for _ in range(64)])
    assert outcomes[0] == outcomes[1]
    assert 10 < sum(outcomes[0]) < 54
    with pytest.raises(ValueError, match="probability"):
        Fault(kind="server_error", probability=2.0)
    with pytest.raises(ValueError, match="fault kind"):
        Fault(kind="explode")  # type: ignore[arg-type]  # the point of the test


async def test_latency_on_a_write_answers_normally(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    _, eid, url = _setup(emu)
    emu.faults.add(Fault(kind="latency", delay=0.1, method="POST", times=1))
    async with http.post(f"{url}/{eid}/operation?action=skip&node_id=a") as resp:
        assert resp.status == 200
        assert await resp.json() == {"result": "success"}
    [entry] = [e for e in emu.ledger if e.method == "POST"]
    assert (entry.status, entry.fault) == (200, "latency")
