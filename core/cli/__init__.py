"""The ``kappascope`` command line: ``sample``, ``train`` and ``serve``.

* :mod:`.args` — argument types and flags generated from :mod:`core.options`;
* :mod:`.sample` — ``kappascope sample`` (its parser, checks, the run and the atomic FITS write), with
  :mod:`.inputs` (shear maps / catalogue / shipped COSMOS → observation) and :mod:`.priors` (prior options);
* :mod:`.train` — ``kappascope train`` (delegates to :mod:`core.priors.training`);
* :mod:`.serve` — ``kappascope serve`` (the dashboard, in a child process, on localhost);
* :mod:`.dispatch` — the entry point :func:`main` (``kappascope = "core.cli:main"``, ``python -m core.cli``).
"""
from core.cli.dispatch import build_parser, main
from core.cli.sample import OUTPUT_HDUS

__all__ = ["OUTPUT_HDUS", "build_parser", "main"]
