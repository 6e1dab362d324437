"""``python -m daemon.cli``: the same as the ``aomd`` command."""

import sys

from daemon.cli import main

sys.exit(main())
