"""Values for the pure policy core: a workflow, executions waiting on a node, rules, and
the journal rows ``decide`` reads back (plain values, no mocks)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from daemon.kernel.facts import ExecutionFacts, PastWrite
from daemon.kernel.model import Execution, NodeRun, Status, Workflow, WorkflowNode
from daemon.policy import Action, Rule, RuleSpec

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday

WORKFLOW = Workflow(
    id="wf-patch",
    name="patch-linux",
    tags={"team": "ops", "env": "prod-eu"},
    nodes=(
        WorkflowNode(id="pre", name="precheck"),
        WorkflowNode(id="patch", name="apply-patch"),
        WorkflowNode(id="approve", name="approve"),
    ),
)


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def execution(
    *,
    state: str = "failed",
    node_id: str = "patch",
    run: int = 0,
    begin: datetime = T0,
    output: Mapping[str, Any] | None = None,
    status: Status | None = None,
) -> Execution:
    """An execution waiting on ``node_id``; ``run`` changes the node's times (a new run)."""
    if state == "failed":
        node_status, exec_status = Status.FAIL, Status.PAUSING
    elif state == "paused":
        node_status, exec_status = Status.PAUSING, Status.PAUSING
    else:
        node_status, exec_status = Status.EXECUTING, Status.EXECUTING
    started = begin + timedelta(minutes=1, seconds=run)
    return Execution(
        workflow_id="wf-patch",
        execution_id="ex-1",
        status=status or exec_status,
        begin_time=ms(begin),
        nodes=(
            NodeRun(node_id="pre", status=Status.SUCCESS, begin_time=ms(begin)),
            NodeRun(
                node_id=node_id,
                status=node_status,
                begin_time=ms(started),
                end_time=ms(started) + 1000 if state == "failed" else None,
                output=dict(output or {}),
            ),
        ),
    )


def rule(**fields: Any) -> Rule:
    body: dict[str, Any] = {"name": "r", "action": "restart", **fields}
    return Rule.from_spec(RuleSpec.model_validate(body))


def written(action: Action, outcome: str = "applied", at: datetime = T0) -> PastWrite:
    """The journal row the engine would hand back after executing ``action``."""
    return PastWrite(
        key=action.key,
        kind=action.kind,
        node_id=action.node_id,
        attempt=action.attempt,
        rule=action.rule,
        outcome=outcome,
        at=at,
        observed=action.observed,
    )


def facts(*writes: PastWrite, first_seen: Mapping[str, datetime] | None = None) -> ExecutionFacts:
    return ExecutionFacts(
        execution_id="ex-1", writes=tuple(writes), first_seen=dict(first_seen or {})
    )
