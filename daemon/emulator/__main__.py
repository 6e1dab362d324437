"""``python -m daemon.emulator``: see ``daemon.emulator.cli``."""

import sys

from daemon.emulator.cli import main

sys.exit(main())
