r"""Diagonal mass matrices (momentum metrics) for score-based HMC and preconditioned Langevin.

Hamiltonian ``H(x, p) = −log p(x) + K(p)`` with ``K(p) = ½ pᵀ M⁻¹ p`` and momentum ``p ~ N(0, M)``.
Leapfrog moves positions along the velocity ``M⁻¹ p``; preconditioned Langevin uses ``A = M⁻¹`` as
its diffusion matrix. Three diagonal metrics are implemented, all acting on real maps ``(..., N, N)``:

* :class:`IdentityMass` ``M = I``.
* :class:`PixelDiagonalMass` ``M⁻¹ = diag(v_x)`` with a per-pixel inverse mass ``v_x > 0``
  (broadcast against the map): ``p = z/√v``, ``M⁻¹p = v p``, ``K = ½ Σ v p²``.
* :class:`FourierDiagonalMass` ``M⁻¹ = F⁻¹ diag(v_k) F`` with a real, positive and
  Hermitian-symmetric ``v_k = v_{−k}`` (e.g. a power map), so ``M⁻¹`` is a real symmetric circulant
  matrix applied by FFT (:mod:`core.physics.geometry` conventions):
  ``M⁻¹p = F⁻¹[v F p]``, ``p = F⁻¹[F z / √v]`` (``z`` white, so ``Cov p = F⁻¹ diag(1/v) F = M``) and
  ``K = ½ Σ_x p · M⁻¹p``.

The ideal metric makes ``M⁻¹`` the target covariance. For the σ-smoothed Gaussian posterior with
(near-)uniform noise, that covariance is diagonal in Fourier space with per-mode variance
``v_k(σ) = [1/(P_k + σ²) + 1/(σ_n² + σ²)]⁻¹`` (:meth:`FourierDiagonalMass.from_posterior_variance`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from core.physics.geometry import as_float_tensor, fft2, ifft2_real

__all__ = [
    "MassMatrix",
    "IdentityMass",
    "PixelDiagonalMass",
    "FourierDiagonalMass",
    "as_mass_matrix",
    "posterior_mode_variance",
]


def _event_axes(event_ndims: int) -> list[int]:
    return list(range(-event_ndims, 0))


class MassMatrix:
    """Interface: ``sample_momentum``, ``velocity`` (M⁻¹p), ``apply_mass`` (Mv), ``kinetic_energy``."""

    def sample_momentum(self, like: tf.Tensor, seed: Any) -> tf.Tensor:
        raise NotImplementedError

    def velocity(self, momentum: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def apply_mass(self, vector: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def sqrt_inverse_mass_noise(self, like: tf.Tensor, seed: Any) -> tf.Tensor:
        """A draw of ``N(0, M⁻¹)``: ``M⁻¹ p`` with ``p ~ N(0, M)``."""
        return self.velocity(self.sample_momentum(like, seed))

    def kinetic_energy(self, momentum: tf.Tensor, event_ndims: int = 2) -> tf.Tensor:
        """``½ pᵀ M⁻¹ p`` summed over the last ``event_ndims`` axes (batch shape out)."""
        return 0.5 * tf.reduce_sum(momentum * self.velocity(momentum), axis=_event_axes(event_ndims))

    def mass_quadratic(self, vector: tf.Tensor, event_ndims: int = 2) -> tf.Tensor:
        """``vᵀ M v`` summed over the last ``event_ndims`` axes."""
        return tf.reduce_sum(vector * self.apply_mass(vector), axis=_event_axes(event_ndims))


class IdentityMass(MassMatrix):
    """``M = I``."""

    def sample_momentum(self, like: tf.Tensor, seed: Any) -> tf.Tensor:
        return tf.random.stateless_normal(tf.shape(like), seed=seed, dtype=like.dtype)

    def velocity(self, momentum: tf.Tensor) -> tf.Tensor:
        return momentum

    def apply_mass(self, vector: tf.Tensor) -> tf.Tensor:
        return vector

    def __repr__(self) -> str:
        return "IdentityMass()"


class PixelDiagonalMass(MassMatrix):
    """``M⁻¹ = diag(inverse_mass)``, a positive per-pixel array broadcastable against the state."""

    def __init__(self, inverse_mass: Any) -> None:
        inv = as_float_tensor(inverse_mass, "inverse_mass")
        if not isinstance(inverse_mass, tf.Tensor) or tf.executing_eagerly():
            values = np.asarray(inv)
            if not np.all(np.isfinite(values)) or np.any(values <= 0):
                raise ValueError("inverse_mass must be positive and finite everywhere")
        self.inverse_mass = inv

    def sample_momentum(self, like: tf.Tensor, seed: Any) -> tf.Tensor:
        z = tf.random.stateless_normal(tf.shape(like), seed=seed, dtype=like.dtype)
        return z * tf.math.rsqrt(self.inverse_mass)

    def velocity(self, momentum: tf.Tensor) -> tf.Tensor:
        return self.inverse_mass * momentum

    def apply_mass(self, vector: tf.Tensor) -> tf.Tensor:
        return vector / self.inverse_mass

    def __repr__(self) -> str:
        return f"PixelDiagonalMass(shape={tuple(self.inverse_mass.shape)})"


class FourierDiagonalMass(MassMatrix):
    """``M⁻¹ = F⁻¹ diag(v_k) F`` with a positive, Hermitian-symmetric ``v_k`` of shape ``(..., N, N)``."""

    def __init__(self, inverse_mass_power: Any) -> None:
        v = as_float_tensor(inverse_mass_power, "inverse_mass_power")
        if len(v.shape) < 2 or v.shape[-1] != v.shape[-2]:
            raise ValueError(f"inverse_mass_power must have shape (..., N, N), got {tuple(v.shape)}")
        if not isinstance(inverse_mass_power, tf.Tensor) or tf.executing_eagerly():
            values = np.asarray(v)
            if not np.all(np.isfinite(values)) or np.any(values <= 0):
                raise ValueError("inverse_mass_power must be positive and finite for every Fourier mode")
            flipped = np.roll(np.flip(values, axis=(-2, -1)), shift=1, axis=(-2, -1))  # v_{-k}
            if not np.allclose(values, flipped, rtol=1e-5, atol=0.0):
                raise ValueError("inverse_mass_power must be Hermitian-symmetric (v_k = v_-k) to define a real metric")
        self.inverse_mass_power = v
        self._v = tf.complex(v, tf.zeros_like(v))
        self._rsqrt_v = tf.complex(tf.math.rsqrt(v), tf.zeros_like(v))
        self._inv_v = tf.complex(1.0 / v, tf.zeros_like(v))

    @classmethod
    def from_posterior_variance(
        cls, power_map: Any, noise_variance: Any, sigma: Any = 0.0, scale: float = 1.0
    ) -> "FourierDiagonalMass":
        """Metric with ``M⁻¹ = scale · diag(v_k(σ))`` (see :func:`posterior_mode_variance`)."""
        return cls(scale * posterior_mode_variance(power_map, noise_variance, sigma))

    def sample_momentum(self, like: tf.Tensor, seed: Any) -> tf.Tensor:
        z = tf.random.stateless_normal(tf.shape(like), seed=seed, dtype=like.dtype)
        return ifft2_real(fft2(z) * self._rsqrt_v)

    def velocity(self, momentum: tf.Tensor) -> tf.Tensor:
        return ifft2_real(fft2(momentum) * self._v)

    def apply_mass(self, vector: tf.Tensor) -> tf.Tensor:
        return ifft2_real(fft2(vector) * self._inv_v)

    def __repr__(self) -> str:
        return f"FourierDiagonalMass(shape={tuple(self.inverse_mass_power.shape)})"


def posterior_mode_variance(power_map: Any, noise_variance: Any, sigma: Any = 0.0, prior_cap: float | None = None) -> tf.Tensor:
    r"""Per-Fourier-mode variance of the σ-smoothed Gaussian posterior with uniform noise and no mask.

    ``v_k(σ) = [1/(P_k + σ²) + 1/(σ_n² + σ²)]⁻¹`` for ``k ≠ 0`` and ``v_0 = P_0 + σ²`` (shear does not
    constrain the mean). Shear has two components with per-pixel variance ``σ_n²`` each and
    ``|D_k| = 1``, so ``‖Pκ‖² = ‖κ − κ̄‖²`` and the likelihood precision is ``1/σ_n²`` per mode.
    ``sigma`` may be a scalar tensor (traced σ of an annealing level).

    ``prior_cap = τ`` (the *capped* metric for learned priors) replaces the prior variance by
    ``min(P_k + σ², τσ²)`` for ``k ≠ 0``: the sampler then moves every mode at most about as far as the
    smoothing noise per step, so modes whose prior variance exceeds ``τσ²`` (signal-dominated at this σ,
    where denoising score matching does not pin a learned score down) keep what the coarser levels gave
    them instead of re-equilibrating under the (there Gaussian) learned score; see :mod:`core.inference.driver`.
    """
    p = tf.cast(as_float_tensor(power_map, "power_map"), tf.float32)
    s2 = tf.square(tf.cast(sigma, tf.float32))
    nv = tf.cast(noise_variance, tf.float32)
    prior_var = p + s2
    if prior_cap is not None:
        if not (np.isfinite(prior_cap) and prior_cap > 0):
            raise ValueError(f"prior_cap must be positive and finite, got {prior_cap!r}")
        prior_var = tf.minimum(prior_var, float(prior_cap) * s2)
    data_var = nv + s2
    v = 1.0 / (1.0 / prior_var + 1.0 / data_var)
    n = p.shape[-1]
    is_zero_mode = np.zeros((n, n), dtype=bool)
    is_zero_mode[0, 0] = True
    return tf.where(tf.constant(is_zero_mode), prior_var, v)


def as_mass_matrix(momentum_scale: Any) -> MassMatrix:
    """Normalise the ``momentum_scale`` argument of the kernels.

    ``None`` → :class:`IdentityMass`; a :class:`MassMatrix` → itself; an array → a per-pixel
    metric whose momentum standard deviation is ``momentum_scale`` (``M = diag(momentum_scale²)``).
    """
    if momentum_scale is None:
        return IdentityMass()
    if isinstance(momentum_scale, MassMatrix):
        return momentum_scale
    if isinstance(momentum_scale, (np.ndarray, tf.Tensor, float, int, list, tuple)):
        scale = as_float_tensor(momentum_scale, "momentum_scale")
        return PixelDiagonalMass(1.0 / tf.square(scale))
    raise ValueError(f"momentum_scale must be None, a MassMatrix or a per-pixel array, got {type(momentum_scale).__name__}")
