"""``supervised``: a crashing loop is logged and restarted with growing backoff."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from daemon.engine.supervise import supervised


async def test_crashing_loop_is_restarted_with_exponential_backoff() -> None:
    runs = 0
    done = asyncio.Event()

    async def body() -> None:
        nonlocal runs
        runs += 1
        if runs < 4:
            raise RuntimeError(f"crash {runs}")
        done.set()

    with capture_logs() as logs:
        await supervised("t", body, initial_backoff=0.01, max_backoff=0.03)
    assert runs == 4
    assert done.is_set()
    crashes = [e for e in logs if e["event"] == "loop_crashed"]
    assert [e["restart_in"] for e in crashes] == [0.01, 0.02, 0.03]
    assert all(e["loop"] == "t" and e["log_level"] == "error" for e in crashes)


async def test_cancellation_is_not_swallowed() -> None:
    started = asyncio.Event()

    async def body() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(supervised("t", body))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_backoff_resets_after_a_healthy_run() -> None:
    runs = 0

    async def body() -> None:
        nonlocal runs
        runs += 1
        if runs <= 3:
            raise RuntimeError("boom")

    with capture_logs() as logs:
        # healthy_after=0: every run counts as healthy, so the backoff never grows
        await supervised("t", body, initial_backoff=0.01, healthy_after=0.0)
    assert [e["restart_in"] for e in logs if e["event"] == "loop_crashed"] == [0.01] * 3
