r"""Flat-sky weak-lensing operator: convergence κ → shear γ, its adjoint, Kaiser–Squires.

With the lensing potential ψ, ``κ = ½∇²ψ``, ``γ₁ = ½(ψ,₁₁ − ψ,₂₂)``, ``γ₂ = ψ,₁₂``.
In Fourier space (conventions of :mod:`core.physics.geometry`, k₁ along columns, k₂ along rows)

.. math::  \hat γ(k) = D(k)\,\hat κ(k),\qquad D(k) = \frac{(k_1^2 - k_2^2) + 2 i k_1 k_2}{k_1^2 + k_2^2},\quad D(0) = 0,

with ``γ = γ₁ + iγ₂``. ``|D| = 1`` away from ``k = 0``, so the forward operator ``P`` is
unitary on zero-mean maps. Shear arrays have shape ``(..., 2, npix, npix)`` with the
component axis ``[γ₁, γ₂]`` third from last.

* Forward  ``Pκ = F⁻¹[D F κ]`` (complex, split into γ₁, γ₂).
* Adjoint  ``Pᵀγ = Re F⁻¹[D* F(γ₁ + iγ₂)]`` — the adjoint for the real inner product
  ``⟨γ, γ'⟩ = Σ γ₁γ₁' + γ₂γ₂'``, checked to float32 precision in the tests.
* Kaiser–Squires ``κ_E + iκ_B = F⁻¹[D* F γ]`` — so ``Pᵀγ = κ_E`` and ``KS∘P`` is the
  identity on zero-mean maps; a pure-E shear field gives ``κ_B = 0``.
* Gaussian smoothing multiplies by ``exp(−2π² s² |k|²)`` with ``s`` the kernel's standard
  deviation in pixels (periodic boundary).

All functions take float32 tensors (or arrays) with any leading batch shape and are
differentiable; they run on whatever device TensorFlow places them on.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from core.physics.geometry import MapGeometry, as_float_tensor, fft2, ifft2, ifft2_real

__all__ = ["shear_kernel", "LensingOperator", "gaussian_smooth", "fwhm_to_sigma"]

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


def fwhm_to_sigma(fwhm: float) -> float:
    return float(fwhm) / FWHM_PER_SIGMA


def shear_kernel(geometry: MapGeometry) -> np.ndarray:
    """The complex Kaiser–Squires kernel D(k) on the FFT grid (complex128, D(0)=0)."""
    k1, k2 = geometry.k1, geometry.k2
    k_sq = k1**2 + k2**2
    with np.errstate(invalid="ignore", divide="ignore"):
        d = ((k1**2 - k2**2) + 2j * k1 * k2) / k_sq
    d[k_sq == 0] = 0.0
    return d


class LensingOperator:
    """Forward operator P (κ → γ₁, γ₂), its adjoint and the Kaiser–Squires inverse."""

    def __init__(self, geometry: MapGeometry) -> None:
        self.geometry = geometry
        d = shear_kernel(geometry)
        self._d = tf.constant(d.astype(np.complex64))
        self._d_conj = tf.constant(np.conj(d).astype(np.complex64))

    def _kappa(self, kappa: tf.Tensor | np.ndarray) -> tf.Tensor:
        kappa = as_float_tensor(kappa, "kappa")
        self.geometry.check_map(kappa, "kappa")
        return kappa

    def _shear(self, shear: tf.Tensor | np.ndarray) -> tf.Tensor:
        shear = as_float_tensor(shear, "shear")
        self.geometry.check_map(shear, "shear", leading=2)
        return shear

    def forward(self, kappa: tf.Tensor | np.ndarray) -> tf.Tensor:
        """Shear ``(..., 2, N, N)`` of the convergence ``(..., N, N)``."""
        gamma = ifft2(self._d * fft2(self._kappa(kappa)))
        return tf.stack([tf.math.real(gamma), tf.math.imag(gamma)], axis=-3)

    __call__ = forward

    def adjoint(self, shear: tf.Tensor | np.ndarray) -> tf.Tensor:
        """Pᵀγ, a real map ``(..., N, N)``."""
        shear = self._shear(shear)
        gamma = tf.complex(shear[..., 0, :, :], shear[..., 1, :, :])
        return ifft2_real(self._d_conj * fft2(gamma))

    def kaiser_squires(self, shear: tf.Tensor | np.ndarray) -> tuple[tf.Tensor, tf.Tensor]:
        """Kaiser–Squires inversion: (κ_E, κ_B), each ``(..., N, N)``."""
        shear = self._shear(shear)
        gamma = tf.complex(shear[..., 0, :, :], shear[..., 1, :, :])
        kappa = ifft2(self._d_conj * fft2(gamma))
        return tf.math.real(kappa), tf.math.imag(kappa)


def gaussian_smooth(
    maps: tf.Tensor | np.ndarray,
    geometry: MapGeometry,
    *,
    sigma_arcmin: float | None = None,
    fwhm_arcmin: float | None = None,
) -> tf.Tensor:
    """Periodic Gaussian smoothing of real maps ``(..., N, N)`` by a kernel given by its
    standard deviation or its FWHM in arcminutes (exactly one of the two; 0 = no smoothing)."""
    if (sigma_arcmin is None) == (fwhm_arcmin is None):
        raise ValueError("give exactly one of sigma_arcmin or fwhm_arcmin")
    s = sigma_arcmin if sigma_arcmin is not None else fwhm_to_sigma(fwhm_arcmin)
    if not np.isfinite(s) or s < 0:
        raise ValueError(f"smoothing scale must be a non-negative finite number of arcmin, got {s!r}")
    maps = as_float_tensor(maps, "maps")
    geometry.check_map(maps, "maps")
    if s == 0:
        return maps
    s_pix = s / geometry.pixel_size_arcmin
    window = np.exp(-2.0 * np.pi**2 * s_pix**2 * (geometry.k1**2 + geometry.k2**2))
    return ifft2_real(fft2(maps) * tf.constant(window.astype(np.complex64)))
