"""``python -m daemon.emulator`` / ``aomd emulator``: serve the emulator as a process.

Prints exactly one line, ``listening on http://HOST:PORT``, once the socket accepts
connections, so a parent process (tests, the demo, benchmarks) can read the port when
``--port 0`` was asked for. SIGTERM/SIGINT stop it cleanly with exit status 0.
Credentials may come from the environment (``AOMD_EMULATOR_ACCESS_KEY``,
``AOMD_EMULATOR_SECRET_KEY``, ``AOMD_EMULATOR_TOKEN``) to keep them out of ``ps``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

import structlog

from daemon.emulator.emulator import Emulator
from daemon.kernel.errors import ConfigError

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aomd emulator",
        description="Run the AOM / DataArts emulator: the same paths, auth checks and error "
        "bodies as the cloud, workflows from a scenario, faults and a ledger under "
        "/_emulator/. Prints 'listening on http://HOST:PORT' when ready.",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    p.add_argument("--project-id", default="0" * 32, help="32-character project id")
    env = os.environ.get
    p.add_argument(
        "--access-key",
        default=env("AOMD_EMULATOR_ACCESS_KEY"),
        help="AK accepted for SDK-HMAC-SHA256 signatures (env AOMD_EMULATOR_ACCESS_KEY)",
    )
    p.add_argument(
        "--secret-key",
        default=env("AOMD_EMULATOR_SECRET_KEY"),
        help="SK that signatures are verified with (env AOMD_EMULATOR_SECRET_KEY)",
    )
    p.add_argument(
        "--token",
        default=env("AOMD_EMULATOR_TOKEN"),
        help="X-Auth-Token accepted (env AOMD_EMULATOR_TOKEN)",
    )
    p.add_argument("--scenario", metavar="FILE", help="YAML or JSON scenario file")
    p.add_argument("--speed", type=float, default=None, help="emulated seconds per real second")
    p.add_argument("--seed", type=int, default=None, help="overrides the scenario's seed")
    p.add_argument(
        "--ledger-limit",
        type=int,
        default=1_000_000,
        help="keep at most this many ledger entries (oldest dropped first)",
    )
    return p


async def serve(args: argparse.Namespace) -> int:
    emu = Emulator(
        project_id=args.project_id,
        access_key=args.access_key,
        secret_key=args.secret_key,
        token=args.token,
        speed=1.0,
        seed=args.seed or 0,
        ledger_limit=args.ledger_limit,
    )
    if args.scenario:
        emu.load_scenario(args.scenario)
    if args.seed is not None:  # the command line wins over the scenario file
        emu.set_seed(args.seed)
    if args.speed is not None:  # the command line wins over the scenario file
        emu.set_speed(args.speed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        url = await emu.start(host=args.host, port=args.port)
        print(f"listening on {url}", flush=True)
        await stop.wait()
    finally:
        await emu.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(list(argv) if argv is not None else None)
    if not structlog.is_configured():  # stdout carries only the listening line
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    try:
        return asyncio.run(serve(args))
    except (ConfigError, ValueError) as exc:
        print(f"emulator: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        print(f"emulator: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
