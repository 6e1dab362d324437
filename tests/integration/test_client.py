"""``AomClient`` against the real emulator: every operation, every fault kind, both auths.

Waits between retries go through an injected ``sleep`` that records the delay and yields
once, so backoff and ``Retry-After`` are asserted exactly without sleeping.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from structlog.testing import capture_logs

from daemon.cloud.auth import AkSkAuth, Auth, TokenAuth, host_of
from daemon.cloud.client import AomClient
from daemon.emulator import Emulator, Fault
from daemon.engine.connect import client_for_account
from daemon.kernel.errors import (
    AuthError,
    CloudError,
    InvalidParameter,
    MalformedResponse,
    NotFoundError,
    OutcomeUnknown,
    ServerError,
    ThrottledError,
    UnsupportedOperation,
)
from daemon.kernel.model import Status
from daemon.settings import Account
from tests.support.emulators import running_emulator

PID = "0123456789abcdef0123456789abcdef"
AK, SK, TOKEN = "AKCLIENTTEST0001", "SKclient/secret+key==", "tok-client-secret"


@pytest.fixture
def emulator_options() -> dict[str, Any]:
    """The ``emu`` fixture (tests/conftest.py) with this module's credentials."""
    return {
        "project_id": PID,
        "access_key": AK,
        "secret_key": SK,
        "token": TOKEN,
        "speed": 0,
        "seed": 3,
    }


class Sleeps:
    """Records requested delays; runs an optional hook on the first sleep."""

    def __init__(self, hook: Callable[[], Coroutine[Any, Any, Any]] | None = None) -> None:
        self.delays: list[float] = []
        self.hook = hook

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.hook is not None:
            hook, self.hook = self.hook, None
            await hook()
        await asyncio.sleep(0)


def make_client(
    url: str,
    *,
    auth: str = "token",
    sk: str = SK,
    token: str = TOKEN,
    sleeps: Sleeps | None = None,
    **kw: Any,
) -> AomClient:
    a: Auth
    if auth == "token":
        a = TokenAuth(PID, token)
    else:
        a = AkSkAuth(project_id=PID, ak=AK, sk=sk, host=host_of(url))
    return AomClient(
        aom_endpoint=url,
        dataarts_endpoint=url,
        project_id=PID,
        auth=a,
        requests_per_second=1000.0,
        burst=1000,
        sleep=sleeps or Sleeps(),
        rand=lambda: 0.5,
        **kw,
    )


def failing_workflow(emu: Emulator) -> tuple[str, str]:
    wid = emu.add_workflow(
        name="patch",
        type="cron",
        cron="0 3 * * *",
        tags={"team": "ops"},
        nodes=[
            {"id": "patch", "duration": 1, "behaviour": {"fail_times": 1}},
            {"id": "approve", "kind": "pause"},
            {"id": "reboot", "duration": 5},
        ],
    )
    eid = emu.start_execution(wid)
    emu.advance(2)
    return wid, eid


