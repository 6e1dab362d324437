"""``aomd schema``: the JSON Schema of policy files, for editors and CI."""

from __future__ import annotations

import argparse
import json

from daemon.cli.command import Subparsers
from daemon.cli.exit_codes import EXIT_OK


def add_parser(sub: Subparsers) -> None:
    sub.add_parser("schema", help="print the JSON Schema of policy files")


def run(args: argparse.Namespace) -> int:
    from daemon.policy import json_schema

    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK
