"""``aomd validate``: load policy files as the daemon would and report every problem."""

from __future__ import annotations

import argparse
from pathlib import Path

from daemon.cli.command import Subparsers


def add_parser(sub: Subparsers) -> None:
    val = sub.add_parser(
        "validate",
        help="check policy files; report each error with file:line",
        description="Load policy files as the daemon would; print every problem as "
        "file:line: field: message. Exit 0 when valid, 2 otherwise.",
    )
    val.add_argument("paths", nargs="*", type=Path, help="files or dirs (default: policies_dir)")


def run(args: argparse.Namespace) -> int:
    from daemon.policy import validate_paths

    paths: list[Path] = list(args.paths)
    if not paths:
        import sys

        from daemon.settings import load_settings

        settings = load_settings(args.config)
        for warning in settings.warnings():
            print(f"warning: {warning}", file=sys.stderr)
        paths = [settings.policies_dir]
    return validate_paths(paths)  # prints "ok: ..." or every error, returns 0 or 2
