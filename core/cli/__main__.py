"""``python -m core.cli``: the ``kappascope`` command line."""
import sys

from core.cli import main

sys.exit(main())