@pytest.mark.parametrize("mode", ["token", "aksk"])
async def test_every_operation_round_trips(emu: Emulator, mode: str) -> None:
    wid, eid = failing_workflow(emu)
    creds: dict[str, Any] = {"token": TOKEN} if mode == "token" else {"ak": AK, "sk": SK}
    account = Account(name="t", project_id=PID, region="cn-north-4", **creds)
    calls: list[tuple[str, str]] = []
    async with client_for_account(
        account, aom_endpoint_override=emu.url, on_call=lambda op, st, s: calls.append((op, st))
    ) as client:
        [wf] = await client.list_workflows()
        assert (wf.id, wf.type, wf.trigger_enabled, dict(wf.tags)) == (
            wid,
            "cron",
            True,
            {"team": "ops"},
        )
        assert [n.id for n in wf.nodes] == ["patch", "approve", "reboot"]
        assert await client.list_workflows(workflow_type="event") == []
        assert [w.id for w in await client.list_workflows("pat")] == [wid]

        [ex] = await client.list_executions(wid)
        assert (ex.execution_id, ex.status, ex.created_by) == (eid, Status.PAUSING, "emulator")
        assert ex.nodes[0].status is Status.FAIL

        restarted = await client.operate(wid, eid, "restart", "patch")
        assert restarted.request_id
        assert restarted.body == {"result": "success"}
        emu.advance(2)
        detail = await client.get_execution(wid, eid)
        assert detail.status is Status.PAUSING
        assert detail.nodes[-1].node_id == "approve"
        await client.operate(wid, eid, "continue", "approve")
        assert (await client.terminate(wid, eid)).body == {"result": "success"}

        trig = await client.set_trigger(wid, False)
        assert trig.body == '{"success"}'  # documented non-JSON body, accepted as text
        assert (await client.list_workflows())[0].trigger_enabled is False
        await client.set_trigger(wid, True)

        started = await client.execute_workflow(wid)
        assert started.execution_id in {e.execution_id for e in await client.list_executions(wid)}

        da = await client.dataarts_task_action("task-1", "start", "ws-1")
        assert da.request_id

    kinds = [c["kind"] for c in emu.changes()]
    assert kinds == [
        "operation",
        "operation",
        "terminate",
        "trigger",
        "trigger",
        "execute",
        "dataarts",
    ]
    assert emu.changes("dataarts")[0]["workspace"] == "ws-1"
    assert {e.auth for e in emu.ledger} == {mode}
    assert all(st == "200" for _, st in calls)
    assert client.stats[("operate", "200")] == 2


async def test_pagination_walks_every_page(emu: Emulator) -> None:
    ids = {emu.add_workflow(name=f"wf-{i:03d}") for i in range(250)}
    async with make_client(emu.url) as client:
        found = await client.list_workflows()
    assert {w.id for w in found} == ids
    assert len(found) == 250
    pages = [e for e in emu.ledger if e.path.endswith("/workflow-list")]
    assert len(pages) == 3


async def test_an_unchanged_workflow_page_is_not_parsed_again(emu: Emulator) -> None:
    """The change scan reads every page every fast interval: a page whose body did not
    change gives back the very same workflow values; a changed one is read anew."""
    ids = [emu.add_workflow(name=f"wf-{i:03d}") for i in range(150)]
    async with make_client(emu.url) as client:
        first = {w.id: w for w in await client.list_workflows()}
        emu.start_execution(ids[120])  # on the second page
        second = {w.id: w for w in await client.list_workflows()}
    assert second[ids[3]] is first[ids[3]]
    assert second[ids[120]] is not first[ids[120]]
    assert second[ids[120]].last_execution_id is not None
    assert first[ids[120]].last_execution_id is None


async def test_throttled_read_honours_retry_after(emu: Emulator) -> None:
    wid, _ = failing_workflow(emu)
    emu.faults.add(Fault(kind="throttle", method="GET", times=2, retry_after=7))
    sleeps = Sleeps()
    async with make_client(emu.url, sleeps=sleeps) as client:
        [ex] = await client.list_executions(wid)
    assert ex.workflow_id == wid
    assert sleeps.delays == [7.0, 7.0]
    assert [e.status for e in emu.ledger] == [429, 429, 200]
    assert client.stats[("list_executions", "429")] == 2


async def test_server_error_on_read_retried_with_jitter(emu: Emulator) -> None:
    wid, eid = failing_workflow(emu)
    emu.faults.add(Fault(kind="server_error", path="/status$", times=3, status=503))
    sleeps = Sleeps()
    async with make_client(emu.url, sleeps=sleeps) as client:
        assert (await client.get_execution(wid, eid)).execution_id == eid
    # full jitter with rand()=0.5 over ceilings 0.2, 0.4, 0.8
    assert sleeps.delays == pytest.approx([0.1, 0.2, 0.4])


