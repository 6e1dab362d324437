"""The emulator's HTTP surface: auth, validation, routes, bodies, ledger and admin.

Requests are hand-made with aiohttp and signed with daemon.cloud.signer so the test
controls every byte (stale dates, tampered signatures, odd characters in paths).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
from yarl import URL

from daemon.cloud import signer
from daemon.emulator import Emulator
from daemon.kernel.clock import SystemClock

PID = "0123456789abcdef0123456789abcdef"
AK, SK, TOKEN = "AKTESTEMULATOR", "SKtestsecret", "tok-emulator"
BASE = f"/v1/{PID}/cms/workflow"


@pytest.fixture
def emulator_options() -> dict[str, Any]:
    """The ``emu`` fixture (tests/conftest.py) with this module's credentials."""
    return {
        "project_id": PID,
        "access_key": AK,
        "secret_key": SK,
        "token": TOKEN,
        "speed": 1.0,
        "seed": 3,
    }


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
        yield s


async def call(
    http: aiohttp.ClientSession,
    emu: Emulator,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]] = (),
    body: Any = None,
    *,
    token: str | None = TOKEN,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, aiohttp.ClientResponse]:
    """One request with the token (default) or, with token=None, signed with AK/SK."""
    data = json.dumps(body).encode() if body is not None else b""
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        hdrs["X-Auth-Token"] = token
    else:
        signer.sign(
            ak=AK,
            sk=SK,
            method=method,
            host=emu.url.split("//", 1)[1],
            path=path,
            query=query,
            headers=hdrs,
            body=data,
            now=SystemClock().now(),
        )
    qs = signer.canonical_query(query)
    url = URL(emu.url + path + (f"?{qs}" if qs else ""), encoded=True)
    async with http.request(method, url, data=data, headers=hdrs) as resp:
        text = await resp.text()
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = text
        return resp.status, parsed, resp


def pausing_workflow(emu: Emulator) -> str:
    return emu.add_workflow(
        name="patch",
        tags={"team": "ops"},
        nodes=[
            {"id": "a", "duration": 1, "behaviour": {"fail_times": 1}},
            {"id": "p", "kind": "pause"},
        ],
    )


async def test_execute_list_detail_and_fields(emu: Emulator, http: aiohttp.ClientSession) -> None:
    wid = pausing_workflow(emu)
    status, body, _resp = await call(http, emu, "POST", f"{BASE}/{wid}/executions")
    assert status == 200
    eid = body["execution_id"]
    assert emu.changes("execute") == [{"kind": "execute", "workflow_id": wid, "execution_id": eid}]
    status, briefs, _ = await call(http, emu, "GET", f"{BASE}/{wid}/executions")
    assert status == 200
    assert isinstance(briefs, list)
    assert briefs[0]["execution_id"] == eid
    assert briefs[0]["created_by"] == "api"
    assert briefs[0]["execution_result_list"][0]["node_id"] == "a"
    status, detail, _ = await call(http, emu, "GET", f"{BASE}/{wid}/executions/{eid}/status")
    assert status == 200
    assert "created_by" not in detail
    assert set(detail) >= {
        "workflow_id",
        "execution_id",
        "status",
        "begin_time",
        "end_time",
        "last_update_time",
        "project_id",
        "execution_result_list",
    }
    emu.advance(2)
    status, detail, _ = await call(http, emu, "GET", f"{BASE}/{wid}/executions/{eid}/status")
    assert detail["status"] == "pausing"
    node = detail["execution_result_list"][0]
    assert (node["status"], node["output"]["exit_code"]) == ("fail", 1)
    assert set(node) == {
        "node_id",
        "status",
        "begin_time",
        "end_time",
        "output",
        "function_execution_id",
    }


