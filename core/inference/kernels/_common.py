r"""Shared helpers for the score-based kernels: event axes, step-size broadcasting and the
score line integral that replaces ``log p(x') − log p(x)`` in Metropolis acceptance.

For a differentiable ``log p`` and the straight segment ``x(t) = x + t (x' − x)``,

.. math::  \log p(x') − \log p(x) = ∫_0^1 s(x(t)) · (x' − x)\, dt,\qquad s = ∇ \log p,

which we evaluate with composite Simpson's rule on ``n`` (even) intervals, ``h = 1/n``:
``(h/3)[f_0 + 4 f_1 + 2 f_2 + … + 4 f_{n−1} + f_n]`` with ``f_i = s(x(t_i)) · (x' − x)``. The end-point
scores are already known to the kernels (score at the current state and at the proposal), so the
line integral costs ``n − 1`` extra score evaluations. For a Gaussian target the integrand is linear
in ``t`` and Simpson's rule is exact; in general its error is ``O(h⁴)``.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import tensorflow as tf

__all__ = ["event_axes", "expand_step_size", "simpson_weights", "score_line_integral", "check_event_ndims"]


def check_event_ndims(event_ndims: Any) -> int:
    if isinstance(event_ndims, (bool, np.bool_)) or not isinstance(event_ndims, (int, np.integer)) or event_ndims < 0:
        raise ValueError(f"event_ndims must be a non-negative integer, got {event_ndims!r}")
    return int(event_ndims)


def event_axes(event_ndims: int) -> list[int]:
    return list(range(-event_ndims, 0))


def expand_step_size(step_size: tf.Tensor, event_ndims: int) -> tf.Tensor:
    """Append ``event_ndims`` unit axes to a non-scalar (per-chain) step size so it broadcasts over maps."""
    step_size = tf.convert_to_tensor(step_size, dtype=tf.float32)
    if step_size.shape.rank == 0 or event_ndims == 0:
        return step_size
    return tf.reshape(step_size, tf.concat([tf.shape(step_size), tf.ones([event_ndims], tf.int32)], axis=0))


def simpson_weights(num_intervals: int) -> np.ndarray:
    """Composite Simpson weights on ``num_intervals + 1`` equispaced nodes of [0, 1] (sum to 1)."""
    if isinstance(num_intervals, (bool, np.bool_)) or not isinstance(num_intervals, (int, np.integer)):
        raise ValueError(f"num_integration_intervals must be an even integer ≥ 2, got {num_intervals!r}")
    if num_intervals < 2 or num_intervals % 2:
        raise ValueError(f"num_integration_intervals must be an even integer ≥ 2 (Simpson's rule), got {num_intervals}")
    w = np.ones(num_intervals + 1)
    w[1:-1:2] = 4.0
    w[2:-1:2] = 2.0
    return w / (3.0 * num_intervals)


def score_line_integral(
    score_fn: Callable[[tf.Tensor], tf.Tensor],
    x0: tf.Tensor,
    x1: tf.Tensor,
    score0: tf.Tensor,
    score1: tf.Tensor,
    num_intervals: int,
    event_ndims: int,
) -> tf.Tensor:
    """Simpson estimate of ``log p(x1) − log p(x0)`` from the score (batch shape out)."""
    weights = [float(w) for w in simpson_weights(num_intervals)]
    axes = event_axes(event_ndims)
    delta = x1 - x0
    total = weights[0] * tf.reduce_sum(score0 * delta, axis=axes) + weights[-1] * tf.reduce_sum(score1 * delta, axis=axes)
    for i in range(1, num_intervals):
        t = i / num_intervals
        total += weights[i] * tf.reduce_sum(score_fn(x0 + t * delta) * delta, axis=axes)
    return total
