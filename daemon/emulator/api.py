"""The AOM / DataArts HTTP surface: routing, auth, validation, faults and the ledger.

One catch-all aiohttp handler does its own routing on the raw path so that path
parameters are split *before* percent-decoding (a ``%2F`` inside an id stays inside the
id), unknown routes get the gateway's JSON 404, and every response — errors, faults,
auth failures — goes through one place that stamps ``X-Request-Id`` and writes the ledger.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import structlog
from aiohttp import web

from daemon.emulator.faults import Fault, FaultSet
from daemon.emulator.ledger import AuthResult, Ledger
from daemon.emulator.simclock import EmuClock
from daemon.emulator.state import NotAllowed, UnknownNode
from daemon.emulator.verify import Credentials, authenticate
from daemon.emulator.workflows import Workflow, World
from daemon.kernel.actions import OPERATIONS

INVALID_PARAM = "AOM.31001302"
NOT_FOUND = "AOM.31001306"
NOT_ALLOWED = "AOM.31001418"
SERVER_ERROR = "AOM.31001305"
EXECUTION_SERVER_ERROR = "AOM.31001405"
SEED_STATUSES: dict[str, frozenset[int]] = {
    "trigger": frozenset({200, 400, 401, 500}),  # seed 000 UpdateWorkflowTriggerStatus
    "operation": frozenset({200, 401, 500}),  # seed 001 StartPausingWorkflowExecutions
    "execute": frozenset({200, 401, 404, 500}),  # seed 002 ExecuteWorkflow
    "terminate": frozenset({200, 400, 401, 404, 500}),  # seed 003 StopExecution
}
"""The status codes each published page lists; the emulator answers no other, because a
client tested against an invented 404 would be untested against the real answer."""
SEED_500_CODES = {
    "trigger": SERVER_ERROR,
    "operation": EXECUTION_SERVER_ERROR,
    "execute": EXECUTION_SERVER_ERROR,
    "terminate": EXECUTION_SERVER_ERROR,
}
MAX_CONTENT_TYPE = 32
MAX_TOKEN = 40960
DATAARTS_FORBIDDEN = "EMULATOR.403"
DATAARTS_NOT_FOUND = "EMULATOR.404"
DATAARTS_BAD_REQUEST = "EMULATOR.400"
"""Seed 004 lists 400/401/403/404 with ``{error_code, error_msg}`` but publishes no code:
these are marked as the emulator's own, so nobody mistakes them for the cloud's."""
THROTTLED = "APIGW.0308"
NO_ROUTE = "APIGW.0101"
TRIGGER_BODY = b'{"success"}'
"""Documented literally (not valid JSON); the SDK types this body as a string."""
RESULT_SUCCESS = b'{"result":"success"}'
DATAARTS_ACTIONS = ("start", "schedule", "stop")
HANG_POLL_SECONDS = 0.05

_DUMPS = json.JSONEncoder(separators=(",", ":")).encode
log = structlog.get_logger("daemon.emulator")


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    change: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, code: str, msg: str) -> Reply:
    body = {"error_code": code, "error_msg": msg, "http_code": status}
    return Reply(status, json.dumps(body).encode())


def dataarts_error(status: int, msg: str) -> Reply:
    code = {400: DATAARTS_BAD_REQUEST, 403: DATAARTS_FORBIDDEN, 404: DATAARTS_NOT_FOUND}[status]
    return Reply(status, json.dumps({"error_code": code, "error_msg": msg}).encode())


def conform(operation: str, reply: Reply) -> Reply:
    """Answer only what the seed of ``operation`` lists: another error becomes the listed
    status nearest in meaning (a trigger change's 404 is the seed's 400, an execute's 400
    its 404; an operation, whose seed lists no 4xx but 401, gets the seed's 500), and a
    500 carries the seed's code, except a refusal for the execution's state, which keeps
    AOM.31001418 (the API's published "not supported here"). The message is kept."""
    if reply.status < 300 or reply.status == 401:
        return reply
    allowed = SEED_STATUSES[operation]
    if reply.status in allowed and reply.status != 500:
        return reply
    try:
        body = json.loads(reply.body)
        msg = str(body.get("error_msg") or "error")
        code = body.get("error_code")
    except (ValueError, AttributeError):
        msg, code = "error", None
    if code == NOT_ALLOWED and reply.status == 400 and 400 not in allowed:
        # "does not support the current operation" keeps its published code (seed 003)
        # on the seed's only error status: a client must not take it for a passing 500
        return error(500, NOT_ALLOWED, msg)
    if reply.status == 404 and 400 in allowed:
        return error(400, INVALID_PARAM, msg)
    if reply.status == 400 and 404 in allowed:
        return error(404, NOT_FOUND, msg)
    return error(500, SEED_500_CODES[operation], msg)


def seeded_operation(method: str, raw_path: str) -> str | None:
    """Which published operation (seeds 000-003) a request is, if any."""
    segs = raw_path.split("/")[1:]
    if len(segs) < 6 or segs[0] != "v1" or segs[2:4] != ["cms", "workflow"]:
        return None
    tail = segs[5:]
    if method == "PUT" and tail == ["trigger", "action"]:
        return "trigger"
    if method == "POST" and tail == ["executions"]:
        return "execute"
    if method == "POST" and len(tail) == 3 and tail[0] == "executions":
        return tail[2] if tail[2] in ("operation", "terminate") else None
    return None


def mandatory_headers(headers: Any) -> str | None:
    """What seeds 000-003 mark mandatory: ``Content-Type`` (1-32 characters) and, when
    token auth is used, ``X-Auth-Token`` of 1-40960 characters."""
    content_type = headers.get("Content-Type")
    if not content_type or len(content_type) > MAX_CONTENT_TYPE:
        return "header Content-Type is required (1-32 characters, application/json)"
    token = headers.get("X-Auth-Token")
    if token is not None and not 1 <= len(token) <= MAX_TOKEN:
        return "header X-Auth-Token must be 1-40960 characters"
    return None


def parse_query(raw: str) -> list[tuple[str, str]]:
    """Percent-decoded ``(key, value)`` pairs from the raw query string, in order."""
    pairs: list[tuple[str, str]] = []
    for part in raw.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return pairs


def _length_ok(value: str, low: int, high: int) -> bool:
    return low <= len(value) <= high


class Api:
    """Answers every non-admin request."""

    def __init__(
        self,
        *,
        world: World,
        clock: EmuClock,
        ledger: Ledger,
        faults: FaultSet,
        creds: Credentials,
        closing: asyncio.Event,
        before_request: Callable[[], object] | None = None,
    ) -> None:
        self.world = world
        self.clock = clock
        self.ledger = ledger
        self.faults = faults
        self.creds = creds
        self.closing = closing
        self.before_request = before_request
        """Called before an authenticated request is served (the emulator's ``tick``)."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        rid = os.urandom(16).hex()  # uuid4().hex without the UUID object (hot path)
        method = request.method
        path = request.path
        pairs = parse_query(request.rel_url.raw_query_string)
        query = dict(pairs)
        fault = self.faults.match(method, path)
        auth: AuthResult = "none"

        def record(status: int | None, change: dict[str, Any] | None = None) -> None:
            self.ledger.append(
                time=self.clock.now(),
                method=method,
                path=path,
                query=query,
                auth=auth,
                status=status,
                request_id=rid,
                change=change,
                fault=fault.kind if fault is not None else None,
            )

        if fault is not None and not fault.serves_first:
            if fault.kind == "latency":
                await asyncio.sleep(fault.delay)  # then answer normally
            elif fault.kind in ("reset", "hang"):
                record(None)
                if fault.kind == "hang":
                    await self._wait_client_gone(request)
                return self._drop(request, rid)
            else:
                reply = self._fault_reply(fault)
                record(reply.status)
                return self._respond(reply, rid)

        body = await request.read()
        outcome = authenticate(
            self.creds,
            method=method,
            raw_path=request.rel_url.raw_path,
            query=pairs,
            headers=request.headers,
            body=body,
            wall_now=self.clock.wall_now(),
        )
        auth = outcome.result
        if not outcome.ok:
            assert outcome.error_code is not None
            reply = error(401, outcome.error_code, outcome.error_msg or "authentication failed")
        else:
            try:
                if self.before_request is not None:
                    self.before_request()
                reply = self.dispatch(
                    method, request.rel_url.raw_path, query, body, request.headers
                )
            except Exception as exc:  # a bug must surface as a 500 the test sees, not a hang
                log.exception("emulator_handler_failed", path=path)
                reply = error(500, SERVER_ERROR, f"emulator error: {type(exc).__name__}: {exc}")
        if fault is not None and fault.kind == "applied_then_lost":
            # the write happened, the answer never comes
            record(None, reply.change)
            return self._drop(request, rid)
        if fault is not None and fault.kind == "malformed" and reply.status < 300:
            # the write happened, the answer cannot be read
            bad = self._fault_reply(fault)
            record(bad.status, reply.change)
            return self._respond(bad, rid)
        record(reply.status, reply.change)
        return self._respond(reply, rid)

    # -- responses -------------------------------------------------------------------------

    @staticmethod
    def _respond(reply: Reply, rid: str) -> web.Response:
        headers = {"X-Request-Id": rid, "Content-Type": "application/json", **reply.headers}
        return web.Response(status=reply.status, body=reply.body, headers=headers)

    @staticmethod
    def _drop(request: web.Request, rid: str) -> web.Response:
        """Close the connection with no reply; the returned response is never written."""
        transport = request.transport
        if transport is not None:
            transport.abort()
        return web.Response(status=500, headers={"X-Request-Id": rid})

    async def _wait_client_gone(self, request: web.Request) -> None:
        while not self.closing.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            await asyncio.sleep(HANG_POLL_SECONDS)

    @staticmethod
    def _fault_reply(fault: Fault) -> Reply:
        if fault.kind == "throttle":
            reply = error(
                fault.status or 429,
                THROTTLED,
                "The throttling threshold has been reached: policy user over ratelimit",
            )
            after = fault.retry_after if fault.retry_after is not None else 1.0
            reply.headers["Retry-After"] = str(int(after)) if after == int(after) else str(after)
            return reply
        if fault.kind == "server_error":
            return error(fault.status or 500, SERVER_ERROR, "Internal server error (injected)")
        # malformed
        text = fault.body if fault.body is not None else '{"elements": [{"id": '
        return Reply(fault.status or 200, text.encode())

    # -- routing ---------------------------------------------------------------------------

    def dispatch(
        self, method: str, raw_path: str, query: dict[str, str], body: bytes, headers: Any
    ) -> Reply:
        operation = seeded_operation(method, raw_path)
        if operation is None:
            return self._route(method, raw_path, query, body, headers)
        bad = mandatory_headers(headers)
        if bad is not None:
            reply = error(400, INVALID_PARAM, bad)
        else:
            reply = self._route(method, raw_path, query, body, headers)
        return conform(operation, reply)

    def _route(
        self, method: str, raw_path: str, query: dict[str, str], body: bytes, headers: Any
    ) -> Reply:
        segs = [unquote(s) for s in raw_path.split("/")[1:]]
        if len(segs) < 3 or segs[0] not in ("v1", "v3"):
            return error(404, NO_ROUTE, "The API does not exist or has not been published")
        version, project_id, rest = segs[0], segs[1], segs[2:]
        if len(project_id) != 32:
            return error(400, INVALID_PARAM, "project_id must be 32 characters")
        if project_id != self.world.project_id:
            return error(401, "AOM.31009003", "Credentials are not valid for this project")
        now_ms = self.clock.now_ms()
        if version == "v3":
            if (
                method == "POST"
                and len(rest) == 4
                and rest[:2] == ["metadata", "tasks"]
                and rest[3] == "action"
            ):
                return self._dataarts(rest[2], query, headers)
            return error(404, NO_ROUTE, "The API does not exist or has not been published")
        if rest == ["cms", "workflow-list"] and method == "POST":
            return self._list_workflows(body, now_ms)
        if len(rest) < 4 or rest[:2] != ["cms", "workflow"]:
            return error(404, NO_ROUTE, "The API does not exist or has not been published")
        wid, tail = rest[2], rest[3:]
        route = (method, tail[0] if tail else "", len(tail))
        known = {
            ("POST", "executions", 1),
            ("GET", "executions", 1),
            ("GET", "executions", 3),
            ("POST", "executions", 3),
            ("PUT", "trigger", 2),
        }
        if route not in known:
            return error(404, NO_ROUTE, "The API does not exist or has not been published")
        if not _length_ok(wid, 1, 64):
            return error(400, INVALID_PARAM, "workflow_id must be 1-64 characters")
        if route == ("PUT", "trigger", 2):
            if tail[1] != "action":
                return error(404, NO_ROUTE, "The API does not exist or has not been published")
            return self._trigger(wid, query, now_ms)
        wf = self.world.workflows.get(wid)
        if len(tail) == 1:
            if wf is None:
                return error(404, NOT_FOUND, f"workflow {wid} does not exist")
            if method == "POST":
                return self._execute(wf, now_ms)
            wf.refresh(now_ms)
            return Reply(200, wf.executions_bytes())
        eid, verb = tail[1], tail[2]
        if not _length_ok(eid, 1, 64):
            return error(400, INVALID_PARAM, "execution_id must be 1-64 characters")
        if (method, verb) not in (("GET", "status"), ("POST", "operation"), ("POST", "terminate")):
            return error(404, NO_ROUTE, "The API does not exist or has not been published")
        if verb == "operation":
            bad = self._check_operation_params(query)
            if bad is not None:
                return bad
        if wf is None:
            return error(404, NOT_FOUND, f"workflow {wid} does not exist")
        ex = wf.executions.get(eid)
        if ex is None:
            return error(404, NOT_FOUND, f"execution {eid} does not exist")
        wf.refresh(now_ms)
        if verb == "status":
            return Reply(200, ex.detail_bytes())
        change: dict[str, Any] = {"kind": verb, "workflow_id": wid, "execution_id": eid}
        try:
            if verb == "operation":
                node_id, action = query["node_id"], query["action"]
                ex.operate(action, node_id, now_ms)
                change.update(node_id=node_id, action=action)
            else:
                ex.terminate(now_ms)
        except UnknownNode:
            return error(400, INVALID_PARAM, f"node {query.get('node_id')} is not in the workflow")
        except NotAllowed as exc:
            return error(
                400, NOT_ALLOWED, f"The task does not support the current operation: {exc}"
            )
        if not ex.finished:
            wf.active[eid] = ex
        wf.invalidate()
        change["status"] = ex.status  # the execution's state right after the change
        return Reply(200, RESULT_SUCCESS, change)

    @staticmethod
    def _check_operation_params(query: dict[str, str]) -> Reply | None:
        action = query.get("action", "")
        node_id = query.get("node_id", "")
        if not _length_ok(action, 1, 10) or action not in OPERATIONS:
            return error(400, INVALID_PARAM, "action must be restart, skip or continue")
        if not _length_ok(node_id, 1, 64):
            return error(400, INVALID_PARAM, "node_id must be 1-64 characters")
        return None

    # -- operations ------------------------------------------------------------------------

    def _list_workflows(self, body: bytes, now_ms: int) -> Reply:
        try:
            params = json.loads(body) if body else {}
        except ValueError:
            return error(400, INVALID_PARAM, "request body is not valid JSON")
        if not isinstance(params, dict):
            return error(400, INVALID_PARAM, "request body must be a JSON object")
        page, size = params.get("page", 0), params.get("size", 10)
        if page is None:
            page = 0
        if size is None:
            size = 10
        if not isinstance(page, int) or isinstance(page, bool) or page < 0:
            return error(400, INVALID_PARAM, "page must be an integer >= 0")
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 1000:
            return error(400, INVALID_PARAM, "size must be an integer within 1-1000")
        tags = params.get("tags")
        if tags is not None and not isinstance(tags, dict):
            return error(400, INVALID_PARAM, "tags must be an object")
        wtype = params.get("type")
        if wtype is not None and wtype not in ("cron", "event", "manual"):
            return error(400, INVALID_PARAM, "type must be cron, event or manual")
        found = self.world.list_workflows(
            search=params.get("search"),
            type=wtype,
            tags=tags,
            status=params.get("status"),
            sort_field=params.get("sort_field"),
            sort_type=params.get("sort_type"),
            now_ms=now_ms,
        )
        chunk = found[page * size : (page + 1) * size]
        for wf in chunk:
            wf.refresh(now_ms)
        pid = self.world.project_id
        omits = self.world.list_omits
        if omits:
            elements = b",".join(
                _DUMPS({k: v for k, v in wf.to_json(pid).items() if k not in omits}).encode()
                for wf in chunk
            )
        else:
            elements = b",".join(wf.json_bytes(pid) for wf in chunk)
        body = b'{"elements":[%s],"total_elements":%d}' % (elements, len(found))
        return Reply(200, body)

    def _execute(self, wf: Workflow, now_ms: int) -> Reply:
        ex = self.world.start_execution(wf, at_ms=now_ms, created_by="api")
        change = {"kind": "execute", "workflow_id": wf.id, "execution_id": ex.execution_id}
        body = json.dumps({"execution_id": ex.execution_id}).encode()
        return Reply(200, body, change)

    def _trigger(self, wid: str, query: dict[str, str], now_ms: int) -> Reply:
        action = query.get("action", "")
        if action not in ("enable", "disable"):
            return error(400, INVALID_PARAM, "action must be enable or disable")
        wf = self.world.workflows.get(wid)
        if wf is None:
            return error(404, NOT_FOUND, f"workflow {wid} does not exist")
        enabled = action == "enable"
        self.world.set_trigger(wf, enabled, now_ms)
        change = {"kind": "trigger", "workflow_id": wid, "enabled": enabled}
        return Reply(200, TRIGGER_BODY, change)

    def _dataarts(self, task_id: str, query: dict[str, str], headers: Any) -> Reply:
        """Seed 004: 400/401/403/404 with ``{error_code, error_msg}`` (no ``http_code``),
        and a 200 whose body it does not describe."""
        action = query.get("action", "")
        workspace = headers.get("workspace")
        if action not in DATAARTS_ACTIONS:  # values assumed (API.md); the seed names none
            return dataarts_error(400, "query action must be start, schedule or stop")
        catalog = self.world.dataarts_catalog
        if not workspace:
            return dataarts_error(403, "header workspace is missing: no workspace to act in")
        if catalog is not None:
            if workspace not in catalog:
                return dataarts_error(403, f"no access to workspace {workspace!r}")
            if task_id not in catalog[workspace]:
                return dataarts_error(404, f"task {task_id} does not exist in {workspace}")
        self.world.dataarts_tasks[task_id] = action
        change = {"kind": "dataarts", "task_id": task_id, "action": action, "workspace": workspace}
        return Reply(200, b"{}", change)
