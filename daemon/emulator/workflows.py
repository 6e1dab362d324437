"""Workflows, their executions and their cron triggers: the emulator's whole world.

Only *active* executions are advanced; a finished one is dropped from ``active`` and
costs nothing afterwards. ``executions_bytes`` caches the ListWorkflowExecutions body per
workflow until one of its executions changes, so polling thousands of executions is a
dict lookup and a socket write. Cron fire times sit in a heap so the ticker does O(log n)
work per fire, not a scan of every workflow.
"""

from __future__ import annotations

import heapq
import json
import random
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from croniter import croniter

from daemon.emulator.state import Behaviour, Execution, NodeSpec

WORKFLOW_TYPES = ("cron", "event", "manual")
IncidentKind = Literal["fail", "pause"]
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
            parent: str | None = None
            for node in self.nodes:
                nodes.append(
                    {
                        "id": node.id,
                        "name": node.name,
                        "category": node.kind,
                        "task_name": node.name,
                        "ignore_error": False,
                        "parent_node": parent,
                    }
                )
                parent = node.id
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
        self._cron_heap: list[tuple[int, str]] = []
        self._start_heap: list[tuple[int, int, str, str]] = []
        """(at_ms, sequence, workflow_id, execution_id) of executions due to start later."""
        self._start_seq = 0
        self.dataarts_tasks: dict[str, str] = {}
        """task_id -> last action applied (``start`` / ``schedule`` / ``stop``)."""

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
        ids = [n.id for n in nodes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"workflow {name!r}: duplicate node ids")
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
        """Start an execution of ``wf`` at emulated ``at_ms`` (fired by ``fire_due``); its
        id is fixed now so a benchmark knows what to watch for before it exists."""
        eid = self.new_id()
        self._start_seq += 1
        heapq.heappush(self._start_heap, (at_ms, self._start_seq, wf.id, eid))
        return eid

    @property
    def pending_starts(self) -> int:
        return len(self._start_heap)

    def start_due(self, now_ms: int) -> list[Execution]:
        """Create every scheduled execution whose start time is <= ``now_ms``."""
        started: list[Execution] = []
        heap = self._start_heap
        while heap and heap[0][0] <= now_ms:
            at_ms, _, wid, eid = heapq.heappop(heap)
            wf = self.workflows.get(wid)
            if wf is not None:
                started.append(
                    self.start_execution(wf, at_ms=at_ms, created_by="schedule", execution_id=eid)
                )
        return started

    # -- cron ------------------------------------------------------------------------------

    def _schedule(self, wf: Workflow, after_ms: int) -> None:
        assert wf.cron is not None
        start = datetime.fromtimestamp(after_ms / 1000.0, UTC)
        nxt = croniter(wf.cron, start).get_next(datetime)
        wf.next_fire_ms = int(nxt.timestamp() * 1000)
        heapq.heappush(self._cron_heap, (wf.next_fire_ms, wf.id))

    def fire_due(self, now_ms: int, limit: int = 10_000) -> list[Execution]:
        """Start an execution for every cron fire time <= ``now_ms`` of an enabled trigger."""
        fired: list[Execution] = []
        heap = self._cron_heap
        while heap and heap[0][0] <= now_ms and len(fired) < limit:
            at_ms, wid = heapq.heappop(heap)
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

    # -- bulk ------------------------------------------------------------------------------

    def populate(
        self,
        *,
        workflows: int,
        executions_per_workflow: int,
        seed: int,
        now_ms: int,
        incidents: int = 0,
        within_ms: int = 3_600_000,
        pause_share: float = 0.5,
        fail_times: int | None = 1,
        quiet: bool = False,
    ) -> Population:
        """Add ``workflows`` workflows with ``executions_per_workflow`` executions each.

        Without incidents every execution lies in the past (spread over the last hours, a
        few still running). ``incidents`` of the workflows instead get their newest
        execution scheduled at a random emulated time in ``[now, now + within_ms)`` with a
        node that fails (``fail_times`` attempts, None = always) or pauses at a known
        instant; ``Population.incidents`` says which and when, so a benchmark can measure
        how long aomd takes to react (incident workflows are ``manual``, so no cron adds
        more failing executions). ``quiet`` settles every past execution (failures
        skipped, pauses continued, in the past) so only the incidents need attention.
        Everything is drawn from ``seed``.
        """
        if not 0 <= incidents <= workflows:
            raise ValueError("incidents must be within 0..workflows (one per workflow)")
        if incidents and executions_per_workflow < 1:
            raise ValueError("incidents need at least one execution per workflow")
        if not 0.0 <= pause_share <= 1.0:
            raise ValueError("pause_share must be within [0, 1]")
        rng = random.Random(seed)
        chosen = sorted(rng.sample(range(workflows), incidents))
        n_pause = round(incidents * pause_share)
        kinds: list[IncidentKind] = ["pause" if j < n_pause else "fail" for j in range(incidents)]
        rng.shuffle(kinds)
        incident_kind = dict(zip(chosen, kinds, strict=True))
        teams = ("ops", "db", "web", "batch", "sec")
        ids: list[str] = []
        planned: list[Incident] = []
        for i in range(workflows):
            incident = incident_kind.get(i)
            # An incident workflow is manual: a cron fire would start more executions that
            # fail or pause too, and the benchmark would see more incidents than announced.
            kind = WORKFLOW_TYPES[i % 3] if incident is None else "manual"
            if incident is not None:
                nodes = _incident_nodes(incident, fail_times)
            else:
                nodes = _bulk_nodes(rng, noisy=not quiet)
            wf = self.add_workflow(
                name=f"bulk-{i:05d}",
                type=kind,
                tags={"team": teams[i % len(teams)], "bulk": "true"},
                nodes=nodes,
                cron="0 */6 * * *" if kind == "cron" else None,
                trigger_enabled=rng.random() < 0.7,
                id=f"bulk-{seed}-{i:05d}",
                now_ms=now_ms,
                create_ms=now_ms - 30 * 86_400_000 + i,
            )
            past = executions_per_workflow - (1 if incident is not None else 0)
            for k in range(past):
                # Spread over the past hours; without incidents the newest may still run.
                age_ms = (past - k) * 3_600_000 + rng.randrange(3_000_000)
                if incident is None and k == past - 1 and rng.random() < 0.1:
                    age_ms = rng.randrange(5_000)
                ex = self.start_execution(wf, at_ms=now_ms - age_ms, created_by="bulk")
                if quiet or incident is not None:
                    _settle(ex, now_ms)
                ex.advance(now_ms)
                if ex.finished:
                    wf.active.pop(ex.execution_id, None)
            if incident is not None:
                start_ms = now_ms + rng.randrange(max(within_ms, 1))
                eid = self.schedule_execution(wf, start_ms)
                node = nodes[1]
                at_ms = start_ms + nodes[0].duration_ms
                if incident == "fail":
                    at_ms += node.duration_ms
                planned.append(
                    Incident(
                        workflow_id=wf.id,
                        execution_id=eid,
                        node_id=node.id,
                        kind=incident,
                        start_at=_dt(start_ms),
                        at=_dt(at_ms),
                    )
                )
            wf.invalidate()
            ids.append(wf.id)
        planned.sort(key=lambda inc: (inc.at, inc.workflow_id))
        return Population(workflow_ids=tuple(ids), incidents=tuple(planned))

    def all_active(self) -> Iterable[Workflow]:
        return (wf for wf in self.workflows.values() if wf.active)


