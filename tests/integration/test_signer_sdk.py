"""Our ``SDK-HMAC-SHA256`` signer equals huaweicloudsdkcore's ``Signer`` on generated requests.

Both sign the same request (method, resource path, query pairs, headers, body) with the
same ``X-Sdk-Date``; the ``Authorization`` headers must be identical. The generators aim
at the quirks: unicode and reserved characters (``%2F``, spaces, ``?#&=+``) in path
segments, repeated and empty query keys, bodies, non-JSON content types (the SDK then
signs ``UNSIGNED-PAYLOAD``), non-default ports and header values with outer whitespace.
"""

from __future__ import annotations

import string
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sdk_signer = pytest.importorskip("huaweicloudsdkcore.signer.signer")

from huaweicloudsdkcore.auth.credentials import BasicCredentials  # noqa: E402  # after importorskip
from huaweicloudsdkcore.sdk_request import SdkRequest  # noqa: E402

from daemon.cloud import signer  # noqa: E402

AK, SK = "AKPROPERTYTEST01", "SK/property+test=="
RESERVED = "/?#[]@!$&'()*+,;=% ~-._"
segment_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(string.ascii_letters + string.digits + RESERVED),
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
    ),
    min_size=0,
    max_size=12,
)


@st.composite
def path_segment(draw: st.DrawFn) -> str:
    raw = draw(segment_text)
    how = draw(st.sampled_from(["quote", "quote-all", "raw-safe"]))
    if how == "quote":
        return quote(raw, safe="~")
    if how == "quote-all":
        return quote(raw, safe="")
    return quote(raw, safe="~!$'()*+,;=:@")  # what a browser leaves alone


query_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(string.ascii_letters + "&=+% ~_-."),
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
    ),
    max_size=8,
)
header_name = st.text(alphabet=string.ascii_letters + "-_", min_size=1, max_size=12).filter(
    lambda n: (
        n.lower()
        not in {"host", "authorization", "x-sdk-date", "content-type", "x-sdk-content-sha256"}
    )
)
header_value = st.text(alphabet=string.ascii_letters + string.digits + " ;=,/:-", max_size=16).map(
    lambda v: f"  {v} "
)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    segments = draw(st.lists(path_segment(), min_size=1, max_size=5))
    path = "/" + "/".join(segments)
    if draw(st.booleans()):
        path += "/"
    keys = draw(st.lists(query_text, max_size=3))
    query = draw(st.lists(st.tuples(st.sampled_from([*keys, "", "k"]), query_text), max_size=5))
    extra = draw(st.dictionaries(header_name, header_value, max_size=3))
    lowered: dict[str, str] = {}
    for name in extra:
        lowered.setdefault(name.lower(), name)
    headers = {lowered[n.lower()]: v for n, v in extra.items() if lowered[n.lower()] == n}
    content_type = draw(
        st.sampled_from(
            [
                None,
                "application/json",
                "application/json;charset=UTF-8",
                "text/plain",
                "application/octet-stream",
            ]
        )
    )
    if content_type is not None:
        headers["Content-Type"] = content_type
    port = draw(st.sampled_from([None, 443, 80, 8443, 31943]))
    host = "aom.cn-north-4.myhuaweicloud.com" + (f":{port}" if port else "")
    return {
        "method": draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"])),
        "host": host,
        "path": path,
        "query": query,
        "headers": headers,
        "body": draw(st.one_of(st.just(b""), st.binary(max_size=64), st.just(b'{"page":0}'))),
        "date": draw(
            st.datetimes(
                min_value=datetime(2020, 1, 1),
                max_value=datetime(2035, 1, 1),
                timezones=st.just(UTC),
            )
        ),
    }


def sdk_authorization(req: dict[str, Any], date: str) -> str:
    sdk_req = SdkRequest(
        method=req["method"],
        schema="https",
        host=req["host"],
        resource_path=req["path"],
        query_params=list(req["query"]),
        header_params={**req["headers"], "X-Sdk-Date": date},
        body=req["body"],
    )
    signed = sdk_signer.Signer(BasicCredentials(AK, SK)).sign(sdk_req)
    value: str = signed.header_params["Authorization"]
    return value


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(requests())
def test_authorization_equals_the_sdk(req: dict[str, Any]) -> None:
    date = signer.format_date(req["date"])
    ours = signer.sign(
        ak=AK,
        sk=SK,
        method=req["method"],
        host=req["host"],
        path=req["path"],
        query=req["query"],
        headers={**req["headers"], "X-Sdk-Date": date},
        body=req["body"],
        now=req["date"],
    )
    assert ours["Authorization"] == sdk_authorization(req, date)


def test_known_vector_with_port_and_encoded_slash() -> None:
    """A fixed example, so a failure is readable without hypothesis output."""
    req = {
        "method": "POST",
        "host": "127.0.0.1:8443",
        "path": "/v1/p/cms/workflow/a%2Fb c/executions",
        "query": [("node_id", "n 1"), ("action", "restart"), ("action", "")],
        "headers": {"Content-Type": "application/json", "X-Project-Id": "p"},
        "body": b"",
    }
    date = "20260101T000000Z"
    ours = signer.sign(
        ak=AK,
        sk=SK,
        method="POST",
        host="127.0.0.1:8443",
        path=req["path"],
        query=req["query"],
        headers={**req["headers"], "X-Sdk-Date": date},
        body=b"",
        now=signer.parse_date(date),
    )
    assert ours["Authorization"] == sdk_authorization(req, date)
    assert "SignedHeaders=content-type;host;x-project-id;x-sdk-date," in ours["Authorization"]
