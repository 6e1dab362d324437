"""One way to run the emulator in a test: in process, on an ephemeral 127.0.0.1 port.

The ``emu`` fixture (``tests/conftest.py``) serves one from ``emulator_options``, which a
folder's conftest or a module overrides; a test that needs a second emulator, or one per
parameter, uses ``running_emulator`` directly. ``aomd emulator`` as a subprocess is in
``tests.support.processes``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic import SecretStr

from daemon.cloud.client import AomClient
from daemon.emulator import Emulator
from daemon.engine.connect import client_for_account
from daemon.settings import Account, Endpoints
from tests.support.clocks import T0

PID = "e" * 32
TOKEN = "tok-engine-tests"


def default_options() -> dict[str, Any]:
    """What the ``emu`` fixture serves unless overridden: token auth, time standing still
    at ``T0`` (speed 0, moved only by ``emu.advance``), a fixed seed."""
    return {"project_id": PID, "token": TOKEN, "speed": 0, "seed": 1, "start_time": T0}


@asynccontextmanager
async def running_emulator(**options: Any) -> AsyncIterator[Emulator]:
    """``Emulator(**options)`` serving on 127.0.0.1:<ephemeral> for the block."""
    emu = Emulator(**options)
    await emu.start(host="127.0.0.1", port=0)
    try:
        yield emu
    finally:
        await emu.stop()


def token_client(emu: Emulator, token: str = TOKEN) -> AomClient:
    """The real client on ``emu`` with token auth, no read retries and no rate limit to
    speak of, so a test sees every request it caused."""
    return client_for_account(
        Account(
            name="t",
            project_id=emu.project_id,
            token=SecretStr(token),
            endpoints=Endpoints(aom=emu.url, dataarts=emu.url),
            read_retries=0,
            requests_per_second=10_000,
            burst=10_000,
        )
    )
