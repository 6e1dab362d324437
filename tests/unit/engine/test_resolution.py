from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from daemon.engine.resolution import resolve_operation as resolve
from daemon.kernel.model import Execution, NodeRun, Status
from daemon.policy.observe import Fingerprint, fingerprint


def _exe(status: Status, *nodes: NodeRun) -> Execution:
    return Execution(
        workflow_id="wf", execution_id="ex", status=status, raw_status=status.value, nodes=nodes
    )


def _node(
    node_id: str, status: Status, begin: int = 1, output: dict[str, object] | None = None
) -> NodeRun:
    return NodeRun(
        node_id=node_id,
        status=status,
        raw_status=status.value,
        begin_time=begin,
        output=output or {},
    )


FAILED = _exe(Status.PAUSING, _node("a", Status.SUCCESS), _node("b", Status.FAIL, 5))


def test_unchanged_state_means_not_applied() -> None:
    before = fingerprint(FAILED, "b")
    assert resolve("restart", "b", before, FAILED) == "not_applied"


def test_restart_rerun_is_applied() -> None:
    before = fingerprint(FAILED, "b")
    after = _exe(Status.EXECUTING, _node("a", Status.SUCCESS), _node("b", Status.EXECUTING, 9))
    assert resolve("restart", "b", before, after) == "applied"


def test_skip_moving_on_is_applied() -> None:
    before = fingerprint(FAILED, "b")
    after = _exe(
        Status.EXECUTING,
        _node("a", Status.SUCCESS),
        _node("b", Status.FAIL, 5, {"skipped": True}),
        _node("c", Status.EXECUTING),
    )
    assert resolve("skip", "b", before, after) == "applied"


def test_terminate() -> None:
    before = fingerprint(FAILED, None)
    assert resolve("terminate", None, before, replace(FAILED, status=Status.CANCELING)) == "applied"
    assert resolve("terminate", None, before, FAILED) == "not_applied"
    assert resolve("terminate", None, before, replace(FAILED, status=Status.SUCCESS)) == "moot"


def test_finished_elsewhere_is_moot() -> None:
    before = fingerprint(FAILED, "b")
    after = _exe(Status.CANCEL, _node("a", Status.SUCCESS), _node("b", Status.FAIL, 5))
    assert resolve("skip", "b", before, after) == "moot"


@given(st.text(max_size=20), st.integers(min_value=0, max_value=2**41))
def test_fingerprint_roundtrip(out: str, begin: int) -> None:
    exe = _exe(Status.PAUSING, _node("n", Status.FAIL, begin, {"e": out}))
    fp = fingerprint(exe, "n")
    assert Fingerprint.loads(fp.dumps()) == fp
    assert Fingerprint.loads("garbage") is None


def test_restart_applied_then_finished_is_applied_not_moot() -> None:
    """Issue #16 (5): a restart whose reply was lost, after which the node succeeded and
    the execution finished, was journaled ``moot`` although it was applied."""
    before = fingerprint(FAILED, "b")
    after = _exe(Status.SUCCESS, _node("a", Status.SUCCESS), _node("b", Status.SUCCESS, 9))
    assert resolve("restart", "b", before, after) == "applied"


def test_skip_of_the_last_node_that_ended_the_run_is_applied() -> None:
    before = fingerprint(FAILED, "b")
    after = _exe(Status.SUCCESS, _node("a", Status.SUCCESS), _node("b", Status.FAIL, 5))
    assert resolve("skip", "b", before, after) == "applied"
    assert resolve("restart", "b", before, after) == "moot"


def test_something_else_changed_is_unknown() -> None:
    before = fingerprint(FAILED, "b")
    after = replace(FAILED, raw_status="PAUSING")
    assert resolve("restart", "b", before, after) == "unknown"
