r"""A learned score in ten seconds: a small MLP fitted by denoising score matching (DSM) on samples of a target.

Denoising score matching (Vincent 2011): for data ``x ~ π``, noise ``z ~ N(0, I)`` and ``x_σ = x + σ z``, the
minimiser over functions ``ε̂`` of

.. math::  \mathcal{L}(θ) = E_{σ, x, z}\, \big\| ε̂_θ(x_σ, σ) − z \big\|^2

is ``ε̂(x_σ, σ) = −σ ∇ \log π_σ(x_σ)``, so ``s_θ(x, σ) = −ε̂_θ(x, σ)/σ`` estimates the σ-smoothed score
``∇ log π_σ`` — the quantity every kappascope sampler consumes. σ is drawn log-uniformly in
``[σ_min, σ_max]``; the network sees ``x / (1 + σ²)^{1/2}`` (inputs of unit scale at every σ, the
"c_in" preconditioning of Karras et al. 2022) and ``log σ``. In the lab the training set is a fixed set of
exact samples of the target (the "simulations"); the result is then sampled with the same kernels, with a
Metropolis test from the score line integral since a learned score has no log density.

:class:`ScoreMLP` (a Keras 3 model: 2 hidden layers of 128 SiLU units by default) and :func:`train_score_model`
(a compiled Adam loop with a ``progress(fraction, loss)`` callback and a ``cancel`` check).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from core.inference.guidance import check_positive_finite
from core.lab.targets import LabTarget

__all__ = ["ScoreMLP", "TrainingResult", "train_score_model", "score_error"]


class ScoreMLP:
    """``s_θ(x, σ) = −ε̂_θ(x / √(1 + σ²), log σ) / σ`` with ``ε̂_θ`` a Keras MLP ``3 → hidden × depth → 2``."""

    def __init__(self, hidden: int = 128, depth: int = 2, seed: int = 0) -> None:
        if isinstance(hidden, bool) or not isinstance(hidden, int) or not 4 <= hidden <= 2048:
            raise ValueError(f"hidden must be an integer in [4, 2048], got {hidden!r}")
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 8:
            raise ValueError(f"depth must be an integer in [1, 8], got {depth!r}")
        init = keras.initializers.GlorotUniform(seed=seed)
        inputs = keras.Input(shape=(3,))
        h = inputs
        for _ in range(depth):
            h = keras.layers.Dense(hidden, activation="silu", kernel_initializer=init)(h)
        outputs = keras.layers.Dense(2, kernel_initializer=keras.initializers.Zeros())(h)
        self.model = keras.Model(inputs, outputs)
        self.hidden, self.depth = hidden, depth

    def noise_prediction(self, x_sigma: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
        """``ε̂_θ(x_σ, σ)``; ``sigma`` a scalar or of the batch shape."""
        x_sigma = tf.convert_to_tensor(x_sigma, tf.float32)
        sigma = tf.broadcast_to(tf.cast(sigma, tf.float32), tf.shape(x_sigma)[:-1])[..., None]
        features = tf.concat([x_sigma / tf.sqrt(1.0 + tf.square(sigma)), tf.math.log(sigma)], axis=-1)
        flat = tf.reshape(features, [-1, 3])
        return tf.reshape(self.model(flat), tf.shape(x_sigma))

    def __call__(self, x: Any, sigma: Any) -> tf.Tensor:
        """The learned score ``s_θ(x, σ)``, same shape as ``x``."""
        sigma_t = tf.cast(sigma, tf.float32)
        eps = self.noise_prediction(x, sigma_t)
        sigma_b = tf.broadcast_to(sigma_t, tf.shape(eps)[:-1])[..., None]
        return -eps / sigma_b


@dataclass
class TrainingResult:
    model: ScoreMLP
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0
    cancelled: bool = False
    sigma_min: float = 0.0
    sigma_max: float = 0.0


def train_score_model(
    target: LabTarget,
    sigma_min: float = 0.02,
    sigma_max: float = 3.0,
    num_steps: int = 1500,
    batch_size: int = 512,
    num_samples: int = 20_000,
    learning_rate: float = 2e-3,
    hidden: int = 128,
    depth: int = 2,
    seed: int = 0,
    progress: Callable[[float, float], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    report_every: int = 50,
) -> TrainingResult:
    """Fit a :class:`ScoreMLP` by DSM on ``num_samples`` exact samples of ``target`` (see the module docstring).

    ``progress(fraction_done, recent_loss)`` is called every ``report_every`` steps; ``cancel()`` returning true
    stops early (the partly trained model is returned with ``cancelled=True``). The learning rate decays by a
    cosine to 5 % of its start.
    """
    if not isinstance(target, LabTarget):
        raise ValueError(f"target must be a LabTarget, got {type(target).__name__}")
    sigma_min, sigma_max = check_positive_finite(sigma_min, "sigma_min"), check_positive_finite(sigma_max, "sigma_max")
    if sigma_min >= sigma_max:
        raise ValueError(f"sigma_min must be below sigma_max, got {sigma_min} ≥ {sigma_max}")
    for value, name in ((num_steps, "num_steps"), (batch_size, "batch_size"), (num_samples, "num_samples"),
                        (report_every, "report_every")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    learning_rate = check_positive_finite(learning_rate, "learning_rate")
    start = time.perf_counter()
    data = target.sample(num_samples, seed=[seed, 101]).numpy().astype(np.float32)
    data_t = tf.constant(data)
    net = ScoreMLP(hidden=hidden, depth=depth, seed=seed)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, num_steps, alpha=0.05)
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    weights = net.model.trainable_variables
    log_lo, log_hi = math.log(sigma_min), math.log(sigma_max)
    base_seed = tf.constant([seed, 202], tf.int32)

    @tf.function(reduce_retracing=True)
    def train_step(step: tf.Tensor) -> tf.Tensor:
        s1, s2, s3 = tf.unstack(tf.random.experimental.stateless_split(
            tf.random.experimental.stateless_fold_in(base_seed, step), 3))
        idx = tf.random.stateless_uniform([batch_size], s1, 0, num_samples, dtype=tf.int32)
        x = tf.gather(data_t, idx)
        sigma = tf.exp(tf.random.stateless_uniform([batch_size], s2, log_lo, log_hi))
        z = tf.random.stateless_normal([batch_size, 2], s3)
        with tf.GradientTape() as tape:
            eps = net.noise_prediction(x + sigma[:, None] * z, sigma)
            loss = tf.reduce_mean(tf.reduce_sum(tf.square(eps - z), axis=-1))
        optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
        return loss

    result = TrainingResult(model=net, sigma_min=sigma_min, sigma_max=sigma_max)
    recent: list[float] = []
    for step in range(num_steps):
        recent.append(train_step(tf.constant(step, tf.int64)))
        if (step + 1) % report_every == 0 or step + 1 == num_steps:
            values = [float(v.numpy()) for v in recent]
            loss = float(np.mean(values))
            result.losses.append(loss)
            recent = []
            if progress is not None:
                progress((step + 1) / num_steps, loss)
            if cancel is not None and cancel():
                result.cancelled = True
                result.steps = step + 1
                break
    else:
        result.steps = num_steps
    result.seconds = time.perf_counter() - start
    return result


def score_error(target: LabTarget, score_model: Callable[[tf.Tensor, tf.Tensor], tf.Tensor], sigma: float,
                num: int = 4000, seed: int = 0, samples: Any = None) -> float:
    """Relative mean-squared score error where the density is high:
    ``E_{x~π_σ} |s_θ(x, σ) − s_σ(x)|² / E_{x~π_σ} |s_σ(x)|²`` (a Monte-Carlo estimate on ``num`` exact samples, or
    on the given exact ``samples`` of ``π_σ``)."""
    x = target.sample(num, seed=[seed, 303], sigma=sigma) if samples is None else tf.convert_to_tensor(samples, tf.float32)
    exact = target.graph_score(x, sigma)
    learned = tf.convert_to_tensor(score_model(x, tf.constant(sigma, tf.float32)), tf.float32)
    return float(tf.reduce_sum(tf.square(learned - exact)) / tf.reduce_sum(tf.square(exact)))
