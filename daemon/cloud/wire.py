"""Wire JSON -> ``daemon.kernel.model`` values, tolerant by design.

Why tolerant: much of the response shape is not published, only assumed. A newer cloud that
adds a field or a status must not break aomd, so unknown fields land in ``extra`` and an
unknown status becomes ``Status.UNKNOWN`` (logged once per raw value, so a flood of polls
does not flood the log). Only a body that is not the documented *shape* at all (not JSON,
an object where a list belongs, no id) raises ``MalformedResponse``.

Plain dict access and no pydantic: this runs on every poll (see ``bench/client.py``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

import structlog

from daemon.kernel.errors import MalformedResponse
from daemon.kernel.model import Execution, NodeRun, Status, Workflow, WorkflowNode

log = structlog.get_logger("aomd.cloud")
T = TypeVar("T")
_decode = json.JSONDecoder().decode
_EMPTY: Mapping[str, Any] = MappingProxyType({})
"""Shared read-only empty ``extra``/``output``: most values have none, and one allocation
less per value is measurable on the poll path. Compares equal to ``{}``."""

_STATUS_BY_RAW: dict[str, Status] = {s.value: s for s in Status if s is not Status.UNKNOWN}
_UNKNOWN_SEEN: set[str] = set()
"""Raw status strings already logged as unknown (process-wide: log once, not per poll)."""
UNKNOWN_STATUS_MEMORY = 256
"""At most this many remembered (and logged): the values come from the server, and one
that embeds a timestamp or an id would otherwise grow the set and the log for ever."""

_NODE_KEYS = frozenset(
    {"node_id", "status", "begin_time", "end_time", "output", "function_execution_id"}
)
_EXEC_KEYS = frozenset(
    {
        "workflow_id",
        "execution_id",
        "status",
        "begin_time",
        "end_time",
        "last_update_time",
        "created_by",
        "project_id",
        "execution_result_list",
    }
)
_WF_NODE_KEYS = frozenset({"id", "name", "category", "task_name", "ignore_error", "parent_node"})
_WF_KEYS = frozenset(
    {
        "id",
        "name",
        "type",
        "tags",
        "status",
        "trigger_id",
        "trigger_status",
        "nodes",
        "last_execution_id",
        "enterprise_project_id",
    }
)


class Malformed(ValueError):
    """Raised by the parsers below; the client turns it into ``MalformedResponse``."""


def status(raw: object) -> Status:
    """``Status`` for a wire value; an unseen unknown value is logged once."""
    if isinstance(raw, str):
        found = _STATUS_BY_RAW.get(raw)
        if found is not None:
            return found
    parsed = Status.parse(raw)
    if parsed is Status.UNKNOWN:
        key = repr(raw)[:128]
        if key not in _UNKNOWN_SEEN and len(_UNKNOWN_SEEN) < UNKNOWN_STATUS_MEMORY:
            _UNKNOWN_SEEN.add(key)
            log.warning("status_unknown", raw_status=str(raw)[:64])
            if len(_UNKNOWN_SEEN) == UNKNOWN_STATUS_MEMORY:
                log.warning("status_unknown_suppressed", remembered=UNKNOWN_STATUS_MEMORY)
    return parsed


def _int(value: object) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        # JSON allows 1e999 (inf) and Python's decoder NaN: int() of those raises
        # OverflowError/ValueError, which would escape as a crash instead of a value.
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _str(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _extra(data: Mapping[str, Any], known: frozenset[str]) -> Mapping[str, Any]:
    if len(data) <= len(known) and known.issuperset(data):
        return _EMPTY
    return {k: v for k, v in data.items() if k not in known}


def _object(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"{what} is {type(value).__name__}, expected an object")
    return value


def _builder(cls: type[T]) -> Callable[..., T]:
    """A positional constructor for a frozen slots dataclass that skips ``__init__``.

    Why: the frozen ``__init__`` goes through ``object.__setattr__`` per field and made
    model construction over half of the client's parse cost (bench/client.py). Setting
    the slot descriptors directly builds an equal value (``==``, ``repr``, hash) in about
    half the time. Arguments are every field, in declaration order.
    """
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]  # dataclass types only
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    body = ["    o = _new(_cls)"]
    for name in names:
        env[f"_set_{name}"] = cls.__dict__[name].__set__
        body.append(f"    _set_{name}(o, {name})")
    src = f"def build({', '.join(names)}):\n" + "\n".join(body) + "\n    return o\n"
    exec(src, env)  # the source is built from dataclass field names only
    built: Callable[..., T] = env["build"]
    return built


_node_run = _builder(NodeRun)
_execution = _builder(Execution)
_INT = int
_STR = str
_DICT = dict


def node_run(data: object) -> NodeRun:
    if type(data) is not _DICT:
        data = _object(data, "execution_result_list entry")
    d: Mapping[str, Any] = data
    get = d.get
    raw = get("status")
    st = _STATUS_BY_RAW.get(raw) if type(raw) is _STR else None
    if st is None:
        st = status(raw)
    node_id = get("node_id")
    begin = get("begin_time")
    end = get("end_time")
    output = get("output")
    fid = get("function_execution_id")
    return _node_run(
        node_id if type(node_id) is _STR else (_str(node_id) or ""),
        st,
        raw if type(raw) is _STR else "",
        begin if type(begin) is _INT else _int(begin),
        end if type(end) is _INT else _int(end),
        output if type(output) is _DICT else _EMPTY,
        fid if fid is None or type(fid) is _STR else _str(fid),
        _EMPTY if _NODE_KEYS.issuperset(d) else _extra(d, _NODE_KEYS),
    )


def execution(data: object, workflow_id: str | None = None) -> Execution:
    """One brief or detail; ``workflow_id`` fills in when the body omits it."""
    if type(data) is not _DICT:
        data = _object(data, "execution")
    d: Mapping[str, Any] = data
    get = d.get
    eid = get("execution_id")
    if not eid:
        raise Malformed("execution has no execution_id")
    raw = get("status")
    st = _STATUS_BY_RAW.get(raw) if type(raw) is _STR else None
    if st is None:
        st = status(raw)
    runs = get("execution_result_list") or ()
    if type(runs) is not list and not isinstance(runs, list | tuple):
        raise Malformed("execution_result_list is not a list")
    wid = get("workflow_id")
    begin = get("begin_time")
    end = get("end_time")
    last = get("last_update_time")
    created_by = get("created_by")
    project_id = get("project_id")
    return _execution(
        wid if type(wid) is _STR and wid else (_str(wid) or workflow_id or ""),
        eid if type(eid) is _STR else str(eid),
        st,
        raw if type(raw) is _STR else "",
        begin if type(begin) is _INT else _int(begin),
        end if type(end) is _INT else _int(end),
        last if type(last) is _INT else _int(last),
        created_by if created_by is None or type(created_by) is _STR else _str(created_by),
        project_id if project_id is None or type(project_id) is _STR else _str(project_id),
        tuple([node_run(r) for r in runs]),
        _EMPTY if _EXEC_KEYS.issuperset(d) else _extra(d, _EXEC_KEYS),
    )


def executions(data: object, workflow_id: str) -> list[Execution]:
    """ListWorkflowExecutions: a JSON array (tolerates ``{"executions": [...]}`` too)."""
    if isinstance(data, dict):
        for key in ("executions", "elements", "body"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if not isinstance(data, list):
        raise Malformed(f"execution list is {type(data).__name__}, expected an array")
    return [execution(item, workflow_id) for item in data]


def _parent_node(value: object) -> str | None:
    """A string as documented; a list (several parents) is tolerated and joined by commas,
    the form ``WorkflowNode.parents`` reads."""
    if isinstance(value, list):
        return ",".join(str(v) for v in value if v is not None) or None
    return _str(value)


def workflow_node(data: object) -> WorkflowNode:
    d = _object(data, "workflow node")
    return WorkflowNode(
        id=_str(d.get("id")) or "",
        name=_str(d.get("name")) or "",
        category=_str(d.get("category")) or "",
        task_name=_str(d.get("task_name")) or "",
        ignore_error=bool(d.get("ignore_error", False)),
        parent_node=_parent_node(d.get("parent_node")),
        extra=_extra(d, _WF_NODE_KEYS),
    )


def workflow(data: object) -> Workflow:
    d = _object(data, "workflow")
    wid = d.get("id") or d.get("workflow_id")
    if not wid:
        raise Malformed("workflow has no id")
    tags = d.get("tags")
    nodes = d.get("nodes") or ()
    if not isinstance(nodes, list | tuple):
        raise Malformed("workflow nodes is not a list")
    return Workflow(
        id=str(wid),
        name=_str(d.get("name")) or "",
        type=_str(d.get("type")) or "",
        tags={str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {},
        status=_str(d.get("status")) or "",
        trigger_id=_str(d.get("trigger_id")),
        trigger_status=_str(d.get("trigger_status")),
        nodes=tuple(workflow_node(n) for n in nodes),
        last_execution_id=_str(d.get("last_execution_id")),
        enterprise_project_id=_str(d.get("enterprise_project_id")),
        extra=_extra(d, _WF_KEYS),
    )


def workflow_page(data: object) -> tuple[list[Workflow], int | None]:
    """One ListWorkflow page: its workflows and ``total_elements`` (None if absent)."""
    d = _object(data, "workflow list")
    elements = d.get("elements")
    if elements is None:
        elements = []
    if not isinstance(elements, list):
        raise Malformed("elements is not a list")
    return [workflow(e) for e in elements], _int(d.get("total_elements"))


def execution_id(data: object) -> str:
    d = _object(data, "execute result")
    eid = d.get("execution_id")
    if not eid:
        raise Malformed("execute result has no execution_id")
    return str(eid)


def loads(body: bytes) -> Any:
    """``json.loads`` raising ``Malformed``."""
    try:
        try:
            text = body.decode()  # the API speaks UTF-8; skips json's encoding sniffing
        except UnicodeDecodeError:
            return json.loads(body)  # UTF-16/32 JSON is still JSON
        return _decode(text[1:] if text.startswith("\ufeff") else text)  # BOM, as json.loads
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise Malformed(f"body is not JSON: {exc.__class__.__name__}") from None


def loads_lenient(body: bytes) -> Any:
    """A write's reply for the record (``WriteResult.body``): the text if not JSON."""
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


