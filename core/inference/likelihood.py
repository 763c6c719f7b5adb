r"""Gaussian shear likelihood ``p(γ | κ)`` and its score, tempered by the annealing level σ.

Model: ``γ = M (P κ + n)`` with ``n`` independent Gaussian noise of per-pixel, per-component
variance ``σ_n²`` (see :mod:`core.data.observation`). Over the observed pixels (mask ``M = 1``) and both
shear components ``c``:

.. math::

    \log p_σ(γ|κ) = -\tfrac12 \sum_{x\in\mathrm{obs}} \sum_{c=1,2}
        \Big[\frac{(Pκ - γ)_{c,x}^2}{σ_{n,c,x}^2 + σ^2} + \log 2π(σ_{n,c,x}^2 + σ^2)\Big],

    \nabla_κ \log p_σ = P^T\Big[\frac{M(γ - Pκ)}{σ_n^2 + σ^2}\Big].

Unobserved pixels carry no information (infinite noise); they are dropped exactly rather than
given a large variance.

Tempering convention
--------------------
At annealing level σ the noise variance becomes ``σ_n² + σ²`` (as in Remy et al. 2023). It is exact
at σ = 0. For σ > 0 it is a heuristic: the σ-convolved posterior would need the likelihood of the
σ-smoothed κ, i.e. κ + σz with z white; that extra noise maps through ``P`` to shear noise ``σPz``
whose covariance ``σ² P Pᵀ`` has per-component variance ≈ σ²/2 on average (``P`` is unitary from one
real map to the pair of shear maps) and is not diagonal (E-mode only, correlated between γ₁ and
γ₂). Adding the full σ² per component therefore over-tempers slightly. It is harmless because the
chains' final levels have σ ≈ 0 where the convention is exact, and it keeps the score cheap.

All methods accept κ with any leading batch shape ``(..., N, N)`` and a ``sigma`` that is a scalar or a
tensor broadcastable to that batch shape; outputs are float32.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from core.physics.geometry import MapGeometry, as_float_tensor
from core.physics.lensing import LensingOperator
from core.data.observation import Observation, validate_observation_arrays

__all__ = ["ShearLikelihood"]


class ShearLikelihood:
    """Masked Gaussian shear likelihood with inhomogeneous noise.

    Parameters
    ----------
    geometry:
        Map geometry.
    shear:
        Observed shear ``(2, N, N)``; values on unobserved pixels are ignored.
    noise_std:
        Per-pixel noise standard deviation, ``(N, N)`` (both components) or ``(2, N, N)``;
        must be positive and finite on observed pixels.
    mask:
        ``(N, N)`` 0/1 (or boolean) mask of observed pixels.
    """

    def __init__(
        self,
        geometry: MapGeometry,
        shear: np.ndarray | tf.Tensor,
        noise_std: np.ndarray | tf.Tensor,
        mask: np.ndarray | tf.Tensor,
    ) -> None:
        shear_np, std_np, mask_np = validate_observation_arrays(geometry, shear, noise_std, mask)
        self.geometry = geometry
        self.operator = LensingOperator(geometry)
        self.shear = tf.constant(shear_np)
        self.noise_std = tf.constant(std_np)
        self.mask = tf.constant(mask_np)
        # Noise variance with a harmless 1 on unobserved pixels (they are weighted by 0 below).
        observed = mask_np[None] > 0
        self._noise_var = tf.constant(np.where(observed, std_np.astype(np.float64) ** 2, 1.0).astype(np.float32))
        self._weight = tf.constant(np.broadcast_to(mask_np, std_np.shape).astype(np.float32))
        self.num_observed = int(mask_np.sum())

    @classmethod
    def from_observation(cls, observation: Observation) -> "ShearLikelihood":
        if not isinstance(observation, Observation):
            raise ValueError(f"observation must be an Observation, got {type(observation).__name__}")
        return cls(observation.geometry, observation.shear, observation.noise_std, observation.mask)

    # ------------------------------------------------------------------ helpers
    def _sigma_sq(self, sigma: float | tf.Tensor) -> tf.Tensor:
        """σ² shaped ``(..., 1, 1, 1)`` to broadcast against ``(..., 2, N, N)``."""
        sigma = as_float_tensor(sigma, "sigma")
        return tf.square(sigma)[..., None, None, None]

    def variance(self, sigma: float | tf.Tensor = 0.0) -> tf.Tensor:
        """Tempered noise variance ``σ_n² + σ²`` (``(..., 2, N, N)``; 1 + σ² on unobserved pixels)."""
        return self._noise_var + self._sigma_sq(sigma)

    def inverse_variance(self, sigma: float | tf.Tensor = 0.0) -> tf.Tensor:
        """``N⁻¹ = M / (σ_n² + σ²)``, shape ``(..., 2, N, N)``, zero on unobserved pixels."""
        return self._weight / self.variance(sigma)

    # ------------------------------------------------------------------ API
    def residual(self, kappa: np.ndarray | tf.Tensor) -> tf.Tensor:
        """``M(γ − Pκ)``, shape ``(..., 2, N, N)``."""
        return self._weight * (self.shear - self.operator.forward(kappa))

    def log_prob(self, kappa: np.ndarray | tf.Tensor, sigma: float | tf.Tensor = 0.0) -> tf.Tensor:
        """Tempered log-likelihood, shape = broadcast of κ's batch shape and ``sigma``'s shape."""
        var = self.variance(sigma)
        r = self.residual(kappa)
        chi2 = tf.reduce_sum(tf.square(r) / var, axis=[-3, -2, -1])
        log_norm = tf.reduce_sum(self._weight * tf.math.log(2.0 * math.pi * var), axis=[-3, -2, -1])
        return -0.5 * (chi2 + log_norm)

    def score(self, kappa: np.ndarray | tf.Tensor, sigma: float | tf.Tensor = 0.0) -> tf.Tensor:
        """``∇_κ log p_σ(γ|κ) = Pᵀ[M(γ − Pκ)/(σ_n² + σ²)]``, shape broadcast of κ and σ batch shapes + (N, N)."""
        return self.operator.adjoint(self.residual(kappa) / self.variance(sigma))

    def __repr__(self) -> str:
        frac = self.num_observed / self.geometry.num_pixels
        return f"ShearLikelihood({self.geometry!r}, observed={frac:.1%})"
