"""``Emulator``: the fake AOM/DataArts cloud, usable in-process and behind the CLI.

It owns the world (workflows, executions), the emulated clock, the faults, the ledger,
the aiohttp server and one ticker task that fires cron triggers. Python methods
(``add_workflow``, ``start_execution``, ``advance``...) let tests set up and drive state
without HTTP; the HTTP surface is what the code under test talks to.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from daemon.emulator.admin import add_admin_routes
from daemon.emulator.api import Api
from daemon.emulator.faults import Fault, FaultSet
from daemon.emulator.ledger import Ledger, LedgerEntry
from daemon.emulator.populate import Population, populate
from daemon.emulator.scenario import parse_node, read_scenario
from daemon.emulator.simclock import EmuClock, ms_to_datetime
from daemon.emulator.state import Execution, FailedExecution, NodeSpec
from daemon.emulator.verify import Credentials
from daemon.emulator.workflows import Workflow, World
from daemon.kernel.clock import Clock

log = structlog.get_logger("daemon.emulator")

TICK_SECONDS = 0.05
"""Real seconds between cron checks: at speed 60 a fire is late by at most 3 emulated s."""


class Emulator:
    """An AOM-compatible server with scripted workflows."""

    def __init__(
        self,
        *,
        project_id: str,
        access_key: str | None = None,
        secret_key: str | None = None,
        token: str | None = None,
        speed: float = 1.0,
        seed: int = 0,
        wall: Clock | None = None,
        start_time: datetime | None = None,
        ledger_limit: int | None = None,
        admin_token: str | None = None,
    ) -> None:
        if len(project_id) != 32:
            raise ValueError("project_id must be exactly 32 characters")
        self.project_id = project_id
        self.admin_token = admin_token
        """When set, ``/_emulator/...`` answers only requests with ``X-Admin-Token``."""
        self.seed = seed
        self.clock = EmuClock(speed=speed, wall=wall, start=start_time)
        self.world = World(project_id=project_id, seed=seed)
        self.faults = FaultSet(seed)
        self._ledger = Ledger(ledger_limit)
        self._creds = Credentials(access_key, secret_key, token)
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._url: str | None = None
        self.api = Api(
            world=self.world,
            clock=self.clock,
            ledger=self._ledger,
            faults=self.faults,
            creds=self._creds,
            closing=self._closing,
            before_request=self.tick,
        )

    def __repr__(self) -> str:
        return f"Emulator(project_id={self.project_id!r}, url={self._url!r})"

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("emulator not started")
        return self._url

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        add_admin_routes(app, self)
        app.router.add_route("*", "/{tail:.*}", self.api.handle)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 = ephemeral) and start the cron ticker; returns the URL."""
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        self._closing.clear()
        runner = web.AppRunner(
            self.make_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound = runner.addresses[0]
        self._url = f"http://{host}:{bound[1]}"
        self._ticker = asyncio.create_task(self._tick_forever(), name="emulator-ticker")
        return self._url

    async def stop(self) -> None:
        """Stop serving; hung requests are released. Safe to call twice."""
        self._closing.set()
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Emulator:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _tick_forever(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:  # keep firing crons; the traceback is logged for the test
                log.exception("emulator_tick_failed")
            await asyncio.sleep(TICK_SECONDS)

    # -- time ------------------------------------------------------------------------------

    def now(self) -> datetime:
        """Emulated now (aware UTC)."""
        return self.clock.now()

    def set_speed(self, speed: float) -> None:
        self.clock.set_speed(speed)

    def set_failed_execution(self, mode: FailedExecution) -> None:
        """How executions started from now on report a failed node: ``pausing`` (default),
        ``fail`` (ended, still restartable) or ``fail_final`` (ended, AOM.31001418)."""
        self.world.failed_execution = mode

    def set_list_omits(self, fields: Iterable[str]) -> None:
        """Leave these fields out of every ListWorkflow element (e.g. ``last_execution_id``,
        ``status``): a backend that does not send them, for the watcher's fallback."""
        self.world.list_omits = frozenset(fields)
        for wf in self.world.workflows.values():
            wf.invalidate()

    def set_seed(self, seed: int) -> None:
        """Seed node ``fail_probability`` draws and fault probabilities (ids keep theirs)."""
        self.seed = seed
        self.world.seed = seed
        self.faults.reseed(seed)

    def advance(self, seconds: float) -> None:
        """Jump emulated time forward, then fire due crons (tests drive time with this)."""
        self.clock.advance(seconds)
        self.tick()

    def tick(self) -> int:
        """Fire every due cron trigger and scheduled start now; returns how many executions
        started. Also run before each API request, so a read never misses a start that is
        already due but not yet noticed by the ticker."""
        now_ms = self.clock.now_ms()
        started = self.world.start_due(now_ms)
        self._record_internal(started, "START", "scheduled_start")
        fired = self.world.fire_due(now_ms)
        self._record_internal(fired, "CRON", "cron_fired")
        return len(started) + len(fired)

    # -- setup -----------------------------------------------------------------------------

    def _record_internal(self, executions: Sequence[Execution], method: str, kind: str) -> None:
        """Ledger entries for executions the emulator started itself (no request)."""
        for ex in executions:
            self._ledger.append(
                time=ms_to_datetime(ex.begin_ms),  # the due time, even if noticed later
                method=method,
                path=f"/_{method.lower()}/{ex.workflow_id}",
                query={},
                auth="none",
                status=None,
                request_id=f"{method.lower()}-{ex.execution_id}",
                change={
                    "kind": kind,
                    "workflow_id": ex.workflow_id,
                    "execution_id": ex.execution_id,
                },
            )

    def add_workflow(
        self,
        *,
        name: str,
        type: str = "manual",
        tags: Mapping[str, str] | None = None,
        nodes: Sequence[Mapping[str, Any] | NodeSpec] = (),
        cron: str | None = None,
        trigger_enabled: bool = True,
        id: str | None = None,
    ) -> str:
        """Add a workflow; ``nodes`` are scenario-style dicts or NodeSpec. Returns its id."""
        specs = [
            n if isinstance(n, NodeSpec) else parse_node(n, "add_workflow", f"nodes[{i}]")
            for i, n in enumerate(nodes)
        ]
        wf = self.world.add_workflow(
            name=name,
            type=type,
            tags=tags,
            nodes=specs,
            cron=cron,
            trigger_enabled=trigger_enabled,
            id=id,
            now_ms=self.clock.now_ms(),
        )
        return wf.id

    def start_execution(self, workflow_id: str, at: datetime | None = None) -> str:
        """Start an execution now, as ExecuteWorkflow would (not recorded in the ledger),
        or at emulated time ``at`` if that is in the future (then a ``scheduled_start``
        ledger entry marks the moment). Returns its execution id either way."""
        wf = self.world.workflows[workflow_id]
        now_ms = self.clock.now_ms()
        if at is not None:
            at_ms = int(at.timestamp() * 1000)
            if at_ms > now_ms:
                return self.world.schedule_execution(wf, at_ms)
        return self.world.start_execution(wf, at_ms=now_ms, created_by="emulator").execution_id

    def set_trigger(self, workflow_id: str, enabled: bool) -> None:
        """Enable/disable a trigger as UpdateWorkflowTriggerStatus would (not in the ledger)."""
        self.world.set_trigger(self.world.workflows[workflow_id], enabled, self.clock.now_ms())

    def load_scenario(self, source: Mapping[str, Any] | str | Path) -> list[str]:
        """Load workflows (and seed/speed) from a dict or YAML/JSON file; returns ids."""
        scenario = read_scenario(source)
        if scenario.speed is not None:
            self.set_speed(scenario.speed)
        if scenario.seed is not None:
            self.set_seed(scenario.seed)
        if scenario.failed_execution is not None:
            self.set_failed_execution(scenario.failed_execution)
        ids: list[str] = []
        for wdef in scenario.workflows:
            wid = self.add_workflow(
                name=wdef.name,
                type=wdef.type,
                tags=wdef.tags,
                nodes=wdef.nodes,
                cron=wdef.cron,
                trigger_enabled=wdef.trigger_enabled,
                id=wdef.id,
            )
            for _ in range(wdef.start):
                self.start_execution(wid)
            ids.append(wid)
        for workspace, tasks in (scenario.dataarts or {}).items():
            for task_id in tasks:
                self.add_dataarts_task(workspace, task_id)
        return ids

    def add_dataarts_task(self, workspace: str, task_id: str) -> None:
        """Declare a DataArts task; from then on unknown workspaces get 403 and unknown
        tasks 404, as seed 004 lists."""
        if self.world.dataarts_catalog is None:
            self.world.dataarts_catalog = {}
        self.world.dataarts_catalog.setdefault(workspace, set()).add(task_id)

    def populate(
        self,
        workflows: int = 2000,
        executions_per_workflow: int = 5,
        seed: int = 0,
        *,
        incidents: int = 0,
        within: float = 3600.0,
        pause_share: float = 0.5,
        fail_times: int | None = 1,
        quiet: bool = False,
        parallel_share: float = 0.0,
    ) -> Population:
        """Bulk-add workflows with executions (benchmarks); see ``populate.populate``.

        ``incidents`` workflows get one execution starting at a random emulated time within
        ``within`` seconds from now whose node ``work`` fails (``fail_times`` attempts,
        None = always) or node ``approve`` pauses (``pause_share`` of them); the returned
        ``Population.incidents`` lists each with the emulated instant it happens.
        """
        return populate(
            self.world,
            workflows=workflows,
            executions_per_workflow=executions_per_workflow,
            seed=seed,
            now_ms=self.clock.now_ms(),
            incidents=incidents,
            within_ms=int(within * 1000),
            pause_share=pause_share,
            fail_times=fail_times,
            quiet=quiet,
            parallel_share=parallel_share,
        )

    # -- faults ----------------------------------------------------------------------------

    def inject(self, *faults: Fault) -> None:
        """Arm faults for the following API requests (first matching fault wins)."""
        for fault in faults:
            self.faults.add(fault)

    def clear_faults(self) -> None:
        self.faults.clear()

    # -- inspection ------------------------------------------------------------------------

    @property
    def ledger(self) -> list[LedgerEntry]:
        """Every request received (admin excluded) and every cron fire, in order."""
        return self._ledger.entries

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest ledger entry (0 when empty)."""
        return self._ledger.last_seq

    def ledger_since(self, seq: int) -> list[LedgerEntry]:
        """Ledger entries with ``seq`` greater than the one given."""
        return self._ledger.since(seq)

    def changes(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The ``change`` of each ledger entry that has one, optionally of one kind."""
        return self._ledger.changes(kind)

    def workflow(self, workflow_id: str) -> Workflow:
        wf = self.world.workflows[workflow_id]
        wf.refresh(self.clock.now_ms())
        return wf

    def execution(self, workflow_id: str, execution_id: str) -> Execution:
        return self.workflow(workflow_id).executions[execution_id]

    def snapshot(self) -> dict[str, Any]:
        """JSON-able state of everything (admin GET /_emulator/state)."""
        now_ms = self.clock.now_ms()
        workflows = []
        for wf in self.world.workflows.values():
            wf.refresh(now_ms)
            item = dict(wf.to_json(self.project_id))
            item["cron"] = wf.cron
            item["next_fire_time"] = wf.next_fire_ms if wf.trigger_enabled else None
            item["executions"] = [ex.brief() for ex in reversed(wf.executions.values())]
            workflows.append(item)
        return {
            "now": self.clock.now().isoformat(),
            "now_ms": now_ms,
            "speed": self.clock.speed,
            "seed": self.seed,
            "workflows": workflows,
            "dataarts_tasks": dict(self.world.dataarts_tasks),
            "faults": self.faults.list(),
            "ledger_last_seq": self._ledger.last_seq,
        }