def _success_result(data: object) -> bool:
    return isinstance(data, Mapping) and str(data.get("result", "")).lower() == "success"


def operation_result(body: bytes) -> None:
    """Operate / terminate: only the documented ``{"result": "success"}`` proves the write
    was applied. Anything else in a 2xx is unreadable: the write may or may not have
    happened, and the caller resolves it by reading state (never by trusting the 2xx)."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        raise Malformed("reply is not JSON") from None
    if not _success_result(data):
        raise Malformed('reply is not the documented {"result": "success"}')


TRIGGER_SUCCESS = b'{"success"}'
"""The trigger PUT's documented success body, literally (not valid JSON)."""


def trigger_result(body: bytes) -> None:
    """Trigger enable/disable: the documented literal ``{"success"}``, tolerantly also the
    JSON forms ``"success"`` and ``{"result": "success"}``. Anything else: unreadable."""
    text = body.strip()
    if text.replace(b" ", b"") == TRIGGER_SUCCESS:
        return
    try:
        data = json.loads(text) if text else None
    except ValueError:
        raise Malformed('reply is not the documented {"success"}') from None
    if data == "success" or _success_result(data):
        return
    raise Malformed('reply is not the documented {"success"}')


def dataarts_result(body: bytes) -> None:
    """DataArts task action: the seed documents a bare 200, so an empty body or a JSON
    object without an error code is success; a body that is not JSON is unreadable."""
    if not body.strip():
        return
    try:
        data = json.loads(body)
    except ValueError:
        raise Malformed("reply is not JSON") from None
    if not isinstance(data, Mapping) or data.get("error_code"):
        raise Malformed("reply is not a JSON object without an error code")


def error_fields(body: bytes) -> tuple[str | None, str | None]:
    """``(error_code, error_msg)`` from an error body; ``http_code`` may be str or int."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    code = data.get("error_code") or data.get("code")
    msg = data.get("error_msg") or data.get("message")
    text = _str(msg)
    return _str(code), text[:512] if text is not None else None


def malformed(
    exc: Malformed, *, operation: str, status: int, request_id: str | None
) -> MalformedResponse:
    """The error to raise for a 2xx body we cannot read (request id kept for the ticket)."""
    return MalformedResponse(
        f"{operation}: malformed response: {exc}",
        operation=operation,
        status=status,
        request_id=request_id,
    )
