"""Workflow and execution state of the emulator, advanced lazily in emulated time.

Why lazy: with thousands of executions, ticking every one of them would make the emulator
the bottleneck of a benchmark. An execution only changes when emulated time passes a
node's due time or an operation arrives, so it is advanced (``advance(now_ms)``) when it
is read or written, and finished executions never do any work again. Serialised forms
are cached and dropped on the first change.

All times are emulated epoch milliseconds. Semantics: a node starts when all its
parents are done (by default its parent is the node before it, so a plain list runs in
order); a failed node waits for ``restart`` or ``skip``, a pause node for ``continue``,
and the execution is ``pausing`` while any branch waits; ``terminate`` goes
``canceling`` then ``cancel`` one emulated second later.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

BehaviourKind = Literal["succeed", "fail", "fail_times", "fail_probability"]
NodeKind = Literal["task", "pause", "approval"]
FailedExecution = Literal["pausing", "fail", "fail_final"]
"""How an execution with a failed node is reported (the status semantics are assumed):
``pausing`` (the default) waits for restart/skip; ``fail`` reports the execution ``fail``
but still accepts restart/skip; ``fail_final`` reports ``fail`` and answers every
operation with AOM.31001418."""

CANCEL_DELAY_MS = 1000
FINISHED = frozenset({"success", "fail", "cancel", "approvalFailed"})


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
    parents: tuple[str, ...] | None = None
    """Nodes that must be done before this one starts; None: the node before it."""
    category: str = ""
    """Reported as the node's ``category`` (default: its kind)."""
    reports: str | None = None
    """Once started the node shows this raw status and waits forever (an unknown status,
    to test tolerance)."""


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
    """One execution; mutated only through its methods so caches stay correct.

    The workflow is a graph: a node starts when all its parents are done (succeeded or
    skipped), so branches run at the same time and each fails or pauses on its own. The
    execution is ``pausing`` while any branch waits, ``executing`` while only running
    nodes remain, ``success`` when every node is done.
    """

    __slots__ = (
        "_brief",
        "_detail_bytes",
        "attempts",
        "begin_ms",
        "cancel_at_ms",
        "children",
        "created_by",
        "done",
        "due",
        "end_ms",
        "execution_id",
        "failed_execution",
        "last_update_ms",
        "nodes",
        "parents",
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
        failed_execution: FailedExecution = "pausing",
    ) -> None:
        self.failed_execution = failed_execution
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
        self.cancel_at_ms: int | None = None
        self.runs: dict[str, NodeRun] = {}
        self.attempts: dict[str, int] = {}
        self.parents: dict[str, tuple[str, ...]] = node_parents(nodes)
        self.children: dict[str, tuple[str, ...]] = {
            n.id: tuple(c.id for c in nodes if n.id in self.parents[c.id]) for n in nodes
        }
        self.done: set[str] = set()
        """Nodes that succeeded or were skipped: their children may start."""
        self.due: dict[str, int] = {}
        """Running task nodes -> when they complete."""
        self._brief: dict[str, Any] | None = None
        self._detail_bytes: bytes | None = None
        self._start_ready(begin_ms)

    # -- reading ---------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def due_ms(self) -> int | None:
        return min(self.due.values()) if self.due else None

    def spec(self, node_id: str) -> NodeSpec | None:
        return next((n for n in self.nodes if n.id == node_id), None)

    def waiting(self) -> list[NodeSpec]:
        """Nodes waiting for an operation: failed (not skipped) or pausing."""
        out = []
        for node in self.nodes:
            run = self.runs.get(node.id)
            if run is not None and node.id not in self.done and run.status in ("fail", "pausing"):
                out.append(node)
        return out

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
        """Apply everything due up to ``now_ms``; True if anything changed.

        Branches keep running while another one waits, so due nodes complete whatever
        the execution's status (except once it is being cancelled)."""
        changed = False
        while True:
            if self.status == "canceling":
                if self.cancel_at_ms is not None and now_ms >= self.cancel_at_ms:
                    self._finish_cancel(self.cancel_at_ms)
                    changed = True
                break
            if self.finished or not self.due:
                break
            node_id, at_ms = min(self.due.items(), key=lambda kv: (kv[1], kv[0]))
            if now_ms < at_ms:
                break
            self._complete(node_id, at_ms)
            changed = True
        if changed:
            self._touch()
        return changed

    # -- operations (call advance(now) first) --------------------------------------------------

    def operate(self, action: str, node_id: str, now_ms: int) -> None:
        """restart / skip / continue ``node_id``; raises NotAllowed or UnknownNode."""
        node = self.spec(node_id)
        if node is None:
            raise UnknownNode(node_id)
        run = self.runs.get(node_id)
        waits = self.status == "pausing" or (
            self.status == "fail" and self.failed_execution == "fail"
        )
        if not waits or run is None or node_id in self.done:
            raise NotAllowed(f"execution is {self.status}; node {node_id} is not waiting")
        if action in ("restart", "skip"):
            if node.kind != "task" or run.status != "fail":
                raise NotAllowed(f"node {node_id} has not failed")
            if action == "restart":
                self._start_node(node, now_ms)
            else:
                run.output = {**run.output, "skipped": True}
                self.done.add(node_id)
                self._start_ready(now_ms)
        elif action == "continue":
            if node.kind != "pause" or run.status != "pausing":
                raise NotAllowed(f"node {node_id} is not a pausing pause node")
            run.status = "success"
            run.end_ms = now_ms
            run.output = {"continued": True}
            self.done.add(node_id)
            self._start_ready(now_ms)
        else:
            raise NotAllowed(f"unknown action {action}")
        self._settle_status(now_ms)
        self.last_update_ms = now_ms
        self._touch()

    def terminate(self, now_ms: int) -> None:
        if self.status not in ("executing", "pausing"):
            raise NotAllowed(f"execution is {self.status}")
        self.status = "canceling"
        self.cancel_at_ms = now_ms + CANCEL_DELAY_MS
        self.due.clear()
        self.last_update_ms = now_ms
        self._touch()

    # -- internals ---------------------------------------------------------------------------

    def _touch(self) -> None:
        self._brief = None
        self._detail_bytes = None

    def _start_ready(self, at_ms: int) -> None:
        """Start every node whose parents are all done and which has not started yet."""
        for node in self.nodes:
            if node.id in self.runs:
                continue
            if all(p in self.done for p in self.parents[node.id]):
                self._start_node(node, at_ms)
        self._settle_status(at_ms)

    def _settle_status(self, at_ms: int) -> None:
        statuses = {run.status for run in self.runs.values()}
        waiting = self.waiting()
        self.end_ms = None
        if "approvalFailed" in statuses:
            self.status = "approvalFailed"
            self.end_ms = at_ms
            self.due.clear()
        elif self.failed_execution != "pausing" and any(
            self.runs[n.id].status == "fail" for n in waiting
        ):
            self.status = "fail"  # the other reading of the API: a failure ends the run
            self.end_ms = at_ms  # running branches halt (``advance`` skips finished runs)
        elif waiting:
            self.status = "pausing"
        elif "waitApproval" in statuses:
            self.status = "waitApproval"
        elif self.due:
            self.status = "executing"
        elif len(self.done) == len(self.nodes):
            self.status = "success"
            self.end_ms = at_ms
        else:
            self.status = "executing"
        self.last_update_ms = at_ms

    def _start_node(self, node: NodeSpec, at_ms: int) -> None:
        attempt = self.attempts.get(node.id, 0) + 1
        self.attempts[node.id] = attempt
        fid = f"{self.execution_id[:8]}-{node.id}-{attempt}"
        if node.reports is not None:
            self.runs[node.id] = NodeRun(node.id, at_ms, attempt, node.reports, fid)
        elif node.kind == "pause":
            self.runs[node.id] = NodeRun(node.id, at_ms, attempt, "pausing", fid)
        elif node.kind == "approval":
            # approved in the console (never by aomd); a failing one is rejected after
            # its duration, which ends the execution ``approvalFailed``
            self.runs[node.id] = NodeRun(node.id, at_ms, attempt, "waitApproval", fid)
            if node.behaviour.kind != "succeed":
                self.due[node.id] = at_ms + node.duration_ms
        else:
            self.runs[node.id] = NodeRun(node.id, at_ms, attempt, "executing", fid)
            self.due[node.id] = at_ms + node.duration_ms
        self.last_update_ms = at_ms

    def _complete(self, node_id: str, at_ms: int) -> None:
        node = self.spec(node_id)
        assert node is not None
        run = self.runs[node_id]
        del self.due[node_id]
        run.end_ms = at_ms
        if node.kind == "approval":
            run.status = "approvalFailed"
            run.output = {"error": f"approval of {node.id} was rejected"}
            self._settle_status(at_ms)
        elif node.behaviour.fails(self.seed, self.execution_id, node.id, run.attempt):
            run.status = "fail"
            run.output = {
                "error": f"node {node.id} failed on attempt {run.attempt}",
                "attempt": run.attempt,
                "exit_code": 1,
            }
            self._settle_status(at_ms)
        else:
            run.status = "success"
            run.output = {"attempt": run.attempt, "exit_code": 0}
            self.done.add(node_id)
            self._start_ready(at_ms)

    def _finish_cancel(self, at_ms: int) -> None:
        for run in self.runs.values():
            if run.status in ("executing", "pausing"):
                run.status = "cancel"
                run.end_ms = at_ms
        self.status = "cancel"
        self.end_ms = at_ms
        self.cancel_at_ms = None
        self.last_update_ms = at_ms


def node_parents(nodes: tuple[NodeSpec, ...]) -> dict[str, tuple[str, ...]]:
    """Each node's parents: as declared, or (``parents`` None) the node before it in the
    list, so a workflow written as a list stays a sequence."""
    out: dict[str, tuple[str, ...]] = {}
    prev: str | None = None
    for node in nodes:
        out[node.id] = node.parents if node.parents is not None else ((prev,) if prev else ())
        prev = node.id
    return out


def graph_problem(nodes: tuple[NodeSpec, ...]) -> str | None:
    """Why ``nodes`` is not a runnable graph (duplicate id, unknown parent, cycle), or None."""
    ids = [n.id for n in nodes]
    if len(set(ids)) != len(ids):
        return f"node ids must be unique, got {ids}"
    parents = node_parents(nodes)
    for nid, ps in parents.items():
        unknown = [p for p in ps if p not in parents]
        if unknown:
            return f"node {nid!r}: unknown parents {unknown}; expected some of {ids}"
    done: set[str] = set()
    while len(done) < len(ids):
        ready = [n for n in ids if n not in done and all(p in done for p in parents[n])]
        if not ready:
            return f"nodes {sorted(set(ids) - done)} wait on each other (a cycle)"
        done.update(ready)
    return None
