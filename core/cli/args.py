r"""Argument types of the ``kappascope`` command line, and argparse flags generated from :mod:`core.options`.

Every number a user types goes through one of the converters below; each raises
``argparse.ArgumentTypeError`` with the value it got, so argparse reports ``argument --X: expected …, got '…'``
(exit status 2). :func:`add_option` turns a :class:`core.options.Option` (name, kind, default, bounds, help)
into one flag, so the CLI's choices and bounds are exactly the dashboard's: ``choices`` for a ``"choice"``
option, an inclusive ``[minimum, maximum]`` check for numbers, ``--x/--no-x`` for booleans.

This module imports only the standard library and :mod:`core.options` (``kappascope --help`` stays
TensorFlow-free and fast).
"""
from __future__ import annotations

import argparse
import math
from typing import Any, Callable

from core.options import Option

__all__ = [
    "InputError",
    "positive_int",
    "non_negative_int",
    "positive_float",
    "non_negative_float",
    "finite_float",
    "bounded_float",
    "port",
    "option_type",
    "add_option",
]


class InputError(Exception):
    """A problem with the input data or files (exit status 1)."""


def _number(text: str, kind: type, noun: str) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _lower_bounded(kind: type, bound: float, strict: bool, noun: str) -> Callable[[str], Any]:
    """A converter accepting ``kind`` values ``> bound`` (``strict``) or ``≥ bound``; the message names ``noun``."""

    def convert(text: str) -> Any:
        value = _number(text, kind, noun)
        if value < bound or (strict and value == bound):
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}")
        return value

    convert.__name__ = "integer" if kind is int else "number"
    return convert


positive_int = _lower_bounded(int, 1, False, "a positive integer")
non_negative_int = _lower_bounded(int, 0, False, "a non-negative integer")
positive_float = _lower_bounded(float, 0.0, True, "a positive finite number")
non_negative_float = _lower_bounded(float, 0.0, False, "a non-negative finite number")


def finite_float(text: str) -> float:
    return _number(text, float, "a number")


def bounded_float(minimum: float, maximum: float, unit: str = "") -> Callable[[str], float]:
    """A converter accepting finite numbers in ``[minimum, maximum]`` (the message states the bounds)."""
    suffix = f" {unit}" if unit else ""

    def convert(text: str) -> float:
        value = _number(text, float, "a number")
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(
                f"expected a number in [{minimum:g}, {maximum:g}]{suffix}, got {text!r}")
        return value

    convert.__name__ = "number"
    return convert


def port(text: str) -> int:
    value = _number(text, int, "a TCP port number")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be in 0..65535, got {text!r}")
    return value


def option_type(opt: Option) -> Callable[[str], Any]:
    """An argparse ``type`` for a numeric :class:`~core.options.Option`: its own ``validate`` (bounds and all)."""

    def convert(text: str) -> Any:
        try:
            return opt.validate(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {opt.describe()}, got {text!r}") from None

    convert.__name__ = "integer" if opt.kind is int else "number"
    return convert


def add_option(group: Any, opt: Option, *aliases: str, default: Any = argparse.SUPPRESS, help: str | None = None,
               dest: str | None = None) -> argparse.Action:
    """Add ``opt`` as the flag ``--name-with-dashes`` (plus ``aliases``) to an argparse group.

    ``default`` is the option's own unless given (``argparse.SUPPRESS`` → ``opt.default``); ``None`` leaves the
    value to the sampler. The help line ends with the choices or bounds and the default.
    """
    value = opt.default if default is argparse.SUPPRESS else default
    text = help or opt.help
    if opt.kind == "choice":
        extra = ""
    elif opt.kind is bool:
        extra = ""
    else:
        extra = f"; {opt.describe()}"
    shown = "the sampler's" if value is None else "%(default)s"
    text = f"{text}{extra} (default: {shown})".replace("%", "%%").replace("%%(default)s", "%(default)s")
    kwargs: dict[str, Any] = {"default": value, "help": text, "dest": dest or opt.name}
    if opt.kind == "choice":
        kwargs["choices"] = list(opt.choices or ())
    elif opt.kind is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    else:
        kwargs["type"] = option_type(opt)
        kwargs["metavar"] = opt.name.upper().split("_")[-1] if opt.kind is float else "N"
    return group.add_argument(opt.flag, *aliases, **kwargs)
