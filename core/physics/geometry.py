r"""Flat-sky map geometry and the Fourier conventions used everywhere in kappascope.

A map is a square grid of ``npix × npix`` pixels of angular side ``pixel_size``.
Arrays are indexed ``[..., row, column]``: axis ``-1`` (columns) is the x₁ axis
and axis ``-2`` (rows) is the x₂ axis, both increasing with the index.

Fourier conventions (the only place they are defined):

* ``fft2`` is the *un-normalised* forward DFT, ``κ̂_k = Σ_x κ_x e^{-2πi k·x}``, and
  ``ifft2`` its inverse (with the ``1/N`` factor), ``N = npix²``.
* Frequencies ``k = (k₁, k₂)`` are in cycles per pixel (``numpy.fft.fftfreq``),
  ``k₁`` along columns, ``k₂`` along rows.
* The multipole of a mode is ``ℓ = 2π |k| / θ_pix`` with ``θ_pix`` the pixel side in radians.
* A *power map* ``P_k`` is the variance per Fourier mode in per-pixel units:
  ``E|κ̂_k|² = N P_k``. White noise of per-pixel variance ``v`` has ``P_k = v``;
  a field with angular power spectrum ``C_ℓ`` has ``P_k = C_ℓ(ℓ_k) / Ω_pix`` with
  ``Ω_pix = θ_pix²`` in steradians (times the pixel window, see ``core.physics.cosmology``).
  The covariance of a stationary field is the circulant matrix ``F⁻¹ diag(P) F``, whose
  eigenvalues are the ``P_k``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import tensorflow as tf
from astropy import units as u

__all__ = ["MapGeometry", "fft2", "ifft2", "ifft2_real", "as_float_tensor"]


def _to_arcmin(pixel_size: float | u.Quantity) -> float:
    if isinstance(pixel_size, u.Quantity):
        try:
            value = float(pixel_size.to_value(u.arcmin))
        except u.UnitConversionError as err:
            raise ValueError(f"pixel_size must be an angle, got unit {pixel_size.unit}") from err
    else:
        value = float(pixel_size)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"pixel_size must be a positive finite angle, got {pixel_size!r}")
    return value


@dataclass(frozen=True)
class MapGeometry:
    """A square flat-sky pixel grid.

    Parameters
    ----------
    npix:
        Number of pixels on a side. Maps must be square with an even side of at least 8
        pixels (even sizes keep the Nyquist mode self-conjugate and the U-Net pooling exact).
    pixel_size:
        Pixel side, an astropy angle or a float in arcminutes.
    """

    npix: int
    pixel_size_arcmin: float

    def __init__(self, npix: int, pixel_size: float | u.Quantity = 1.0 * u.arcmin) -> None:
        if isinstance(npix, (bool, np.bool_)) or not isinstance(npix, (int, np.integer)):
            raise ValueError(f"npix must be an integer, got {npix!r}")
        npix = int(npix)
        if npix < 8:
            raise ValueError(f"npix must be at least 8, got {npix}")
        if npix % 2:
            raise ValueError(f"odd-sized maps are not supported: npix={npix} (use an even size)")
        object.__setattr__(self, "npix", npix)
        object.__setattr__(self, "pixel_size_arcmin", _to_arcmin(pixel_size))

    # ------------------------------------------------------------------ sizes
    @property
    def shape(self) -> tuple[int, int]:
        return (self.npix, self.npix)

    @property
    def num_pixels(self) -> int:
        return self.npix * self.npix

    @property
    def pixel_size(self) -> u.Quantity:
        return self.pixel_size_arcmin * u.arcmin

    @property
    def pixel_rad(self) -> float:
        return float((self.pixel_size_arcmin * u.arcmin).to_value(u.rad))

    @property
    def pixel_area_sr(self) -> float:
        return self.pixel_rad**2

    @property
    def side(self) -> u.Quantity:
        return self.npix * self.pixel_size

    # ---------------------------------------------------------------- Fourier
    @cached_property
    def k1(self) -> np.ndarray:
        """Frequency along columns (x₁), cycles/pixel, shape (npix, npix)."""
        f = np.fft.fftfreq(self.npix)
        return np.broadcast_to(f[None, :], self.shape).copy()

    @cached_property
    def k2(self) -> np.ndarray:
        """Frequency along rows (x₂), cycles/pixel, shape (npix, npix)."""
        f = np.fft.fftfreq(self.npix)
        return np.broadcast_to(f[:, None], self.shape).copy()

    @cached_property
    def ell(self) -> np.ndarray:
        """Multipole ℓ = 2π|k|/θ_pix of every Fourier mode, shape (npix, npix)."""
        return 2.0 * np.pi * np.hypot(self.k1, self.k2) / self.pixel_rad

    @property
    def ell_fundamental(self) -> float:
        """Smallest non-zero multipole, 2π / (side in radians)."""
        return 2.0 * np.pi / (self.npix * self.pixel_rad)

    @property
    def ell_nyquist(self) -> float:
        """Multipole of the Nyquist frequency along one axis, π/θ_pix."""
        return np.pi / self.pixel_rad

    def check_map(self, x: np.ndarray | tf.Tensor, name: str = "map", leading: int | None = None) -> None:
        """Raise ``ValueError`` unless the last two axes of ``x`` are this geometry's shape."""
        shape = tuple(x.shape)
        if len(shape) < 2 or tuple(shape[-2:]) != self.shape:
            raise ValueError(f"{name} has shape {shape}; expected (..., {self.npix}, {self.npix}) for this geometry")
        if leading is not None and (len(shape) < 3 or shape[-3] != leading):
            raise ValueError(f"{name} has shape {shape}; expected (..., {leading}, {self.npix}, {self.npix})")

    def __repr__(self) -> str:
        return f"MapGeometry(npix={self.npix}, pixel_size={self.pixel_size_arcmin:g} arcmin)"


def as_float_tensor(x: np.ndarray | tf.Tensor | float, name: str = "x") -> tf.Tensor:
    """Convert to a float32 tensor (no copy when it already is one)."""
    if isinstance(x, tf.Tensor) and x.dtype == tf.float32:
        return x
    return tf.convert_to_tensor(np.asarray(x, dtype=np.float32) if not isinstance(x, tf.Tensor) else tf.cast(x, tf.float32), name=name)


def to_complex64(x: tf.Tensor) -> tf.Tensor:
    """``x + 0i`` as complex64 by ``tf.complex`` (a complex tensor passes through). Not ``tf.cast``: the gradient of
    a float→complex cast is a complex→float cast, which TensorFlow logs as discarding the imaginary part each time
    a function is differentiated (every traced VJP through the network, also with respect to σ)."""
    x = tf.convert_to_tensor(x)
    if x.dtype.is_complex:  # complex128 → complex64 keeps the imaginary part
        return tf.cast(x, tf.complex64)
    x = tf.cast(x, tf.float32)
    return tf.complex(x, tf.zeros_like(x))


def fft2(x: tf.Tensor) -> tf.Tensor:
    """Un-normalised 2-D DFT over the last two axes of a real or complex tensor (complex64 out)."""
    return tf.signal.fft2d(to_complex64(x))


def ifft2(xk: tf.Tensor) -> tf.Tensor:
    """Inverse of :func:`fft2` (complex64 out)."""
    return tf.signal.ifft2d(tf.cast(xk, tf.complex64))


def ifft2_real(xk: tf.Tensor) -> tf.Tensor:
    """Real part of :func:`ifft2`, float32."""
    return tf.math.real(ifft2(xk))
