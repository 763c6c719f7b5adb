r"""Moves between annealing levels: the reverse-diffusion predictor.

When the annealing level drops from ``σ_from`` to ``σ_to < σ_from``, :class:`ReverseDiffusionPredictor` moves the
chains by one Euler–Maruyama step of the reverse variance-exploding diffusion (Song et al. 2021's predictor of a
predictor–corrector sampler; the MCMC transitions at ``σ_to`` are the corrector):

.. math::  x ← x + (σ_{from}^2 − σ_{to}^2)\, s_{σ_{from}}(x) + (σ_{from}^2 − σ_{to}^2)^{1/2} z,\qquad z ∼ N(0, I).

It is a non-equilibrium move between targets, like the change of σ itself; for a target that is exactly the
σ-convolution of a fixed density it transports ``p_{σ_from}`` to ``p_{σ_to}`` up to the discretisation error of
order ``1 − σ_to²/σ_from²``. Cost: one score evaluation per chain and move (``num_score_evaluations``);
:meth:`ReverseDiffusionPredictor.move` takes ``s_{σ_from}(x)`` as an argument instead (a kernel that caches the
score at its state, like the predictor–corrector kernel, moves at no extra evaluation).
"""
from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf

__all__ = ["ReverseDiffusionPredictor"]


class ReverseDiffusionPredictor:
    """``predictor(state, sigma_from, sigma_to, seed)`` with the σ-conditioned ``score_fn(state, sigma)``."""

    num_score_evaluations = 1

    def __init__(self, score_fn: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]) -> None:
        if not callable(score_fn):
            raise ValueError(f"score_fn must be callable (state, sigma) -> score, got {type(score_fn).__name__}")
        self.score_fn = score_fn

    def __call__(self, state: tf.Tensor, sigma_from: tf.Tensor, sigma_to: tf.Tensor, seed: Any) -> tf.Tensor:
        return self.move(state, self.score_fn(state, sigma_from), sigma_from, sigma_to, seed)

    @staticmethod
    def move(state: tf.Tensor, score: tf.Tensor, sigma_from: tf.Tensor, sigma_to: tf.Tensor, seed: Any,
             noise_gain: Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor] | None = None) -> tf.Tensor:
        """The Euler–Maruyama move given ``score = s_{σ_from}(state)`` (no score evaluation): ``state + δ score +
        √δ z``, ``δ = σ_from² − σ_to²``; ``noise_gain(z, σ_from, σ_to)``, if given, shapes the white ``z`` first."""
        dvar = tf.maximum(tf.square(sigma_from) - tf.square(sigma_to), 0.0)
        noise = tf.random.stateless_normal(tf.shape(state), seed=seed, dtype=state.dtype)
        if noise_gain is not None:
            noise = tf.convert_to_tensor(noise_gain(noise, sigma_from, sigma_to), state.dtype)
        return state + dvar * score + tf.sqrt(dvar) * noise

    def __repr__(self) -> str:
        return f"ReverseDiffusionPredictor({getattr(self.score_fn, '__qualname__', type(self.score_fn).__name__)})"
