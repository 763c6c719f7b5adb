r"""The leapfrog integrator of score-based HMC (the one integrator of the package).

With a score ``s(x) = ∇ log π(x)``, a diagonal metric ``M`` (velocity ``M⁻¹p``,
:mod:`core.inference.kernels.mass`) and step ``ε``, one leapfrog step is

.. math::  p_{½} = p + ½ε\, s(x),\qquad x' = x + ε M^{-1} p_{½},\qquad p' = p_{½} + ½ε\, s(x'),

volume-preserving and time-reversible; ``L`` steps cost ``L`` score evaluations (the score at the start is
passed in, the one at the end handed back for the next transition). Like TFP's
``mcmc.internal.leapfrog_integrator.SimpleLeapfrogIntegrator``, but driven by the score itself rather than by
automatic differentiation of a log density (a learned score has no log density).
"""
from __future__ import annotations

from typing import Callable

import tensorflow as tf

from core.inference.kernels.mass import MassMatrix

__all__ = ["ScoreLeapfrogIntegrator"]


class ScoreLeapfrogIntegrator:
    """``L`` leapfrog steps of size ``step_size`` (already broadcast against the state) under ``score_fn``."""

    def __init__(self, score_fn: Callable[[tf.Tensor], tf.Tensor], mass: MassMatrix, step_size: tf.Tensor, num_steps: int) -> None:
        self.score_fn = score_fn
        self.mass = mass
        self.step_size = step_size
        self.num_steps = int(num_steps)

    def __call__(self, momentum: tf.Tensor, state: tf.Tensor, score: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """``(p_L, x_L, s(x_L))`` from ``(p₀, x₀, s(x₀))``."""
        eps = self.step_size

        def step(i: tf.Tensor, p: tf.Tensor, x: tf.Tensor, g: tf.Tensor) -> tuple[tf.Tensor, ...]:
            p_half = p + 0.5 * eps * g
            x_new = x + eps * self.mass.velocity(p_half)
            g_new = tf.convert_to_tensor(self.score_fn(x_new), dtype=tf.float32)
            return i + 1, p_half + 0.5 * eps * g_new, x_new, g_new

        _, p, x, g = tf.while_loop(lambda i, *_: i < self.num_steps, step, (tf.constant(0), momentum, state, score),
                                   maximum_iterations=self.num_steps)
        return p, x, g
