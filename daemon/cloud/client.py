"""``AomClient``: the real ``CloudClient`` over aiohttp (one session per account).

Each call goes: rate limit -> auth headers -> one HTTP attempt -> classify. Reads loop
on temporary failures (``retry.py``); writes go out once unless the connection was never
made. Everything else lives in small modules: ``wire`` (JSON -> model), ``errors``
(status -> exception), ``auth`` (token / AK/SK), ``ratelimit``, ``retry``.

aiohttp itself resends an *idempotent* request (GET, PUT) once when the connection breaks
after it was sent; for the trigger PUT that would send a write twice, so writes use their
own session whose requests go out at most once (``write_once_trace``): a write either
reaches the server once or is reported as outcome-unknown, and the executor decides. Only
a write's documented success body proves it applied (``wire.operation_result`` and
friends); any other 2xx body is ``MalformedResponse``, resolved by reading state.

Observability without secrets: a failed call logs one ``api_call_failed`` event with
operation, status, error code, request id and attempt; every attempt bumps
``stats[(operation, status)]`` and calls ``on_call(operation, status, seconds)``.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Self
from urllib.parse import quote

import aiohttp
import structlog
from yarl import URL

from daemon.cloud import failures as errmap
from daemon.cloud import signer, wire
from daemon.cloud.auth import Auth
from daemon.cloud.port import ExecuteResult, WriteResult
from daemon.cloud.ratelimit import TokenBucket
from daemon.cloud.retry import NOT_SENT, TRANSPORT, ReadRetry, should_retry
from daemon.kernel.actions import DataArtsAction, OperationAction
from daemon.kernel.clock import SYSTEM_CLOCK
from daemon.kernel.errors import CloudError, OutcomeUnknown, TemporaryCloudError
from daemon.kernel.model import Execution, Workflow

log = structlog.get_logger("aomd.cloud")

DETAIL_CACHE_SIZE = 256
"""Execution details remembered per client: those of the executions being acted on."""

PARSE_CACHE_SIZE = 256
"""Bodies remembered per client. Why: the watcher re-polls the same executions, and a
finished execution's body never changes; re-using the frozen values parsed from the very
same bytes skips JSON decoding and model building (the largest client CPU cost). Since
the change scan (issue 14) only the fast lane is re-polled within minutes: 4,096 bodies
kept every workflow's last listing (~15 KB each, 300 MB for 20,000 workflows) for
polls an hour apart."""

PAGE_SIZE = 100
MAX_PAGES = 10_000
"""A guard against a server that never stops returning full pages."""

OnCall = Callable[[str, str, float], None]


_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]+")


def _seg(value: str) -> str:
    """One path segment as sent: everything but RFC 3986 unreserved is percent-encoded."""
    if _UNRESERVED.fullmatch(value):  # ids usually are; skips quote()'s byte loop
        return value
    return quote(value, safe="~")


def _query(pairs: list[tuple[str, str]]) -> str:
    return signer.canonical_query(pairs)


class WriteResent(aiohttp.ClientError):
    """aiohttp was about to send a write again on a new connection."""


def write_once_trace() -> aiohttp.TraceConfig:
    """Stops aiohttp's own resend of an idempotent request (PUT) whose connection broke.

    aiohttp retries a GET/PUT once when the connection fails after sending (RFC 9112
    9.3.1); for the trigger PUT that hides a write that was applied and whose reply was
    lost, and sends it twice. Every write must go out once and the executor decide what
    happens next, so the second connection of a request fails with ``WriteResent``
    (a transport error after sending: outcome unknown) before a byte of it is written.
    """

    async def start(_: object, ctx: Any, __: object) -> None:
        ctx.connections = 0

    async def connecting(_: object, ctx: Any, __: object) -> None:
        ctx.connections += 1
        if ctx.connections > 1:
            raise WriteResent("write not resent on a new connection; its outcome is unknown")

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(start)
    trace.on_connection_create_start.append(connecting)
    trace.on_connection_reuseconn.append(connecting)
    trace.freeze()
    return trace


class AomClient:
    """AOM workflows + DataArts task actions for one account (implements ``CloudClient``)."""

    def __init__(
        self,
        *,
        aom_endpoint: str,
        dataarts_endpoint: str,
        project_id: str,
        auth: Auth,
        dataarts_auth: Auth | None = None,
        name: str = "default",
        requests_per_second: float = 10.0,
        burst: int = 20,
        max_concurrency: int = 16,
        timeout_seconds: float = 10.0,
        read_retries: int = 4,
        backoff: ReadRetry | None = None,
        session: aiohttp.ClientSession | None = None,
        on_call: OnCall | None = None,
        monotonic: Callable[[], float] = SYSTEM_CLOCK.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        parse_cache_size: int = PARSE_CACHE_SIZE,
        refresh_auth: Callable[[], Auth | None] | None = None,
        enterprise_project_id: str | None = None,
    ) -> None:
        self.name = name
        self.project_id = project_id
        self._list_query = (
            _query([("x_enterprise_project_id", enterprise_project_id)])
            if enterprise_project_id
            else ""
        )
        """ListWorkflowExecutions is the one operation whose published query takes it."""
        self._aom = aom_endpoint.rstrip("/")
        self._dataarts = dataarts_endpoint.rstrip("/")
        self._auth = auth
        self._dataarts_auth = dataarts_auth or auth
        self._refresh_auth = refresh_auth
        """Returns new credentials after a 401 (token re-read from its file), else None."""
        self._limiter = TokenBucket(requests_per_second, burst, monotonic=monotonic, sleep=sleep)
        self._backoff = backoff or ReadRetry(retries=read_retries)
        self._timeout = aiohttp.ClientTimeout(
            total=timeout_seconds, sock_connect=min(timeout_seconds, 5.0)
        )
        self._max_concurrency = max_concurrency
        self._owns_session = session is None
        self._session = session
        self._write_session: aiohttp.ClientSession | None = None
        self._monotonic = monotonic
        self._sleep = sleep
        self._rand = rand
        self.on_call = on_call
        self._parsed: dict[tuple[str, str], tuple[bytes, Any]] = {}
        """(kind, workflow[/execution]) -> (latest body, its parsed value). Only the
        latest body can match the next poll; keyed by the body, every changed body of an
        active workflow was kept until the cache filled (thousands of stale bodies)."""
        self._details: dict[tuple[str, str], tuple[bytes, Any]] = {}
        """Like ``_parsed`` for execution details, bounded by ``DETAIL_CACHE_SIZE``."""
        self._pages: dict[tuple[str, str, int], tuple[bytes, list[Workflow], int | None]] = {}
        """(search, type, page) -> ListWorkflow page body and its workflows. Why: the
        watcher's change scan reads every page every fast interval and most pages come back
        byte for byte the same; parsing 20,000 workflows each time was the scan's CPU, and
        re-using the same frozen values keeps one copy of each in memory."""
        self._urls: dict[str, URL] = {}
        self._parse_cache_size = parse_cache_size
        self.stats: Counter[tuple[str, str]] = Counter()
        """Attempts per ``(operation, status)``; status is the HTTP code or an error kind."""
        prefix = f"/v1/{_seg(project_id)}/cms"
        self._list_path = f"{prefix}/workflow-list"
        self._wf_prefix = f"{prefix}/workflow/"
        self._v3_prefix = f"/v3/{_seg(project_id)}/metadata/tasks/"

    def __repr__(self) -> str:
        return f"AomClient(name={self.name!r}, endpoint={self._aom!r}, auth={self._auth.kind!r})"

    # -- lifecycle -------------------------------------------------------------------------

    def _http(self, *, write: bool = False) -> aiohttp.ClientSession:
        """The session for reads, or for writes: writes get their own pool whose requests
        go out at most once (``write_once_trace``), reads keep the cheaper untraced one."""
        if write and self._owns_session:
            ws = self._write_session
            if ws is None or ws.closed:
                ws = self._write_session = self._new_session(trace=True)
            return ws
        session = self._session
        if session is None or session.closed:
            session = self._session = self._new_session(trace=False)
            self._owns_session = True
        return session

    def _new_session(self, *, trace: bool) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_concurrency, limit_per_host=self._max_concurrency
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=True,
            raise_for_status=False,
            trace_configs=[write_once_trace()] if trace else None,
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        ws, self._write_session = self._write_session, None
        if ws is not None and not ws.closed:
            await ws.close()
        if session is not None and self._owns_session and not session.closed:
            await session.close()

    async def __aenter__(self) -> Self:
        self._http()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- operations ------------------------------------------------------------------------

    async def list_workflows(
        self, search: str | None = None, *, workflow_type: str | None = None
    ) -> list[Workflow]:
        """Every page of ListWorkflow (``page`` from 0, ``size`` 100)."""
        found: list[Workflow] = []
        seen: set[str] = set()
        for page in range(MAX_PAGES):
            params: dict[str, Any] = {"page": page, "size": PAGE_SIZE}
            if search is not None:
                params["search"] = search
            if workflow_type is not None:
                params["type"] = workflow_type
            body = json.dumps(params, separators=(",", ":")).encode()
            status, data, rid = await self._call(
                "list_workflows", "POST", self._aom, self._list_path, "", body, write=False
            )
            key = (search or "", workflow_type or "", page)
            cached = self._pages.get(key)
            if cached is not None and cached[0] == data:
                items, total = cached[1], cached[2]
            else:
                try:
                    items, total = wire.workflow_page(wire.loads(data))
                except wire.Malformed as exc:
                    raise self._malformed(exc, "list_workflows", status, rid) from None
                self._pages[key] = (data, items, total)
            for wf in items:  # a workflow created mid-walk can shift pages: keep the first
                if wf.id not in seen:
                    seen.add(wf.id)
                    found.append(wf)
            if len(items) < PAGE_SIZE or (total is not None and (page + 1) * PAGE_SIZE >= total):
                break
        for stale in [k for k in self._pages if k[:2] == key[:2] and k[2] > page]:
            del self._pages[stale]  # the list got shorter
        return found

    async def list_executions(self, workflow_id: str) -> list[Execution]:
        path = f"{self._wf_prefix}{_seg(workflow_id)}/executions"
        status, data, rid = await self._call(
            "list_executions", "GET", self._aom, path, self._list_query, b"", write=False
        )
        key = ("list", workflow_id)
        cached: tuple[Execution, ...] | None = self._cached(key, data)
        if cached is not None:
            return list(cached)
        try:
            found = wire.executions(wire.loads(data), workflow_id)
        except wire.Malformed as exc:
            raise self._malformed(exc, "list_executions", status, rid) from None
        self._remember(key, data, tuple(found))
        return found

    async def get_execution(self, workflow_id: str, execution_id: str) -> Execution:
        path = f"{self._wf_prefix}{_seg(workflow_id)}/executions/{_seg(execution_id)}/status"
        status, data, rid = await self._call(
            "get_execution", "GET", self._aom, path, "", b"", write=False
        )
        key = ("detail", f"{workflow_id}/{execution_id}")
        cached: Execution | None = self._cached(key, data)
        if cached is not None:
            return cached
        try:
            found = wire.execution(wire.loads(data), workflow_id)
        except wire.Malformed as exc:
            raise self._malformed(exc, "get_execution", status, rid) from None
        self._remember(key, data, found)
        return found

    def _cached(self, key: tuple[str, str], data: bytes) -> Any:
        entry = (self._details if key[0] == "detail" else self._parsed).get(key)
        return entry[1] if entry is not None and entry[0] == data else None

    def _remember(self, key: tuple[str, str], data: bytes, value: Any) -> None:
        parsed = self._parsed
        parsed.pop(key, None)  # the older body of the same list/detail can never match
        # Details are per execution and dead once it finishes; in one cache with the
        # lists they grew it to its cap within an hour of incidents (the soak's RSS climb)
        # and pushed out the lists that every poll reuses. They get a small share.
        limit = DETAIL_CACHE_SIZE if key[0] == "detail" else self._parse_cache_size
        if key[0] == "detail":
            parsed = self._details
            parsed.pop(key, None)
        if len(parsed) >= limit:
            if not parsed:
                return
            del parsed[next(iter(parsed))]  # oldest first: cheap FIFO is enough here
        parsed[key] = (data, value)

    async def operate(
        self, workflow_id: str, execution_id: str, action: OperationAction, node_id: str
    ) -> WriteResult:
        path = f"{self._wf_prefix}{_seg(workflow_id)}/executions/{_seg(execution_id)}/operation"
        query = _query([("action", action), ("node_id", node_id)])
        status, data, rid = await self._call(
            "operate", "POST", self._aom, path, query, b"", write=True
        )
        return self._written(wire.operation_result, "operate", status, data, rid)

    async def terminate(self, workflow_id: str, execution_id: str) -> WriteResult:
        path = f"{self._wf_prefix}{_seg(workflow_id)}/executions/{_seg(execution_id)}/terminate"
        status, data, rid = await self._call(
            "terminate", "POST", self._aom, path, "", b"", write=True
        )
        return self._written(wire.operation_result, "terminate", status, data, rid)

    async def set_trigger(self, workflow_id: str, enable: bool) -> WriteResult:
        """The documented success body ``{"success"}`` is not JSON (``wire.trigger_result``)."""
        path = f"{self._wf_prefix}{_seg(workflow_id)}/trigger/action"
        query = _query([("action", "enable" if enable else "disable")])
        status, data, rid = await self._call(
            "set_trigger", "PUT", self._aom, path, query, b"", write=True
        )
        return self._written(wire.trigger_result, "set_trigger", status, data, rid)

    async def execute_workflow(self, workflow_id: str) -> ExecuteResult:
        # ExecuteWorkflow (seed 002) documents no request body: send none.
        path = f"{self._wf_prefix}{_seg(workflow_id)}/executions"
        body = b""
        status, data, rid = await self._call(
            "execute_workflow", "POST", self._aom, path, "", body, write=True
        )
        try:
            return ExecuteResult(rid, wire.execution_id(wire.loads(data)))
        except wire.Malformed as exc:
            # The write happened (2xx) but we cannot tell which execution: observe, not resend.
            raise self._malformed(exc, "execute_workflow", status, rid) from None

    async def dataarts_task_action(
        self, task_id: str, action: DataArtsAction, workspace: str
    ) -> WriteResult:
        path = f"{self._v3_prefix}{_seg(task_id)}/action"
        query = _query([("action", action)])
        status, data, rid = await self._call(
            "dataarts_task_action",
            "POST",
            self._dataarts,
            path,
            query,
            b"",
            write=True,
            extra={"workspace": workspace},
            dataarts=True,
        )
        return self._written(wire.dataarts_result, "dataarts_task_action", status, data, rid)

    def _written(
        self,
        check: Callable[[bytes], None],
        operation: str,
        status: int,
        data: bytes,
        rid: str | None,
    ) -> WriteResult:
        """Only the documented success body proves a write applied; any other 2xx body
        raises ``MalformedResponse``, which the executor resolves by reading state."""
        try:
            check(data)
        except wire.Malformed as exc:
            raise self._malformed(exc, operation, status, rid) from None
        return WriteResult(rid, wire.loads_lenient(data))

    # -- the one HTTP path -----------------------------------------------------------------

    async def _call(
        self,
        operation: str,
        method: str,
        base: str,
        path: str,
        query: str,
        body: bytes,
        *,
        write: bool,
        extra: Mapping[str, str] | None = None,
        dataarts: bool = False,
    ) -> tuple[int, bytes, str | None]:
        """Send with the retry rule of reads/writes; return ``(status, body, request_id)``."""
        auth = self._dataarts_auth if dataarts else self._auth
        text = f"{base}{path}?{query}" if query else f"{base}{path}"
        url = self._urls.get(text)
        if url is None:  # parsing a URL costs more than signing; polls repeat the same ones
            url = URL(text, encoded=True)
            if not write and "/executions/" not in path:
                # only the per-workflow reads repeat; a write or an execution's own
                # path is used a few times and would only push those out
                if len(self._urls) >= PARSE_CACHE_SIZE:
                    del self._urls[next(iter(self._urls))]
                self._urls[text] = url
        session = self._http(write=write)
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            wait = self._limiter.take()
            if wait > 0:
                await self._sleep(wait)
            headers = auth.headers(method, path, query, body, extra)
            started = self._monotonic()
            sent = True
            cause = ""
            try:
                async with session.request(
                    method, url, headers=headers, data=body or None, allow_redirects=False
                ) as resp:
                    data = await resp.read()
                    status = resp.status
                    rid = resp.headers.get("X-Request-Id")
                    if 200 <= status < 300:
                        self._observe(operation, str(status), started)
                        return status, data, rid
                    code, msg = wire.error_fields(data)
                    error: CloudError = errmap.from_status(
                        operation=operation,
                        status=status,
                        error_code=code,
                        error_msg=msg,
                        request_id=rid,
                        retry_after_header=resp.headers.get("Retry-After"),
                    )
                    label = str(status)
            except TRANSPORT as exc:
                sent = not isinstance(exc, NOT_SENT)
                cause = type(exc).__name__
                error = errmap.transport(operation, exc)
                label = "transport"
            self._observe(operation, label, started)
            if label == "401" and not refreshed and self._refresh_auth is not None:
                refreshed = True  # once per call: a second 401 is a real AuthError
                fresh = self._refresh_auth()
                if fresh is not None:
                    self._auth = self._dataarts_auth = auth = fresh
                    self.stats[(operation, "auth_refreshed")] += 1
                    attempt -= 1  # a rejected request was not applied: resend, uncounted
                    continue
            if should_retry(
                error, attempt=attempt, retries=self._backoff.retries, write=write, sent=sent
            ):
                self.stats[(operation, "retry")] += 1
                delay = error.delay if isinstance(error, TemporaryCloudError) else None
                await self._sleep(self._backoff.delay(attempt, delay, self._rand))
                continue
            if write and sent and label == "transport":
                error = OutcomeUnknown(
                    f"{operation}: request may have been applied; reply lost ({cause})",
                    operation=operation,
                )
                self.stats[(operation, "outcome_unknown")] += 1
            self._log_failure(error, attempt)
            raise error

    def _observe(self, operation: str, status: str, started: float) -> None:
        self.stats[(operation, status)] += 1
        if self.on_call is not None:
            self.on_call(operation, status, self._monotonic() - started)

    def _malformed(
        self, exc: wire.Malformed, operation: str, status: int, rid: str | None
    ) -> CloudError:
        error = wire.malformed(exc, operation=operation, status=status, request_id=rid)
        self.stats[(operation, "malformed")] += 1
        self._log_failure(error, 1)
        return error

    def _log_failure(self, error: CloudError, attempt: int) -> None:
        log.warning(
            "api_call_failed",
            account=self.name,
            operation=error.operation,
            status=error.status,
            error_code=error.error_code,
            error_msg=error.error_msg,
            request_id=error.request_id,
            attempt=attempt,
            error=type(error).__name__,
        )
