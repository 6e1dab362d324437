"""The official SDK (huaweicloudsdkaom, sync, AK/SK) talks to the emulator unchanged.

Every AOM operation the daemon uses is driven through ``AomClient`` and must come back
in the SDK's own types; auth failures must parse into ``ClientRequestException`` with the
error code and the request id the emulator sent. The SDK is blocking (requests), so it
runs in a worker thread while the emulator serves on the test's loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

sdk_core = pytest.importorskip("huaweicloudsdkcore")

from huaweicloudsdkaom.v1 import AomClient  # noqa: E402  # after importorskip on purpose
from huaweicloudsdkaom.v1 import model as m  # noqa: E402
from huaweicloudsdkcore.auth.credentials import BasicCredentials  # noqa: E402
from huaweicloudsdkcore.exceptions.exceptions import (  # noqa: E402
    ClientRequestException,
    ServerResponseException,
)
from huaweicloudsdkcore.http.http_config import HttpConfig  # noqa: E402
from huaweicloudsdkcore.http.http_handler import HttpHandler  # noqa: E402
from huaweicloudsdkcore.signer import signer as sdk_signer  # noqa: E402

from daemon.emulator import Emulator  # noqa: E402

PID = "0123456789abcdef0123456789abcdef"
AK, SK, TOKEN = "AKSDKEMULATOR0001", "SKsdk/secret+key==", "tok-sdk"


@pytest.fixture
def emulator_options() -> dict[str, Any]:
    """The ``emu`` fixture (tests/conftest.py) with this module's credentials."""
    return {"project_id": PID, "access_key": AK, "secret_key": SK, "token": TOKEN, "seed": 9}


def make_client(
    url: str, *, ak: str = AK, sk: str = SK, handler: HttpHandler | None = None
) -> AomClient:
    config = HttpConfig.get_default_config()
    config.ignore_ssl_verification = True  # plain http endpoint; nothing to verify
    config.timeout = (2, 5)
    builder = (
        AomClient.new_builder()
        .with_http_config(config)
        .with_credentials(BasicCredentials(ak, sk, PID))
        .with_endpoints([url])
    )
    if handler is not None:
        builder = builder.with_http_handler(handler)
    return builder.build()


