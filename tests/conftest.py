"""Autouse hygiene shared by every test (structlog reset, no leaked asyncio tasks), the
one in-process emulator fixture, and the session's PostgreSQL server (started on first use)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import structlog

from daemon.emulator import Emulator
from tests.support.emulators import default_options, running_emulator
from tests.support.postgres import postgres_server

__all__ = ["postgres_server"]  # a session fixture: the server starts when a test asks


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running: fire-and-forget tasks hide bugs."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leaked = [
        t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()
    ]
    for task in leaked:
        task.cancel()
    assert not leaked, f"test leaked tasks: {leaked}"


@pytest.fixture
def emulator_options() -> dict[str, Any]:
    """``Emulator(...)`` arguments for ``emu``; a folder's conftest or a module overrides
    this fixture to change credentials, speed or seed."""
    return default_options()


@pytest.fixture
async def emu(emulator_options: dict[str, Any]) -> AsyncIterator[Emulator]:
    """An emulator serving on an ephemeral 127.0.0.1 port for the test."""
    async with running_emulator(**emulator_options) as e:
        yield e
