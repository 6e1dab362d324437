"""``aomd emulator``: the same entry point as ``python -m daemon.emulator``, flags included.

The arguments are forwarded untouched (``main`` intercepts the command before the
``aomd`` parser sees them), so the emulator keeps one parser and one ``--help``.
"""

from __future__ import annotations

import argparse

from daemon.cli.command import Subparsers


def add_parser(sub: Subparsers) -> None:
    emu = sub.add_parser("emulator", help="run the AOM emulator", add_help=False)
    emu.add_argument("rest", nargs=argparse.REMAINDER)


def forward(argv: list[str]) -> int:
    from daemon.emulator.serve import main

    return main(argv)


def run(args: argparse.Namespace) -> int:
    return forward(list(args.rest))
