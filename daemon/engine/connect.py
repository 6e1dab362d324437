"""Turn the configured accounts into live clients.

Shared by ``aomd run``, ``aomd demo`` and ``aomd plan --live`` so the three see the same
cloud the same way. Settings are read here, not in ``daemon.cloud``: the client takes
plain values (endpoints, credentials, limits) and callbacks. An account with
``emulator = true`` is handed to the ``StartEmulator`` callback of the command that
composed the daemon; only the command line may start the embedded emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import structlog

from daemon.cloud.auth import AkSkAuth, Auth, NoAuth, TokenAuth, host_of
from daemon.cloud.client import AomClient, OnCall
from daemon.journal.postgres import PostgresJournal, redact_url
from daemon.journal.sqlite import SqliteJournal
from daemon.journal.store import Journal
from daemon.kernel.clock import Clock, ScaledClock
from daemon.kernel.errors import ConfigError
from daemon.ops.logging import register_secret
from daemon.settings import Account, Settings

log = structlog.get_logger("aomd.cloud")


@dataclass(frozen=True, slots=True)
class Embedded:
    """An ``emulator = true`` account after the command started its emulator: wired to
    the emulator's URL and token, with the emulated clock the daemon must run on."""

    account: Account
    clock: Clock


StartEmulator = Callable[[Account, contextlib.AsyncExitStack], Awaitable[Embedded]]
"""Starts the emulator for one account; whatever it opens is closed by the stack."""


@dataclass
class Connected:
    account: Account
    client: AomClient


@dataclass
class Cloud:
    accounts: list[Connected] = field(default_factory=list)
    clock: Clock | None = None
    """The first embedded emulator's clock, when any account is emulated."""


def register_account_secrets(settings: Settings) -> None:
    for account in settings.accounts:
        for kind in ("token", "ak", "sk"):
            value = account.secret(kind)
            if value is not None:
                register_secret(value)


async def connect(
    settings: Settings,
    stack: contextlib.AsyncExitStack,
    *,
    start_emulator: StartEmulator | None = None,
    on_call: OnCall | None = None,
) -> Cloud:
    """Clients for every account; everything opened is closed by ``stack``."""
    cloud = Cloud()
    for account in settings.accounts:
        if account.emulator:
            if start_emulator is None:
                raise ConfigError(
                    f"account {account.name!r}: emulator = true, but this command cannot "
                    "start the embedded emulator"
                )
            embedded = await start_emulator(account, stack)
            account = embedded.account
            if cloud.clock is None:
                cloud.clock = embedded.clock
        client = client_for_account(account, on_call=on_call)
        stack.push_async_callback(client.close)
        cloud.accounts.append(Connected(account, client))
    if settings.emulator.follow and cloud.clock is None and cloud.accounts:
        cloud.clock = await follow_emulator(cloud.accounts[0].account, settings.emulator.speed)
    return cloud


async def follow_emulator(account: Account, speed: float) -> Clock:
    """Set an external emulator's speed and mirror its clock (test-only, see
    ``EmulatorSettings.follow``): the admin reply carries its ``now`` at that speed."""
    url = account.aom_endpoint() if (account.endpoints.aom or account.region) else None
    if url is None:
        raise ConfigError("emulator.follow needs the first account's endpoints.aom")
    try:
        async with (
            asyncio.timeout(10),
            aiohttp.ClientSession() as session,
            session.post(f"{url}/_emulator/speed", json={"speed": speed}) as resp,
        ):
            body = await resp.json()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise ConfigError(
            f"emulator.follow: cannot read the emulator clock at {url}: {exc}"
        ) from None
    anchor = datetime.fromisoformat(str(body["now"]))
    log.info("emulator_followed", url=url, speed=speed, now=anchor.isoformat())
    return ScaledClock(anchor, speed if speed > 0 else 1.0)


