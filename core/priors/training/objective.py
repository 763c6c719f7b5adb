r"""The denoising-score-matching objective: noise levels, per-map loss, loss weights, held-out losses.

Loss (residual form, per map, averaged over pixels and the batch)

.. math::  L(θ) = \mathbb{E}_{κ,σ,u}\; w(σ)\,\frac{1}{N}\big\|\,u + σ\,[\,g_σ(κ+σu) + r_θ(κ+σu, σ)\,]\big\|^2,
           \qquad u \sim \mathcal N(0, I),

with ``g_σ`` the exact score of the σ-convolved Gaussian prior (power ``P_k + σ²``) and ``r_θ`` the
network.  Its minimiser is the score of ``p_σ = p * N(0, σ²)`` (Vincent 2011).  The per-map term
equals ``‖E[κ|x] − κ̃(x)‖²/(Nσ²)`` up to a θ-independent constant (``κ̃`` the model's Tweedie
denoiser), and its minimum is the per-pixel MMSE divided by σ², which falls from 1 at small σ to
``Var κ/σ²`` at large σ.  To weight every σ alike we use (``loss_weighting="gaussian"``, default)

.. math::  w(σ) = 1 \Big/ \operatorname{mean}_k \frac{P_k}{P_k + σ^2},

the inverse of that minimum for a Gaussian field with power ``P``, so the Gaussian-only prior
scores ``≈ 1`` at every σ on Gaussian data (``loss_weighting="none"``: ``w = 1``).  Held-out
comparisons (:func:`heldout_dsm_losses`) are unweighted and made at fixed σ with common random
numbers, so the *difference* between two models is what tells them apart.

Noise levels: σ is drawn independently per map from the mixture

* with probability ``1 − small_fraction``: log-uniform on ``[sigma_min, sigma_max]`` (the whole
  annealing range, default ``[1e-3, 1]``),
* with probability ``small_fraction`` (default 0.3): log-uniform on ``[sigma_min, sigma_small]``
  (default ``sigma_small = 0.05``), where the prior's non-Gaussianity matters most.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from core.physics.geometry import as_float_tensor
from core.priors.training.data import _seed

__all__ = ["ScoreFn", "sample_sigmas", "dsm_loss_per_map", "heldout_dsm_losses", "gaussian_loss_weight"]

ScoreFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


# ------------------------------------------------------------------------------- σ
def sample_sigmas(
    num: int,
    seed: int | tf.Tensor,
    sigma_min: float = 1e-3,
    sigma_max: float = 1.0,
    small_fraction: float = 0.3,
    sigma_small: float = 0.05,
) -> tf.Tensor:
    """``num`` noise levels from the mixture in the module docstring, float32 ``(num,)``."""
    if not (0 < sigma_min < sigma_max and math.isfinite(sigma_max)):
        raise ValueError(f"need 0 < sigma_min < sigma_max < inf, got sigma_min={sigma_min!r}, sigma_max={sigma_max!r}")
    if not 0.0 <= small_fraction <= 1.0:
        raise ValueError(f"small_fraction must be in [0, 1], got {small_fraction!r}")
    if not sigma_min < sigma_small <= sigma_max:
        raise ValueError(f"sigma_small must be in (sigma_min, sigma_max], got {sigma_small!r}")
    s_choice, s_u = tfp.random.split_seed(_seed(seed), n=2)
    small = tf.random.stateless_uniform([num], s_choice) < small_fraction
    u = tf.random.stateless_uniform([num], s_u, dtype=tf.float64)
    lo = math.log(sigma_min)
    hi = tf.where(small, tf.constant(math.log(sigma_small), tf.float64), tf.constant(math.log(sigma_max), tf.float64))
    return tf.cast(tf.exp(lo + u * (hi - lo)), tf.float32)


# ----------------------------------------------------------------------------- loss
def dsm_loss_per_map(score_fn: ScoreFn, kappa: tf.Tensor, sigma: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
    """Per-map DSM loss ``mean_pixels (u + σ s(κ + σu, σ))²``, shape ``(B,)``; ``sigma`` is ``(B,)``."""
    x = kappa + sigma[:, None, None] * noise
    s = score_fn(x, sigma)
    return tf.reduce_mean(tf.square(noise + sigma[:, None, None] * s), axis=(-2, -1))


def heldout_dsm_losses(
    score_fns: dict[str, ScoreFn],
    maps: tf.Tensor,
    sigmas: Sequence[float],
    seed: int | tf.Tensor,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Held-out DSM loss of several score functions on the same maps, noise and σ values.

    Every map is noised with a fixed ``u`` at every σ in ``sigmas`` (common random numbers for all
    models).  Returns ``{"sigma": [...], "<name>": {"mean": [...], "sem": [...]}, "diff_<a>_minus_<b>": ...}``
    where ``sem`` is the standard error of the mean over maps, and for each pair (first model minus
    every other) the paired difference's mean and standard error — the Monte-Carlo error relevant
    for deciding which model is better.
    """
    maps = as_float_tensor(maps, "maps")
    num = int(maps.shape[0])
    noise = tf.random.stateless_normal(tf.shape(maps), _seed(seed))
    per_model: dict[str, list[np.ndarray]] = {k: [] for k in score_fns}
    for s in sigmas:
        sig = tf.fill([num], tf.constant(float(s), tf.float32))
        for name, fn in score_fns.items():
            parts = [
                dsm_loss_per_map(fn, maps[i : i + batch_size], sig[i : i + batch_size], noise[i : i + batch_size]).numpy()
                for i in range(0, num, batch_size)
            ]
            per_model[name].append(np.concatenate(parts))
    out: dict[str, Any] = {"sigma": [float(s) for s in sigmas], "num_maps": num}
    names = list(score_fns)
    for name in names:
        arr = np.stack(per_model[name])  # (levels, maps)
        out[name] = {"mean": arr.mean(1).tolist(), "sem": (arr.std(1, ddof=1) / np.sqrt(num)).tolist()}
    for other in names[1:]:
        d = np.stack(per_model[names[0]]) - np.stack(per_model[other])
        out[f"diff_{names[0]}_minus_{other}"] = {"mean": d.mean(1).tolist(), "sem": (d.std(1, ddof=1) / np.sqrt(num)).tolist()}
    return out


def gaussian_loss_weight(power_map: np.ndarray | tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
    """``w(σ) = 1 / mean_k P_k/(P_k + σ²)`` for σ of shape ``(B,)`` (see the module docstring)."""
    power = tf.cast(tf.convert_to_tensor(power_map), tf.float32)
    return 1.0 / tf.reduce_mean(power / (power + sigma[:, None, None] ** 2), axis=(-2, -1))
