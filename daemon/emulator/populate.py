"""Bulk workflows for benchmarks: thousands of workflows with past executions, and incidents.

An incident is an execution booked to start at a random emulated time whose node fails
or pauses at an instant known in advance, so a benchmark can measure how long aomd takes
to react. Everything is drawn from a seed, so two runs build the same world.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from daemon.emulator.simclock import ms_to_datetime
from daemon.emulator.state import Behaviour, Execution, NodeSpec
from daemon.emulator.workflows import WORKFLOW_TYPES, World

__all__ = ["Incident", "Population", "populate"]

IncidentKind = Literal["fail", "pause"]


def populate(
    world: World,
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
    parallel_share: float = 0.0,
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
    ``parallel_share`` of the incident workflows are parallel: two twin branches
    (``work``/``work-b`` or ``approve``/``approve-b``) stop at the same instant, one
    incident each. Everything is drawn from ``seed``.
    """
    if not 0 <= incidents <= workflows:
        raise ValueError("incidents must be within 0..workflows (one per workflow)")
    if incidents and executions_per_workflow < 1:
        raise ValueError("incidents need at least one execution per workflow")
    if not 0.0 <= pause_share <= 1.0:
        raise ValueError("pause_share must be within [0, 1]")
    if not 0.0 <= parallel_share <= 1.0:
        raise ValueError("parallel_share must be within [0, 1]")
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(workflows), incidents))
    n_pause = round(incidents * pause_share)
    kinds: list[IncidentKind] = ["pause" if j < n_pause else "fail" for j in range(incidents)]
    rng.shuffle(kinds)
    incident_kind = dict(zip(chosen, kinds, strict=True))
    parallel = set(rng.sample(chosen, round(incidents * parallel_share)))
    teams = ("ops", "db", "web", "batch", "sec")
    ids: list[str] = []
    planned: list[Incident] = []
    for i in range(workflows):
        incident = incident_kind.get(i)
        # An incident workflow is manual: a cron fire would start more executions that
        # fail or pause too, and the benchmark would see more incidents than announced.
        kind = WORKFLOW_TYPES[i % 3] if incident is None else "manual"
        if incident is not None:
            nodes = _incident_nodes(incident, fail_times, parallel=i in parallel)
        else:
            nodes = _bulk_nodes(rng, noisy=not quiet)
        wf = world.add_workflow(
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
            ex = world.start_execution(wf, at_ms=now_ms - age_ms, created_by="bulk")
            if quiet or incident is not None:
                _settle(ex, now_ms)
            ex.advance(now_ms)
            if ex.finished:
                wf.active.pop(ex.execution_id, None)
        if incident is not None:
            start_ms = now_ms + rng.randrange(max(within_ms, 1))
            eid = world.schedule_execution(wf, start_ms)
            stopping = [n for n in nodes if n.id.startswith(("work", "approve"))]
            for node in stopping:
                at_ms = start_ms + nodes[0].duration_ms
                if incident == "fail":
                    at_ms += node.duration_ms
                planned.append(
                    Incident(
                        workflow_id=wf.id,
                        execution_id=eid,
                        node_id=node.id,
                        kind=incident,
                        start_at=ms_to_datetime(start_ms),
                        at=ms_to_datetime(at_ms),
                    )
                )
        wf.invalidate()
        ids.append(wf.id)
    planned.sort(key=lambda inc: (inc.at, inc.workflow_id))
    return Population(workflow_ids=tuple(ids), incidents=tuple(planned))


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


def _incident_nodes(kind: str, fail_times: int | None, *, parallel: bool) -> tuple[NodeSpec, ...]:
    """prepare (2 s) -> the incident node(s) -> finish; ``work``/``approve`` fail or pause,
    and with ``parallel`` a twin branch (``-b``) beside it does the same at the same time."""
    ids = ("", "-b") if parallel else ("",)
    if kind == "pause":
        middle = [
            NodeSpec(id=f"approve{x}", name="approve", kind="pause", parents=("prepare",))
            for x in ids
        ]
    else:
        behaviour = Behaviour("fail") if fail_times is None else Behaviour("fail_times", fail_times)
        middle = [
            NodeSpec(
                id=f"work{x}",
                name="work",
                duration_ms=10_000,
                behaviour=behaviour,
                parents=("prepare",),
            )
            for x in ids
        ]
    return (
        NodeSpec(id="prepare", name="prepare", duration_ms=2000),
        *middle,
        NodeSpec(id="finish", name="finish", duration_ms=1000, parents=tuple(n.id for n in middle)),
    )


def _settle(ex: Execution, now_ms: int) -> None:
    """Play an operator on a past execution: skip each failure and continue each pause one
    emulated minute after it happened, as long as that is still in the past."""
    for _ in range(4 * len(ex.nodes) + 1):
        ex.advance(now_ms)
        waiting = ex.waiting() if ex.status == "pausing" else []
        if not waiting:
            return
        node = waiting[0]
        run = ex.runs[node.id]
        at_ms = (run.end_ms if run.end_ms is not None else run.begin_ms) + 60_000
        if at_ms > now_ms:
            return
        ex.operate("continue" if node.kind == "pause" else "skip", node.id, at_ms)


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
