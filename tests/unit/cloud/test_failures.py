"""Status / error code -> exception type, in one table."""

from __future__ import annotations

import pytest

from daemon.cloud.failures import from_status, retry_after, transport
from daemon.kernel.errors import (
    AuthError,
    InvalidParameter,
    NotFoundError,
    PermanentCloudError,
    ServerError,
    TemporaryCloudError,
    ThrottledError,
    TransportError,
    UnsupportedOperation,
)


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (401, "AOM.31009003", AuthError),
        (403, None, AuthError),
        (404, "AOM.31001306", NotFoundError),
        (400, "AOM.31001306", NotFoundError),
        (400, "AOM.31001418", UnsupportedOperation),
        (400, "AOM.31001302", InvalidParameter),
        (409, None, InvalidParameter),
        (429, "APIGW.0308", ThrottledError),
        (500, "AOM.31001305", ServerError),
        (503, None, ServerError),
    ],
)
def test_mapping(status: int, code: str | None, cls: type[Exception]) -> None:
    err = from_status(
        operation="operate", status=status, error_code=code, error_msg="m", request_id="rid-1"
    )
    assert type(err) is cls
    assert (err.operation, err.status, err.error_code, err.error_msg, err.request_id) == (
        "operate",
        status,
        code,
        "m",
        "rid-1",
    )
    assert isinstance(
        err, TemporaryCloudError if status in (429, 500, 503) else PermanentCloudError
    )
    assert "rid-1" in repr(err)


def test_throttle_delay_from_retry_after() -> None:
    err = from_status(
        operation="x",
        status=429,
        error_code=None,
        error_msg=None,
        request_id=None,
        retry_after_header="3",
    )
    assert isinstance(err, ThrottledError)
    assert err.delay == 3.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("2", 2.0),
        (" 0.5 ", 0.5),
        ("-1", None),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
        ("99999", 300.0),
    ],
)
def test_retry_after_parsing(header: str | None, expected: float | None) -> None:
    assert retry_after(header) == expected


def test_transport_message_has_no_url() -> None:
    err = transport("list_workflows", OSError("http://user:secret@host/ refused"))
    assert isinstance(err, TransportError)
    assert "secret" not in str(err)
    assert str(err) == "list_workflows: transport error: OSError"


def test_not_supported_here_is_permanent_whatever_the_status() -> None:
    """The operation page lists only 500 for errors: AOM.31001418 on a 500 is still a real
    answer ("not in this state"), never a passing server error to retry."""
    from daemon.cloud import failures
    from daemon.kernel.errors import UnsupportedOperation

    err = failures.from_status(
        operation="operate",
        status=500,
        error_code="AOM.31001418",
        error_msg="The task does not support the current operation",
        request_id="r",
    )
    assert isinstance(err, UnsupportedOperation)
