"""Tolerant parsing of wire JSON into ``daemon.kernel.model`` values."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from daemon.cloud import wire
from daemon.kernel.model import Execution, NodeRun, Status

BRIEF = {
    "workflow_id": "w1",
    "execution_id": "e1",
    "status": "pausing",
    "begin_time": 1,
    "end_time": None,
    "last_update_time": "3",
    "created_by": "ops",
    "project_id": "p",
    "execution_result_list": [
        {
            "node_id": "a",
            "status": "fail",
            "begin_time": 1,
            "end_time": 2,
            "output": {"k": 1},
            "function_execution_id": "f",
        }
    ],
}


def test_brief_round_trip() -> None:
    ex = wire.execution(BRIEF)
    assert ex == Execution(
        workflow_id="w1",
        execution_id="e1",
        status=Status.PAUSING,
        raw_status="pausing",
        begin_time=1,
        last_update_time=3,
        created_by="ops",
        project_id="p",
        nodes=(
            NodeRun(
                node_id="a",
                status=Status.FAIL,
                raw_status="fail",
                begin_time=1,
                end_time=2,
                output={"k": 1},
                function_execution_id="f",
            ),
        ),
    )
    assert hash(ex.nodes[0].status) == hash(Status.FAIL)


def test_unknown_fields_kept_and_detail_without_created_by() -> None:
    data = {k: v for k, v in BRIEF.items() if k != "created_by"}
    data["workflow_id"] = None
    data["shiny_new"] = {"x": 1}
    ex = wire.execution(data, "from-path")
    assert ex.created_by is None
    assert ex.workflow_id == "from-path"
    assert ex.extra == {"shiny_new": {"x": 1}}


def test_unknown_status_logged_once_per_raw_value() -> None:
    with capture_logs() as logs:
        for raw in ("frobnicating-u1", "frobnicating-u1", "frobnicating-u2", 7):
            assert wire.status(raw) is Status.UNKNOWN
        assert wire.status("SUCCESS") is Status.SUCCESS  # case-insensitive, not unknown
    assert [e["raw_status"] for e in logs] == ["frobnicating-u1", "frobnicating-u2", "7"]


@pytest.mark.parametrize(
    "data",
    [
        {"status": "success"},  # no execution_id
        ["not", "an", "object"],
        {"execution_id": "e", "execution_result_list": "nope"},
        {"execution_id": "e", "execution_result_list": [1]},
    ],
)
def test_malformed_execution(data: Any) -> None:
    with pytest.raises(wire.Malformed):
        wire.execution(data)


def test_executions_accepts_array_or_wrapped() -> None:
    assert len(wire.executions([BRIEF, BRIEF], "w")) == 2
    assert len(wire.executions({"executions": [BRIEF]}, "w")) == 1
    with pytest.raises(wire.Malformed):
        wire.executions({"elements": "x"}, "w")


def test_workflow_page() -> None:
    items, total = wire.workflow_page(
        {
            "elements": [
                {"id": "w", "type": "cron", "tags": {"a": 1}, "nodes": [{"id": "n", "x": 2}]},
                {"workflow_id": "v"},
            ],
            "total_elements": "2",
        }
    )
    assert total == 2
    assert [w.id for w in items] == ["w", "v"]
    assert items[0].tags == {"a": "1"}
    assert items[0].nodes[0].extra == {"x": 2}
    with pytest.raises(wire.Malformed):
        wire.workflow_page({"elements": [{"name": "no id"}]})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"error_code": "AOM.31001306", "error_msg": "gone", "http_code": 404}',
            ("AOM.31001306", "gone"),
        ),
        (
            b'{"error_code": "AOM.31001306", "error_msg": "gone", "http_code": "404"}',
            ("AOM.31001306", "gone"),
        ),
        (b"<html>bad gateway</html>", (None, None)),
        (b"", (None, None)),
        (b"[1]", (None, None)),
    ],
)
def test_error_fields(body: bytes, expected: tuple[str | None, str | None]) -> None:
    assert wire.error_fields(body) == expected


def test_loads() -> None:
    assert wire.loads_lenient(b'{"success"}') == '{"success"}'
    assert wire.loads_lenient(b"") is None
    assert wire.loads_lenient(b'{"result":"success"}') == {"result": "success"}
    with pytest.raises(wire.Malformed):
        wire.loads(b'{"elements": [')
    with pytest.raises(wire.Malformed):
        wire.loads(b"\xff\xfe")


json_scalar = st.one_of(st.none(), st.integers(-(2**40), 2**40), st.text(max_size=5), st.booleans())


@given(
    fields=st.fixed_dictionaries(
        {"execution_id": st.text(min_size=1, max_size=8)},
        optional={
            "status": json_scalar,
            "begin_time": json_scalar,
            "end_time": json_scalar,
            "last_update_time": json_scalar,
            "created_by": json_scalar,
            "workflow_id": json_scalar,
            "project_id": json_scalar,
            "surprise": json_scalar,
        },
    )
)
def test_any_scalar_values_parse_to_valid_values(fields: dict[str, Any]) -> None:
    ex = wire.execution(fields, "w")
    assert isinstance(ex.status, Status)
    assert ex.begin_time is None or isinstance(ex.begin_time, int)
    assert isinstance(ex.workflow_id, str)
    assert ex == Execution(
        workflow_id=ex.workflow_id,
        execution_id=ex.execution_id,
        status=ex.status,
        raw_status=ex.raw_status,
        begin_time=ex.begin_time,
        end_time=ex.end_time,
        last_update_time=ex.last_update_time,
        created_by=ex.created_by,
        project_id=ex.project_id,
        nodes=ex.nodes,
        extra=ex.extra,
    )


def test_loads_accepts_bom_and_utf16() -> None:
    assert wire.loads('\ufeff{"a": 1}'.encode()) == {"a": 1}
    assert wire.loads("[1]".encode("utf-16")) == [1]


def test_unknown_status_memory_is_bounded() -> None:
    """The "logged once" memory is process-wide and fed by the server: a backend that
    puts a timestamp or an id in ``status`` must not grow it (and the log) for ever."""
    cap = wire.UNKNOWN_STATUS_MEMORY
    saved = set(wire._UNKNOWN_SEEN)
    wire._UNKNOWN_SEEN.clear()
    try:
        with capture_logs() as logs:
            for i in range(3 * cap):
                assert wire.status(f"odd-{i}") is Status.UNKNOWN
        assert len(wire._UNKNOWN_SEEN) <= cap
        assert len(logs) <= cap + 1
    finally:
        wire._UNKNOWN_SEEN.clear()
        wire._UNKNOWN_SEEN.update(saved)
