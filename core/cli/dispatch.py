r"""The ``kappascope`` entry point: parse, pick the subcommand (``sample``, ``train``, ``serve``), map errors to exit codes.

Exit status: 0 on success, 2 for usage errors (bad or inconsistent options, reported by argparse), 1 for input
errors (missing, oversized or malformed files, NaN data, shape mismatches, non-finite chains, a degenerate run), 130
on Ctrl-C. Errors print one ``kappascope <command>: error: …`` line on stderr; ``--debug`` shows the traceback.

Quiet start-up: TensorFlow, CUDA and oneDNN print start-up lines on stderr, some of them (``cudart_stub``,
``cuInit``) before TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL``. Unless ``--verbose``/``--debug``, :func:`quiet_tensorflow`
sets ``TF_CPP_MIN_LOG_LEVEL=3`` before TensorFlow is imported, imports it and initialises its devices with the
process's stderr file descriptor pointed at a temporary file (replayed only if the import fails), and quiets the
``tensorflow``/``absl`` Python loggers and third-party warnings. Environment variables are set here, in the entry
point, never at ``import core``.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import sys
import tempfile
import warnings
from typing import Iterator, Sequence

from core.cli.args import InputError
from core.cli.sample import add_sample_parser, file_checks, print_summary, run_sample, usage_checks
from core.cli.serve import add_serve_parser, serve
from core.cli.train import run_train

__all__ = ["main", "build_parser", "quiet_tensorflow"]

logger = logging.getLogger("kappascope")


def build_parser() -> argparse.ArgumentParser:
    """The top-level ``kappascope`` parser with the ``sample``, ``train`` and ``serve`` subcommands."""
    import core

    parser = argparse.ArgumentParser(
        prog="kappascope",
        description="Probabilistic weak-lensing mass mapping: posterior samples of convergence maps from shear "
                    "by annealed score-based MCMC (Remy, Lanusse et al. 2023).",
        epilog="Run 'kappascope <command> --help' for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"kappascope {core.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{sample,train,serve}", required=True)
    add_sample_parser(sub)
    sub.add_parser("train", add_help=False,
                   help="train the residual score network of the hybrid prior (see 'kappascope train --help')")
    add_serve_parser(sub)
    return parser


@contextlib.contextmanager
def _stderr_fd_to_file() -> Iterator[None]:
    """Point file descriptor 2 at a temporary file (C/C++ libraries write there directly); replay it on error."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def quiet_tensorflow() -> None:
    """Import TensorFlow without its start-up lines on stderr (see the module docstring)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules:
        with _stderr_fd_to_file():
            import tensorflow as tf

            tf.config.list_physical_devices()
            tf.zeros(())  # creates the eager context: CUDA's cuInit message is printed here
    with contextlib.suppress(ImportError):  # before any getLogger("absl"): absl installs its own logger class
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    for name in ("tensorflow", "py.warnings"):  # never a library that installs its own Logger class (astropy)
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.simplefilter("ignore")  # third-party warnings; kappascope's own messages go through logging


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kappascope").setLevel(logging.INFO if verbose else logging.WARNING)


def _error(command: str, message: str) -> None:
    sys.stderr.write(f"kappascope {command}: error: {message}\n")


def _exit_code(exc: SystemExit) -> int:
    return int(exc.code) if isinstance(exc.code, int) else (0 if exc.code is None else 2)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kappascope`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command_line = shlex.join(["kappascope", *argv])
    if argv and argv[0] == "train":
        if not any(a in ("--help", "-h", "--verbose", "-v", "--debug") for a in argv[1:]):
            quiet_tensorflow()
        return run_train(argv[1:], command_line)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return _exit_code(exc)
    debug = getattr(args, "debug", False)
    try:
        if args.command == "serve":
            _configure_logging(False)
            return serve(args)
        try:
            usage_checks(args, args.sample_parser)
        except SystemExit as exc:
            return _exit_code(exc)
        _configure_logging(args.verbose)
        file_checks(args)  # missing inputs or an unwritable --output fail fast, before TensorFlow is imported
        if not (args.verbose or debug):
            quiet_tensorflow()
        result = run_sample(args, command_line)
        if not args.quiet:
            print_summary(result)
        if "degenerate" in result:
            sys.stderr.write(f"kappascope sample: warning: degenerate run (written because of --allow-degenerate): "
                             f"{result['degenerate']}\n")
        return 0
    except KeyboardInterrupt:
        _error(args.command, "interrupted; no output written")
        return 130
    except (InputError, ValueError, FloatingPointError, OSError) as err:
        if debug:
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        _error(args.command, message)
        return 1
    except Exception as err:  # noqa: BLE001 - an unexpected failure still gets one clear line
        if debug:
            raise
        _error(args.command, f"unexpected {type(err).__name__}: {err} (run with --debug for the traceback)")
        return 1