def _bulk_nodes(rng: random.Random, *, noisy: bool = True) -> tuple[NodeSpec, ...]:
    nodes = [NodeSpec(id="prepare", name="prepare", duration_ms=2000)]
    roll = rng.random()
    if noisy and roll < 0.15:
        nodes.append(
            NodeSpec(
                id="work",
                name="work",
                duration_ms=10_000,
                behaviour=Behaviour("fail_probability", probability=0.5),
            )
        )
    elif noisy and roll < 0.2:
        nodes.append(NodeSpec(id="approve", name="approve", kind="pause"))
    else:
        nodes.append(NodeSpec(id="work", name="work", duration_ms=10_000))
    nodes.append(NodeSpec(id="finish", name="finish", duration_ms=1000))
    return tuple(nodes)


def _incident_nodes(kind: str, fail_times: int | None) -> tuple[NodeSpec, ...]:
    """prepare (2 s) -> the incident node -> finish; node 1 is the one that fails/pauses."""
    if kind == "pause":
        middle = NodeSpec(id="approve", name="approve", kind="pause")
    else:
        behaviour = Behaviour("fail") if fail_times is None else Behaviour("fail_times", fail_times)
        middle = NodeSpec(id="work", name="work", duration_ms=10_000, behaviour=behaviour)
    return (
        NodeSpec(id="prepare", name="prepare", duration_ms=2000),
        middle,
        NodeSpec(id="finish", name="finish", duration_ms=1000),
    )


def _settle(ex: Execution, now_ms: int) -> None:
    """Play an operator on a past execution: skip each failure and continue each pause one
    emulated minute after it happened, as long as that is still in the past."""
    for _ in range(4 * len(ex.nodes) + 1):
        ex.advance(now_ms)
        node, run = ex.current, None
        if node is not None:
            run = ex.runs.get(node.id)
        if ex.status != "pausing" or node is None or run is None:
            return
        at_ms = (run.end_ms if run.end_ms is not None else run.begin_ms) + 60_000
        if at_ms > now_ms:
            return
        ex.operate("continue" if node.kind == "pause" else "skip", node.id, at_ms)


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, UTC)


@dataclass(frozen=True, slots=True)
class Incident:
    """An execution ``populate`` scheduled to fail or pause at a known emulated instant."""

    workflow_id: str
    execution_id: str
    node_id: str
    kind: IncidentKind
    start_at: datetime
    """Emulated time the execution starts."""
    at: datetime
    """Emulated time the node is ``fail`` (attempt 1 ends) or starts ``pausing``."""

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "execution_id": self.execution_id,
            "node_id": self.node_id,
            "kind": self.kind,
            "start_at": self.start_at.isoformat(),
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Population:
    """What ``populate`` created."""

    workflow_ids: tuple[str, ...]
    incidents: tuple[Incident, ...] = ()

    def __len__(self) -> int:
        return len(self.workflow_ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self.workflow_ids)

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow_ids": list(self.workflow_ids),
            "incidents": [inc.to_json() for inc in self.incidents],
        }
