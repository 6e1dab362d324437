"""The AK/SK fast path signs exactly like ``signer.sign`` and passes ``signer.verify``."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.cloud import signer
from daemon.cloud.auth import CONTENT_TYPE, AkSkAuth, TokenAuth, host_of

PID = "0123456789abcdef0123456789abcdef"
AK, SK = "AKUNITAUTH000001", "SKunit/auth+key=="
NOW = datetime(2026, 11, 26, 10, 0, 5, tzinfo=UTC)


def test_host_of() -> None:
    assert host_of("https://aom.cn-north-4.myhuaweicloud.com") == "aom.cn-north-4.myhuaweicloud.com"
    assert host_of("http://127.0.0.1:8080/") == "127.0.0.1:8080"


@settings(max_examples=200, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT"]),
    segments=st.lists(st.text(max_size=10), min_size=1, max_size=4),
    query=st.lists(st.tuples(st.text(max_size=6), st.text(max_size=6)), max_size=3),
    body=st.binary(max_size=40),
)
def test_fast_path_equals_reference_and_verifies(
    method: str, segments: list[str], query: list[tuple[str, str]], body: bytes
) -> None:
    path = "/v1/" + "/".join(quote(s, safe="~") for s in segments)
    qs = signer.canonical_query(query)
    auth = AkSkAuth(project_id=PID, ak=AK, sk=SK, host="127.0.0.1:9999", now=lambda: NOW)
    fast = auth.headers(method, path, qs, body)
    reference = signer.sign(
        ak=AK,
        sk=SK,
        method=method,
        host="127.0.0.1:9999",
        path=path,
        query=query,
        headers={"Content-Type": CONTENT_TYPE, "X-Project-Id": PID},
        body=body,
        now=NOW,
    )
    assert fast == reference
    assert signer.verify(
        secret_for={AK: SK}, method=method, path=path, query=query, headers=fast, body=body
    )


def test_extra_headers_are_signed() -> None:
    auth = AkSkAuth(project_id=PID, ak=AK, sk=SK, host="dayu.example", now=lambda: NOW)
    headers = auth.headers(
        "POST", "/v3/p/metadata/tasks/t/action", "action=start", b"", {"workspace": "ws"}
    )
    assert "workspace" in headers["Authorization"].split("SignedHeaders=")[1].split(",")[0]
    assert signer.verify(
        secret_for={AK: SK},
        method="POST",
        path="/v3/p/metadata/tasks/t/action",
        query=[("action", "start")],
        headers=headers,
        body=b"",
    )


def test_date_follows_the_clock() -> None:
    moments = iter([NOW, NOW, datetime(2026, 11, 26, 10, 0, 6, tzinfo=UTC)])
    auth = AkSkAuth(project_id=PID, ak=AK, sk=SK, host="h", now=lambda: next(moments))
    dates = [auth.headers("GET", "/", "", b"")["X-Sdk-Date"] for _ in range(3)]
    assert dates == ["20261126T100005Z", "20261126T100005Z", "20261126T100006Z"]


def test_reprs_hide_secrets() -> None:
    text = repr(AkSkAuth(project_id=PID, ak=AK, sk=SK, host="h")) + repr(TokenAuth(PID, "tok-xyz"))
    for secret in (AK, SK, "tok-xyz"):
        assert secret not in text
