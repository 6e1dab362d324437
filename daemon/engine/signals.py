"""SIGTERM/SIGINT stop the daemon (exit 0), SIGHUP reloads the policy.

Installed before the first await of start-up: a SIGHUP then would otherwise get the
default action and kill the process, and a SIGTERM is honoured once start-up is done.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable


def install_signal_handlers(*, stop: Callable[[str], None], reload: Callable[[], object]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig.name)
    loop.add_signal_handler(signal.SIGHUP, reload)
