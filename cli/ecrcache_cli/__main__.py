"""``python -m ecrcache_cli`` is the ``ecrcache`` command."""

from __future__ import annotations

import sys

from ecrcache_cli.main import main

if __name__ == "__main__":
    sys.exit(main())