async def test_read_gives_up_after_read_retries(emu: Emulator) -> None:
    wid, _ = failing_workflow(emu)
    emu.faults.add(Fault(kind="server_error", path="/executions$"))
    async with make_client(emu.url, read_retries=2) as client:
        with capture_logs() as logs, pytest.raises(ServerError) as info:
            await client.list_executions(wid)
    assert info.value.status == 500
    assert info.value.error_code == "AOM.31001305"
    assert info.value.request_id == emu.ledger[-1].request_id
    assert len(emu.ledger) == 3
    failed = [e for e in logs if e["event"] == "api_call_failed"]
    assert len(failed) == 1
    assert failed[0]["attempt"] == 3
    assert failed[0]["request_id"] == info.value.request_id


async def test_write_applied_then_lost_is_outcome_unknown(emu: Emulator) -> None:
    wid, eid = failing_workflow(emu)
    async with make_client(emu.url) as client:
        await client.list_executions(wid)  # warm a keep-alive connection first
        emu.faults.add(Fault(kind="applied_then_lost", path="/operation$", times=1))
        with pytest.raises(OutcomeUnknown) as info:
            await client.operate(wid, eid, "restart", "patch")
    assert info.value.operation == "operate"
    assert len(emu.changes("operation")) == 1
    assert len([e for e in emu.ledger if e.path.endswith("/operation")]) == 1
    assert client.stats[("operate", "outcome_unknown")] == 1


async def test_write_throttled_is_not_resent(emu: Emulator) -> None:
    wid, eid = failing_workflow(emu)
    emu.faults.add(Fault(kind="throttle", path="/terminate$", retry_after=2))
    async with make_client(emu.url) as client:
        with pytest.raises(ThrottledError) as info:
            await client.terminate(wid, eid)
    assert info.value.delay == 2.0
    assert len(emu.ledger) == 1


async def test_write_hang_times_out_as_outcome_unknown(emu: Emulator) -> None:
    wid, eid = failing_workflow(emu)
    emu.faults.add(Fault(kind="hang", path="/operation$", times=1))
    async with make_client(emu.url, timeout_seconds=0.3) as client:
        with pytest.raises(OutcomeUnknown):
            await client.operate(wid, eid, "skip", "patch")
    assert len(emu.ledger) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_connection_refused_write_is_retried_safely() -> None:
    emu = Emulator(project_id=PID, access_key=AK, secret_key=SK, token=TOKEN, speed=0)
    wid, eid = failing_workflow(emu)
    port = _free_port()
    sleeps = Sleeps(hook=lambda: emu.start(port=port))  # the server comes up after attempt 1
    try:
        async with make_client(f"http://127.0.0.1:{port}", sleeps=sleeps) as client:
            result = await client.operate(wid, eid, "restart", "patch")
        assert result.request_id
        assert len(sleeps.delays) == 1
        assert client.stats[("operate", "transport")] == 1
        assert len(emu.changes("operation")) == 1
    finally:
        await emu.stop()


async def test_unknown_status_tolerated_and_logged_once(emu: Emulator) -> None:
    wid, _ = failing_workflow(emu)
    body = (
        '[{"execution_id": "e1", "status": "hibernating-x1", "new_field": 1,'
        ' "execution_result_list": [{"node_id": "n", "status": "hibernating-x1", "http_code": "7"}]}]'
    )
    emu.faults.add(Fault(kind="malformed", path="/executions$", body=body, times=2))
    async with make_client(emu.url) as client:
        with capture_logs() as logs:
            [ex] = await client.list_executions(wid)
            await client.list_executions(wid)
    assert ex.status is Status.UNKNOWN
    assert ex.raw_status == "hibernating-x1"
    assert ex.workflow_id == wid
    assert ex.extra == {"new_field": 1}
    assert ex.nodes[0].extra == {"http_code": "7"}
    assert [e["event"] for e in logs] == ["status_unknown"]


