"""Frozen domain values shared by the client, the emulator and the pure core.

The client parses wire JSON into these once; ``decide`` and the reconcilers only ever
see them, never dicts or pydantic models. Unknown fields are kept in ``extra`` so a
newer API never loses data on the way through.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Status(enum.StrEnum):
    """Workflow / execution / node status vocabulary (published for workflows, assumed for executions and nodes). ``UNKNOWN`` catches the rest."""

    SUCCESS = "success"
    FAIL = "fail"
    EXECUTING = "executing"
    CANCEL = "cancel"
    WAIT_EXECUTE = "waitExecute"
    WAIT_APPROVAL = "waitApproval"
    APPROVAL_FAILED = "approvalFailed"
    PAUSING = "pausing"
    CANCELING = "canceling"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, raw: object) -> Status:
        """Map a wire value to a status; anything unrecognised is ``UNKNOWN``."""
        if isinstance(raw, str):
            try:
                return cls(raw)
            except ValueError:
                lowered = raw.lower()
                for member in cls:
                    if member.value.lower() == lowered:
                        return member
        return cls.UNKNOWN

    @property
    def finished(self) -> bool:
        return self in _FINISHED


_FINISHED = frozenset({Status.SUCCESS, Status.FAIL, Status.CANCEL, Status.APPROVAL_FAILED})


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeRun:
    """One entry of ``execution_result_list``: a node that has started."""

    node_id: str
    status: Status
    raw_status: str = ""
    begin_time: int | None = None
    """Epoch milliseconds."""
    end_time: int | None = None
    output: Mapping[str, Any] = field(default_factory=dict)
    function_execution_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    """An execution brief or detail (the same fields, detail lacks ``created_by``)."""

    workflow_id: str
    execution_id: str
    status: Status
    raw_status: str = ""
    begin_time: int | None = None
    end_time: int | None = None
    last_update_time: int | None = None
    created_by: str | None = None
    project_id: str | None = None
    nodes: tuple[NodeRun, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """A finished execution is never written to again."""
        return self.status.finished


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowNode:
    """A node of a workflow definition."""

    id: str
    name: str = ""
    category: str = ""
    task_name: str = ""
    ignore_error: bool = False
    parent_node: str | None = None
    """The node(s) this one runs after; assumed comma-separated when there are several."""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def parents(self) -> tuple[str, ...]:
        if not self.parent_node:
            return ()
        return tuple(p.strip() for p in self.parent_node.split(",") if p.strip())


@dataclass(frozen=True, slots=True, kw_only=True)
class Workflow:
    """A workflow as returned by ListWorkflow."""

    id: str
    name: str = ""
    type: str = ""
    """``cron``, ``event`` or ``manual``."""
    tags: Mapping[str, str] = field(default_factory=dict)
    status: str = ""
    trigger_id: str | None = None
    trigger_status: str | None = None
    """Assumed ``enable`` / ``disable`` (the values are not published); anything else is passed through."""
    nodes: tuple[WorkflowNode, ...] = ()
    last_execution_id: str | None = None
    enterprise_project_id: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_graph(self) -> bool:
        """Whether the definition says how nodes follow each other (``parent_node``);
        without it aomd cannot tell parallel branches from a sequence."""
        return any(n.parent_node for n in self.nodes)

    def children_of(self, node_id: str) -> frozenset[str]:
        return frozenset(n.id for n in self.nodes if node_id in n.parents)

    @property
    def trigger_enabled(self) -> bool | None:
        if self.trigger_status is None:
            return None
        value = self.trigger_status.lower()
        if value in {"enable", "enabled", "on", "true", "1"}:
            return True
        if value in {"disable", "disabled", "off", "false", "0"}:
            return False
        return None