async def test_operations_follow_the_state_machine(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    wid = pausing_workflow(emu)
    eid = emu.start_execution(wid)
    op = f"{BASE}/{wid}/executions/{eid}/operation"
    status, body, _ = await call(http, emu, "POST", op, [("action", "restart"), ("node_id", "a")])
    # seed 001 lists 200/401/500 only: a refusal for the state is its 500, keeping the
    # published "not supported in the current state" code
    assert (status, body["error_code"]) == (500, "AOM.31001418")
    assert body["error_msg"]
    emu.advance(1)
    status, body, _ = await call(http, emu, "POST", op, [("action", "restart"), ("node_id", "a")])
    assert (status, body) == (200, {"result": "success"})
    emu.advance(1)
    status, body, _ = await call(
        http, emu, "POST", op, [("action", "continue"), ("node_id", "p")], token=None
    )
    assert status == 200
    assert emu.execution(wid, eid).status == "success"
    ops = emu.changes("operation")
    assert [(c["action"], c["node_id"]) for c in ops] == [("restart", "a"), ("continue", "p")]
    status, body, _ = await call(http, emu, "POST", f"{BASE}/{wid}/executions/{eid}/terminate")
    assert (status, body["error_code"]) == (400, "AOM.31001418")


async def test_terminate_and_trigger(emu: Emulator, http: aiohttp.ClientSession) -> None:
    wid = emu.add_workflow(
        name="long", type="cron", cron="0 0 1 1 *", nodes=[{"id": "a", "duration": 9999}]
    )
    eid = emu.start_execution(wid)
    status, body, _ = await call(http, emu, "POST", f"{BASE}/{wid}/executions/{eid}/terminate")
    assert (status, body) == (200, {"result": "success"})
    assert emu.execution(wid, eid).status == "canceling"
    emu.advance(1)
    assert emu.execution(wid, eid).status == "cancel"

    status, text, resp = await call(
        http, emu, "PUT", f"{BASE}/{wid}/trigger/action", [("action", "disable")]
    )
    assert status == 200
    assert text == '{"success"}'  # literally as documented, not valid JSON
    assert resp.headers["Content-Type"].startswith("application/json")
    assert emu.workflow(wid).trigger_enabled is False
    assert emu.changes("trigger") == [{"kind": "trigger", "workflow_id": wid, "enabled": False}]
    status, body, _ = await call(http, emu, "POST", f"/v1/{PID}/cms/workflow-list", body={})
    assert body["elements"][0]["trigger_status"] == "disable"
    status, body, _ = await call(
        http, emu, "PUT", f"{BASE}/{wid}/trigger/action", [("action", "pause")]
    )
    assert (status, body["error_code"]) == (400, "AOM.31001302")


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"X-Auth-Token": "wrong"}, "AOM.31009003"),
        ({}, "AOM.31009003"),
        ({"Authorization": "Basic Zm9vOmJhcg=="}, "AOM.31009003"),
    ],
)
async def test_bad_credentials_are_401(
    emu: Emulator, http: aiohttp.ClientSession, headers: dict[str, str], code: str
) -> None:
    async with http.post(f"{emu.url}/v1/{PID}/cms/workflow-list", headers=headers) as resp:
        body = await resp.json(content_type=None)
        assert resp.status == 401
        assert body == {"error_code": code, "error_msg": body["error_msg"], "http_code": 401}
        assert resp.headers["X-Request-Id"]
    assert emu.ledger[-1].auth in ("failed", "none")
    assert emu.ledger[-1].status == 401


