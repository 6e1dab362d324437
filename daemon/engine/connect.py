"""Turn the configured accounts into live clients, booting the embedded emulator if asked.

Shared by ``aomd run``, ``aomd demo`` and ``aomd plan --live`` so the three see the same
cloud the same way. An account with ``emulator = true`` gets an in-process emulator with
a fresh random token (registered for redaction) and the bundled or configured scenario.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from pydantic import SecretStr

from daemon.cloud.client import AomClient, OnCall
from daemon.ops.logging import register_secret
from daemon.settings import Account, Endpoints, Settings

if TYPE_CHECKING:
    from daemon.emulator import Emulator

log = structlog.get_logger("aomd.daemon")

DEMO_SCENARIO = Path(__file__).resolve().parent.parent / "emulator" / "scenarios" / "demo.yaml"


@dataclass
class Connected:
    account: Account
    client: AomClient


@dataclass
class Cloud:
    accounts: list[Connected]
    emulators: list[Emulator]


def register_account_secrets(settings: Settings) -> None:
    for account in settings.accounts:
        for kind in ("token", "ak", "sk"):
            value = account.secret(kind)
            if value is not None:
                register_secret(value)


async def start_embedded(settings: Settings, account: Account) -> tuple[Account, Emulator]:
    from daemon.emulator import Emulator

    es = settings.emulator
    token = secrets.token_urlsafe(24)
    register_secret(token)
    emu = Emulator(
        project_id=account.project_id,
        token=token,
        speed=es.speed,
        seed=es.seed,
        start_time=es.start,
    )
    emu.load_scenario(es.scenario or DEMO_SCENARIO)
    emu.set_speed(es.speed)  # the settings win over a speed written in the scenario
    url = await emu.start()
    log.info("emulator_started", url=url, account=account.name, speed=es.speed)
    wired = account.model_copy(
        update={"token": SecretStr(token), "endpoints": Endpoints(aom=url, dataarts=url)}
    )
    return wired, emu


async def connect(
    settings: Settings, stack: contextlib.AsyncExitStack, *, on_call: OnCall | None = None
) -> Cloud:
    """Clients for every account; everything opened is closed by ``stack``."""
    cloud = Cloud([], [])
    for account in settings.accounts:
        if account.emulator:
            account, emu = await start_embedded(settings, account)
            stack.push_async_callback(emu.stop)
            cloud.emulators.append(emu)
        client = AomClient.from_account(account, on_call=on_call)
        stack.push_async_callback(client.close)
        cloud.accounts.append(Connected(account, client))
    return cloud
