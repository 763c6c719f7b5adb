"""``kappascope train``: hands its arguments to :func:`core.priors.training.train_main` (its own parser and run).

The arguments are parsed by the training module (``kappascope train --help`` lists them); this wrapper only turns
argparse's ``SystemExit`` into an exit status.
"""
from __future__ import annotations

from typing import Sequence

__all__ = ["run_train"]


def run_train(argv: Sequence[str], command: str) -> int:
    """Exit status of ``kappascope train ARGV`` (0 success, 2 usage error, 1 failure reported by training)."""
    from core.priors.training import train_main

    try:
        return int(train_main(list(argv), command=command) or 0)
    except SystemExit as exc:  # argparse usage errors and --help
        return int(exc.code) if isinstance(exc.code, int) else (0 if exc.code is None else 2)
