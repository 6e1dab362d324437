"""The logging pipeline: JSON lines with stable keys, stdlib routed through, no secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from daemon.ops.logging import (
    REDACTED,
    clear_secrets,
    configure_logging,
    is_secret_key,
    redact,
    register_secret,
)
from daemon.settings import LogSettings

SECRET = "SKverysecret-0123456789"


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    clear_secrets()
    yield
    clear_secrets()
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_aomd_handler", False):
            root.removeHandler(h)
    root.setLevel(logging.WARNING)


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_have_stable_keys() -> None:
    out = io.StringIO()
    configure_logging(LogSettings(format="auto"), stream=out)  # not a TTY -> JSON
    structlog.get_logger("aomd.test").info("write_done", workflow_id="wf1", attempt=2)
    (line,) = _lines(out)
    assert line["event"] == "write_done"
    assert line["level"] == "info"
    assert line["logger"] == "aomd.test"
    assert line["workflow_id"] == "wf1"
    assert line["attempt"] == 2
    assert line["timestamp"].endswith("Z")  # ISO 8601, UTC


def test_stdlib_loggers_go_through_the_same_pipeline() -> None:
    out = io.StringIO()
    configure_logging(LogSettings(format="json"), stream=out)
    logging.getLogger("aiohttp.client").warning("connection to %s lost", "host-a")
    (line,) = _lines(out)
    assert line["event"] == "connection to host-a lost"
    assert line["logger"] == "aiohttp.client"
    assert line["level"] == "warning"
    assert "timestamp" in line


def test_level_filters_both_kinds() -> None:
    out = io.StringIO()
    configure_logging(LogSettings(format="json", level="warning"), stream=out)
    structlog.get_logger("aomd.test").info("hidden")
    logging.getLogger("apscheduler").info("hidden too")
    structlog.get_logger("aomd.test").warning("shown")
    assert [line["event"] for line in _lines(out)] == ["shown"]


def test_console_renderer_on_a_tty() -> None:
    out = TtyStream()
    configure_logging(LogSettings(format="auto"), stream=out)
    structlog.get_logger("aomd.test").info("hello_console", k="v")
    text = out.getvalue()
    assert "hello_console" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_reconfigure_replaces_the_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(LogSettings(format="json"), stream=first)
    configure_logging(LogSettings(format="json"), stream=second)
    structlog.get_logger("aomd.test").info("once")
    assert first.getvalue() == ""
    assert len(_lines(second)) == 1


def test_secret_keys_and_registered_values_never_appear() -> None:
    out = io.StringIO()
    configure_logging(LogSettings(format="json"), stream=out)
    register_secret(SecretStr(SECRET))
    log = structlog.get_logger("aomd.test")
    log.info("call", sk=SECRET, token="tok-123456", headers={"X-Auth-Token": "tok-123456"})
    log.info("oops", url=f"https://x/?key={SECRET}", note=["a", SECRET])
    log.info(f"message with {SECRET} inside")
    logging.getLogger("aiohttp.client").error("failed with %s", SECRET)
    try:
        raise ValueError(f"bad credential {SECRET}")
    except ValueError:
        log.exception("crashed")
    text = out.getvalue()
    assert SECRET not in text
    assert "tok-123456" not in text
    lines = _lines(out)
    assert lines[0]["sk"] == REDACTED
    assert lines[0]["headers"]["X-Auth-Token"] == REDACTED
    assert REDACTED in lines[1]["url"]
    assert "exception" in lines[-1]


def test_short_values_are_not_registered() -> None:
    register_secret("ab")
    ev = redact(None, "", {"event": "a b ab", "x": "ab"})
    assert ev == {"event": "a b ab", "x": "ab"}


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("sk", True),
        ("SK", True),
        ("x-auth-token", True),
        ("Authorization", True),
        ("db_password", True),
        ("client_secret", True),
        ("token_file", False),
        ("request_id", False),
        ("workflow_id", False),
    ],
)
def test_secret_key_names(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


@given(
    st.text(min_size=4, max_size=40).filter(
        lambda s: s.strip() == s and s not in REDACTED and not set(s) & set("xy<>")
    )
)
def test_registered_secret_is_masked_anywhere(secret: str) -> None:
    clear_secrets()
    register_secret(secret)
    ev = redact(None, "", {"event": f"x{secret}y", "nested": {"deep": [f"<{secret}>"]}})
    assert ev["event"] == f"x{REDACTED}y"
    assert ev["nested"] == {"deep": [f"<{REDACTED}>"]}
    clear_secrets()
