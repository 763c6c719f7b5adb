"""The ``kappascope`` command line: ``sample``, ``train`` and ``serve`` (:func:`core.cli.commands.main`)."""
from core.cli.commands import OUTPUT_HDUS, build_parser, main

__all__ = ["OUTPUT_HDUS", "build_parser", "main"]
