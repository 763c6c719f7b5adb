r"""Samples of a (Gaussian or learned) convergence prior by reverse variance-exploding diffusion.

For noise levels ``σ_0 > σ_1 > … > σ_{L−1}`` the σ-smoothed prior ``p_σ = p * N(0, σ²I)`` is sampled by the
Euler–Maruyama discretisation of the reverse-time VE SDE (Song et al. 2021)

.. math::  x_{l+1} = x_l + (σ_l^2 − σ_{l+1}^2)\, s_{σ_l}(x_l) + (σ_l^2 − σ_{l+1}^2)^{1/2}\, z_l,
           \qquad z_l \sim \mathcal N(0, I),

with ``s_σ = prior.score(·, σ)`` (for the hybrid prior: exact Gaussian score plus the learned residual).
The chains start from the exact Gaussian ``N(0, F⁻¹ diag(P_k + σ_0²) F)`` — at large ``σ_0`` the smoothed
prior is Gaussian to a good approximation — and the result is a sample of ``p_{σ_{L−1}}``; ``denoise=True``
applies Tweedie's formula ``x + σ²_{L−1} s_{σ_{L−1}}(x)`` at the end (the posterior mean of the clean map given
the last state, which is smoother than a sample).

Why this sampler and not Langevin dynamics equilibrated at each level: denoising score matching determines a
learned score only in the Fourier modes where the noise dominates (``P_k ≲ σ²``), and
:mod:`core.priors.hybrid` filters the residual to those modes. The reverse diffusion fixes each mode while σ
passes through its signal-to-noise crossover, exactly where the score was learned; a sampler preconditioned
by the full prior covariance instead re-equilibrates every mode at every level and, at small σ, makes the
samples Gaussian again (measured, ``benchmarks/eval_prior.py``). With the exact Gaussian score the scheme
samples the Gaussian prior up to a discretisation error of order ``1 − σ_{l+1}²/σ_l²`` per level (tested).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from core.physics.fields import gaussian_field
from core.physics.geometry import MapGeometry
from core.inference.schedules import ListSchedule, Schedule
from core.seeds import stateless_seed

__all__ = ["sample_prior", "prior_sigmas"]


def prior_sigmas(sigmas: Schedule | np.ndarray | list[float]) -> np.ndarray:
    """The noise levels as a strictly decreasing positive float64 array (from a schedule or a sequence).

    Positivity, finiteness and order are checked by :class:`~core.inference.schedules.ListSchedule`; reverse diffusion
    also needs two levels at least and no repeated level.
    """
    if not isinstance(sigmas, Schedule):
        shape = np.shape(sigmas)
        if len(shape) != 1 or shape[0] < 2:
            raise ValueError(f"need at least two noise levels in a 1-D sequence, got shape {shape}")
        sigmas = ListSchedule(sigmas)
    levels = np.asarray(sigmas.sigmas, dtype=np.float64)
    if levels.size < 2:
        raise ValueError(f"need at least two noise levels, got {levels.size}")
    if np.any(np.diff(levels) >= 0):
        raise ValueError("noise levels must decrease strictly (from sigma_max to sigma_min)")
    return levels


def sample_prior(
    prior: Any,
    sigmas: Schedule | np.ndarray | list[float],
    num_samples: int,
    seed: Any = 0,
    denoise: bool = False,
) -> tf.Tensor:
    """``num_samples`` maps ``(num_samples, N, N)`` float32 from the ``sigmas[-1]``-smoothed ``prior``.

    ``prior`` needs ``geometry`` (a :class:`~core.physics.geometry.MapGeometry`), ``power_map`` and ``score(κ, σ)``
    (:class:`core.priors.gaussian.GaussianPrior`, :class:`core.priors.hybrid.HybridPrior`). ``sigmas``: a
    :class:`~core.inference.schedules.Schedule` (its levels) or a decreasing sequence. Deterministic given ``seed``.
    """
    geometry = getattr(prior, "geometry", None)
    if not isinstance(geometry, MapGeometry) or not callable(getattr(prior, "score", None)):
        raise ValueError("prior must have a MapGeometry .geometry and .score(kappa, sigma)")
    if getattr(prior, "power_map", None) is None:
        raise ValueError("prior must have a power_map (the initial Gaussian at sigma_max uses it)")
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    levels = prior_sigmas(sigmas)
    base = stateless_seed(seed)
    power = np.asarray(prior.power_map, dtype=np.float64) + levels[0] ** 2
    x = gaussian_field(power, int(num_samples), tf.random.experimental.stateless_fold_in(base, -1))

    @tf.function(reduce_retracing=True)
    def step(x: tf.Tensor, sigma: tf.Tensor, dvar: tf.Tensor, step_seed: tf.Tensor) -> tf.Tensor:
        z = tf.random.stateless_normal(tf.shape(x), step_seed, dtype=x.dtype)
        return x + dvar * prior.score(x, sigma) + tf.sqrt(dvar) * z

    for i in range(len(levels) - 1):
        dvar = levels[i] ** 2 - levels[i + 1] ** 2
        x = step(x, tf.constant(levels[i], tf.float32), tf.constant(dvar, tf.float32),
                 tf.random.experimental.stateless_fold_in(base, i))
    if denoise:
        last = float(levels[-1])
        x = x + last**2 * prior.score(x, tf.constant(last, tf.float32))
    if not bool(tf.reduce_all(tf.math.is_finite(x))):
        raise FloatingPointError("prior sampling produced non-finite maps (check the score and the noise levels)")
    return x

