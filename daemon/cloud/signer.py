"""AK/SK request signing, ``SDK-HMAC-SHA256``, byte-for-byte what huaweicloudsdkcore does.

Pure functions so the client signs and the emulator verifies with the same code, and a
property test can compare both against the official SDK. Kept allocation-light because
it runs on every request (see ``bench/client.py``).

Quirks reproduced on purpose (read from huaweicloudsdkcore 3.1.x ``signer.py``):

* canonical URI: percent-*decode* the whole path, split on ``/``, re-encode each segment
  with only ``~`` (and RFC 3986 unreserved) kept, always end in ``/``;
* canonical query: ``(key, value)`` pairs sorted as tuples, both encoded the same way;
* signed headers: every header name without ``_``, lower-cased, sorted; values stripped;
* body hash: empty body hashes to ``e3b0...``; ``X-Sdk-Content-Sha256`` replaces the hash;
* a ``Content-Type`` other than ``application/json``/``application/bson`` makes the SDK
  add ``X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`` (signed) before signing.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_HASH = hashlib.sha256(b"").hexdigest()
HEADER_DATE = "X-Sdk-Date"
HEADER_CONTENT_HASH = "X-Sdk-Content-Sha256"


def _enc(text: str) -> str:
    return quote(text, safe="~")


def canonical_uri(path: str) -> str:
    """Canonical form of a (possibly percent-encoded) request path."""
    uri = "/".join(_enc(seg) for seg in unquote(path).split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(query: Iterable[tuple[str, str]]) -> str:
    """Sorted ``k=v`` pairs joined by ``&``; also the exact query string the client sends."""
    return "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(query))


def format_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(DATE_FORMAT)


def parse_date(text: str) -> datetime:
    """Parse ``X-Sdk-Date``; raises ``ValueError`` on a malformed value."""
    return datetime.strptime(text, DATE_FORMAT).replace(tzinfo=UTC)


def signed_header_names(headers: Iterable[str]) -> list[str]:
    return sorted({name.lower() for name in headers if "_" not in name})


def body_hash(body: bytes, headers: Mapping[str, str]) -> str:
    if not body:
        return EMPTY_HASH
    for name, value in headers.items():
        if name.lower() == "x-sdk-content-sha256":
            return value
    return hashlib.sha256(body).hexdigest()


def canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed: Sequence[str],
    payload_hash: str,
) -> str:
    lowered = {name.lower(): str(value).strip() for name, value in headers.items()}
    canon_headers = "".join(f"{name}:{lowered.get(name, '')}\n" for name in signed)
    return "\n".join(
        (
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            canon_headers,
            ";".join(signed),
            payload_hash,
        )
    )


def signature(sk: str, date: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{date}\n{digest}"
    return hmac.new(sk.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def sign(
    *,
    ak: str,
    sk: str,
    method: str,
    host: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
    now: datetime,
) -> dict[str, str]:
    """Add ``X-Sdk-Date``, ``Host`` and ``Authorization`` to ``headers`` (mutated, returned).

    ``host`` must be what goes on the wire: ``name`` or ``name:port`` for a non-default port.
    """
    date = headers.setdefault(HEADER_DATE, format_date(now))
    content_type = headers.get("Content-Type")  # exact case, as the SDK looks it up
    if content_type and not content_type.startswith(("application/json", "application/bson")):
        headers[HEADER_CONTENT_HASH] = "UNSIGNED-PAYLOAD"
    if not any(name.lower() == "host" for name in headers):
        headers["Host"] = host
    names = signed_header_names(headers)
    canonical = canonical_request(method, path, query, headers, names, body_hash(body, headers))
    sig = signature(sk, date, canonical)
    headers["Authorization"] = (
        f"{ALGORITHM} Access={ak}, SignedHeaders={';'.join(names)}, Signature={sig}"
    )
    return headers


class AuthorizationHeader:
    """A parsed ``Authorization: SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=...``."""

    __slots__ = ("access", "signature", "signed_headers")

    def __init__(self, access: str, signed_headers: list[str], signature: str) -> None:
        self.access = access
        self.signed_headers = signed_headers
        self.signature = signature

    @classmethod
    def parse(cls, value: str) -> AuthorizationHeader | None:
        if not value.startswith(ALGORITHM + " "):
            return None
        fields: dict[str, str] = {}
        for part in value[len(ALGORITHM) + 1 :].split(","):
            key, sep, val = part.strip().partition("=")
            if sep:
                fields[key] = val
        try:
            return cls(
                fields["Access"],
                [h for h in fields["SignedHeaders"].split(";") if h],
                fields["Signature"],
            )
        except KeyError:
            return None


def verify(
    *,
    secret_for: Mapping[str, str],
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
) -> bool:
    """Recompute the signature over exactly the headers named in ``SignedHeaders``."""
    auth = AuthorizationHeader.parse(headers.get("Authorization", ""))
    if auth is None or auth.access not in secret_for:
        return False
    lowered = {name.lower(): value for name, value in headers.items()}
    date = lowered.get("x-sdk-date")
    if date is None or "x-sdk-date" not in auth.signed_headers:
        return False
    canonical = canonical_request(
        method, path, query, lowered, auth.signed_headers, body_hash(body, lowered)
    )
    expected = signature(secret_for[auth.access], date, canonical)
    return hmac.compare_digest(expected, auth.signature)