async def in_thread(fn: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(fn)


async def test_every_operation_through_the_sdk(emu: Emulator) -> None:
    wid = emu.add_workflow(
        name="sdk-patch",
        type="cron",
        cron="0 3 * * *",
        tags={"team": "ops"},
        nodes=[
            {"id": "patch", "duration": 1, "behaviour": {"fail_times": 1}},
            {"id": "approve", "kind": "pause"},
            {"id": "reboot", "duration": 3600},
        ],
    )
    client = make_client(emu.url)

    listed = await in_thread(
        lambda: client.list_workflow(
            m.ListWorkflowRequest(body=m.WorkflowQueryParam(page=0, size=10, type="cron"))
        )
    )
    assert isinstance(listed, m.ListWorkflowResponse)
    assert listed.total_elements == 1
    wf = listed.elements[0]
    assert (wf.id, wf.type, wf.trigger_status, wf.tags) == (wid, "cron", "enable", {"team": "ops"})
    assert [n.id for n in wf.nodes] == ["patch", "approve", "reboot"]

    executed = await in_thread(
        lambda: client.execute_workflow(m.ExecuteWorkflowRequest(workflow_id=wid))
    )
    eid = executed.execution_id
    assert eid
    assert executed.status_code == 200

    emu.advance(1)  # patch fails on attempt 1
    briefs = await in_thread(
        lambda: client.list_workflow_executions(m.ListWorkflowExecutionsRequest(workflow_id=wid))
    )
    assert isinstance(briefs.body, list)
    assert len(briefs.body) == 1
    brief = briefs.body[0]
    assert isinstance(brief, m.WorkflowExecutionBrief)
    assert (brief.execution_id, brief.status, brief.created_by) == (eid, "pausing", "api")
    assert brief.execution_result_list[0].status == "fail"
    assert brief.execution_result_list[0].output["attempt"] == 1

    def operate(action: str, node: str) -> Any:
        return client.start_pausing_workflow_executions(
            m.StartPausingWorkflowExecutionsRequest(
                workflow_id=wid, execution_id=eid, action=action, node_id=node
            )
        )

    restarted = await in_thread(lambda: operate("restart", "patch"))
    assert restarted.result == "success"
    emu.advance(1)
    detail = await in_thread(
        lambda: client.search_workflow_execution_detail(
            m.SearchWorkflowExecutionDetailRequest(workflow_id=wid, execution_id=eid)
        )
    )
    assert isinstance(detail, m.SearchWorkflowExecutionDetailResponse)
    assert detail.status == "pausing"
    assert [(r.node_id, r.status) for r in detail.execution_result_list] == [
        ("patch", "success"),
        ("approve", "pausing"),
    ]
    assert (await in_thread(lambda: operate("continue", "approve"))).result == "success"

    stopped = await in_thread(
        lambda: client.stop_execution(m.StopExecutionRequest(workflow_id=wid, execution_id=eid))
    )
    assert stopped.status_code == 200
    emu.advance(1)
    assert emu.execution(wid, eid).status == "cancel"

    toggled = await in_thread(
        lambda: client.update_workflow_trigger_status(
            m.UpdateWorkflowTriggerStatusRequest(workflow_id=wid, action="disable")
        )
    )
    assert toggled.status_code == 200
    assert toggled.body == '{"success"}'
    assert emu.workflow(wid).trigger_enabled is False

    assert [e.auth for e in emu.ledger] == ["aksk"] * 8
    assert [c["kind"] for c in emu.changes()] == [
        "execute",
        "operation",
        "operation",
        "terminate",
        "trigger",
    ]


async def test_operation_not_allowed_parses_into_sdk_exception(emu: Emulator) -> None:
    wid = emu.add_workflow(name="w", nodes=[{"id": "a", "duration": 100}])
    eid = emu.start_execution(wid)
    client = make_client(emu.url)
    with pytest.raises(ServerResponseException) as info:
        await in_thread(
            lambda: client.start_pausing_workflow_executions(
                m.StartPausingWorkflowExecutionsRequest(
                    workflow_id=wid, execution_id=eid, action="skip", node_id="a"
                )
            )
        )
    exc = info.value
    assert (exc.status_code, exc.error_code) == (500, "AOM.31001418")  # seed 001: 500 only
    assert exc.request_id == emu.ledger[-1].request_id


async def _expect_401(emu: Emulator, client: AomClient, code: str) -> None:
    with pytest.raises(ClientRequestException) as info:
        await in_thread(
            lambda: client.list_workflow(m.ListWorkflowRequest(body=m.WorkflowQueryParam()))
        )
    exc = info.value
    assert exc.status_code == 401
    assert exc.error_code == code
    assert exc.error_msg
    assert exc.request_id == emu.ledger[-1].request_id
    assert emu.ledger[-1].auth == "failed"


async def test_wrong_secret_key(emu: Emulator) -> None:
    await _expect_401(emu, make_client(emu.url, sk="not-the-secret"), "AOM.31009004")


async def test_unknown_access_key(emu: Emulator) -> None:
    await _expect_401(emu, make_client(emu.url, ak="AKUNKNOWN"), "AOM.31009003")


async def test_tampered_signature(emu: Emulator) -> None:
    def tamper(**kwargs: Any) -> None:
        headers = kwargs["request"].header_params
        value = headers["Authorization"]
        headers["Authorization"] = value[:-1] + ("0" if value[-1] != "0" else "1")

    await _expect_401(
        emu, make_client(emu.url, handler=HttpHandler().add_request_handler(tamper)), "AOM.31009004"
    )


async def test_stale_date(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    class HourAgo(datetime):
        @classmethod
        def utcnow(cls) -> HourAgo:  # type: ignore[override]  # the SDK's own clock, shifted
            real = datetime.utcnow() - timedelta(hours=1)  # mirrors the SDK
            return cls(*real.timetuple()[:6])

    monkeypatch.setattr(sdk_signer, "datetime", HourAgo)
    await _expect_401(emu, make_client(emu.url), "AOM.31009004")


async def test_wrong_token(emu: Emulator) -> None:
    def use_token(token: str) -> Callable[..., None]:
        def swap(**kwargs: Any) -> None:
            headers = kwargs["request"].header_params
            headers.pop("Authorization", None)
            headers["X-Auth-Token"] = token

        return swap

    bad = make_client(
        emu.url, handler=HttpHandler().add_request_handler(use_token("expired-token"))
    )
    await _expect_401(emu, bad, "AOM.31009003")
    good = make_client(emu.url, handler=HttpHandler().add_request_handler(use_token(TOKEN)))
    listed = await in_thread(
        lambda: good.list_workflow(m.ListWorkflowRequest(body=m.WorkflowQueryParam()))
    )
    assert listed.total_elements == 0
    assert emu.ledger[-1].auth == "token"


def test_sdk_against_emulator_thread() -> None:
    """Fully synchronous use: the emulator on its own loop in a thread."""
    from daemon.emulator import EmulatorThread

    with EmulatorThread(project_id=PID, access_key=AK, secret_key=SK, speed=0) as et:
        wid = et.call(
            lambda e: e.add_workflow(name="sync", nodes=[{"id": "a", "behaviour": "fail"}])
        )
        client = make_client(et.url)
        eid = client.execute_workflow(m.ExecuteWorkflowRequest(workflow_id=wid)).execution_id
        et.call(lambda e: e.advance(10))
        detail = client.search_workflow_execution_detail(
            m.SearchWorkflowExecutionDetailRequest(workflow_id=wid, execution_id=eid)
        )
        assert detail.status == "pausing"
        assert et.call(lambda e: [c["kind"] for c in e.changes()]) == ["execute"]
