"""The emulator answers what the published pages (``shared/seeds``) say and nothing else
(issue #15): only each operation's listed status codes, the seed's 500 code, the
mandatory headers checked, the admin API token-protected when asked, and
``x_enterprise_project_id`` arriving where the API takes it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from daemon.emulator import Emulator
from daemon.emulator.api import SEED_STATUSES
from daemon.engine.connect import client_for_account
from daemon.settings import Account, Endpoints
from tests.support.emulators import running_emulator

PID = "0123456789abcdef0123456789abcdef"
TOKEN = "tok-seeds"
BASE = f"/v1/{PID}/cms/workflow"


@pytest.fixture
def emulator_options() -> dict[str, Any]:
    return {"project_id": PID, "token": TOKEN, "speed": 0, "seed": 5}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as s:
        yield s


async def _send(
    http: aiohttp.ClientSession,
    emu: Emulator,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    hdrs = {"Content-Type": "application/json", "X-Auth-Token": TOKEN}
    hdrs.update(headers or {})
    hdrs = {k: v for k, v in hdrs.items() if v}
    # aiohttp would add its own Content-Type to a PUT/POST; the test decides it alone
    async with http.request(
        method, emu.url + path, headers=hdrs, skip_auto_headers=["Content-Type"]
    ) as resp:
        return resp.status, json.loads(await resp.text() or "{}")


def _bad_requests(wid: str, eid: str) -> dict[str, list[tuple[str, str, dict[str, str]]]]:
    """Per seeded operation: requests that are wrong in every way we can think of."""
    no_ct = {"Content-Type": ""}
    long_ct = {"Content-Type": "application/json; charset=utf-8; x=1"}
    op = f"{BASE}/{wid}/executions/{eid}/operation"
    return {
        "trigger": [
            ("PUT", f"{BASE}/{wid}/trigger/action?action=pause", {}),
            ("PUT", f"{BASE}/missing/trigger/action?action=enable", {}),
            ("PUT", f"{BASE}/{'w' * 65}/trigger/action?action=enable", {}),
            ("PUT", f"{BASE}/{wid}/trigger/action?action=enable", no_ct),
            ("PUT", f"/v1/{PID[:-1]}/cms/workflow/{wid}/trigger/action?action=enable", {}),
            ("PUT", f"{BASE}/{wid}/trigger/action?action=enable", {"X-Auth-Token": "nope"}),
        ],
        "operation": [
            ("POST", f"{op}?action=explode&node_id=a", {}),
            ("POST", f"{op}?action=restart", {}),
            ("POST", f"{op}?action=continue&node_id=a", {}),  # not waiting there
            ("POST", f"{BASE}/{wid}/executions/missing/operation?action=skip&node_id=a", {}),
            ("POST", f"{op}?action=skip&node_id=a", long_ct),
        ],
        "execute": [
            ("POST", f"{BASE}/missing/executions", {}),
            ("POST", f"{BASE}/{'w' * 65}/executions", {}),
            ("POST", f"{BASE}/{wid}/executions", no_ct),
        ],
        "terminate": [
            ("POST", f"{BASE}/{wid}/executions/missing/terminate", {}),
            ("POST", f"{BASE}/{wid}/executions/{'e' * 65}/terminate", {}),
            ("POST", f"{BASE}/{wid}/executions/{eid}/terminate", no_ct),
        ],
    }


async def test_every_answer_is_a_status_its_seed_lists(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    wid = emu.add_workflow(
        name="w", type="cron", cron="0 0 1 1 *", nodes=[{"id": "a", "duration": 999}]
    )
    eid = emu.start_execution(wid)
    seen: dict[str, set[int]] = {}
    for operation, requests in _bad_requests(wid, eid).items():
        for method, path, headers in requests:
            status, body = await _send(http, emu, method, path, headers)
            assert status in SEED_STATUSES[operation], (operation, path, status, body)
            assert status != 200, (operation, path)
            assert body["error_msg"], body
            if status == 500:
                want = {"AOM.31001305"} if operation == "trigger" else {"AOM.31001405"}
                if operation == "operation":  # a refusal for the state keeps its code
                    want.add("AOM.31001418")
                assert body["error_code"] in want, (operation, body)
            seen.setdefault(operation, set()).add(status)
    # the mapping is not "always 500": the listed 4xx are used where they fit
    assert seen["trigger"] >= {400, 401}
    assert seen["execute"] >= {404}
    assert seen["terminate"] >= {400, 404}
    assert seen["operation"] == {500}  # seed 001 lists no 4xx but 401


async def test_a_missing_content_type_is_refused_and_changes_nothing(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    wid = emu.add_workflow(name="w", type="cron", cron="0 0 1 1 *", nodes=[{"id": "a"}])
    status, body = await _send(
        http, emu, "PUT", f"{BASE}/{wid}/trigger/action?action=disable", {"Content-Type": ""}
    )
    assert (status, body["error_code"]) == (400, "AOM.31001302")
    assert "Content-Type" in body["error_msg"]
    assert emu.workflow(wid).trigger_enabled is True
    assert emu.changes("trigger") == []


async def test_the_admin_api_can_require_a_token(http: aiohttp.ClientSession) -> None:
    async with running_emulator(project_id=PID, token=TOKEN, admin_token="adm-1") as emu:
        async with http.get(f"{emu.url}/_emulator/state") as resp:
            assert resp.status == 401
            assert "X-Admin-Token" in (await resp.json())["error_msg"]
        async with http.get(
            f"{emu.url}/_emulator/state", headers={"X-Admin-Token": "wrong"}
        ) as resp:
            assert resp.status == 401
        async with http.post(
            f"{emu.url}/_emulator/speed", json={"speed": 5}, headers={"X-Admin-Token": "adm-1"}
        ) as resp:
            assert resp.status == 200
        assert emu.clock.speed == 5
        # the cloud API itself is unaffected by the admin token
        status, _ = await _send(http, emu, "POST", f"/v1/{PID}/cms/workflow-list")
        assert status == 200


async def test_enterprise_project_id_is_sent_on_list_executions(emu: Emulator) -> None:
    wid = emu.add_workflow(name="w", nodes=[{"id": "a"}])
    account = Account(
        name="ep",
        project_id=PID,
        token=SecretStr(TOKEN),
        endpoints=Endpoints(aom=emu.url, dataarts=emu.url),
        enterprise_project_id="ep-0123",
        read_retries=0,
    )
    async with client_for_account(account) as client:
        await client.list_executions(wid)
        await client.list_workflows()
    listed = [e for e in emu.ledger if e.method == "GET"]
    assert [e.query for e in listed] == [{"x_enterprise_project_id": "ep-0123"}]
    others = [e for e in emu.ledger if e.method != "GET"]
    assert others
    assert all("x_enterprise_project_id" not in e.query for e in others)
