"""A minimal systemd notify client (``sd_notify(3)``) with no dependency.

Why hand-rolled: the protocol is one datagram on an AF_UNIX socket named by
``NOTIFY_SOCKET``; a library would add a C build or an unmaintained package for
twenty lines. Every function is a no-op when ``NOTIFY_SOCKET`` is unset (running in a
terminal, under Kubernetes) and never raises: a failed notification must not stop the
daemon - systemd's own timeouts are the safety net.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Mapping

import structlog

from daemon.ops.logging import scrub_text

log = structlog.get_logger("aomd.ops")

ENV_SOCKET = "NOTIFY_SOCKET"
ENV_WATCHDOG_USEC = "WATCHDOG_USEC"
ENV_WATCHDOG_PID = "WATCHDOG_PID"


def _address(raw: str) -> str | None:
    if raw.startswith("@"):
        return "\0" + raw[1:]  # abstract namespace
    if raw.startswith("/"):
        return raw
    return None  # vsock and other schemes are not supported


class SdNotifier:
    """Sends notify messages to ``socket_path`` (``None``: every call is a no-op)."""

    def __init__(self, socket_path: str | None) -> None:
        self.socket_path = socket_path
        self._address = _address(socket_path) if socket_path else None
        self._warned = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SdNotifier:
        env = os.environ if environ is None else environ
        return cls(env.get(ENV_SOCKET) or None)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, message: str) -> bool:
        """Send one raw message (``KEY=value`` lines); True when it was sent."""
        if self._address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.sendto(message.encode("utf-8"), self._address)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("sd_notify_failed", error=exc.strerror or str(exc))
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        msg = "READY=1"
        if status:
            msg += "\nSTATUS=" + _one_line(status)
        return self.notify(msg)

    def status(self, text: str) -> bool:
        return self.notify("STATUS=" + _one_line(text))

    def stopping(self, status: str | None = None) -> bool:
        msg = "STOPPING=1"
        if status:
            msg += "\nSTATUS=" + _one_line(status)
        return self.notify(msg)

    def reloading(self) -> bool:
        return self.notify("RELOADING=1")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")


def _one_line(text: str) -> str:
    return scrub_text(text).replace("\n", " ")


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Half of ``WATCHDOG_USEC`` in seconds, or ``None`` when no watchdog is asked for
    (unset, invalid, or meant for another process via ``WATCHDOG_PID``)."""
    env = os.environ if environ is None else environ
    raw = env.get(ENV_WATCHDOG_USEC)
    if not raw:
        return None
    pid = env.get(ENV_WATCHDOG_PID)
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(raw)
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000


# -- module-level convenience: read the environment at call time -------------------
def ready(status: str | None = None) -> bool:
    return SdNotifier.from_env().ready(status)


def status(text: str) -> bool:
    return SdNotifier.from_env().status(text)


def stopping(status: str | None = None) -> bool:
    return SdNotifier.from_env().stopping(status)


def watchdog() -> bool:
    return SdNotifier.from_env().watchdog()


async def watchdog_loop(
    healthy: Callable[[], bool],
    *,
    interval: float | None = None,
    notifier: SdNotifier | None = None,
) -> None:
    """Ping ``WATCHDOG=1`` every ``interval`` (default: ``WATCHDOG_USEC``/2) while
    ``healthy()`` holds; returns at once when no watchdog is configured.

    Why gate on ``healthy``: a watchdog fed by a timer alone only proves the event loop
    runs; skipping pings while a loop is stuck lets systemd restart a hung daemon.
    """
    period = interval if interval is not None else watchdog_interval()
    sd = notifier if notifier is not None else SdNotifier.from_env()
    if period is None or not sd.enabled:
        return
    was_healthy = True
    while True:
        ok = False
        try:
            ok = healthy()
        except Exception:
            log.exception("watchdog_health_check_failed")
        if ok:
            sd.watchdog()
        elif was_healthy:
            log.warning("watchdog_ping_withheld", reason="unhealthy")
        was_healthy = ok
        await asyncio.sleep(period)
