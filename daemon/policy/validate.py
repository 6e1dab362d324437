"""``aomd validate``: load policy files as the daemon would and print the verdict.

Every problem is printed, not only the first, so an operator fixing files needs one run,
not one per typo.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

from daemon.kernel.errors import ConfigError, PolicyError
from daemon.policy.loader import load_policy_paths

__all__ = ["validate_paths"]


def validate_paths(paths: Iterable[Path | str]) -> int:
    """Print a summary (stdout) or every error (stderr); exit code 0 / 2."""
    try:
        policy = load_policy_paths(paths)
    except PolicyError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        count = len(exc.errors)
        print(f"aomd: {count} problem{'s' if count != 1 else ''} found", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    for warning in policy.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"ok: {policy.summary()}")
    return 0
