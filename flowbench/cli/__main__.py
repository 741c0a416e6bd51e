"""``python -m flowbench.cli``: the same as the ``flowbench`` command."""

import sys

from . import main

sys.exit(main())
