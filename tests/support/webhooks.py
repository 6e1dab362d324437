"""A real HTTP receiver for the Notifier's webhooks."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web


class Webhook:
    """A real HTTP receiver on 127.0.0.1:0 for the Notifier; answers ``statuses`` in turn."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.received: list[dict[str, Any]] = []
        self.hits = 0
        self.delivered = asyncio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _post(self, request: web.Request) -> web.Response:
        self.hits += 1
        status = self.statuses.pop(0) if self.statuses else 200
        if status < 400:
            self.received.append(await request.json())
            self.delivered.set()
        return web.Response(status=status)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hook", self._post)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
