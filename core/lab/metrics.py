r"""Distances between sample sets for the lab's running "how close are the chains to the target" curve.

Energy distance (Székely & Rizzo 2013) between distributions ``P`` and ``Q`` on ``R^d``:

.. math::  D^2(P, Q) = 2 E|X − Y| − E|X − X'| − E|Y − Y'|,\qquad X, X' \sim P,\ Y, Y' \sim Q,

non-negative and zero only when ``P = Q``. :func:`energy_distance` returns the unbiased estimate (U-statistics
for the within-sample terms, so it fluctuates around 0 — and can dip below — when both samples come from the
same distribution), computed in float64 from the pairwise Euclidean distances.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial.distance import cdist, pdist

__all__ = ["energy_distance"]


def _points(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 2 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be a finite (n ≥ 2, d) array of points, got shape {arr.shape}")
    return arr


def energy_distance(x: Any, y: Any) -> float:
    """Unbiased estimate of the squared energy distance ``D²`` between the samples ``x (n, d)`` and ``y (m, d)``."""
    x, y = _points(x, "x"), _points(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]}")
    cross = cdist(x, y).mean()
    within_x = pdist(x).mean()  # mean over pairs i < j = U-statistic of E|X − X'|
    within_y = pdist(y).mean()
    return float(2.0 * cross - within_x - within_y)