@pytest.mark.parametrize("body", ['{"elements": [{"id": ', '{"not": "a list"}', "[1, 2]"])
async def test_malformed_body_carries_request_id(emu: Emulator, body: str) -> None:
    wid, _ = failing_workflow(emu)
    emu.faults.add(Fault(kind="malformed", path="/executions$", body=body))
    async with make_client(emu.url) as client:
        with pytest.raises(MalformedResponse) as info:
            await client.list_executions(wid)
    assert info.value.request_id == emu.ledger[-1].request_id
    assert info.value.status == 200
    assert len(emu.ledger) == 1  # permanent: not retried


async def test_error_mapping(emu: Emulator) -> None:
    wid, eid = failing_workflow(emu)
    async with make_client(emu.url) as client:
        with pytest.raises(NotFoundError) as nf:
            await client.get_execution(wid, "no-such-execution")
        assert (nf.value.status, nf.value.error_code) == (404, "AOM.31001306")
        with pytest.raises(NotFoundError):
            await client.list_executions("no-such-workflow")
        with pytest.raises(InvalidParameter) as bad:
            await client.set_trigger("no-such-workflow", True)
        # seed 000 lists no 404: an unknown workflow is its 400 invalid parameter
        assert (bad.value.status, bad.value.error_code) == (400, "AOM.31001302")
        with pytest.raises(ServerError) as refused:  # seed 001 lists no 4xx for operations
            await client.operate(wid, eid, "restart", "n" * 65)
        assert (refused.value.status, refused.value.error_code) == (500, "AOM.31001405")
        await client.terminate(wid, eid)
        emu.advance(60)
        with pytest.raises(UnsupportedOperation) as unsupported:
            await client.terminate(wid, eid)
        assert unsupported.value.error_code == "AOM.31001418"
        assert unsupported.value.request_id == emu.ledger[-1].request_id


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"auth": "aksk", "sk": "wrong-secret"}, "AOM.31009004"),
        ({"token": "wrong"}, "AOM.31009003"),
    ],
)
async def test_bad_credentials_are_auth_errors_without_secrets(
    emu: Emulator, kw: dict[str, Any], code: str
) -> None:
    wid, _ = failing_workflow(emu)
    async with make_client(emu.url, **kw) as client:
        with capture_logs() as logs:
            with pytest.raises(AuthError) as info:
                await client.list_executions(wid)
            with pytest.raises(AuthError):
                await client.operate(wid, "e", "skip", "n")
    err = info.value
    assert (err.status, err.error_code) == (401, code)
    assert err.request_id == emu.ledger[0].request_id
    assert len(emu.ledger) == 2  # 401 is permanent: no retry
    failed = [e for e in logs if e["event"] == "api_call_failed"]
    assert len(failed) == 2
    assert {"operation", "status", "error_code", "request_id", "attempt"} <= set(failed[0])
    text = " ".join([repr(logs), repr(client), str(err), repr(err), repr(client._auth)])
    for secret in (SK, "wrong-secret", TOKEN, "wrong", AK):
        assert secret not in text


async def test_secrets_never_in_repr_or_errors_from_account(emu: Emulator, tmp_path: Any) -> None:
    sk_file = tmp_path / "sk"
    sk_file.write_text(SK + "\n")
    account = Account(project_id=PID, region="cn-north-4", ak=AK, sk_file=sk_file, read_retries=0)
    client = client_for_account(account, aom_endpoint_override=emu.url)
    try:
        await client.list_workflows()  # the file secret works
        emu.faults.add(Fault(kind="reset"))
        with capture_logs() as logs, pytest.raises(CloudError) as info:
            await client.list_workflows()
    finally:
        await client.close()
    text = " ".join([repr(client), str(info.value), repr(info.value), repr(logs)])
    assert SK not in text
    assert AK not in text


