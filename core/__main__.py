"""``python -m core``: the ``kappascope`` command line (:func:`core.cli.main`)."""
import sys

from core.cli import main

sys.exit(main())
