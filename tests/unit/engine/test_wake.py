"""Waker on a real AsyncIOScheduler: emulated instants become scaled wall-clock jobs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from daemon.engine.wake import MAX_ARM, Waker
from tests.support.clocks import FakeClock


@pytest.fixture
async def scheduler() -> AsyncIterator[AsyncIOScheduler]:
    s = AsyncIOScheduler(timezone="UTC")
    s.start()
    try:
        yield s
    finally:
        s.shutdown(wait=False)
        await asyncio.sleep(0)


def _run_date(scheduler: AsyncIOScheduler, name: str) -> datetime:
    job = scheduler.get_job(name)
    assert job is not None
    run: datetime = job.next_run_time
    return run


async def test_fires_at_the_emulated_instant_scaled_by_speed(
    scheduler: AsyncIOScheduler,
) -> None:
    clock = FakeClock()
    waker = Waker(scheduler, "w", clock, speed=3600.0)  # one emulated hour per real second
    before = datetime.now(UTC)
    waker.arm(clock.now() + timedelta(minutes=3))  # 180 emulated s -> 0.05 real s
    after = datetime.now(UTC)
    run = _run_date(scheduler, "w")
    assert before + timedelta(seconds=0.05) <= run <= after + timedelta(seconds=0.05)
    assert waker.armed_for == clock.now() + timedelta(minutes=3)
    assert await waker.wait(seconds=30) is True
    assert scheduler.get_job("w") is None  # it fired (a date job removes itself)
    assert not waker.event.is_set()  # consumed by wait


async def test_far_instants_are_capped_and_rearm_replaces(scheduler: AsyncIOScheduler) -> None:
    clock = FakeClock()
    waker = Waker(scheduler, "w", clock, speed=1.0)
    waker.arm(clock.now() + timedelta(days=30))
    assert _run_date(scheduler, "w") <= datetime.now(UTC) + MAX_ARM
    waker.arm(clock.now() + timedelta(hours=1))
    assert len(scheduler.get_jobs()) == 1
    assert _run_date(scheduler, "w") <= datetime.now(UTC) + timedelta(hours=1)
    waker.arm(None)
    assert scheduler.get_job("w") is None
    waker.arm(None)  # disarming twice is harmless


async def test_past_instant_fires_at_once_and_speed_zero_means_real_time(
    scheduler: AsyncIOScheduler,
) -> None:
    clock = FakeClock()
    waker = Waker(scheduler, "w", clock, speed=0.0)
    assert waker.speed == 1.0
    waker.arm(clock.now() - timedelta(hours=1))
    await waker.wait(seconds=30)
    assert scheduler.get_job("w") is None


async def test_wait_returns_on_another_event_without_leaking_waiters(
    scheduler: AsyncIOScheduler,
) -> None:
    waker = Waker(scheduler, "w", FakeClock(), speed=1.0)
    nudge = asyncio.Event()
    nudge.set()
    assert await waker.wait(nudge, seconds=30) is True
    assert not waker.event.is_set()
    # a plain timeout (heartbeat) is told apart from a wake-up
    assert await waker.wait(seconds=0.01) is False