async def _signed_raw(
    emu: Emulator,
    http: aiohttp.ClientSession,
    path: str,
    query: list[tuple[str, str]],
    *,
    ak: str = AK,
    sk: str = SK,
    skew: timedelta = timedelta(0),
    tamper: bool = False,
) -> tuple[int, dict[str, Any]]:
    hdrs: dict[str, str] = {"Content-Type": "application/json", "X-Project-Id": PID}
    signer.sign(
        ak=ak,
        sk=sk,
        method="POST",
        host=emu.url.split("//", 1)[1],
        path=path,
        query=query,
        headers=hdrs,
        body=b"",
        now=SystemClock().now() + skew,
    )
    if tamper:
        hdrs["Authorization"] = hdrs["Authorization"][:-1] + (
            "0" if hdrs["Authorization"][-1] != "0" else "1"
        )
    url = URL(emu.url + path + "?" + signer.canonical_query(query), encoded=True)
    async with http.post(url, headers=hdrs) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_aksk_signature_checks(emu: Emulator, http: aiohttp.ClientSession) -> None:
    wid = emu.add_workflow(
        id="odd id/with%chars", name="odd", nodes=[{"id": "n 1~x", "behaviour": "fail"}]
    )
    eid = emu.start_execution(wid)
    emu.advance(10)
    raw_wid = "odd%20id%2Fwith%25chars"
    path = f"{BASE}/{raw_wid}/executions/{eid}/operation"
    query = [("node_id", "n 1~x"), ("action", "skip")]
    assert await _signed_raw(emu, http, path, query, skew=timedelta(hours=1)) == (
        401,
        {
            "error_code": "AOM.31009004",
            "error_msg": "Signature expired: X-Sdk-Date out of range",
            "http_code": 401,
        },
    )
    status, body = await _signed_raw(emu, http, path, query, tamper=True)
    assert (status, body["error_code"]) == (401, "AOM.31009004")
    status, body = await _signed_raw(emu, http, path, query, sk="other")
    assert (status, body["error_code"]) == (401, "AOM.31009004")
    status, body = await _signed_raw(emu, http, path, query, ak="OTHERAK")
    assert (status, body["error_code"]) == (401, "AOM.31009003")
    assert emu.execution(wid, eid).status == "pausing"  # nothing applied so far
    status, body = await _signed_raw(emu, http, path, query, skew=timedelta(minutes=14))
    assert (status, body) == (200, {"result": "success"})
    assert emu.execution(wid, eid).runs["n 1~x"].output["skipped"] is True
    assert emu.ledger[-1].auth == "aksk"
    assert emu.ledger[-1].change == {
        "kind": "operation",
        "workflow_id": wid,
        "execution_id": eid,
        "node_id": "n 1~x",
        "action": "skip",
        "status": "success",
    }


@pytest.mark.parametrize(
    ("method", "path", "query", "status", "code"),
    [
        ("GET", f"/v1/{PID[:-1]}/cms/workflow/w/executions", [], 400, "AOM.31001302"),
        ("GET", f"/v1/{'f' * 32}/cms/workflow/w/executions", [], 401, "AOM.31009003"),
        ("GET", f"{BASE}/{'w' * 65}/executions", [], 400, "AOM.31001302"),
        ("GET", f"{BASE}/missing/executions", [], 404, "AOM.31001306"),
        ("GET", f"{BASE}/WID/executions/missing/status", [], 404, "AOM.31001306"),
        ("GET", f"{BASE}/WID/executions/{'e' * 65}/status", [], 400, "AOM.31001302"),
        (
            "POST",
            f"{BASE}/WID/executions/EID/operation",
            [("action", "explode"), ("node_id", "a")],
            500,
            "AOM.31001405",
        ),
        (
            "POST",
            f"{BASE}/WID/executions/EID/operation",
            [("action", "restartrestart"), ("node_id", "a")],
            500,
            "AOM.31001405",
        ),
        (
            "POST",
            f"{BASE}/WID/executions/EID/operation",
            [("action", "restart")],
            500,
            "AOM.31001405",
        ),
        (
            "POST",
            f"{BASE}/WID/executions/EID/operation",
            [("action", "restart"), ("node_id", "n" * 65)],
            500,
            "AOM.31001405",
        ),
        (
            "POST",
            f"{BASE}/WID/executions/EID/operation",
            [("action", "skip"), ("node_id", "zz")],
            500,
            "AOM.31001405",
        ),
        ("DELETE", f"{BASE}/WID/executions", [], 404, "APIGW.0101"),
        ("GET", "/v2/nothing/here", [], 404, "APIGW.0101"),
    ],
)
async def test_validation_errors(
    emu: Emulator,
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    status: int,
    code: str,
) -> None:
    wid = pausing_workflow(emu)
    eid = emu.start_execution(wid)
    path = path.replace("WID", wid).replace("EID", eid)
    got, body, resp = await call(http, emu, method, path, query)
    assert (got, body["error_code"]) == (status, code)
    assert body["error_msg"]
    assert resp.headers["X-Request-Id"]


