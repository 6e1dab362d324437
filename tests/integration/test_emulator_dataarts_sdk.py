"""The official DataArts Studio SDK (``huaweicloudsdkdataartsstudio``) drives the emulator
unchanged (seed 004), as the AOM SDK does in ``test_emulator_sdk.py``: its AK/SK
signature verifies, its request reaches the task, and the 403 / 404 the seed lists parse
into the SDK's own exception with the code, message and request id. A test-only
dependency (pyproject ``test`` extra), imported plainly: a missing SDK fails, not skips."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkdataartsstudio.v1 import DataArtsStudioClient, ExecuteTaskActionRequest

from daemon.emulator import Emulator

PID = "0123456789abcdef0123456789abcdef"
AK, SK = "AKDATAARTSSDK0001", "SKdataarts/secret+key=="


@pytest.fixture
def emulator_options() -> dict[str, Any]:
    return {"project_id": PID, "access_key": AK, "secret_key": SK, "seed": 3}


def _client(url: str) -> DataArtsStudioClient:
    config = HttpConfig.get_default_config()
    config.ignore_ssl_verification = True  # plain http endpoint; nothing to verify
    config.timeout = (2, 5)
    return (
        DataArtsStudioClient.new_builder()
        .with_http_config(config)
        .with_credentials(BasicCredentials(AK, SK, PID))
        .with_endpoints([url])
        .build()
    )


def _act(client: DataArtsStudioClient, workspace: str, task_id: str, action: str) -> Any:
    return client.execute_task_action(
        ExecuteTaskActionRequest(workspace=workspace, task_id=task_id, action=action)
    )


async def test_the_official_dataarts_sdk_starts_a_task_and_reads_403_and_404(
    emu: Emulator,
) -> None:
    emu.add_dataarts_task("ws-main", "1234567890")
    client = _client(emu.url)

    done = await asyncio.to_thread(_act, client, "ws-main", "1234567890", "start")
    assert done.status_code == 200
    assert emu.changes("dataarts") == [
        {"kind": "dataarts", "task_id": "1234567890", "action": "start", "workspace": "ws-main"}
    ]
    assert emu.ledger[-1].auth == "aksk"  # the SDK's own signature verified

    for workspace, task, status in (("ws-other", "1234567890", 403), ("ws-main", "42", 404)):
        with pytest.raises(ClientRequestException) as info:
            await asyncio.to_thread(_act, client, workspace, task, "start")
        exc = info.value
        assert exc.status_code == status
        assert exc.error_code == f"EMULATOR.{status}"
        assert exc.error_msg
        assert exc.request_id == emu.ledger[-1].request_id
    assert len(emu.changes("dataarts")) == 1
