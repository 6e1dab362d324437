"""Engine-test fixtures: the real client on the ``emu`` fixture's emulator, a real journal,
a real webhook receiver. The helpers they use live in ``tests.support``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from daemon.cloud.client import AomClient
from daemon.emulator import Emulator
from daemon.journal import MemoryJournal
from tests.support.emulators import token_client
from tests.support.webhooks import Webhook


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[AomClient]:
    c = token_client(emu)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def journal() -> AsyncIterator[MemoryJournal]:
    j = MemoryJournal()
    await j.open()
    try:
        yield j
    finally:
        await j.close()


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    hook = Webhook()
    await hook.start()
    try:
        yield hook
    finally:
        await hook.stop()
