"""ReadRetry with full jitter and the read/write resend rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.cloud.retry import ReadRetry, should_retry
from daemon.kernel.errors import (
    AuthError,
    CloudError,
    NotFoundError,
    OutcomeUnknown,
    ServerError,
    ThrottledError,
    TransportError,
)


@given(attempt=st.integers(1, 40), r=st.floats(0, 1, exclude_max=True))
def test_full_jitter_within_capped_ceiling(attempt: int, r: float) -> None:
    b = ReadRetry(base=0.2, cap=10.0)
    delay = b.delay(attempt, None, lambda: r)
    assert 0.0 <= delay <= b.ceiling(attempt) <= 10.0
    assert b.ceiling(attempt) <= b.ceiling(attempt + 1)


def test_ceilings_double_until_cap() -> None:
    b = ReadRetry(base=0.5, cap=3.0)
    assert [b.ceiling(i) for i in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


@given(after=st.floats(0, 300), attempt=st.integers(1, 10))
def test_retry_after_wins(after: float, attempt: int) -> None:
    assert ReadRetry().delay(attempt, after, lambda: 0.99) == after


@pytest.mark.parametrize(
    ("error", "write", "sent", "expected"),
    [
        (ThrottledError("t"), False, True, True),
        (ServerError("s"), False, True, True),
        (TransportError("x"), False, True, True),
        (AuthError("a"), False, True, False),
        (NotFoundError("n"), False, True, False),
        (ServerError("s"), True, True, False),  # a write that got an answer: never resend
        (ThrottledError("t"), True, True, False),
        (TransportError("x"), True, True, False),  # may have been sent
        (TransportError("x"), True, False, True),  # connect failed: nothing sent
        (OutcomeUnknown("o"), True, False, False),
    ],
)
def test_should_retry(error: CloudError, write: bool, sent: bool, expected: bool) -> None:
    assert should_retry(error, attempt=1, retries=3, write=write, sent=sent) is expected


def test_retries_are_bounded() -> None:
    assert should_retry(ServerError("s"), attempt=3, retries=3, write=False, sent=True)
    assert not should_retry(ServerError("s"), attempt=4, retries=3, write=False, sent=True)
    assert not should_retry(ServerError("s"), attempt=1, retries=0, write=False, sent=True)
