"""Reading an input file that an operator named: a regular file of bounded size, or a reason.

Policy, settings and .ics paths come from people and from generated configs. Read
blindly, ``/dev/zero`` grows until the machine runs out of memory (2.9 GB before it was
killed), a FIFO blocks the loop forever and a directory raises a bare ``IsADirectoryError``.
``stat`` first (which never blocks), then read at most ``limit + 1`` bytes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from daemon.kernel.errors import AomdError

__all__ = ["UnreadableFile", "read_bounded"]


class UnreadableFile(AomdError):
    """Why a file cannot be used, in words that fit after ``<path>: ``; callers wrap it."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_bounded(path: Path, limit: int) -> bytes:
    """The whole content of regular file ``path``, at most ``limit`` bytes, else ``UnreadableFile``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise UnreadableFile("a dangling symbolic link (its target does not exist)") from None
        raise UnreadableFile("no such file") from None
    except (OSError, ValueError) as exc:  # ValueError: an embedded NUL byte in the name
        raise UnreadableFile(_reason(exc)) from None
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableFile(f"{_kind(st.st_mode)}; expected a regular file")
    if st.st_size > limit:
        raise UnreadableFile(f"{st.st_size:,} bytes; expected at most {limit:,} bytes")
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise UnreadableFile(_reason(exc)) from None
    if len(data) > limit:  # grew since stat, or a file system that reports size 0
        raise UnreadableFile(f"more than {limit:,} bytes; expected at most {limit:,} bytes")
    return data


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() if exc.strerror[:1].isupper() else exc.strerror
    return str(exc)
