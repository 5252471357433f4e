"""``python -m luigi_repro``: the same as the ``luigi-repro`` command."""

import sys

from luigi_repro.cli import main

sys.exit(main())
