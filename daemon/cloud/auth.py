"""Request authentication: IAM token header, or AK/SK ``SDK-HMAC-SHA256`` signing.

Why a separate fast path beside ``signer.sign``: signing runs on every poll, and for the
client's own requests almost everything in the canonical request is constant per
endpoint (signed header names, their values except the date). Those pieces are built
once; the HMAC key schedule is precomputed once and copied per request (HMAC allows it:
the inner/outer padded key states do not depend on the message). The property test in
``tests/unit/cloud/test_auth.py`` checks the fast path against ``signer.sign``, which in
turn is checked against the official SDK (``tests/integration/test_signer_sdk.py``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Protocol
from urllib.parse import unquote, urlsplit

from daemon.cloud import signer
from daemon.kernel.clock import SYSTEM_CLOCK

CONTENT_TYPE = "application/json;charset=UTF-8"
_SIGNED = "content-type;host;x-project-id;x-sdk-date"


class Auth(Protocol):
    """Adds the credentials to one request's headers. Implementations hide their secrets."""

    kind: str

    def headers(
        self,
        method: str,
        path: str,
        query: str,
        body: bytes,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """All headers to send (``path`` as on the wire, ``query`` canonical, may be '')."""
        ...


def host_of(base_url: str) -> str:
    """The ``Host`` header value for ``base_url``: ``name`` or ``name:port`` as on the wire."""
    netloc = urlsplit(base_url).netloc
    return netloc.rpartition("@")[2]


class _StaticAuth:
    """Headers that do not depend on the request: computed once, copied per call."""

    kind = "static"
    _base: dict[str, str]

    def headers(
        self,
        method: str,
        path: str,
        query: str,
        body: bytes,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        headers = dict(self._base)
        if extra:
            headers.update(extra)
        return headers


class NoAuth(_StaticAuth):
    """Emulator demo without credentials (the emulator answers 401; useful in tests only)."""

    kind = "none"

    def __init__(self, project_id: str) -> None:
        self._base = {"Content-Type": CONTENT_TYPE, "X-Project-Id": project_id}

    def __repr__(self) -> str:
        return "NoAuth()"


class TokenAuth(_StaticAuth):
    """``X-Auth-Token`` on every request."""

    kind = "token"

    def __init__(self, project_id: str, token: str) -> None:
        self._base = {
            "Content-Type": CONTENT_TYPE,
            "X-Project-Id": project_id,
            "X-Auth-Token": token,
        }

    def __repr__(self) -> str:
        return "TokenAuth(token=***)"


@lru_cache(maxsize=8192)
def _canonical_uri(path: str) -> str:
    # Polls repeat the same few thousand paths; decoding and re-encoding each segment
    # is the most expensive pure-Python step of signing.
    return signer.canonical_uri(path)


class AkSkAuth:
    """``SDK-HMAC-SHA256`` for one endpoint (``Host`` is part of the signature)."""

    kind = "aksk"

    def __init__(
        self,
        *,
        project_id: str,
        ak: str,
        sk: str,
        host: str,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._ak = ak
        self._sk = sk
        self._host = host
        self._project_id = project_id
        self._now = now or SYSTEM_CLOCK.now
        self._cache_date = now is None
        """Only the real clock is cached: an injected one (tests) is read every time."""
        self._date_until = 0.0
        self._mac = hmac.new(sk.encode("utf-8"), digestmod=hashlib.sha256)
        self._canon_prefix = (
            f"content-type:{CONTENT_TYPE}\nhost:{host}\nx-project-id:{project_id}\nx-sdk-date:"
        )
        self._auth_prefix = f"{signer.ALGORITHM} Access={ak}, SignedHeaders={_SIGNED}, Signature="
        self._date_key = -1
        self._date_text = ""

    def __repr__(self) -> str:
        return f"AkSkAuth(host={self._host!r}, ak=***, sk=***)"

    def _date(self) -> str:
        if self._cache_date:
            # One datetime + strftime per second instead of per request: the text only
            # changes when the second does, and monotonic() is far cheaper than now().
            tick = SYSTEM_CLOCK.monotonic()
            if tick < self._date_until:
                return self._date_text
            moment = self._now()
            self._date_text = signer.format_date(moment)
            self._date_until = tick + 1.0 - moment.microsecond / 1e6
            return self._date_text
        moment = self._now()
        key = int(moment.timestamp())
        if key != self._date_key:
            self._date_text = signer.format_date(moment)
            self._date_key = key
        return self._date_text

    def headers(
        self,
        method: str,
        path: str,
        query: str,
        body: bytes,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        if extra:
            return self._headers_general(method, path, query, body, extra)
        date = self._date()
        payload_hash = hashlib.sha256(body).hexdigest() if body else signer.EMPTY_HASH
        canonical = (
            f"{method}\n{_canonical_uri(path)}\n{query}\n{self._canon_prefix}{date}\n\n"
            f"{_SIGNED}\n{payload_hash}"
        )
        string_to_sign = (
            f"{signer.ALGORITHM}\n{date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        mac = self._mac.copy()
        mac.update(string_to_sign.encode())
        return {
            "Content-Type": CONTENT_TYPE,
            "Host": self._host,
            "X-Project-Id": self._project_id,
            "X-Sdk-Date": date,
            "Authorization": self._auth_prefix + mac.hexdigest(),
        }

    def _headers_general(
        self, method: str, path: str, query: str, body: bytes, extra: Mapping[str, str]
    ) -> dict[str, str]:
        """Extra headers (DataArts ``workspace``) are signed too: the reference way."""
        headers = {"Content-Type": CONTENT_TYPE, "X-Project-Id": self._project_id, **extra}
        headers[signer.HEADER_DATE] = self._date()
        pairs = [_split_pair(p) for p in query.split("&")] if query else []
        return signer.sign(
            ak=self._ak,
            sk=self._sk,
            method=method,
            host=self._host,
            path=path,
            query=pairs,
            headers=headers,
            body=body,
            now=self._now(),
        )


def _split_pair(part: str) -> tuple[str, str]:
    key, _, value = part.partition("=")
    return unquote(key), unquote(value)
