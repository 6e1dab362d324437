"""The current policy snapshot, swapped atomically on reload; a bad new version is rejected.

Loading builds everything derived from the files (calendars, schedule sources) up front,
so a reload either yields a complete new snapshot or leaves the old one in force.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from daemon.kernel.errors import ConfigError

log = structlog.get_logger("aomd.policy")


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    policy: Any
    """``daemon.policy.Policy`` (kept ``Any`` here so this module stays import-light)."""
    fingerprint: tuple[tuple[str, float, int], ...]


def fingerprint(root: Path) -> tuple[tuple[str, float, int], ...]:
    """Names, mtimes and sizes of the policy files: cheap change detection by polling."""
    if root.is_file():
        files = [root]
    elif root.is_dir():
        files = sorted(p for p in root.iterdir() if p.suffix in {".yaml", ".yml", ".toml", ".ics"})
    else:
        return ()
    out = []
    for p in files:
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((str(p), st.st_mtime, st.st_size))
    return tuple(out)


class PolicyRef:
    def __init__(self, root: Path, loader: Callable[[Path], Any]) -> None:
        self.root = root
        self.loader = loader
        self.current: Snapshot | None = None
        self.last_error: str | None = None
        self.reloads_ok = 0
        self.reloads_failed = 0

    def load_initial(self) -> Snapshot:
        """Raise ``ConfigError`` at start: a daemon with no valid policy must not run."""
        fp = fingerprint(self.root)
        policy = self.loader(self.root)
        self.current = Snapshot(1, policy, fp)
        log.info("policy_loaded", path=str(self.root), version=1, files=len(fp))
        return self.current

    def changed_on_disk(self) -> bool:
        return self.current is not None and fingerprint(self.root) != self.current.fingerprint

    def reload(self, *, reason: str) -> bool:
        """Try a new version; on error keep the old one and say exactly why."""
        assert self.current is not None
        fp = fingerprint(self.root)
        try:
            policy = self.loader(self.root)
        except ConfigError as exc:
            self.reloads_failed += 1
            self.last_error = str(exc)
            # remember the fingerprint so a broken file is reported once, not every poll
            self.current = Snapshot(self.current.version, self.current.policy, fp)
            log.error(
                "policy_rejected",
                reason=reason,
                error=str(exc),
                kept_version=self.current.version,
            )
            return False
        self.current = Snapshot(self.current.version + 1, policy, fp)
        self.reloads_ok += 1
        self.last_error = None
        log.info(
            "policy_reloaded",
            reason=reason,
            version=self.current.version,
            files=len(fp),
            pid=os.getpid(),
        )
        return True
