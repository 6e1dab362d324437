"""The one place that translates HTTP outcomes into ``daemon.kernel.errors`` types.

Why one place: the engine decides *may I send this again?* from the exception type
alone, so every path out of the client (status codes, error codes, transport failures)
must agree on the mapping. Messages never include request headers or URLs with secrets;
only the operation name, status, error code/message and the request id.
"""

from __future__ import annotations

from daemon.kernel.errors import (
    AuthError,
    CloudError,
    InvalidParameter,
    NotFoundError,
    PermanentCloudError,
    ServerError,
    ThrottledError,
    TransportError,
    UnsupportedOperation,
)

NOT_FOUND_CODES = frozenset({"AOM.31001306"})
UNSUPPORTED_CODES = frozenset({"AOM.31001418"})
AUTH_CODES = frozenset({"AOM.31009003", "AOM.31009004"})
MAX_RETRY_AFTER = 300.0
"""A Retry-After beyond this is treated as this: a gateway typo must not stall aomd for hours."""


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form); None if absent/unreadable.

    The HTTP-date form is not used by the API gateway; it is ignored (backoff applies).
    """
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return min(seconds, MAX_RETRY_AFTER)


def from_status(
    *,
    operation: str,
    status: int,
    error_code: str | None,
    error_msg: str | None,
    request_id: str | None,
    retry_after_header: str | None = None,
) -> CloudError:
    """The error for a non-2xx reply."""
    message = f"{operation}: HTTP {status}" + (f" {error_code}" if error_code else "")
    if error_msg:
        message += f": {error_msg}"
    if error_code in UNSUPPORTED_CODES:
        # "not supported in the current state" is a real answer whatever the status (the
        # operation page lists only 500 for errors): never retried, journaled "rejected"
        return UnsupportedOperation(
            message,
            operation=operation,
            status=status,
            error_code=error_code,
            error_msg=error_msg,
            request_id=request_id,
        )
    if status == 429 or status >= 500:
        temp = ThrottledError if status == 429 else ServerError
        return temp(
            message,
            delay=retry_after(retry_after_header),
            operation=operation,
            status=status,
            error_code=error_code,
            error_msg=error_msg,
            request_id=request_id,
        )
    cls: type[PermanentCloudError]
    if error_code in UNSUPPORTED_CODES:
        cls = UnsupportedOperation
    elif status == 404 or error_code in NOT_FOUND_CODES:
        cls = NotFoundError
    elif status in (401, 403) or error_code in AUTH_CODES:
        cls = AuthError
    else:
        cls = InvalidParameter
    return cls(
        message,
        operation=operation,
        status=status,
        error_code=error_code,
        error_msg=error_msg,
        request_id=request_id,
    )


def transport(operation: str, exc: BaseException) -> TransportError:
    """No HTTP reply at all. The message names the exception type only (never the URL)."""
    return TransportError(
        f"{operation}: transport error: {type(exc).__name__}", operation=operation
    )