async def test_token_file_reread_once_after_401(emu: Emulator, tmp_path: Any) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("expired-token\n")
    account = Account(project_id=PID, region="cn-north-4", token_file=token_file)
    async with client_for_account(account, aom_endpoint_override=emu.url) as client:
        token_file.write_text(TOKEN + "\n")  # the renewer rewrote the file
        wid, eid = failing_workflow(emu)
        await client.operate(wid, eid, "restart", "patch")
        assert [e.status for e in emu.ledger] == [401, 200]
        assert len(emu.changes("operation")) == 1
        token_file.write_text("revoked\n")
        async with running_emulator(project_id=PID, token="other", speed=0) as emu_token_rejected:
            other = client_for_account(account, aom_endpoint_override=emu_token_rejected.url)
            async with other:
                with pytest.raises(AuthError):
                    await other.list_workflows()
            assert len(emu_token_rejected.ledger) == 1  # file unchanged since start: no resend


async def test_dataarts_uses_its_own_endpoint_and_signature(emu: Emulator) -> None:
    async with running_emulator(project_id=PID, access_key=AK, secret_key=SK, speed=0) as dayu:
        account = Account(
            project_id=PID,
            ak=AK,
            sk=SK,
            endpoints={"aom": emu.url, "dataarts": dayu.url},
        )
        async with client_for_account(account) as client:
            await client.dataarts_task_action("task-9", "schedule", "ws-9")
            assert await client.list_workflows() == []
        assert [e.auth for e in dayu.ledger] == ["aksk"]
        assert dayu.changes("dataarts") == [
            {"kind": "dataarts", "task_id": "task-9", "action": "schedule", "workspace": "ws-9"}
        ]
        assert [e.path.endswith("workflow-list") for e in emu.ledger] == [True]


@pytest.mark.parametrize("kind", ["reset", "hang"])
async def test_read_transport_faults_are_retried(emu: Emulator, kind: str) -> None:
    wid, eid = failing_workflow(emu)
    emu.faults.add(Fault(kind=kind, path="/status$", times=1))  # type: ignore[arg-type]
    sleeps = Sleeps()
    async with make_client(emu.url, sleeps=sleeps, timeout_seconds=0.3) as client:
        assert (await client.get_execution(wid, eid)).execution_id == eid
    assert [e.fault for e in emu.ledger] == [kind, None]
    # a reset GET may be resent by aiohttp itself (idempotent method); a hang is ours to retry
    assert client.stats[("get_execution", "transport")] == len(sleeps.delays)
    assert client.stats[("get_execution", "200")] == 1


async def test_latency_below_the_timeout_is_just_slow(emu: Emulator) -> None:
    wid, eid = failing_workflow(emu)
    emu.faults.add(Fault(kind="latency", delay=0.1))
    async with make_client(emu.url, timeout_seconds=2) as client:
        assert [e.execution_id for e in await client.list_executions(wid)] == [eid]
        await client.operate(wid, eid, "restart", "patch")
    assert len(emu.changes("operation")) == 1
    assert {e.fault for e in emu.ledger} == {"latency"}


async def test_latency_past_the_timeout_makes_a_write_outcome_unknown(emu: Emulator) -> None:
    wid, eid = failing_workflow(emu)
    emu.faults.add(Fault(kind="latency", delay=1.0, path="/operation$", times=1))
    async with make_client(emu.url, timeout_seconds=0.3) as client:
        with pytest.raises(OutcomeUnknown):
            await client.operate(wid, eid, "restart", "patch")
        await asyncio.sleep(1.0)  # the server finishes the slow request meanwhile
    # Not resent by the client: exactly one request reached the server (and applied).
    assert len([e for e in emu.ledger if e.path.endswith("/operation")]) == 1