def client_for_account(
    account: Account,
    *,
    aom_endpoint_override: str | None = None,
    clock: Clock | None = None,
    session: aiohttp.ClientSession | None = None,
    on_call: OnCall | None = None,
) -> AomClient:
    """Build from settings; secrets are read (from value or file) here, once."""
    aom = aom_endpoint_override or (
        account.aom_endpoint() if (account.endpoints.aom or account.region) else None
    )
    if aom is None:
        raise ConfigError(
            f"account {account.name!r}: no AOM endpoint; set region or endpoints.aom "
            "(or start the emulator and pass its URL)"
        )
    dataarts = aom_endpoint_override or account.dataarts_endpoint()
    now: Callable[[], datetime] | None = clock.now if clock is not None else None
    token, ak, sk = account.secret("token"), account.secret("ak"), account.secret("sk")
    auth: Auth
    dataarts_auth: Auth
    refresh_auth: Callable[[], Auth | None] | None = None
    if ak is not None and sk is not None:
        auth = AkSkAuth(
            project_id=account.project_id,
            ak=ak.get_secret_value(),
            sk=sk.get_secret_value(),
            host=host_of(aom),
            now=now,
        )
        dataarts_auth = AkSkAuth(
            project_id=account.project_id,
            ak=ak.get_secret_value(),
            sk=sk.get_secret_value(),
            host=host_of(dataarts),
            now=now,
        )
    elif token is not None:
        auth = dataarts_auth = TokenAuth(account.project_id, token.get_secret_value())
        if account.token is None and account.token_file is not None:
            refresh_auth = _token_file_refresher(account, token.get_secret_value())
    else:
        auth = dataarts_auth = NoAuth(account.project_id)
    kwargs: dict[str, Any] = {}
    if clock is not None:
        kwargs["monotonic"] = clock.monotonic
    return AomClient(
        aom_endpoint=aom,
        dataarts_endpoint=dataarts,
        project_id=account.project_id,
        auth=auth,
        dataarts_auth=dataarts_auth,
        name=account.name,
        requests_per_second=account.requests_per_second,
        burst=account.burst,
        max_concurrency=account.max_concurrency,
        timeout_seconds=account.timeout_seconds,
        read_retries=account.read_retries,
        session=session,
        on_call=on_call,
        refresh_auth=refresh_auth,
        enterprise_project_id=account.enterprise_project_id,
        **kwargs,
    )


def _token_file_refresher(account: Account, current: str) -> Callable[[], Auth | None]:
    """Re-read ``token_file`` after a 401: whoever renews the IAM token rewrites the file."""
    last = [current]

    def refresh() -> Auth | None:
        try:
            secret = account.secret("token")
        except ConfigError as exc:  # keep the 401 as the error; say why no refresh
            log.warning("token_refresh_failed", account=account.name, error=str(exc))
            return None
        if secret is None or secret.get_secret_value() == last[0]:
            return None
        last[0] = secret.get_secret_value()
        register_secret(last[0])  # masked in logs like the start-up token
        return TokenAuth(account.project_id, last[0])

    return refresh


def journal_for(settings: Settings, *, readonly: bool = False) -> Journal:
    """The journal the settings name: PostgreSQL when ``journal.url`` is set (shared by
    replicas; the password from ``journal.password_file``, registered for redaction),
    else the SQLite file (``readonly`` for ``aomd history`` and ``plan --live``)."""
    js = settings.journal
    if js.url is not None:
        password = js.password()
        if password:
            register_secret(password)
        return PostgresJournal(js.url, password=password)
    return SqliteJournal(settings.journal_path(), readonly=readonly)


def journal_exists(settings: Settings) -> bool:
    """Whether there is a journal to read: a shared database always is (it may be empty)."""
    return settings.journal.url is not None or settings.journal_path().exists()


def journal_where(settings: Settings) -> str:
    """Where the journal is, for messages (the URL without any password)."""
    if settings.journal.url is not None:
        return redact_url(settings.journal.url)
    return str(settings.journal_path())
