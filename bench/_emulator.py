"""Start ``aomd emulator`` in its own process for a benchmark (so its CPU is not ours)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def start(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """Run ``python -m daemon.emulator --port 0 ARGS...``; return it and its URL once it
    prints ``listening on URL``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon.emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"emulator did not start: {line!r}")
    return proc, line.split()[2]


def stop(daemon: subprocess.Popen[Any] | None, emu: subprocess.Popen[Any]) -> None:
    """The daemon with SIGTERM (killed if it has not exited in 30 s), then the emulator
    (killed after 10 s): what a bench does on its way out, whatever happened."""
    if daemon is not None and daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
    emu.terminate()
    try:
        emu.wait(10)
    except subprocess.TimeoutExpired:
        emu.kill()
