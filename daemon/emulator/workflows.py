"""Workflows and their executions (``Workflow``), and the registry of one project (``World``).

Only *active* executions are advanced; a finished one is dropped from ``active`` and
costs nothing afterwards. ``executions_bytes`` caches the ListWorkflowExecutions body per
workflow until one of its executions changes, so polling thousands of executions is a
dict lookup and a socket write. Cron fire times (``cron_heap``) and booked starts
(``start_queue``) sit in heaps so the ticker does O(log n) work per start, not a scan of
every workflow; bulk workflows for benchmarks are made by ``populate``.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from croniter import croniter

from daemon.emulator.cron_heap import CronHeap
from daemon.emulator.start_queue import StartQueue
from daemon.emulator.state import (
    Execution,
    FailedExecution,
    NodeSpec,
    graph_problem,
    node_parents,
)

WORKFLOW_TYPES = ("cron", "event", "manual")
_DUMPS = json.JSONEncoder(separators=(",", ":")).encode


class Workflow:
    """A workflow definition plus its executions."""

    __slots__ = (
        "_json",
        "_json_bytes",
        "_list_bytes",
        "active",
        "create_ms",
        "cron",
        "executions",
        "id",
        "name",
        "next_fire_ms",
        "nodes",
        "tags",
        "trigger_enabled",
        "trigger_id",
        "type",
        "update_ms",
    )

    def __init__(
        self,
        *,
        id: str,
        name: str,
        type: str,
        tags: Mapping[str, str],
        nodes: tuple[NodeSpec, ...],
        cron: str | None,
        trigger_enabled: bool,
        trigger_id: str,
        create_ms: int,
    ) -> None:
        self.id = id
        self.name = name
        self.type = type
        self.tags = dict(tags)
        self.nodes = nodes
        self.cron = cron
        self.trigger_enabled = trigger_enabled
        self.trigger_id = trigger_id
        self.create_ms = create_ms
        self.update_ms = create_ms
        self.executions: dict[str, Execution] = {}
        self.active: dict[str, Execution] = {}
        self.next_fire_ms: int | None = None
        self._json: dict[str, Any] | None = None
        self._json_bytes: bytes | None = None
        self._list_bytes: bytes | None = None

    @property
    def last_execution(self) -> Execution | None:
        return next(reversed(self.executions.values()), None)

    def refresh(self, now_ms: int) -> None:
        """Advance active executions to ``now_ms``; drop caches if anything changed."""
        if not self.active:
            return
        changed = False
        for eid, ex in list(self.active.items()):
            if ex.advance(now_ms):
                changed = True
            if ex.finished:
                del self.active[eid]
        if changed:
            self.invalidate()

    def invalidate(self) -> None:
        self._json = None
        self._json_bytes = None
        self._list_bytes = None

    def add_execution(self, ex: Execution) -> None:
        self.executions[ex.execution_id] = ex
        if not ex.finished:
            self.active[ex.execution_id] = ex
        self.invalidate()

    def executions_bytes(self) -> bytes:
        """ListWorkflowExecutions body, newest first (call ``refresh`` before)."""
        if self._list_bytes is None:
            briefs = [ex.brief() for ex in reversed(self.executions.values())]
            self._list_bytes = _DUMPS(briefs).encode()
        return self._list_bytes

    def json_bytes(self, project_id: str) -> bytes:
        """``to_json`` serialised, cached: ListWorkflow pages are joined from these."""
        if self._json_bytes is None:
            self._json_bytes = _DUMPS(self.to_json(project_id)).encode()
        return self._json_bytes

    def to_json(self, project_id: str) -> dict[str, Any]:
        if self._json is None:
            last = self.last_execution
            nodes = []
            parents = node_parents(self.nodes)
            for node in self.nodes:
                nodes.append(
                    {
                        "id": node.id,
                        "name": node.name,
                        "category": node.category or node.kind,
                        "task_name": node.name,
                        "ignore_error": False,
                        # assumed: several parents comma-separated (the field is a string)
                        "parent_node": ",".join(parents[node.id]) or None,
                    }
                )
            self._json = {
                "id": self.id,
                "workflow_id": self.id,
                "name": self.name,
                "type": self.type,
                "description": "",
                "tags": dict(self.tags),
                "status": last.status if last is not None else "waitExecute",
                "trigger_id": self.trigger_id,
                "trigger_status": "enable" if self.trigger_enabled else "disable",
                "nodes": nodes,
                "last_execution_id": last.execution_id if last is not None else None,
                "last_execution_start_time": last.begin_ms if last is not None else None,
                "last_execution_end_time": last.end_ms if last is not None else None,
                "create_time": self.create_ms,
                "update_time": self.update_ms,
                "project_id": project_id,
                "enterprise_project_id": "0",
            }
        return self._json


class World:
    """Every workflow of one emulated project, keyed by id (insertion order = list order)."""

    def __init__(self, *, project_id: str, seed: int = 0) -> None:
        self.project_id = project_id
        self.seed = seed
        self.rng = random.Random(seed)
        self.workflows: dict[str, Workflow] = {}
        self._cron = CronHeap()
        self._starts = StartQueue()
        self.failed_execution: FailedExecution = "pausing"
        """How executions with a failed node are reported (``state.FailedExecution``)."""
        self.list_omits: frozenset[str] = frozenset()
        """Workflow fields ListWorkflow leaves out (``Emulator.set_list_omits``): a backend
        that does not send ``last_execution_id`` or ``status``, for the watcher's
        fallback to polling."""
        self.dataarts_tasks: dict[str, str] = {}
        """task_id -> last action applied (``start`` / ``schedule`` / ``stop``)."""
        self.dataarts_catalog: dict[str, set[str]] | None = None
        """workspace -> task ids that exist. None: any workspace and task is accepted
        (nothing declared); once one is declared, others get the seed's 403 / 404."""

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def add_workflow(
        self,
        *,
        name: str,
        type: str = "manual",
        tags: Mapping[str, str] | None = None,
        nodes: Sequence[NodeSpec] = (),
        cron: str | None = None,
        trigger_enabled: bool = True,
        id: str | None = None,
        now_ms: int,
        create_ms: int | None = None,
    ) -> Workflow:
        if type not in WORKFLOW_TYPES:
            raise ValueError(f"workflow type must be one of {WORKFLOW_TYPES}, not {type!r}")
        if type == "cron":
            if not cron or not croniter.is_valid(cron):
                raise ValueError(
                    f"workflow {name!r}: cron workflows need a valid cron, got {cron!r}"
                )
        elif cron is not None:
            raise ValueError(f"workflow {name!r}: cron only applies to type cron")
        wid = id or self.new_id()
        if not 1 <= len(wid) <= 64:
            raise ValueError(f"workflow id must be 1-64 characters: {wid!r}")
        if wid in self.workflows:
            raise ValueError(f"duplicate workflow id {wid!r}")
        problem = graph_problem(tuple(nodes))
        if problem is not None:
            raise ValueError(f"workflow {name!r}: {problem}")
        wf = Workflow(
            id=wid,
            name=name,
            type=type,
            tags=tags or {},
            nodes=tuple(nodes),
            cron=cron,
            trigger_enabled=trigger_enabled,
            trigger_id=f"trigger-{wid}"[:64],
            create_ms=now_ms if create_ms is None else create_ms,
        )
        self.workflows[wid] = wf
        if cron is not None and trigger_enabled:
            self._schedule(wf, now_ms)
        return wf

    def start_execution(
        self, wf: Workflow, *, at_ms: int, created_by: str, execution_id: str | None = None
    ) -> Execution:
        ex = Execution(
            workflow_id=wf.id,
            execution_id=execution_id or self.new_id(),
            project_id=self.project_id,
            nodes=wf.nodes,
            begin_ms=at_ms,
            created_by=created_by,
            seed=self.seed,
            failed_execution=self.failed_execution,
        )
        wf.add_execution(ex)
        return ex

    def set_trigger(self, wf: Workflow, enabled: bool, now_ms: int) -> None:
        if wf.trigger_enabled == enabled:
            return
        wf.trigger_enabled = enabled
        wf.update_ms = now_ms
        wf.next_fire_ms = None
        if enabled and wf.cron is not None:
            self._schedule(wf, now_ms)
        wf.invalidate()

    def schedule_execution(self, wf: Workflow, at_ms: int) -> str:
        """Start an execution of ``wf`` at emulated ``at_ms`` (by ``start_due``); its id is
        fixed now so a benchmark knows what to watch for before it exists."""
        eid = self.new_id()
        self._starts.book(at_ms, wf.id, eid)
        return eid

    def start_due(self, now_ms: int) -> list[Execution]:
        """Create every scheduled execution whose start time is <= ``now_ms``."""
        started: list[Execution] = []
        while (due := self._starts.pop_due(now_ms)) is not None:
            at_ms, wid, eid = due
            wf = self.workflows.get(wid)
            if wf is not None:
                started.append(
                    self.start_execution(wf, at_ms=at_ms, created_by="schedule", execution_id=eid)
                )
        return started

    # -- cron ------------------------------------------------------------------------------

    def _schedule(self, wf: Workflow, after_ms: int) -> None:
        assert wf.cron is not None
        wf.next_fire_ms = self._cron.schedule(wf.id, wf.cron, after_ms)

    def fire_due(self, now_ms: int, limit: int = 10_000) -> list[Execution]:
        """Start an execution for every cron fire time <= ``now_ms`` of an enabled trigger."""
        fired: list[Execution] = []
        while len(fired) < limit and (due := self._cron.pop_due(now_ms)) is not None:
            at_ms, wid = due
            wf = self.workflows.get(wid)
            if wf is None or not wf.trigger_enabled or wf.next_fire_ms != at_ms:
                continue  # stale entry: disabled or rescheduled since
            fired.append(self.start_execution(wf, at_ms=at_ms, created_by="trigger"))
            self._schedule(wf, at_ms)
        return fired

    # -- listing ---------------------------------------------------------------------------

    def list_workflows(
        self,
        *,
        search: str | None,
        type: str | None,
        tags: Mapping[str, str] | None,
        status: str | None,
        sort_field: str | None,
        sort_type: str | None,
        now_ms: int,
    ) -> list[Workflow]:
        """Matching workflows in list order (paging is the caller's)."""
        needle = search.lower() if search else None
        out: list[Workflow] = []
        for wf in self.workflows.values():
            if type and wf.type != type:
                continue
            if needle and needle not in wf.name.lower() and needle != wf.id:
                continue
            if tags and any(wf.tags.get(k) != v for k, v in tags.items()):
                continue
            if status:
                wf.refresh(now_ms)
                last = wf.last_execution
                if (last.status if last else "waitExecute") != status:
                    continue
            out.append(wf)
        descending = (sort_type or "").lower() == "desc"
        if sort_field == "name":
            out.sort(key=lambda w: w.name, reverse=descending)
        elif sort_field in ("create_time", "update_time"):
            attr = "create_ms" if sort_field == "create_time" else "update_ms"
            out.sort(key=lambda w: int(getattr(w, attr)), reverse=descending)
        return out
