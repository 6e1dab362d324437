"""Test-only memory tracing for soak runs: ``AOMD_TRACEMALLOC_DIR=DIR`` starts
``tracemalloc`` and makes SIGUSR2 dump a snapshot to ``DIR/snapshot-<n>.tracemalloc``.

Why a signal and files: the soak bench compares a snapshot taken after warm-up with one
taken at the end (``Snapshot.compare_to``) to name what grows, without the daemon
knowing anything about the bench. Off unless the variable is set (tracing costs memory
and CPU).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import tracemalloc
from pathlib import Path

import structlog

log = structlog.get_logger("aomd.memtrace")

ENV = "AOMD_TRACEMALLOC_DIR"
FRAMES = 8
"""Enough stack to tell which caller keeps the memory, not so much that tracing doubles it."""


def install_from_env() -> Path | None:
    """Start tracing and the SIGUSR2 dump when ``AOMD_TRACEMALLOC_DIR`` is set."""
    target = os.environ.get(ENV)
    if not target:
        return None
    folder = Path(target)
    folder.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(FRAMES)
    counter = itertools.count(1)

    def dump() -> None:
        path = folder / f"snapshot-{next(counter)}.tracemalloc"
        tracemalloc.take_snapshot().dump(str(path))
        log.info("tracemalloc_dumped", path=str(path))

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, dump)
    log.info("tracemalloc_started", dir=str(folder), frames=FRAMES)
    return folder
