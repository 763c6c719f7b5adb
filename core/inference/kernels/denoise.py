r"""Final denoising of samples drawn at the smallest annealing level σ.

* **Tweedie** (``method="tweedie"``): ``E[x₀ | x_σ] = x_σ + σ² ∇ log p_σ(x_σ)`` — the posterior mean of the
  clean map given a σ-noisy one; it maps samples to conditional means (removes the σ-scale noise but also
  shrinks the spread by ``O(σ²)``).
* **Probability-flow ODE** (``method="ode"``): for the variance-exploding family ``p_t`` with ``t = σ²``
  (``x_t = x₀ + √t z``), the deterministic flow ``dx/dt = −½ ∇ log p_t(x)`` transports ``p_{t₁}`` onto
  ``p_{t₀}``. We integrate it from ``t = σ²`` down to ``t_end = sigma_end²`` in the increasing variable
  ``τ = −log t`` (``dx/dτ = ½ t ∇ log p_t(x)``), which spreads the work evenly over the decades of σ, with
  TFP's adaptive Dormand–Prince solver. For a Gaussian ``p₀ = N(μ, S)`` the flow is exactly
  ``x ↦ μ + [(S + t_end)/(S + σ²)]^{1/2} (x − μ)`` per eigen-direction.

  Caveat: the transport is exact only when ``p_t`` *is* ``p₀`` convolved with ``N(0, tI)``. That holds for the
  σ-convolved prior but not exactly for the annealed posterior ``p_σ(κ|γ) ∝ p_σ(κ) L_σ(γ|κ)``, whose likelihood
  is tempered (variance ``σ_n² + σ²``) rather than convolved; with the posterior score the ODE is then an
  approximation whose error vanishes as σ → 0 (the same holds for Tweedie, which gives the mean of the
  clean map given the σ-noisy one only for a convolution family).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from core.physics.geometry import as_float_tensor

__all__ = ["denoise", "DENOISE_METHODS"]

DENOISE_METHODS = ("tweedie", "ode")


def denoise(
    score_fn: Callable[[tf.Tensor, Any], tf.Tensor],
    x: Any,
    sigma: float,
    method: str = "tweedie",
    sigma_end: float | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-7,
) -> tf.Tensor:
    """Denoise ``x`` (samples of the σ-smoothed target) with ``score_fn(x, sigma)``.

    ``sigma_end`` (ODE only) defaults to ``1e-3 σ``; ``rtol``/``atol`` are the ODE solver tolerances.
    """
    if method not in DENOISE_METHODS:
        raise ValueError(f"method must be one of {DENOISE_METHODS}, got {method!r}")
    sigma = float(sigma)
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be positive and finite, got {sigma!r}")
    x = as_float_tensor(x, "x")
    if method == "tweedie":
        return x + sigma**2 * score_fn(x, tf.constant(sigma, tf.float32))
    sigma_end = 1e-3 * sigma if sigma_end is None else float(sigma_end)
    if not np.isfinite(sigma_end) or sigma_end <= 0 or sigma_end >= sigma:
        raise ValueError(f"sigma_end must be in (0, sigma={sigma}), got {sigma_end!r}")

    def ode_fn(tau: tf.Tensor, state: tf.Tensor) -> tf.Tensor:
        t = tf.exp(-tf.cast(tau, tf.float32))
        return 0.5 * t * score_fn(state, tf.sqrt(t))

    tau0 = -2.0 * np.log(sigma)
    tau1 = -2.0 * np.log(sigma_end)
    solver = tfp.math.ode.DormandPrince(rtol=rtol, atol=atol)
    result = solver.solve(ode_fn, tf.constant(tau0, tf.float32), x, solution_times=tf.constant([tau1], tf.float32))
    return result.states[0]
