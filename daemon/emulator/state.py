"""Workflow and execution state of the emulator, advanced lazily in emulated time.

Why lazy: with thousands of executions, ticking every one of them would make the emulator
the bottleneck of a benchmark. An execution only changes when emulated time passes a
node's due time or an operation arrives, so it is advanced (``advance(now_ms)``) when it
is read or written, and finished executions never do any work again. Serialised forms
are cached and dropped on the first change.

All times are emulated epoch milliseconds. Semantics: nodes run in
order; a failed node makes the execution ``pausing`` until ``restart`` or ``skip``; a
pause node waits for ``continue``; ``terminate`` goes ``canceling`` then ``cancel``
one emulated second later.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

BehaviourKind = Literal["succeed", "fail", "fail_times", "fail_probability"]
NodeKind = Literal["task", "pause"]

CANCEL_DELAY_MS = 1000
FINISHED = frozenset({"success", "fail", "cancel"})


class NotAllowed(Exception):
    """The execution's state does not allow the operation (AOM.31001418)."""


class UnknownNode(Exception):
    """The node id is not part of the workflow (AOM.31001302)."""


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What a task node does on each attempt."""

    kind: BehaviourKind = "succeed"
    times: int = 0
    """For ``fail_times``: the first ``times`` attempts fail."""
    probability: float = 0.0
    """For ``fail_probability``: chance that an attempt fails (seeded, deterministic)."""

    def fails(self, seed: int, execution_id: str, node_id: str, attempt: int) -> bool:
        if self.kind == "succeed":
            return False
        if self.kind == "fail":
            return True
        if self.kind == "fail_times":
            return attempt <= self.times
        key = f"{seed}:{execution_id}:{node_id}:{attempt}".encode()
        draw = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2.0**64
        return draw < self.probability


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """A node of a workflow definition."""

    id: str
    name: str
    kind: NodeKind = "task"
    duration_ms: int = 5000
    behaviour: Behaviour = Behaviour()


class NodeRun:
    """The latest attempt of one node in one execution (an ``execution_result_list`` entry)."""

    __slots__ = (
        "attempt",
        "begin_ms",
        "end_ms",
        "function_execution_id",
        "node_id",
        "output",
        "status",
    )

    def __init__(self, node_id: str, begin_ms: int, attempt: int, status: str, fid: str) -> None:
        self.node_id = node_id
        self.begin_ms = begin_ms
        self.end_ms: int | None = None
        self.attempt = attempt
        self.status = status
        self.output: dict[str, Any] = {}
        self.function_execution_id = fid

    def to_json(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "status": self.status,
            "begin_time": self.begin_ms,
            "end_time": self.end_ms,
            "output": self.output,
            "function_execution_id": self.function_execution_id,
        }


class Execution:
    """One execution; mutated only through its methods so caches stay correct."""

    __slots__ = (
        "_brief",
        "_detail_bytes",
        "attempts",
        "begin_ms",
        "cancel_at_ms",
        "created_by",
        "cursor",
        "due_ms",
        "end_ms",
        "execution_id",
        "last_update_ms",
        "nodes",
        "project_id",
        "runs",
        "seed",
        "status",
        "workflow_id",
    )

    def __init__(
        self,
        *,
        workflow_id: str,
        execution_id: str,
        project_id: str,
        nodes: tuple[NodeSpec, ...],
        begin_ms: int,
        created_by: str,
        seed: int,
    ) -> None:
        self.workflow_id = workflow_id
        self.execution_id = execution_id
        self.project_id = project_id
        self.nodes = nodes
        self.created_by = created_by
        self.seed = seed
        self.status = "executing"
        self.begin_ms = begin_ms
        self.end_ms: int | None = None
        self.last_update_ms = begin_ms
        self.cursor = -1
        self.due_ms: int | None = None
        self.cancel_at_ms: int | None = None
        self.runs: dict[str, NodeRun] = {}
        self.attempts: dict[str, int] = {}
        self._brief: dict[str, Any] | None = None
        self._detail_bytes: bytes | None = None
        self._start_next(begin_ms)

    # -- reading ---------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def current(self) -> NodeSpec | None:
        return self.nodes[self.cursor] if 0 <= self.cursor < len(self.nodes) else None

    def brief(self) -> dict[str, Any]:
        """The ListWorkflowExecutions element (cached until the next change)."""
        if self._brief is None:
            self._brief = {
                "workflow_id": self.workflow_id,
                "execution_id": self.execution_id,
                "status": self.status,
                "begin_time": self.begin_ms,
                "end_time": self.end_ms,
                "last_update_time": self.last_update_ms,
                "created_by": self.created_by,
                "project_id": self.project_id,
                "execution_result_list": [run.to_json() for run in self.runs.values()],
            }
        return self._brief

    def detail_bytes(self) -> bytes:
        """SearchWorkflowExecutionDetail body: the brief without ``created_by``."""
        if self._detail_bytes is None:
            detail = {k: v for k, v in self.brief().items() if k != "created_by"}
            self._detail_bytes = json.dumps(detail, separators=(",", ":")).encode()
        return self._detail_bytes

    # -- time ------------------------------------------------------------------------------

    def advance(self, now_ms: int) -> bool:
        """Apply everything due up to ``now_ms``; True if anything changed."""
        changed = False
        while True:
            if self.status == "canceling":
                if self.cancel_at_ms is not None and now_ms >= self.cancel_at_ms:
                    self._finish_cancel(self.cancel_at_ms)
                    changed = True
                break
            if self.status != "executing" or self.due_ms is None or now_ms < self.due_ms:
                break
            self._complete_current(self.due_ms)
            changed = True
        if changed:
            self._touch()
        return changed

    # -- operations (call advance(now) first) --------------------------------------------------

    def operate(self, action: str, node_id: str, now_ms: int) -> None:
        """restart / skip / continue ``node_id``; raises NotAllowed or UnknownNode."""
        if all(n.id != node_id for n in self.nodes):
            raise UnknownNode(node_id)
        node = self.current
        run = self.runs.get(node_id)
        if self.status != "pausing" or node is None or node.id != node_id or run is None:
            raise NotAllowed(f"execution is {self.status}; node {node_id} is not waiting")
        if action in ("restart", "skip"):
            if node.kind != "task" or run.status != "fail":
                raise NotAllowed(f"node {node_id} has not failed")
            if action == "restart":
                self._start_node(node, now_ms)
            else:
                run.output = {**run.output, "skipped": True}
                self._start_next(now_ms)
        elif action == "continue":
            if node.kind != "pause" or run.status != "pausing":
                raise NotAllowed(f"node {node_id} is not a pausing pause node")
            run.status = "success"
            run.end_ms = now_ms
            run.output = {"continued": True}
            self._start_next(now_ms)
        else:
            raise NotAllowed(f"unknown action {action}")
        self.last_update_ms = now_ms
        self._touch()

    def terminate(self, now_ms: int) -> None:
        if self.status not in ("executing", "pausing"):
            raise NotAllowed(f"execution is {self.status}")
        self.status = "canceling"
        self.cancel_at_ms = now_ms + CANCEL_DELAY_MS
        self.due_ms = None
        self.last_update_ms = now_ms
        self._touch()

    # -- internals ---------------------------------------------------------------------------

    def _touch(self) -> None:
        self._brief = None
        self._detail_bytes = None

    def _start_next(self, at_ms: int) -> None:
        self.cursor += 1
        node = self.current
        if node is None:
            self.status = "success"
            self.end_ms = at_ms
            self.due_ms = None
            self.last_update_ms = at_ms
            return
        self._start_node(node, at_ms)

    def _start_node(self, node: NodeSpec, at_ms: int) -> None:
        attempt = self.attempts.get(node.id, 0) + 1
        self.attempts[node.id] = attempt
        fid = f"{self.execution_id[:8]}-{node.id}-{attempt}"
        if node.kind == "pause":
            self.runs[node.id] = NodeRun(node.id, at_ms, attempt, "pausing", fid)
            self.status = "pausing"
            self.due_ms = None
        else:
            self.runs[node.id] = NodeRun(node.id, at_ms, attempt, "executing", fid)
            self.status = "executing"
            self.due_ms = at_ms + node.duration_ms
        self.last_update_ms = at_ms

    def _complete_current(self, at_ms: int) -> None:
        node = self.nodes[self.cursor]
        run = self.runs[node.id]
        run.end_ms = at_ms
        self.due_ms = None
        self.last_update_ms = at_ms
        if node.behaviour.fails(self.seed, self.execution_id, node.id, run.attempt):
            run.status = "fail"
            run.output = {
                "error": f"node {node.id} failed on attempt {run.attempt}",
                "attempt": run.attempt,
                "exit_code": 1,
            }
            self.status = "pausing"
        else:
            run.status = "success"
            run.output = {"attempt": run.attempt, "exit_code": 0}
            self._start_next(at_ms)

    def _finish_cancel(self, at_ms: int) -> None:
        node = self.current
        if node is not None:
            run = self.runs.get(node.id)
            if run is not None and run.status in ("executing", "pausing"):
                run.status = "cancel"
                run.end_ms = at_ms
        self.status = "cancel"
        self.end_ms = at_ms
        self.cancel_at_ms = None
        self.last_update_ms = at_ms