@pytest.mark.parametrize("number", ["1e999", "-1e999", "NaN", "Infinity"])
async def test_non_finite_numbers_parse_as_missing(emu: Emulator, number: str) -> None:
    """JSON allows 1e999 (and Python's decoder NaN/Infinity): a time field holding one
    must read as absent, not raise OverflowError/ValueError out of the client (which
    neither the watcher nor the reconcilers treat as a cloud error)."""
    wid, _ = failing_workflow(emu)
    body = f'[{{"execution_id": "e1", "status": "running", "begin_time": {number}}}]'
    emu.faults.add(Fault(kind="malformed", path="/executions$", body=body, times=1))
    page = f'{{"elements": [{{"id": "w1", "name": "n"}}], "total_elements": {number}}}'
    emu.faults.add(Fault(kind="malformed", path="/workflow-list$", body=page, times=1))
    async with make_client(emu.url) as client:
        [ex] = await client.list_executions(wid)
        [wf] = await client.list_workflows()
    assert ex.begin_time is None
    assert wf.id == "w1"


async def test_token_reread_from_file_is_registered_for_redaction(tmp_path: Any) -> None:
    """The token read after a 401 is masked in logs like the one read at start-up:
    value-based redaction is what catches a secret under an innocent key (an echoed
    error message), and it only knows values that were registered."""
    from daemon.ops.logging import REDACTED, scrub_text

    fresh = "tok-renewed-" + tmp_path.name  # unique: the registry is process-wide
    async with running_emulator(project_id=PID, token=fresh, speed=0) as renewed:
        token_file = tmp_path / "token"
        token_file.write_text("expired-token\n")
        account = Account(project_id=PID, region="cn-north-4", token_file=token_file)
        async with client_for_account(account, aom_endpoint_override=renewed.url) as client:
            token_file.write_text(fresh + "\n")
            await client.list_workflows()
        assert [e.status for e in renewed.ledger] == [401, 200]
    assert scrub_text(f"echoed {fresh}") == f"echoed {REDACTED}"


async def test_parse_cache_keeps_one_body_per_workflow_and_execution(emu: Emulator) -> None:
    """Only the latest body of a list or detail can match the next poll, so older ones
    are dropped: keyed by the body itself, every changed body of an active workflow
    stayed until the cache was full (thousands of stale bodies held for days)."""
    wid = emu.add_workflow(name="long", nodes=[{"id": "n", "duration": 3600}])
    eid = emu.start_execution(wid)
    bodies = 20
    async with make_client(emu.url) as client:
        for i in range(bodies):
            body = json.dumps([{"execution_id": eid, "status": "running", "begin_time": i}])
            emu.faults.add(Fault(kind="malformed", path="/executions$", body=body, times=1))
            detail = json.dumps({"execution_id": eid, "status": "running", "begin_time": i})
            emu.faults.add(Fault(kind="malformed", path="/status$", body=detail, times=1))
            [ex] = await client.list_executions(wid)
            assert ex.begin_time == i
            assert (await client.get_execution(wid, eid)).begin_time == i
        # a repeated body is still served from the cache (equal values, no re-parse)
        body = json.dumps([{"execution_id": eid, "status": "running", "begin_time": 7}])
        emu.faults.add(Fault(kind="malformed", path="/executions$", body=body, times=2))
        first = await client.list_executions(wid)
        assert (await client.list_executions(wid))[0] is first[0]
        assert (len(client._parsed), len(client._details)) == (1, 1)  # one list, one detail


async def test_details_of_many_executions_do_not_push_out_the_lists(emu: Emulator) -> None:
    """Each incident's execution is read in detail a few times and then never again: in
    one cache with the lists, a day of incidents filled it (the soak's RSS climb) and
    evicted the workflow lists every poll re-reads. Details get a small cache of their
    own, and URLs of one execution are not kept."""
    from daemon.cloud.client import DETAIL_CACHE_SIZE

    wid = emu.add_workflow(name="busy", nodes=[{"id": "n", "duration": 3600}])
    eids = [emu.start_execution(wid) for _ in range(DETAIL_CACHE_SIZE + 40)]
    async with make_client(emu.url) as client:
        await client.list_executions(wid)
        for eid in eids:
            await client.get_execution(wid, eid)
        assert len(client._details) == DETAIL_CACHE_SIZE
        assert len(client._parsed) == 1  # the list is still there
        assert all("/executions/" not in url for url in client._urls)
