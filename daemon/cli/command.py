"""What every ``cmd_*`` module provides, so the parser and the dispatch are one loop."""

from __future__ import annotations

import argparse
from typing import Protocol, TypeAlias

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class Command(Protocol):
    def add_parser(self, sub: Subparsers) -> None:
        """Declare the command and its arguments."""
        ...

    def run(self, args: argparse.Namespace) -> int:
        """Do the work; return the exit code (``ConfigError`` is turned into 2)."""
        ...
