"""``aomd`` command line: run | demo | validate | plan | schema | history | emulator | version.

Each command is one ``cmd_*`` module: ``add_parser`` declares its arguments and ``run``
does the work. Those modules import only the standard library at the top, so building
the parser (and ``aomd version``) stays fast and the SIGTERM handler below is in place
before the heavy imports of ``run`` and ``demo``.

Exit codes (documented in the README): 0 ok, 2 configuration or policy error (with a
message naming the file, field and fix), 1 runtime failure.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from daemon import __version__
from daemon.cli import (
    cmd_demo,
    cmd_emulator,
    cmd_explain,
    cmd_history,
    cmd_journal_copy,
    cmd_override,
    cmd_plan,
    cmd_run,
    cmd_schema,
    cmd_status,
    cmd_validate,
    cmd_version,
)
from daemon.cli.command import Command
from daemon.cli.exit_codes import EXIT_CONFIG, EXIT_OK, EXIT_RUNTIME
from daemon.kernel.errors import AomdError, ConfigError, UsageError

COMMANDS: dict[str, Command] = {
    "run": cmd_run,
    "demo": cmd_demo,
    "validate": cmd_validate,
    "plan": cmd_plan,
    "schema": cmd_schema,
    "history": cmd_history,
    "explain": cmd_explain,
    "status": cmd_status,
    "override": cmd_override,
    "journal-copy": cmd_journal_copy,
    "emulator": cmd_emulator,
    "version": cmd_version,
}
"""In ``aomd --help`` order."""
READS_SETTINGS = ("run", "validate", "plan", "history")
"""Commands that take ``--config`` after their name too (demo, schema and version read no
settings file; the emulator has its own ``--config``)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aomd",
        description="Policy daemon for Huawei Cloud AOM automation workflows.",
        epilog="Exit codes: 0 ok, 2 configuration or policy error, 1 runtime failure.",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="settings file (default: $AOMD_CONFIG or ./settings.toml); also accepted after "
        "the command",
    )
    p.add_argument("--version", action="version", version=f"aomd {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS.values():
        command.add_parser(sub)
    for name, command_parser in sub.choices.items():
        if name in READS_SETTINGS:
            # SUPPRESS: given only before the command, the top-level value must survive
            command_parser.add_argument(
                "--config",
                metavar="FILE",
                default=argparse.SUPPRESS,
                help="settings file (default: $AOMD_CONFIG or ./settings.toml)",
            )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["emulator"]:
        return cmd_emulator.forward(args_list[1:])
    args = _parser().parse_args(args_list)
    if args.command in ("run", "demo"):
        # Until the event loop installs its own handlers, a SIGTERM during start-up
        # (imports, journal open) must still end the process cleanly with exit 0.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    else:
        # The one-shot commands print their answer on stdout (JSON lines with --json):
        # what the parts they use log (a journal opened, a call retried) goes to stderr,
        # redacted, and only when it is a warning; never structlog's default, which
        # prints to stdout without the redaction.
        from daemon.ops.logging import configure_logging
        from daemon.settings import LogSettings

        configure_logging(LogSettings(level="warning"))
    try:
        return COMMANDS[args.command].run(args)
    except UsageError as exc:
        print(f"aomd {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
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
