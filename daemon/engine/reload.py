"""The policy in force, replaced whole on reload; a bad new version is rejected.

``load_policy_dir`` builds everything derived from the files (calendars, schedule
sources) up front, so a reload either yields a complete new ``PolicySet`` or leaves the
old one in force. The swap happens on the event loop only (a file-change reload parses in
a worker thread and hands the result back), so a reader between two awaits never sees a
version of one policy paired with another.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import structlog

from daemon.kernel.errors import ConfigError
from daemon.policy import PolicySet, load_policy_dir

log = structlog.get_logger("aomd.policy")

RELOAD_POLL_SECONDS = 2.0

FileStamps = tuple[tuple[str, float, int], ...]


def file_stamps(root: Path) -> FileStamps:
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


def _load(root: Path) -> tuple[FileStamps, PolicySet | ConfigError]:
    stamps = file_stamps(root)
    try:
        return stamps, load_policy_dir(root)
    except ConfigError as exc:
        return stamps, exc


def _log_warnings(policy: PolicySet) -> None:
    """Skipped or zero-length .ics events: the policy is in force, but an operator should know."""
    for warning in policy.warnings:
        log.warning("policy_warning", warning=warning)


class PolicyRef:
    """The current ``PolicySet`` and its version (1 at start, +1 per accepted reload)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._current: PolicySet | None = None
        self.version = 0
        self._stamps: FileStamps = ()

    @property
    def current(self) -> PolicySet:
        assert self._current is not None, "load_initial() first"
        return self._current

    def load_initial(self) -> PolicySet:
        """Raise ``ConfigError`` at start: a daemon with no valid policy must not run."""
        stamps = file_stamps(self.root)
        self._current, self.version, self._stamps = load_policy_dir(self.root), 1, stamps
        log.info("policy_loaded", path=str(self.root), version=1, files=len(stamps))
        _log_warnings(self._current)
        return self._current

    def changed_on_disk(self) -> bool:
        return self._current is not None and file_stamps(self.root) != self._stamps

    def reload(self, *, reason: str) -> bool:
        """Try a new version (parsed here, on the loop); on error keep the old one."""
        return self._swap(reason, *_load(self.root))

    async def reload_in_thread(self, *, reason: str) -> bool:
        """Like ``reload``, but parse in a worker thread so the loop keeps running."""
        return self._swap(reason, *await asyncio.to_thread(_load, self.root))

    def _swap(self, reason: str, stamps: FileStamps, loaded: PolicySet | ConfigError) -> bool:
        assert self._current is not None
        # remember the stamps either way, so a broken file is reported once, not every poll
        self._stamps = stamps
        if isinstance(loaded, ConfigError):
            log.error(
                "policy_rejected", reason=reason, error=str(loaded), kept_version=self.version
            )
            return False
        self._current, self.version = loaded, self.version + 1
        log.info(
            "policy_reloaded",
            reason=reason,
            version=self.version,
            files=len(stamps),
            pid=os.getpid(),
        )
        _log_warnings(loaded)
        return True


async def reload_on_change(
    policy: PolicyRef, *, on_reloaded: Callable[[bool], None], beat: Callable[[], None]
) -> None:
    """Poll the policy files; reload when they change and report the result."""
    while True:
        await asyncio.sleep(RELOAD_POLL_SECONDS)
        beat()
        if policy.changed_on_disk():
            on_reloaded(await policy.reload_in_thread(reason="file changed"))
