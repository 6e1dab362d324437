"""The executor's exactly-once rules hold on top of both real journal stores."""

from __future__ import annotations

from daemon.engine.executor import Executor
from daemon.engine.safety import CircuitBreaker
from daemon.journal import Journal
from daemon.kernel.errors import OutcomeUnknown, ServerError
from daemon.kernel.outcomes import PENDING, Resolution
from daemon.kernel.writes import WriteIntent
from tests.support.clocks import T0, FakeClock
from tests.support.engine import make_executor


def _executor(journal: Journal) -> Executor:
    """Time stands still at ``T0``; the guards never trip."""
    return make_executor(
        journal,
        FakeClock(T0, mono=0.0),
        breaker=CircuitBreaker(error_ratio=1.0, min_calls=1000, cooldown=1.0),
    )


class _Cloud:
    """Counts sends; each send raises the next queued error, or succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.sent = 0

    async def call(self) -> object:
        self.sent += 1
        if self.errors:
            raise self.errors.pop(0)
        return None


async def test_a_key_is_sent_once(journal: Journal, intent) -> None:
    executor, cloud, it = _executor(journal), _Cloud(), intent()
    assert (await executor.write(it, cloud.call)).outcome == "applied"
    assert (await executor.write(it, cloud.call)).outcome == "duplicate"
    assert cloud.sent == 1


async def test_a_refused_send_is_sent_again(journal: Journal, intent) -> None:
    executor, cloud, it = _executor(journal), _Cloud(ServerError("busy", status=503)), intent()
    assert (await executor.write(it, cloud.call)).outcome == "failed"
    assert (await executor.write(it, cloud.call)).outcome == "applied"
    assert cloud.sent == 2
    [row] = await journal.history()
    assert (row.outcome, row.tries) == ("applied", 2)


async def test_a_lost_reply_is_resolved_by_reading_not_resending(journal: Journal, intent) -> None:
    executor, cloud, it = _executor(journal), _Cloud(OutcomeUnknown("reset")), intent()

    async def applied() -> Resolution:
        return "applied"

    report = await executor.write(it, cloud.call, applied)
    assert report.outcome == "resolved_applied"
    assert (await executor.write(it, cloud.call, applied)).outcome == "duplicate"
    assert cloud.sent == 1


async def test_an_intent_left_pending_by_a_crash_is_resolved(journal: Journal, intent) -> None:
    it: WriteIntent = intent()
    assert await journal.begin(it, T0) is None  # the crashed process got this far
    executor, cloud = _executor(journal), _Cloud()

    async def not_applied() -> Resolution:
        return "not_applied"

    report = await executor.write(it, cloud.call, not_applied)
    assert report.outcome == "resolved_not_applied"
    assert cloud.sent == 0  # never resent blindly
    assert (await executor.write(it, cloud.call)).outcome == "applied"  # now it may be
    assert cloud.sent == 1
    assert (await journal.facts("e1")).writes[0].outcome != PENDING
