"""Authentication as the real gateway does it: IAM token or AK/SK signature.

The signature is recomputed with ``daemon.cloud.signer.verify`` over exactly the header
names the caller listed in ``SignedHeaders``, the raw (still percent-encoded) path and
the percent-decoded query pairs, so a signer bug shows up here as a 401 rather than
passing silently. ``X-Sdk-Date`` is compared with the REAL wall clock: emulated time can
run 1000x faster and must not make honest signatures stale.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from daemon.cloud import signer
from daemon.emulator.ledger import AuthResult

MAX_SKEW = timedelta(minutes=15)
_parse_date = lru_cache(maxsize=256)(signer.parse_date)
"""strptime costs ~30 us; concurrent clients send the same second over and over."""
BAD_CREDENTIALS = "AOM.31009003"
BAD_SIGNATURE = "AOM.31009004"


@dataclass(frozen=True, slots=True)
class AuthOutcome:
    result: AuthResult
    error_code: str | None = None
    error_msg: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_code is None


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the emulator accepts. Never logged; repr hides the secrets."""

    access_key: str | None
    secret_key: str | None
    token: str | None

    def __repr__(self) -> str:
        return "Credentials(***)"


def authenticate(
    creds: Credentials,
    *,
    method: str,
    raw_path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    wall_now: datetime,
) -> AuthOutcome:
    token = headers.get("X-Auth-Token")
    if token is not None:
        if creds.token is not None and hmac.compare_digest(token.encode(), creds.token.encode()):
            return AuthOutcome("token")
        return AuthOutcome("failed", BAD_CREDENTIALS, "Authentication failed: invalid token")
    authorization = headers.get("Authorization")
    if authorization is None:
        return AuthOutcome("none", BAD_CREDENTIALS, "Authentication required: no credentials")
    parsed = signer.AuthorizationHeader.parse(authorization)
    if parsed is None or creds.access_key is None or creds.secret_key is None:
        return AuthOutcome(
            "failed", BAD_CREDENTIALS, "Authentication failed: bad Authorization header"
        )
    if not hmac.compare_digest(parsed.access.encode(), creds.access_key.encode()):
        return AuthOutcome("failed", BAD_CREDENTIALS, "Authentication failed: unknown access key")
    date_text = headers.get(signer.HEADER_DATE)
    try:
        signed_at = _parse_date(date_text or "")
    except ValueError:
        return AuthOutcome("failed", BAD_SIGNATURE, "Signature invalid: missing or bad X-Sdk-Date")
    if abs(wall_now - signed_at) > MAX_SKEW:
        return AuthOutcome("failed", BAD_SIGNATURE, "Signature expired: X-Sdk-Date out of range")
    ok = signer.verify(
        secret_for={creds.access_key: creds.secret_key},
        method=method,
        path=raw_path,
        query=query,
        headers=headers,
        body=body,
    )
    if not ok:
        return AuthOutcome("failed", BAD_SIGNATURE, "Signature invalid: request signature mismatch")
    return AuthOutcome("aksk")
