"""``python -m pytest_qwencmp COMMAND``: see :mod:`pytest_qwencmp.cli`."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
