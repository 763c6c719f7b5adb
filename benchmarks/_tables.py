r"""Aggregation and table cells shared by the benchmark reports (calibration, halo posterior, sampler comparison).

Per-map metrics ``v_1 … v_M`` are summarised as their mean ± standard error over maps,
``\bar v ± s/\sqrt M`` with ``s`` the sample standard deviation (``ddof = 1``; the standard error is NaN for
``M = 1``). Two methods run on the same maps are compared by the paired difference ``d_i = a_i − b_i``:
``\bar d ± s_d/\sqrt M`` (the maps' common variation cancels). Entries are ``{"mean", "se"}`` dicts (paired
differences add ``"n"``), rendered in markdown by :func:`fmt` as ``mean ± se`` (``mean`` alone when the standard
error is NaN, ``–`` for a missing entry). :func:`write_report` writes a report's JSON and markdown files and
:func:`run_or_report` turns a bad option (``ValueError``) into the one-line error of a command-line run.
:func:`reusable_rows` hands back the per-map rows of an earlier result made with the same settings (resuming).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

import numpy as np

__all__ = ["standard_error", "mean_se", "aggregate", "paired_difference", "fmt", "write_report", "run_or_report",
           "reusable_rows"]

T = TypeVar("T")


def standard_error(values: Any) -> float:
    """``sd/√n`` of ``values`` (sample sd, ``ddof = 1``); NaN for fewer than two values."""
    v = np.asarray(values, float)
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def mean_se(values: Any) -> dict[str, float]:
    """``{"mean": mean, "se": sd/√n}`` of ``values``."""
    v = np.asarray(values, float)
    return {"mean": float(v.mean()), "se": standard_error(v)}


def aggregate(per_map: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Mean ± standard error over maps of every metric that all maps' records have (in the first record's order:
    records from before a metric was added, e.g. cached ones, leave it out rather than pool fewer maps)."""
    return {key: mean_se([m[key] for m in per_map]) for key in per_map[0] if all(key in m for m in per_map)}


def paired_difference(values: Sequence[float], reference: Sequence[float]) -> dict[str, float]:
    """Mean of the per-map differences ``values − reference`` and its standard error (sd/√n; NaN for n = 1)."""
    a, b = np.asarray(values, float), np.asarray(reference, float)
    if a.shape != b.shape or a.ndim != 1 or a.size < 1:
        raise ValueError(f"values and reference must be 1-D of the same non-zero length, got {a.shape} and {b.shape}")
    return {**mean_se(a - b), "n": int(a.size)}


def reusable_rows(per_map: Sequence[Mapping[str, Any]], old: Mapping[str, Any], new: Mapping[str, Any],
                  keys: Sequence[str]) -> dict[int, Mapping[str, Any]]:
    """The per-map rows ``per_map`` of an earlier result keyed by map index (their ``"map"`` entry, else their
    position: rows written before they carried it are in map order), if its settings ``old`` equal ``new`` at every
    one of ``keys`` (a missing key is ``None``); a ``ValueError`` naming each differing setting if not."""
    differ = [k for k in keys if old.get(k) != new.get(k)]
    if differ:
        raise ValueError("previous result has other settings: " + ", ".join(
            f"{k} {old.get(k)!r} (now {new.get(k)!r})" for k in differ))
    return {int(row.get("map", i)): row for i, row in enumerate(per_map)}


def fmt(entry: Mapping[str, float] | None, digits: int = 3, signed: bool = False) -> str:
    """``mean ± se`` with ``digits`` decimals (``signed``: the mean with its sign, for differences)."""
    if entry is None:
        return "–"
    spec = f"{'+' if signed else ''}.{digits}f"
    if np.isfinite(entry["se"]):
        return f"{entry['mean']:{spec}} ± {entry['se']:.{digits}f}"
    return f"{entry['mean']:{spec}}"


def write_report(output_dir: Path, stem: str, result: Mapping[str, Any], markdown: str) -> None:
    """``<output_dir>/<stem>.json`` (the result, indented by one) and ``<stem>.md`` (the markdown report)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    (output_dir / f"{stem}.md").write_text(markdown)


def run_or_report(prog: str, fn: Callable[[], T]) -> T | None:
    """``fn()``; on a ``ValueError`` (bad options) ``None`` after writing ``<prog>: error: <message>`` to stderr."""
    try:
        return fn()
    except ValueError as err:
        sys.stderr.write(f"{prog}: error: {err}\n")
        return None
