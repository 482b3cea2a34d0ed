"""``python -m lexppl``: the same as the ``lexppl`` console script."""

import sys

from lexppl.cli import main

sys.exit(main())
