r"""The Gaussian (power-spectrum) prior on convergence maps, convolved with white noise of std σ.

The prior is a zero-mean stationary Gaussian with circulant covariance ``S = F⁻¹ diag(P) F``
(``P`` a power map, conventions of :mod:`core.physics.geometry`). Convolving with ``N(0, σ² I)`` — the
annealing convention — gives covariance ``S + σ² I`` whose eigenvalues are ``P_k + σ²``.
With ``κ̂ = F κ`` (un-normalised DFT, ``N = npix²`` pixels) and ``Σ_k`` over all N modes:

.. math::
    \log p_σ(κ) &= -\tfrac12 \sum_k \frac{|\hat κ_k|^2}{N (P_k + σ^2)}
                   - \tfrac12 \sum_k \log\!\left(2π (P_k + σ^2)\right) \\
    \nabla_κ \log p_σ(κ) &= -F^{-1}\!\left[\frac{\hat κ}{P + σ^2}\right] \\
    E[κ \mid x] &= x + σ^2 \nabla_x \log p_σ(x) \quad\text{(Tweedie; exact posterior mean for } x = κ + σ n) \\
    \partial E[κ \mid x]/\partial x &= F^{-1} \operatorname{diag}\!\big(P/(P+σ^2)\big) F
                   \quad\text{(symmetric; } σ^2 \text{ times it is the posterior covariance } V[κ \mid x])

(the quadratic form uses Parseval, ``κᵀ(S+σ²)^{-1}κ = Σ_k |κ̂_k|²/(N(P_k+σ²))``, and the
log-determinant is ``Σ_k log(P_k + σ²)``). Everything is evaluated on the real-FFT half plane
(``rfft2d``, columns ``0 … npix/2``) with Hermitian weights: 1 for the self-conjugate columns
0 and npix/2, 2 for the others, which counts every full-plane mode once.

``sigma`` may be a Python float or a float tensor broadcastable to the batch shape of κ
(e.g. shape ``(num_chains,)`` for per-chain noise levels, not ``(num_chains, 1, 1)``); results
have the broadcast batch shape. A negative Python ``sigma`` raises ``ValueError``; tensor values
are not checked (they enter only through σ²). Float32 throughout; device-agnostic TensorFlow ops, usable inside ``tf.function``.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from core.physics.fields import SeedLike, check_power_map, white_noise
from core.physics.geometry import MapGeometry, as_float_tensor, to_complex64

__all__ = ["GaussianPrior"]

_LOG_2PI = math.log(2.0 * math.pi)


class GaussianPrior:
    """σ-convolved Gaussian prior with power map ``P`` (strictly positive, shape (npix, npix)).

    Attributes: ``geometry``, ``power_map`` (float64 numpy copy), ``has_log_prob = True``.
    """

    has_log_prob = True

    def __init__(self, geometry: MapGeometry, power_map: np.ndarray | tf.Tensor) -> None:
        if not isinstance(geometry, MapGeometry):
            raise ValueError(f"geometry must be a MapGeometry, got {type(geometry).__name__}")
        power = check_power_map(power_map)
        if power.shape != geometry.shape:
            raise ValueError(f"power_map has shape {power.shape}; expected {geometry.shape} for {geometry}")
        if np.any(power <= 0):
            raise ValueError("power_map must be strictly positive for a Gaussian prior (its log-density needs P > 0)")
        self.geometry = geometry
        self._power = power
        half = geometry.npix // 2 + 1
        weights = np.full((geometry.npix, half), 2.0)
        weights[:, 0] = 1.0
        weights[:, -1] = 1.0
        self._power_half = tf.constant(power[:, :half].astype(np.float32))
        self._weights_half = tf.constant(weights.astype(np.float32))

    @classmethod
    def default(cls, geometry: MapGeometry) -> "GaussianPrior":
        """The prior of the default theory (Planck18, z_s = 1, pixel window), see
        :func:`core.physics.cosmology.default_power_map`."""
        from core.physics.cosmology import default_power_map

        return cls(geometry, default_power_map(geometry))

    def __repr__(self) -> str:
        return f"GaussianPrior({self.geometry}, pixel variance={self._power.mean():.3g})"

    @property
    def power_map(self) -> np.ndarray:
        """The power map P (float64 numpy, a copy)."""
        return self._power.copy()

    @property
    def pixel_variance(self) -> float:
        """Prior variance of one pixel at σ = 0, ``Σ_k P_k / N``."""
        return float(self._power.mean())

    # ----------------------------------------------------------------------- helpers
    def _kappa(self, kappa: np.ndarray | tf.Tensor, name: str = "kappa") -> tf.Tensor:
        kappa = as_float_tensor(kappa, name)
        self.geometry.check_map(kappa, name)
        return kappa

    @staticmethod
    def _sigma_sq(sigma: float | np.ndarray | tf.Tensor) -> tf.Tensor:
        """σ² as float32 with two trailing unit axes, broadcastable against (..., N, N/2+1)."""
        if isinstance(sigma, (int, float, np.floating, np.integer)) and not isinstance(sigma, bool):
            if not math.isfinite(float(sigma)) or float(sigma) < 0:
                raise ValueError(f"sigma must be a non-negative finite number, got {sigma!r}")
        sigma = as_float_tensor(sigma, "sigma")
        return tf.square(sigma)[..., tf.newaxis, tf.newaxis]

    def _total_power(self, sigma: float | tf.Tensor) -> tf.Tensor:
        return self._power_half + self._sigma_sq(sigma)

    # ---------------------------------------------------------------------- density
    def log_prob(self, kappa: np.ndarray | tf.Tensor, sigma: float | tf.Tensor = 0.0) -> tf.Tensor:
        """Exact log-density of the σ-convolved prior; shape = broadcast batch shape of κ and σ."""
        kappa = self._kappa(kappa)
        total = self._total_power(sigma)
        kk = tf.signal.rfft2d(kappa)
        sq = tf.square(tf.math.real(kk)) + tf.square(tf.math.imag(kk))
        quad = tf.reduce_sum(self._weights_half * sq / total, axis=[-2, -1]) / float(self.geometry.num_pixels)
        log_det = tf.reduce_sum(self._weights_half * (tf.math.log(total) + _LOG_2PI), axis=[-2, -1])
        return -0.5 * (quad + log_det)

    def score(self, kappa: np.ndarray | tf.Tensor, sigma: float | tf.Tensor = 0.0) -> tf.Tensor:
        """∇_κ log p_σ(κ) = −F⁻¹[κ̂/(P+σ²)], float32 with the broadcast shape of κ and σ."""
        kappa = self._kappa(kappa)
        inv = to_complex64(1.0 / self._total_power(sigma))
        npix = self.geometry.npix
        return -tf.signal.irfft2d(tf.signal.rfft2d(kappa) * inv, fft_length=[npix, npix])

    def denoise(self, x: np.ndarray | tf.Tensor, sigma: float | tf.Tensor) -> tf.Tensor:
        """Posterior mean ``E[κ | x] = x + σ² ∇ log p_σ(x)`` for ``x = κ + σ n`` (Tweedie, exact here)."""
        x = self._kappa(x, "x")
        return x + self._sigma_sq(sigma) * self.score(x, sigma)

    def denoise_jvp(self, x: np.ndarray | tf.Tensor, sigma: float | tf.Tensor, tangent: np.ndarray | tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(D(x, σ), ∂D/∂x · t)``.  Exact and cheap here: ``D`` is linear, ``∂D/∂x = F⁻¹ diag(P/(P+σ²)) F``,
        so the JVP is ``D(t, σ)``."""
        return self.denoise(x, sigma), self.denoise(tangent, sigma)

    def denoise_vjp(self, x: np.ndarray | tf.Tensor, sigma: float | tf.Tensor, cotangent: np.ndarray | tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(D(x, σ), uᵀ ∂D/∂x)``; ``∂D/∂x`` is symmetric (a real, even Fourier filter), so this is ``D(u, σ)``."""
        return self.denoise(x, sigma), self.denoise(cotangent, sigma)

    def sample(self, num: int, seed: SeedLike, sigma: float | tf.Tensor = 0.0) -> tf.Tensor:
        """``num`` draws from the σ-convolved prior, float32 (num, npix, npix); σ scalar or (num,)."""
        if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
            raise ValueError(f"num must be a positive integer, got {num!r}")
        npix = self.geometry.npix
        white = white_noise((int(num), npix, npix), seed)
        amplitude = to_complex64(tf.sqrt(self._total_power(sigma)))
        return tf.signal.irfft2d(tf.signal.rfft2d(white) * amplitude, fft_length=[npix, npix])
