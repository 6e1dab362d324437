"""``aomd`` command line: run | demo | validate | plan | schema | history | emulator | version.

Exit codes (documented in the README): 0 ok, 2 configuration or policy error (with a
message naming the file, field and fix), 1 runtime failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from daemon import __version__
from daemon.kernel.errors import AomdError, ConfigError

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aomd",
        description="Policy daemon for Huawei Cloud AOM automation workflows.",
        epilog="Exit codes: 0 ok, 2 configuration or policy error, 1 runtime failure.",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="settings file (default: $AOMD_CONFIG or ./settings.toml)",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="run the daemon (watch executions, control triggers)",
        description="Watch executions and apply the execution rules, switch triggers on "
        "calendars and run schedules, until SIGTERM/SIGINT. SIGHUP reloads policies.",
    )
    run.add_argument("--dry-run", action="store_true", help="decide and log, write nothing")
    run.add_argument("--once", action="store_true", help="one reconcile pass, then exit")

    demo = sub.add_parser(
        "demo", help="run the embedded emulator with example policies on an accelerated clock"
    )
    demo.add_argument("--speed", type=float, default=360.0, help="emulated seconds per real second")
    demo.add_argument("--duration", type=float, default=60.0, help="real seconds to run")
    demo.add_argument("--policies", type=Path, default=None, help="policies dir (default: bundled)")

    val = sub.add_parser(
        "validate",
        help="check policy files; report each error with file:line",
        description="Load policy files as the daemon would; print every problem as "
        "file:line: field: message. Exit 0 when valid, 2 otherwise.",
    )
    val.add_argument("paths", nargs="*", type=Path, help="files or dirs (default: policies_dir)")

    plan = sub.add_parser(
        "plan",
        help="print trigger changes and scheduled runs in a period",
        description="Every trigger change and scheduled run aomd would make between "
        "--from and --until, with the rule and calendar behind each. No cloud calls unless "
        "--live. Times: ISO 8601 (naive = UTC) or a duration (--until 2d = 2 days after "
        "--from).",
    )
    plan.add_argument("--from", dest="start", help="ISO time (default: now)")
    plan.add_argument("--until", dest="end", help="ISO time (default: start + 7 days)")
    plan.add_argument("--json", action="store_true", help="JSON output")
    plan.add_argument("--live", action="store_true", help="compare with current trigger state")

    sub.add_parser("schema", help="print the JSON Schema of policy files")

    hist = sub.add_parser(
        "history",
        help="print what aomd did and why",
        description="Read the journal: every write aomd decided, its outcome and reason.",
    )
    hist.add_argument("--since", help="ISO time or duration like 2h, 7d (default: 24h)")
    hist.add_argument("--workflow", help="only this workflow id")
    hist.add_argument("--json", action="store_true", help="JSON lines output")

    emu = sub.add_parser("emulator", help="run the AOM emulator", add_help=False)
    emu.add_argument("rest", nargs=argparse.REMAINDER)

    sub.add_parser("version", help="print the version")
    return p


def parse_instant(text: str | None, default: datetime, *, base: datetime | None = None) -> datetime:
    """ISO-8601 (naive = UTC) or a duration like ``2h``/``7d``: counted back from
    ``default`` (``history --since 2h``), or forward from ``base`` when one is given
    (``plan --until 2d`` = two days after ``--from``)."""
    if not text:
        return default
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    if text[-1] in units and text[:-1].isdigit():
        span = timedelta(seconds=int(text[:-1]) * units[text[-1]])
        return base + span if base is not None else default - span
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"invalid time {text!r}: expected ISO 8601 like 2026-12-24T00:00 or a duration like 2h"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["emulator"]:
        from daemon.emulator.cli import main as emulator_main

        return emulator_main(args_list[1:])
    args = _parser().parse_args(args_list)
    if args.command in ("run", "demo"):
        # Until the event loop installs its own handlers, a SIGTERM during start-up
        # (imports, journal open) must still end the process cleanly with exit 0.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"aomd: configuration error:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except AomdError as exc:
        print(f"aomd: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        # `aomd schema | head`: the reader went away; that is not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(EXIT_OK)


def _dispatch(args: argparse.Namespace) -> int:
    cmd: str = args.command
    if cmd == "version":
        print(f"aomd {__version__}")
        return EXIT_OK
    if cmd == "schema":
        from daemon.policy import json_schema

        print(json.dumps(json_schema(), indent=2))
        return EXIT_OK
    if cmd == "validate":
        return _validate(args)
    if cmd == "demo":
        from daemon.demo import run_demo

        return run_demo(
            config=args.config, speed=args.speed, duration=args.duration, policies=args.policies
        )
    from daemon.settings import load_settings

    settings = load_settings(args.config)
    if cmd == "run":
        from daemon.engine.app import run_daemon

        return asyncio.run(run_daemon(settings, dry_run=args.dry_run, once=args.once))
    if cmd == "history":
        from daemon.engine.history import print_history

        now = datetime.now(UTC)
        return asyncio.run(
            print_history(
                settings,
                since=parse_instant(args.since or "24h", now),
                workflow=args.workflow,
                as_json=args.json,
            )
        )
    if cmd == "plan":
        from daemon.engine.planning import print_plan

        now = datetime.now(UTC)
        start = parse_instant(args.start, now, base=now)
        end = parse_instant(args.end, start + timedelta(days=7), base=start)
        return asyncio.run(print_plan(settings, start, end, as_json=args.json, live=args.live))
    raise AssertionError(cmd)  # argparse restricts the choices


def _validate(args: argparse.Namespace) -> int:
    from daemon.policy import validate_paths

    paths: list[Path] = list(args.paths)
    if not paths:
        from daemon.settings import load_settings

        paths = [load_settings(args.config).policies_dir]
    return validate_paths(paths)  # prints "ok: ..." or every error, returns 0 or 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
