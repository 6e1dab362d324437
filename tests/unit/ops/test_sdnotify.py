"""sd_notify against a real AF_UNIX datagram socket the test owns."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.ops import sdnotify
from daemon.ops.logging import clear_secrets, register_secret
from daemon.ops.sdnotify import SdNotifier, watchdog_interval, watchdog_loop


@pytest.fixture
def sock_path(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(2)
    try:
        yield s, path
    finally:
        s.close()


def _recv(s: socket.socket) -> str:
    return s.recv(4096).decode()


def test_messages_reach_the_socket(
    sock_path: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    s, path = sock_path
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert sdnotify.ready("reconciled 3 workflows")
    assert _recv(s) == "READY=1\nSTATUS=reconciled 3 workflows"
    assert sdnotify.status("watching\n12 executions")
    assert _recv(s) == "STATUS=watching 12 executions"
    assert sdnotify.watchdog()
    assert _recv(s) == "WATCHDOG=1"
    assert sdnotify.stopping()
    assert _recv(s) == "STOPPING=1"


def test_abstract_socket() -> None:
    name = f"aomd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name)
        s.settimeout(2)
        assert SdNotifier.from_env({"NOTIFY_SOCKET": "@" + name}).ready()
        assert _recv(s) == "READY=1"


def test_status_never_carries_a_secret(sock_path: tuple[socket.socket, str]) -> None:
    s, path = sock_path
    register_secret("SKsupersecret")
    try:
        SdNotifier(path).status("auth failed with SKsupersecret")
        assert "SKsupersecret" not in _recv(s)
    finally:
        clear_secrets()


def test_noop_without_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not sdnotify.ready()
    assert not SdNotifier.from_env({}).enabled


def test_missing_socket_does_not_raise(tmp_path: Path) -> None:
    n = SdNotifier(str(tmp_path / "absent.sock"))
    assert not n.ready()
    assert not n.watchdog()


def test_watchdog_interval_from_env() -> None:
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "x"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    own = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(own) == 1.0


async def test_watchdog_loop_pings_only_while_healthy(
    sock_path: tuple[socket.socket, str],
) -> None:
    s, path = sock_path
    s.setblocking(False)
    healthy = True
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(
        watchdog_loop(lambda: healthy, interval=0.01, notifier=SdNotifier(path))
    )
    try:
        for _ in range(3):
            data = await asyncio.wait_for(loop.sock_recv(s, 4096), 2)
            assert data == b"WATCHDOG=1"
        healthy = False
        await asyncio.sleep(0.05)
        with contextlib.suppress(BlockingIOError):  # drain pings sent before the switch
            while True:
                s.recv(4096)
        await asyncio.sleep(0.05)
        with pytest.raises(BlockingIOError):
            s.recv(4096)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_watchdog_loop_returns_when_not_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    await asyncio.wait_for(watchdog_loop(lambda: True), 1)
