"""``python -m daemon.emulator``: see ``daemon.emulator.serve``."""

import sys

from daemon.emulator.serve import main

sys.exit(main())
