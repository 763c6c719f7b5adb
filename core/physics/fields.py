r"""Gaussian and shifted-lognormal random convergence fields with a given power map.

Conventions of :mod:`core.physics.geometry`: a power map ``P_k`` of shape (npix, npix) is the variance
per Fourier mode, ``E|κ̂_k|² = npix² P_k``, i.e. the eigenvalues of the circulant covariance
``C = F⁻¹ diag(P) F``; its first column (the correlation function) is ``ξ = ifft2(P)``.

Gaussian field
    ``κ = F⁻¹[√P · F w]`` with ``w`` white, unit-variance, real: ``E|F w|² = npix²`` so
    ``E|κ̂|² = npix² P``. Computed with the real FFT pair (``rfft2d``/``irfft2d``), which
    keeps the Hermitian symmetry exactly; ``P`` must satisfy ``P(k) = P(−k)``.

Shifted lognormal field
    ``κ = exp(G) − λ`` with ``G`` Gaussian and ``E[e^G] = λ`` so that ``E κ = 0`` and
    ``κ > −λ``. Writing ``G = ln λ − σ_G²/2 + g`` with ``g`` zero-mean Gaussian of covariance
    ``ξ_G``, the covariance of κ is ``ξ_κ = λ² (e^{ξ_G} − 1)``, hence

    .. math::  ξ_G(r) = \ln\!\left(1 + ξ_κ(r)/λ^2\right),\qquad ξ_κ = F^{-1}[P] ,

    (``ξ`` as the first column of the circulant covariance, ``ifft2`` of the power map) and
    ``P_G = F[ξ_G]``. ``P_G`` can have small negative values (the lognormal model is not
    realisable for every spectrum); they are clipped to zero and the clipped fraction of
    the Gaussian power is logged (a warning above :data:`CLIP_WARNING_FRACTION`), so the
    realised κ spectrum is then only approximately ``P``. For the default theory the clipped
    fraction is below 1e-6 at 0.29′ pixels and λ = 0.066.

    One-point moments: with ``x = σ_κ/λ``, ``e^{σ_G²} = 1 + x²`` and the skewness is exactly
    ``γ₁ = (e^{σ_G²} + 2)\sqrt{e^{σ_G²} − 1} = 3x + x³``.

Default shift
    :data:`DEFAULT_SHIFT` ``λ = 0.066`` is the magnitude of the empty-beam convergence
    ``κ_empty = −(3/2)(H₀/c)² Ω_m ∫₀^{χ_s} dχ χ(χ_s − χ)/χ_s (1 + z)`` for a source plane
    at ``z_s = 1`` in Planck18 (computed by
    :func:`core.physics.cosmology.empty_beam_convergence`), the lower bound of κ used as the
    lognormal shift by Taruya et al. (2002, ApJ 571, 638). Shifts fitted to ray-traced maps
    (e.g. Hilbert, Hartlap & Schneider 2011, A&A 536, A85) depend on scale and differ from it;
    pass ``shift`` to change it. With 0.29′ pixels (σ_κ ≈ 0.023) it gives a skewness ≈ 1.07.

Random numbers: stateless TF RNG from an explicit ``seed`` (a non-negative Python int, mapped
deterministically by :func:`stateless_seed`, or a shape-[2] integer tensor). Outputs are
float32 ``(num, N, N)``.
"""
from __future__ import annotations

import logging

import numpy as np
import tensorflow as tf

from core.seeds import SeedLike, stateless_seed

__all__ = [
    "DEFAULT_SHIFT",
    "check_power_map",
    "gaussian_field",
    "lognormal_gaussian_power",
    "lognormal_field",
    "white_noise",
    "stateless_seed",
]

logger = logging.getLogger(__name__)

#: lognormal shift λ for z_s = 1 (empty-beam convergence in Planck18; see module doc)
DEFAULT_SHIFT = 0.066

#: clipping of negative Gaussian power is logged as a warning above this fraction of |P_G|
#: (below it, at debug level: the effect on the κ spectrum is then < 1e-4 relative)
CLIP_WARNING_FRACTION = 1e-4



def check_power_map(power_map: np.ndarray | tf.Tensor, name: str = "power_map", symmetric: bool = True) -> np.ndarray:
    """Validate a power map and return it as float64 numpy (N, N).

    Requires a square even-sized 2-D array, finite and non-negative values, and (when
    ``symmetric``) ``P(k) = P(−k)`` to relative 1e-5 — the condition for a real field.
    """
    if isinstance(power_map, (tf.Tensor, tf.Variable)):
        power_map = power_map.numpy()
    power = np.asarray(power_map, dtype=np.float64)
    if power.ndim != 2 or power.shape[0] != power.shape[1] or power.shape[0] % 2:
        raise ValueError(f"{name} must be a square, even-sized 2-D array; got shape {power.shape}")
    if not np.all(np.isfinite(power)):
        raise ValueError(f"{name} must be finite")
    if np.any(power < 0):
        raise ValueError(f"{name} must be non-negative (min {power.min():.3g})")
    if symmetric:
        mirrored = np.roll(power[::-1, ::-1], shift=(1, 1), axis=(0, 1))  # P(−k)
        if not np.allclose(power, mirrored, rtol=1e-5, atol=1e-12 * max(power.max(), 1e-300)):
            raise ValueError(f"{name} must satisfy P(k) = P(-k) (the spectrum of a real field)")
    return power