async def test_request_ids_are_unique_and_in_ledger(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    wid = pausing_workflow(emu)
    ids = []
    for _ in range(20):
        _, _, resp = await call(http, emu, "GET", f"{BASE}/{wid}/executions")
        ids.append(resp.headers["X-Request-Id"])
    await call(http, emu, "GET", f"{BASE}/nope/executions")
    assert len(set(ids)) == 20
    assert [e.request_id for e in emu.ledger[:20]] == ids
    assert [e.seq for e in emu.ledger] == list(range(1, 22))
    assert emu.ledger[-1].status == 404


async def test_list_workflows_paging_after_populate(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    emu.populate(2000, 5, seed=1)
    seen: list[str] = []
    page = 0
    while True:
        status, body, _ = await call(
            http, emu, "POST", f"/v1/{PID}/cms/workflow-list", body={"page": page, "size": 100}
        )
        assert status == 200
        assert body["total_elements"] == 2000
        if not body["elements"]:
            break
        seen += [w["id"] for w in body["elements"]]
        page += 1
    assert len(seen) == len(set(seen)) == 2000
    assert page == 20
    _, body, _ = await call(http, emu, "POST", f"/v1/{PID}/cms/workflow-list", body={})
    assert len(body["elements"]) == 10  # size defaults to 10
    _, body, _ = await call(
        http,
        emu,
        "POST",
        f"/v1/{PID}/cms/workflow-list",
        body={"type": "cron", "tags": {"team": "db"}, "size": 1000},
    )
    assert body["total_elements"] == len(body["elements"]) > 0
    assert all(w["type"] == "cron" and w["tags"]["team"] == "db" for w in body["elements"])
    _, body, _ = await call(
        http, emu, "POST", f"/v1/{PID}/cms/workflow-list", body={"search": "BULK-0001"}
    )
    assert body["total_elements"] == 10  # bulk-00010 .. bulk-00019
    status, body, _ = await call(
        http, emu, "POST", f"/v1/{PID}/cms/workflow-list", body={"page": -1}
    )
    assert (status, body["error_code"]) == (400, "AOM.31001302")
    wid = seen[0]
    status, briefs, _ = await call(http, emu, "GET", f"{BASE}/{wid}/executions")
    assert status == 200
    assert len(briefs) == 5


async def test_dataarts_task_action(emu: Emulator, http: aiohttp.ClientSession) -> None:
    path = f"/v3/{PID}/metadata/tasks/task-1/action"
    status, body, _ = await call(
        http, emu, "POST", path, [("action", "start")], headers={"workspace": "ws-1"}
    )
    assert status == 200
    assert emu.changes("dataarts") == [
        {"kind": "dataarts", "task_id": "task-1", "action": "start", "workspace": "ws-1"}
    ]
    status, body, _ = await call(http, emu, "POST", path, [("action", "start")], token=None)
    assert status == 403  # no workspace header
    assert set(body) == {"error_code", "error_msg"}  # seed 004's error body: no http_code
    status, body, _ = await call(
        http, emu, "POST", path, [("action", "explode")], headers={"workspace": "w"}
    )
    assert status == 400
    assert len(emu.changes("dataarts")) == 1


async def test_dataarts_unknown_workspace_is_403_and_unknown_task_404(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    emu.add_dataarts_task("ws-main", "1234567890")
    base = f"/v3/{PID}/metadata/tasks"
    start = [("action", "start")]
    status, body, _ = await call(
        http, emu, "POST", f"{base}/1234567890/action", start, headers={"workspace": "ws-other"}
    )
    assert (status, body["error_code"]) == (403, "EMULATOR.403")
    status, body, _ = await call(
        http, emu, "POST", f"{base}/999/action", start, headers={"workspace": "ws-main"}
    )
    assert (status, body["error_code"]) == (404, "EMULATOR.404")
    assert set(body) == {"error_code", "error_msg"}
    status, _, _ = await call(
        http, emu, "POST", f"{base}/1234567890/action", start, headers={"workspace": "ws-main"}
    )
    assert status == 200
    assert [c["task_id"] for c in emu.changes("dataarts")] == ["1234567890"]


async def test_admin_endpoints(emu: Emulator, http: aiohttp.ClientSession) -> None:
    scenario = {
        "workflows": [{"id": "wf-admin", "name": "admin", "nodes": [{"id": "a"}], "start": 1}]
    }
    async with http.post(f"{emu.url}/_emulator/scenario", json=scenario) as resp:
        assert resp.status == 200
        assert await resp.json() == {"workflow_ids": ["wf-admin"]}
    async with http.post(f"{emu.url}/_emulator/scenario", json={"workflows": [{"x": 1}]}) as resp:
        assert resp.status == 400
    await call(http, emu, "GET", f"{BASE}/wf-admin/executions")
    await call(http, emu, "GET", f"{BASE}/wf-admin/executions")
    async with http.get(f"{emu.url}/_emulator/ledger", params={"since": "1"}) as resp:
        data = await resp.json()
        assert [e["seq"] for e in data["entries"]] == [2]
        assert data["last_seq"] == 2
    async with http.post(f"{emu.url}/_emulator/speed", json={"speed": 120}) as resp:
        assert resp.status == 200
    assert emu.clock.speed == 120
    async with http.post(f"{emu.url}/_emulator/advance", json={"seconds": 60}) as resp:
        assert resp.status == 200
    async with http.get(f"{emu.url}/_emulator/state") as resp:
        state = await resp.json()
        assert state["workflows"][0]["executions"][0]["status"] == "success"
    fault = {"kind": "throttle", "path": "executions$", "times": 1, "retry_after": 3}
    async with http.post(f"{emu.url}/_emulator/faults", json=fault) as resp:
        assert resp.status == 200
        assert len((await resp.json())["faults"]) == 1
    status, _, resp = await call(http, emu, "GET", f"{BASE}/wf-admin/executions")
    assert status == 429
    assert resp.headers["Retry-After"] == "3"
    async with http.post(f"{emu.url}/_emulator/faults", json={"kind": "nope"}) as resp:
        assert resp.status == 400
    async with http.delete(f"{emu.url}/_emulator/faults") as resp:
        assert resp.status == 200
    assert len(emu.faults) == 0
    assert all(not e.path.startswith("/_emulator") for e in emu.ledger)


async def test_admin_populate_and_scheduled_execution(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """What a benchmark driving a CLI-run emulator uses: populate with incidents, then
    watch them appear through the ordinary API."""
    emu.set_speed(0)
    request = {"workflows": 50, "executions_per_workflow": 2, "seed": 1, "incidents": 4}
    request |= {"within": 120, "quiet": True, "pause_share": 0.5}
    async with http.post(f"{emu.url}/_emulator/populate", json=request) as resp:
        assert resp.status == 200
        assert resp.headers["X-Request-Id"]
        pop = await resp.json()
    assert len(pop["workflow_ids"]) == 50
    assert len(pop["incidents"]) == 4
    async with http.post(f"{emu.url}/_emulator/populate", json={"bogus": 1}) as resp:
        assert resp.status == 400
    last = pop["incidents"][-1]
    seconds = (datetime.fromisoformat(last["at"]) - emu.now()).total_seconds()
    async with http.post(f"{emu.url}/_emulator/advance", json={"seconds": seconds}) as resp:
        assert resp.status == 200
    for inc in pop["incidents"]:
        path = f"{BASE}/{inc['workflow_id']}/executions/{inc['execution_id']}/status"
        status, detail, _ = await call(http, emu, "GET", path)
        assert status == 200
        assert detail["status"] == "pausing"
        node = next(r for r in detail["execution_result_list"] if r["node_id"] == inc["node_id"])
        assert node["status"] == ("fail" if inc["kind"] == "fail" else "pausing")

    wid = pop["workflow_ids"][0]
    later = (emu.now() + timedelta(seconds=30)).isoformat()
    payload = {"workflow_id": wid, "at": later}
    async with http.post(f"{emu.url}/_emulator/executions", json=payload) as resp:
        assert resp.status == 200
        eid = (await resp.json())["execution_id"]
    status, _, _ = await call(http, emu, "GET", f"{BASE}/{wid}/executions/{eid}/status")
    assert status == 404  # not started yet
    emu.advance(30)
    status, _, _ = await call(http, emu, "GET", f"{BASE}/{wid}/executions/{eid}/status")
    assert status == 200
    async with http.post(f"{emu.url}/_emulator/executions", json={"workflow_id": "x"}) as resp:
        assert resp.status == 404


async def test_cron_fires_in_emulated_time_only_while_enabled(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """The real ticker, at 1 emulated hour per second: fires, then stops once disabled."""
    wid = emu.add_workflow(
        name="tick", type="cron", cron="* * * * *", nodes=[{"id": "a", "duration": 1}]
    )
    emu.set_speed(3600)
    for _ in range(100):
        if len(emu.changes("cron_fired")) >= 3:
            break
        await asyncio.sleep(0.02)
    assert len(emu.changes("cron_fired")) >= 3
    status, _, _ = await call(
        http, emu, "PUT", f"{BASE}/{wid}/trigger/action", [("action", "disable")]
    )
    assert status == 200
    fired = len(emu.changes("cron_fired"))
    emu.advance(18 * 60)  # 18 emulated minutes: would be 18 more fires if enabled
    assert len(emu.changes("cron_fired")) == fired
    execs = emu.workflow(wid).executions
    assert len(execs) == fired
    assert {ex.created_by for ex in execs.values()} == {"trigger"}
    _, briefs, _ = await call(http, emu, "GET", f"{BASE}/{wid}/executions")
    assert len(briefs) == fired


async def test_cached_bodies_follow_every_change(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    """Serialised bodies are cached; each kind of change must show on the next read."""
    wid = emu.add_workflow(
        name="cache", type="cron", cron="0 0 1 1 *", nodes=[{"id": "a", "duration": 5}]
    )
    listing = f"/v1/{PID}/cms/workflow-list"

    async def listed() -> dict[str, Any]:
        _, body, _ = await call(http, emu, "POST", listing, body={})
        return body["elements"][0]  # type: ignore[no-any-return]

    assert (await listed())["last_execution_id"] is None
    eid = emu.start_execution(wid)
    assert (await listed())["last_execution_id"] == eid
    assert (await listed())["status"] == "executing"
    _, briefs, _ = await call(http, emu, "GET", f"{BASE}/{wid}/executions")
    assert briefs[0]["status"] == "executing"
    emu.advance(5)  # time alone completes the node
    _, briefs, _ = await call(http, emu, "GET", f"{BASE}/{wid}/executions")
    assert briefs[0]["status"] == "success"
    assert (await listed())["status"] == "success"
    await call(http, emu, "PUT", f"{BASE}/{wid}/trigger/action", [("action", "disable")])
    assert (await listed())["trigger_status"] == "disable"
    await call(http, emu, "PUT", f"{BASE}/{wid}/trigger/action", [("action", "enable")])
    assert (await listed())["trigger_status"] == "enable"
    _, body, _ = await call(http, emu, "POST", f"{BASE}/{wid}/executions")
    _, briefs, _ = await call(http, emu, "GET", f"{BASE}/{wid}/executions")
    assert [b["execution_id"] for b in briefs] == [body["execution_id"], eid]  # newest first
