"""``python -m daemon.emulator`` / ``aomd emulator``: serve the emulator as a process.

Prints exactly one line, ``listening on http://HOST:PORT (clock: ...)``, once the socket
accepts connections, so a parent process (tests, the demo, benchmarks) can read the port
when ``--port 0`` was asked for (the URL is the third word); the clock note says the
speed, because a scenario's ``speed: 60`` silently made a real-time daemon's delays and
calendars disagree with the emulator. SIGTERM/SIGINT stop it cleanly with exit status 0.
Credentials may come from the environment (``AOMD_EMULATOR_ACCESS_KEY``,
``AOMD_EMULATOR_SECRET_KEY``, ``AOMD_EMULATOR_TOKEN``) to keep them out of ``ps``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tomllib
from pathlib import Path

import structlog

from daemon.emulator.emulator import Emulator
from daemon.kernel.errors import ConfigError

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_CONFIG = 2
DEFAULT_PROJECT_ID = "0" * 32
SECRET_FLAGS = (
    ("--access-key", "AOMD_EMULATOR_ACCESS_KEY", "AK accepted for SDK-HMAC-SHA256 signatures"),
    ("--secret-key", "AOMD_EMULATOR_SECRET_KEY", "SK that signatures are verified with"),
    ("--token", "AOMD_EMULATOR_TOKEN", "X-Auth-Token accepted"),
    (
        "--admin-token",
        "AOMD_EMULATOR_ADMIN_TOKEN",
        "when given, /_emulator/ admin requests need the header X-Admin-Token with this value; "
        "unset: the admin API is open",
    ),
)


def _settings_project_id(path: str | None) -> tuple[str, str]:
    """The first account's ``project_id`` in the settings file aomd would read, so an
    emulator started next to a checkout answers the daemon's paths without flags."""
    cfg = Path(path or os.environ.get("AOMD_CONFIG") or "settings.toml")
    try:
        data = tomllib.loads(cfg.read_text(encoding="utf-8"))
        pid = data["accounts"][0]["project_id"]
    except (OSError, tomllib.TOMLDecodeError, KeyError, IndexError, TypeError):
        return DEFAULT_PROJECT_ID, "built-in default"
    if isinstance(pid, str) and len(pid) == 32:
        return pid, f"from {cfg}"
    return DEFAULT_PROJECT_ID, "built-in default"


def _parser(project_id: str, project_source: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aomd emulator",
        description="Run the AOM / DataArts emulator: the same paths, auth checks and error "
        "bodies as the cloud, workflows from a scenario, faults and a ledger under "
        "/_emulator/ (see the README, 'The emulator as a tool'). Prints 'listening on "
        "http://HOST:PORT (clock: ...)' when ready. It needs credentials (--token, or "
        "--access-key and --secret-key): without them every request would be refused.",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: %(default)s)")
    p.add_argument(
        "--port", type=int, default=0, help="TCP port; 0 = pick a free port (default: 0)"
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="settings file whose first account's project_id is the default of --project-id "
        "($AOMD_CONFIG or ./settings.toml)",
    )
    p.add_argument(
        "--project-id",
        default=project_id,
        help=f"32-character project id (default: {project_id}, {project_source})",
    )
    # Secrets: the environment is read after parsing, never shown as a default in --help.
    for flag, var, what in SECRET_FLAGS:
        state = "set" if os.environ.get(var) else "unset"
        p.add_argument(flag, default=None, help=f"{what} (default: ${var}, now {state})")
    p.add_argument(
        "--scenario",
        metavar="FILE",
        help="YAML or JSON scenario file; default: no workflows (add them over the admin API)",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=None,
        help="emulated seconds per real second; default: the scenario's speed, else 1 "
        "(real time). A daemon on real time must see speed 1, or its delays and calendars "
        "disagree with the emulator's clock",
    )
    p.add_argument("--seed", type=int, default=None, help="default: the scenario's seed, else 0")
    p.add_argument(
        "--ledger-limit",
        type=int,
        default=1_000_000,
        help="keep at most this many ledger entries, oldest dropped first (default: %(default)s)",
    )
    return p


def _clock_note(emu: Emulator) -> str:
    speed = emu.clock.speed
    at = emu.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    if speed == 1:
        return f"clock: real time, now {at}"
    if speed == 0:
        return f"clock: frozen at {at} (advance it with POST /_emulator/advance)"
    return f"clock: {speed:g}x real time from {at}"


async def serve(args: argparse.Namespace) -> int:
    if not args.token and not (args.access_key and args.secret_key):
        raise ConfigError(
            "no credentials: every request would be refused with 401; give --token T, or "
            "--access-key AK and --secret-key SK (or AOMD_EMULATOR_TOKEN / "
            "AOMD_EMULATOR_ACCESS_KEY and AOMD_EMULATOR_SECRET_KEY), the same as the "
            "account in aomd's settings.toml"
        )
    emu = Emulator(
        project_id=args.project_id,
        access_key=args.access_key,
        secret_key=args.secret_key,
        token=args.token,
        speed=1.0,
        seed=args.seed or 0,
        ledger_limit=args.ledger_limit,
        admin_token=args.admin_token,
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
        # the URL is the third word: parents read it with line.split()[2]
        print(f"listening on {url} ({_clock_note(emu)})", flush=True)
        await stop.wait()
    finally:
        await emu.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = list(argv) if argv is not None else sys.argv[1:]
    # --config decides a default shown by --help, so it is read before the full parse
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    args = _parser(*_settings_project_id(known.config)).parse_args(argv)
    for flag, var, _ in SECRET_FLAGS:
        dest = flag.removeprefix("--").replace("-", "_")
        if getattr(args, dest) is None:
            setattr(args, dest, os.environ.get(var))
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
