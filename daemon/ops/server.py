"""The ops HTTP server: ``/healthz``, ``/readyz``, ``/metrics``.

Why its own small aiohttp app: probes must answer even when the engine is busy or
stuck (that is when they matter), so the handlers only read ``HealthState`` and the
metrics registry - no cloud call, no journal query, no lock shared with the engine.
Bound to 127.0.0.1 by default (settings.http.host); the pod spec sets 0.0.0.0.
"""

from __future__ import annotations

import json
import os
from types import TracebackType

import structlog
from aiohttp import web

from daemon.kernel.errors import ListenError
from daemon.ops.health import HealthState, Probe
from daemon.ops.metrics import Metrics

__all__ = ["HealthServer", "HealthState"]

log = structlog.get_logger("aomd.ops")


def _probe_response(probe: Probe) -> web.Response:
    return web.Response(
        status=200 if probe.ok else 503,
        text=json.dumps(probe.body, sort_keys=True),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


class HealthServer:
    """Serve probes and metrics; ``start()`` returns the bound port (``port=0`` is fine)."""

    def __init__(self, host: str, port: int, metrics: Metrics, health: HealthState) -> None:
        self.host = host
        self.port = port
        self.metrics = metrics
        self.health = health
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def _healthz(self, _request: web.Request) -> web.Response:
        return _probe_response(self.health.liveness())

    async def _readyz(self, _request: web.Request) -> web.Response:
        return _probe_response(self.health.readiness())

    async def _metrics(self, _request: web.Request) -> web.Response:
        body, content_type = self.metrics.render()
        resp = web.Response(body=body, headers={"Cache-Control": "no-store"})
        # prometheus' content type carries parameters (version, charset); set it raw
        resp.headers["Content-Type"] = content_type
        return resp

    async def start(self) -> int:
        """Bind and serve in the background of the running loop; return the port."""
        if self._runner is not None:
            raise RuntimeError("HealthServer already started")
        runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ListenError(
                f"cannot serve /healthz and /metrics on {self.host}:{self.port}: "
                f"{os.strerror(exc.errno).lower() if exc.errno else exc} (another aomd "
                "running?); set http.port "
                "(AOMD_HTTP__PORT) to a free port, 0 for any free port, or "
                "http.enabled = false"
            ) from None
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        port = self.port
        for addr in runner.addresses:
            if isinstance(addr, tuple) and len(addr) >= 2:
                port = int(addr[1])
                break
        self.bound_port = port
        log.info("ops_server_listening", host=self.host, port=port)
        return port

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> HealthServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
