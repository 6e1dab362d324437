"""When a failed call may be sent again, and how long to wait first.

The rule that protects production: a *read* is retried on 429 / 5xx / transport errors
with exponential backoff and full jitter (honouring ``Retry-After``); a *write* is never
resent once its bytes may have reached the server, because AOM has no idempotency keys
and a second ``restart`` would re-run a node. Only a failure to *connect* (nothing was
sent) is safe for a write; anything later becomes ``OutcomeUnknown`` so the caller
re-reads state instead.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from daemon.kernel.errors import CloudError, TemporaryCloudError

NOT_SENT: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
)
"""aiohttp errors raised before any request byte is written (connect refused / timed out).

Why safe: aiohttp raises these from ``connector.connect`` only, before ``req.send``.
"""

TRANSPORT: tuple[type[BaseException], ...] = (aiohttp.ClientError, asyncio.TimeoutError)
"""Every failure that produced no HTTP reply."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadRetry:
    """Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff
    And Jitter"): spreads retries of many clients so they do not hit the gateway in step."""

    base: float = 0.2
    """Seconds of the first ceiling (attempt 1 waits uniformly in [0, base])."""
    cap: float = 10.0
    """Largest ceiling, so a long outage polls at most every ``cap`` seconds."""
    retries: int = 4
    """Extra attempts after the first (``Account.read_retries``)."""

    def ceiling(self, attempt: int) -> float:
        """Upper bound of the wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.cap, self.base * (2.0 ** (attempt - 1)))

    def delay(
        self, attempt: int, retry_after: float | None, rand: Callable[[], float] = random.random
    ) -> float:
        """Seconds to sleep after failed attempt ``attempt`` before the next one.

        ``Retry-After`` wins when the server sent it: it knows when capacity returns.
        """
        if retry_after is not None:
            return max(0.0, retry_after)
        return rand() * self.ceiling(attempt)


def should_retry(error: CloudError, *, attempt: int, retries: int, write: bool, sent: bool) -> bool:
    """Whether to send again after failed attempt ``attempt`` (1-based).

    ``sent`` is False only for the :data:`NOT_SENT` connect failures.
    """
    if attempt > retries:
        return False
    if write:
        return not sent and isinstance(error, TemporaryCloudError)
    return isinstance(error, TemporaryCloudError)
