"""``aomd version``."""

from __future__ import annotations

import argparse

from daemon import __version__
from daemon.cli.command import Subparsers
from daemon.cli.exit_codes import EXIT_OK


def add_parser(sub: Subparsers) -> None:
    sub.add_parser("version", help="print the version")


def run(args: argparse.Namespace) -> int:
    print(f"aomd {__version__}")
    return EXIT_OK
