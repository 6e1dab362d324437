"""Admin HTTP under ``/_emulator/`` (not in the ledger): drive and inspect the emulator
from another process — the CLI-run emulator has no Python handle. Open by default (it
binds 127.0.0.1); with ``admin_token`` set every admin request needs the header
``X-Admin-Token``, so an emulator on a shared host cannot be steered by anyone who can
reach its port.

GET ledger?since=N -> {"entries": [...], "last_seq": N}; GET state; GET/POST/DELETE faults
(POST takes one fault object or a list); POST speed {"speed": N}; POST advance
{"seconds": N}; POST scenario (a scenario as JSON) -> {"workflow_ids": [...]};
POST populate {"workflows", "executions_per_workflow", "seed", "incidents", "within",
"pause_share", "fail_times", "quiet", "parallel_share"} -> {"workflow_ids": [...], "incidents": [...]};
POST executions {"workflow_id", "at": ISO time or null} -> {"execution_id"}.
Every admin response carries an ``X-Request-Id`` too.
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from daemon.emulator.faults import Fault
from daemon.kernel.errors import ConfigError

if TYPE_CHECKING:
    from daemon.emulator.emulator import Emulator

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


POPULATE_FIELDS = frozenset(
    {
        "workflows",
        "parallel_share",
        "executions_per_workflow",
        "seed",
        "incidents",
        "within",
        "pause_share",
        "fail_times",
        "quiet",
    }
)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(data).encode(),
        content_type="application/json",
        headers={"X-Request-Id": uuid.uuid4().hex},
    )


def _bad(message: str) -> web.Response:
    return _json({"error_code": "EMU.400", "error_msg": message}, 400)


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    return json.loads(raw) if raw else None


def add_admin_routes(app: web.Application, emu: Emulator) -> None:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_emulator/") and emu.admin_token is not None:
            given = request.headers.get("X-Admin-Token", "")
            if not hmac.compare_digest(given.encode(), emu.admin_token.encode()):
                return _json(
                    {
                        "error_code": "EMU.401",
                        "error_msg": "admin API: missing or wrong X-Admin-Token header",
                    },
                    401,
                )
        return await handler(request)

    app.middlewares.append(guard)

    async def ledger(request: web.Request) -> web.Response:
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            return _bad("since must be an integer")
        entries = emu.ledger_since(since)
        return _json({"entries": [e.to_json() for e in entries], "last_seq": emu.last_seq})

    async def state(request: web.Request) -> web.Response:
        return _json(emu.snapshot())

    async def faults_get(request: web.Request) -> web.Response:
        return _json({"faults": emu.faults.list()})

    async def faults_post(request: web.Request) -> web.Response:
        try:
            data = await _body(request)
            items = data if isinstance(data, list) else [data]
            parsed = [Fault.from_json(item) for item in items]
        except (ValueError, TypeError) as exc:
            return _bad(f"invalid fault: {exc}")
        for fault in parsed:
            emu.faults.add(fault)
        return _json({"faults": emu.faults.list()})

    async def faults_delete(request: web.Request) -> web.Response:
        emu.faults.clear()
        return _json({"faults": []})

    async def speed(request: web.Request) -> web.Response:
        try:
            data = await _body(request)
            emu.set_speed(float(data["speed"]))
        except (ValueError, TypeError, KeyError) as exc:
            return _bad(f"expected {{'speed': N >= 0}}: {exc}")
        return _json({"speed": emu.clock.speed, "now": emu.now().isoformat()})

    async def advance(request: web.Request) -> web.Response:
        try:
            data = await _body(request)
            fired_before = len(emu.changes("cron_fired"))
            emu.advance(float(data["seconds"]))
        except (ValueError, TypeError, KeyError) as exc:
            return _bad(f"expected {{'seconds': N >= 0}}: {exc}")
        fired = len(emu.changes("cron_fired")) - fired_before
        return _json({"now": emu.now().isoformat(), "cron_fired": fired})

    async def scenario(request: web.Request) -> web.Response:
        try:
            data = await _body(request)
            ids = emu.load_scenario(data)
        except (ValueError, ConfigError) as exc:
            return _bad(str(exc))
        return _json({"workflow_ids": ids})

    async def populate(request: web.Request) -> web.Response:
        try:
            data = await _body(request) or {}
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            unknown = set(data) - POPULATE_FIELDS
            if unknown:
                raise ValueError(f"unknown fields {sorted(unknown)}")
            population = emu.populate(**data)
        except (ValueError, TypeError) as exc:
            return _bad(f"invalid populate request: {exc}")
        return _json(population.to_json())

    async def execution(request: web.Request) -> web.Response:
        try:
            data = await _body(request)
            wid = str(data["workflow_id"])
            at = data.get("at")
            when = datetime.fromisoformat(at) if at else None
            if when is not None and when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            if wid not in emu.world.workflows:
                return _json({"error_code": "EMU.404", "error_msg": f"no workflow {wid}"}, 404)
            eid = emu.start_execution(wid, at=when)
        except (ValueError, TypeError, KeyError) as exc:
            return _bad(f"expected {{'workflow_id': ID, 'at': ISO time or null}}: {exc}")
        return _json({"execution_id": eid})

    app.router.add_get("/_emulator/ledger", ledger)
    app.router.add_get("/_emulator/state", state)
    app.router.add_get("/_emulator/faults", faults_get)
    app.router.add_post("/_emulator/faults", faults_post)
    app.router.add_delete("/_emulator/faults", faults_delete)
    app.router.add_post("/_emulator/speed", speed)
    app.router.add_post("/_emulator/advance", advance)
    app.router.add_post("/_emulator/scenario", scenario)
    app.router.add_post("/_emulator/populate", populate)
    app.router.add_post("/_emulator/executions", execution)
