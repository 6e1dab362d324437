"""The test kit: the one home for fakes and helpers shared by more than one test module.

Conftests hold fixtures only; anything a test imports lives here, so no test reaches into
another folder's conftest or test module. Each module has one job: ``clocks`` (the fake
clock and the clock that follows an emulator), ``emulators`` (an in-process emulator on
127.0.0.1), ``processes`` (``aomd emulator`` / ``aomd run`` as subprocesses), ``engine``
(an executor and pass loop wired as the daemon wires them), ``webhooks``, ``leases``,
``journals``, ``policies`` (policy files on disk), ``decisions`` (values for the pure
policy core) and ``calendars``.

This package imports nothing itself: the subprocess helpers must stay free of the
daemon's internals.
"""
