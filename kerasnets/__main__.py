"""``python -m kerasnets``: the same as the ``kerasnets`` command."""

import sys

from kerasnets.cli import main

if __name__ == "__main__":
    sys.exit(main())
