"""The one exception tree of aomd.

Only ``daemon.cloud`` translates wire failures into it; everything else catches these
types and never aiohttp's. The split that matters operationally is *may I send this
again?*:

    AomdError
    ├─ ConfigError              bad settings / policy file: exit 2, keep last good policy
    ├─ CloudError               .status, .error_code, .error_msg, .request_id, .operation
    │  ├─ TemporaryCloudError     may be retried after .delay (reads only)
    │  │  ├─ ThrottledError         429
    │  │  ├─ ServerError            5xx
    │  │  └─ TransportError         connect refused / reset / timeout before a reply
    │  ├─ PermanentCloudError     never retry the same request
    │  │  ├─ AuthError              401 / 403
    │  │  ├─ NotFoundError          404 (AOM.31001306)
    │  │  ├─ UnsupportedOperation   AOM.31001418: state does not allow it
    │  │  ├─ InvalidParameter       other 4xx (AOM.31001302, ...)
    │  │  └─ MalformedResponse      2xx with a body we cannot read
    │  └─ OutcomeUnknown          a write that may have reached the server: observe, never resend
    ├─ JournalError             stop writing, keep observing
    ├─ ListenError              a port to serve on is taken or forbidden: exit 1
    └─ UsageError               a bad command-line argument: exit 2, like argparse's own
"""

from __future__ import annotations


class AomdError(Exception):
    """Root of every error aomd raises on purpose."""


class ConfigError(AomdError):
    """A settings or policy file is invalid. The message names file, field and fix."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.source = source


class ListenError(AomdError):
    """A server socket cannot be bound (port taken, no permission). A runtime condition,
    not a bad file, so exit 1; the message names the setting that picks the port."""


class UsageError(AomdError):
    """A command-line argument argparse could not check (a time, a range). Not a
    "configuration error": no file is wrong, the command line is."""


class JournalError(AomdError):
    """The journal cannot be read or written; writes must stop until it recovers."""


class CloudError(AomdError):
    """A call to the cloud failed. Carries what an operator needs to open a ticket."""

    def __init__(
        self,
        message: str,
        *,
        operation: str = "",
        status: int | None = None,
        error_code: str | None = None,
        error_msg: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.status = status
        self.error_code = error_code
        self.error_msg = error_msg
        self.request_id = request_id

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.args[0]!r}, operation={self.operation!r}, "
            f"status={self.status!r}, error_code={self.error_code!r}, "
            f"request_id={self.request_id!r})"
        )


class TemporaryCloudError(CloudError):
    """Worth retrying (for reads) after ``delay`` seconds, if the server said so."""

    def __init__(self, message: str, *, delay: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]  # kw are CloudError's
        self.delay = delay


class ThrottledError(TemporaryCloudError):
    """HTTP 429 from the API gateway; ``delay`` holds ``Retry-After`` when given."""


class ServerError(TemporaryCloudError):
    """HTTP 5xx (AOM.31001305 / AOM.31001405 or a gateway error)."""


class TransportError(TemporaryCloudError):
    """No HTTP reply at all: refused, reset, timed out, DNS."""


class PermanentCloudError(CloudError):
    """Repeating the same request cannot succeed."""


class AuthError(PermanentCloudError):
    """401/403: wrong credentials, bad signature, stale date or expired token."""


class NotFoundError(PermanentCloudError):
    """404: the workflow or execution does not exist (AOM.31001306)."""


class UnsupportedOperation(PermanentCloudError):
    """AOM.31001418: the execution's state does not allow this operation (any more)."""


class InvalidParameter(PermanentCloudError):
    """Other 4xx, typically AOM.31001302."""


class MalformedResponse(PermanentCloudError):
    """A 2xx whose body is not what the API documents."""


class OutcomeUnknown(CloudError):
    """A write may have been applied but its reply was lost. Re-read state; do not resend."""


class PolicyError(ConfigError):
    """Policy files are invalid; ``errors`` lists every problem as ``file:line: field: message``."""

    def __init__(self, errors: tuple[str, ...] | list[str], *, source: str | None = None) -> None:
        self.errors = tuple(errors)
        count = len(self.errors)
        header = f"{count} problem{'s' if count != 1 else ''} in policy files:"
        super().__init__("\n".join((header, *self.errors)), source=source)
