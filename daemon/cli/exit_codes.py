"""The exit statuses every ``aomd`` command shares (documented in the README)."""

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_CONFIG = 2
