"""Scenario files: the workflows, node behaviours, seed and speed an emulator starts with.

Text comes in here, so every problem is reported as a ConfigError naming the field
(``workflows[1].nodes[0].behaviour``) and what was expected. Format::

    seed: 7
    speed: 60
    failed_execution: pausing         # pausing | fail | fail_final (see state.FailedExecution)
    workflows:
      - id: wf-patch                  # optional
        name: patch-linux
        type: cron                    # cron | event | manual
        tags: {team: ops}
        cron: "*/10 * * * *"
        trigger: enable               # enable | disable
        nodes:
          - {id: precheck, kind: task, duration: 20, behaviour: succeed}
          - {id: patch, behaviour: {fail_times: 2}}
          - {id: approve, kind: pause}
          - {id: sign-off, kind: approval}   # waitApproval (behaviour fail: approvalFailed)
          - {id: odd, reports: suspended}    # shows an unknown status and waits
          - {id: reboot, behaviour: fail}
          - {id: flaky, behaviour: {fail_probability: 0.3, duration: 5}}
          # a graph: ``parents`` (default: the node before) starts branches together
          - {id: left, parents: [flaky]}
          - {id: right, parents: [flaky], category: script}
          - {id: join, parents: [left, right]}
        start: 2                      # executions started at load time
    dataarts:                         # optional: DataArts workspaces and their task ids;
      ws-main: ["1234567890"]         # once given, others get 403 (workspace) / 404 (task)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from daemon.emulator.state import Behaviour, FailedExecution, NodeSpec, graph_problem
from daemon.kernel.errors import ConfigError

DEFAULT_DURATION_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class WorkflowDef:
    id: str | None
    name: str
    type: str
    tags: dict[str, str]
    cron: str | None
    trigger_enabled: bool
    nodes: tuple[NodeSpec, ...]
    start: int


@dataclass(frozen=True, slots=True)
class Scenario:
    seed: int | None
    speed: float | None
    workflows: tuple[WorkflowDef, ...]
    dataarts: dict[str, tuple[str, ...]] | None = None
    failed_execution: FailedExecution | None = None


def read_scenario(source: Mapping[str, Any] | str | Path) -> Scenario:
    """Parse a scenario from a dict or a YAML/JSON file path."""
    where = "scenario"
    if isinstance(source, str | Path):
        path = Path(source)
        where = str(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{where}: cannot read scenario: {exc}", source=where) from exc
    else:
        data = source
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping at the top level", source=where)
    return _scenario(data, where)


def _fail(where: str, field: str, message: str) -> ConfigError:
    return ConfigError(f"{where}: {field}: {message}", source=where)


def _scenario(data: Mapping[str, Any], where: str) -> Scenario:
    _only(
        data, {"seed", "speed", "workflows", "dataarts", "failed_execution"}, where, "(top level)"
    )
    failed = data.get("failed_execution")
    if failed is not None and failed not in ("pausing", "fail", "fail_final"):
        raise _fail(where, "failed_execution", "expected pausing, fail or fail_final")
    seed = data.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise _fail(where, "seed", "expected an integer")
    speed = data.get("speed")
    if speed is not None and (not isinstance(speed, int | float) or speed < 0):
        raise _fail(where, "speed", "expected a number >= 0")
    raw = data.get("workflows") or []
    if not isinstance(raw, list):
        raise _fail(where, "workflows", "expected a list")
    wfs = tuple(_workflow(w, where, f"workflows[{i}]") for i, w in enumerate(raw))
    dataarts = _dataarts(data.get("dataarts"), where)
    return Scenario(seed, float(speed) if speed is not None else None, wfs, dataarts, failed)


def _dataarts(raw: Any, where: str) -> dict[str, tuple[str, ...]] | None:
    if raw is None:
        return None
    expected = "expected a mapping of workspace id -> list of task ids"
    if not isinstance(raw, Mapping):
        raise _fail(where, "dataarts", expected)
    out: dict[str, tuple[str, ...]] = {}
    for ws, tasks in raw.items():
        if not isinstance(tasks, list) or not all(isinstance(t, str | int) for t in tasks):
            raise _fail(where, f"dataarts.{ws}", expected)
        out[str(ws)] = tuple(str(t) for t in tasks)
    return out


def _only(data: Mapping[str, Any], allowed: set[str], where: str, field: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise _fail(where, field, f"unknown keys {unknown}; expected some of {sorted(allowed)}")


def _workflow(data: Any, where: str, field: str) -> WorkflowDef:
    if not isinstance(data, Mapping):
        raise _fail(where, field, "expected a mapping")
    _only(data, {"id", "name", "type", "tags", "cron", "trigger", "nodes", "start"}, where, field)
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise _fail(where, f"{field}.name", "expected a non-empty string")
    wtype = data.get("type", "manual")
    if wtype not in ("cron", "event", "manual"):
        raise _fail(where, f"{field}.type", "expected cron, event or manual")
    tags = data.get("tags") or {}
    if not isinstance(tags, Mapping):
        raise _fail(where, f"{field}.tags", "expected a mapping of strings")
    trigger = data.get("trigger", "enable")
    if trigger not in ("enable", "disable", True, False):
        raise _fail(where, f"{field}.trigger", "expected enable or disable")
    cron = data.get("cron")
    if (wtype == "cron") != (cron is not None):
        raise _fail(where, f"{field}.cron", "required for type cron and only for it")
    nodes_raw = data.get("nodes") or []
    if not isinstance(nodes_raw, list):
        raise _fail(where, f"{field}.nodes", "expected a list")
    nodes = tuple(parse_node(n, where, f"{field}.nodes[{i}]") for i, n in enumerate(nodes_raw))
    problem = graph_problem(nodes)
    if problem is not None:
        raise _fail(where, f"{field}.nodes", problem)
    start = data.get("start", 0)
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        raise _fail(where, f"{field}.start", "expected an integer >= 0")
    wid = data.get("id")
    if wid is not None and (not isinstance(wid, str) or not 1 <= len(wid) <= 64):
        raise _fail(where, f"{field}.id", "expected a string of 1-64 characters")
    return WorkflowDef(
        id=wid,
        name=name,
        type=wtype,
        tags={str(k): str(v) for k, v in tags.items()},
        cron=str(cron) if cron is not None else None,
        trigger_enabled=trigger in ("enable", True),
        nodes=nodes,
        start=start,
    )


def parse_node(data: Any, where: str, field: str) -> NodeSpec:
    if not isinstance(data, Mapping):
        raise _fail(where, field, "expected a mapping")
    _only(
        data,
        {"id", "name", "kind", "duration", "behaviour", "parents", "category", "reports"},
        where,
        field,
    )
    nid = data.get("id")
    if not isinstance(nid, str) or not 1 <= len(nid) <= 64:
        raise _fail(where, f"{field}.id", "expected a string of 1-64 characters")
    kind = data.get("kind", "task")
    raw = data.get("behaviour", "succeed")
    if raw == "pause":
        kind = "pause"
        raw = "succeed"
    if kind not in ("task", "pause", "approval"):
        raise _fail(where, f"{field}.kind", "expected task, pause or approval")
    duration = data.get("duration", DEFAULT_DURATION_SECONDS)
    behaviour, override = _behaviour(raw, where, f"{field}.behaviour")
    if override is not None:
        duration = override
    if not isinstance(duration, int | float) or isinstance(duration, bool) or duration < 0:
        raise _fail(where, f"{field}.duration", "expected seconds >= 0")
    parents = data.get("parents")
    if parents is not None and (
        not isinstance(parents, list) or not all(isinstance(p, str) and p for p in parents)
    ):
        raise _fail(where, f"{field}.parents", "expected a list of node ids ([] for a start node)")
    reports = data.get("reports")
    if reports is not None and (not isinstance(reports, str) or not reports):
        raise _fail(where, f"{field}.reports", "expected a status string")
    category = data.get("category", "")
    if not isinstance(category, str):
        raise _fail(where, f"{field}.category", "expected a string")
    return NodeSpec(
        id=nid,
        name=str(data.get("name", nid)),
        kind=kind,
        duration_ms=int(duration * 1000),
        behaviour=behaviour,
        parents=tuple(parents) if parents is not None else None,
        category=category,
        reports=reports,
    )


def _behaviour(raw: Any, where: str, field: str) -> tuple[Behaviour, float | None]:
    """A behaviour plus an optional duration given inside it (``{duration: D}``)."""
    if raw in ("succeed", None):
        return Behaviour("succeed"), None
    if raw == "fail":
        return Behaviour("fail"), None
    expected = "succeed | fail | pause | {fail_times: N} | {fail_probability: p} | {duration: D}"
    if not isinstance(raw, Mapping):
        raise _fail(where, field, f"expected {expected}")
    _only(raw, {"fail_times", "fail_probability", "duration"}, where, field)
    duration = raw.get("duration")
    if duration is not None and (not isinstance(duration, int | float) or duration < 0):
        raise _fail(where, f"{field}.duration", "expected seconds >= 0")
    if "fail_times" in raw and "fail_probability" in raw:
        raise _fail(where, field, "use either fail_times or fail_probability")
    if "fail_times" in raw:
        times = raw["fail_times"]
        if not isinstance(times, int) or isinstance(times, bool) or times < 0:
            raise _fail(where, f"{field}.fail_times", "expected an integer >= 0")
        return Behaviour("fail_times", times=times), duration
    if "fail_probability" in raw:
        p = raw["fail_probability"]
        if not isinstance(p, int | float) or not 0 <= p <= 1:
            raise _fail(where, f"{field}.fail_probability", "expected a number within [0, 1]")
        return Behaviour("fail_probability", probability=float(p)), duration
    return Behaviour("succeed"), duration