def _check_num(num: int) -> int:
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"num must be a positive integer, got {num!r}")
    return int(num)


def white_noise(shape: tuple[int, ...], seed: SeedLike) -> tf.Tensor:
    """Unit-variance standard normal float32 tensor from a stateless seed (see :func:`stateless_seed`)."""
    return tf.random.stateless_normal(shape, seed=stateless_seed(seed), dtype=tf.float32)


def _half_plane(power: np.ndarray) -> np.ndarray:
    """The rfft2d half (N, N/2+1) of a full-plane map."""
    return power[:, : power.shape[1] // 2 + 1]


def _colour(white: tf.Tensor, amplitude_half: tf.Tensor) -> tf.Tensor:
    """F⁻¹[a · F w] for real ``w`` (..., N, N) and a real half-plane amplitude ``a``."""
    npix = white.shape[-1]
    wk = tf.signal.rfft2d(white)
    return tf.signal.irfft2d(wk * tf.cast(amplitude_half, tf.complex64), fft_length=[npix, npix])


def gaussian_field(power_map: np.ndarray | tf.Tensor, num: int, seed: SeedLike) -> tf.Tensor:
    """``num`` Gaussian random fields with power map ``P``: float32 tensor (num, N, N)."""
    power = check_power_map(power_map)
    num = _check_num(num)
    npix = power.shape[0]
    amplitude = tf.constant(np.sqrt(_half_plane(power)).astype(np.float32))
    return _colour(white_noise((num, npix, npix), seed), amplitude)


def lognormal_gaussian_power(power_map: np.ndarray | tf.Tensor, shift: float = DEFAULT_SHIFT) -> np.ndarray:
    """Power map (float64, N×N) of the Gaussian field G whose shifted exponential has power ``P``.

    ``ξ_κ = ifft2(P)``, ``ξ_G = ln(1 + ξ_κ/λ²)``, ``P_G = Re fft2(ξ_G)``, negatives clipped to 0
    (warning with the clipped fraction of |P_G|). Raises ``ValueError`` when ``ξ_κ ≤ −λ²``
    somewhere (no lognormal field with this shift has that spectrum).
    """
    power = check_power_map(power_map)
    shift = _check_shift(shift)
    xi_kappa = np.fft.ifft2(power).real
    ratio = xi_kappa / shift**2
    if np.min(ratio) <= -1.0:
        raise ValueError(
            f"shift={shift:g} is too small for this power map: the correlation function reaches "
            f"{xi_kappa.min():.3g} <= -shift**2"
        )
    xi_gauss = np.log1p(ratio)
    power_gauss = np.fft.fft2(xi_gauss).real
    negative = power_gauss < 0
    if np.any(negative):
        clipped = float(-power_gauss[negative].sum() / np.abs(power_gauss).sum())
        level = logging.WARNING if clipped > CLIP_WARNING_FRACTION else logging.DEBUG
        logger.log(
            level,
            "lognormal_gaussian_power: clipped %d negative modes (%.3g%% of the Gaussian power) to zero",
            int(negative.sum()),
            100.0 * clipped,
        )
        power_gauss = np.where(negative, 0.0, power_gauss)
    # restore exact P(k) = P(-k) against round-off of the FFT pair
    mirrored = np.roll(power_gauss[::-1, ::-1], shift=(1, 1), axis=(0, 1))
    return 0.5 * (power_gauss + mirrored)


def _check_shift(shift: float) -> float:
    try:
        value = float(shift)
    except (TypeError, ValueError) as err:
        raise ValueError(f"shift must be a positive number, got {shift!r}") from err
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"shift must be positive and finite, got {shift!r}")
    return value


def lognormal_field(
    power_map: np.ndarray | tf.Tensor,
    num: int,
    seed: SeedLike,
    shift: float = DEFAULT_SHIFT,
) -> tf.Tensor:
    """``num`` zero-mean shifted-lognormal fields ``κ = λ(exp(g − σ_G²/2) − 1)`` with power ≈ ``P``.

    float32 tensor (num, N, N), every value > −λ. ``σ_G² = Σ P_G / N`` is the variance of the
    realisable (clipped) Gaussian field, so ``E κ = 0`` exactly.
    """
    shift = _check_shift(shift)
    power_gauss = lognormal_gaussian_power(power_map, shift)
    variance_gauss = float(power_gauss.mean())  # ξ_G(0) = (1/N) Σ_k P_G,k
    g = gaussian_field(power_gauss, num, seed)
    return shift * tf.math.expm1(g - 0.5 * variance_gauss)
