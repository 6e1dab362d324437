"""Kept only so ``tests/e2e/test_crash_safety.py`` (being rewritten separately) still
imports; every other test takes these from ``tests.support.processes``. Delete this file
once that test imports the kit."""

from tests.support.processes import aomd_cmd, emulator, start_daemon, write_settings

__all__ = ["aomd_cmd", "emulator", "start_daemon", "write_settings"]
