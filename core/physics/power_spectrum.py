r"""Azimuthally binned power spectra of maps, in the per-pixel units of a power map.

For a real map ``κ`` with un-normalised DFT ``κ̂`` (conventions of :mod:`core.physics.geometry`), the
estimator of the power map is ``|κ̂_k|² / N`` (``N = npix²``), so that ``E[|κ̂_k|²/N] = P_k``.
The binned spectrum averages it over the modes whose multipole ``ℓ_k = 2π|k|/θ_pix`` falls in
each bin ``[ℓ_i, ℓ_{i+1})`` (last bin closed), excluding ``k = 0``:

.. math::  \hat P_i = \frac{1}{n_i} \sum_{k:\,ℓ_k \in \text{bin } i} \frac{|\hat κ_k|^2}{N} .

For a Gaussian field each pair ``±k`` is one independent complex mode, so the relative
standard error of ``\hat P_i`` is about ``sqrt(2 / n_i)`` for one map (self-conjugate modes
count once with variance ``2P²``, the same formula up to their small number).
The angular power spectrum follows as ``C_ℓ = P · Ω_pix`` (:func:`power_to_cl`), up to
the pixel window that the power map includes.

Default bins: ``num_bins`` logarithmically spaced between the fundamental multipole
``2π/(npix θ_pix)`` and the Nyquist multipole ``π/θ_pix`` (the corner modes beyond Nyquist
along one axis are left out). The bin "centre" returned is the mean ℓ of the modes in the
bin, the effective multipole to compare with theory.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from core.physics.geometry import MapGeometry

__all__ = [
    "default_ell_edges",
    "binned_power_spectrum",
    "bin_power_map",
    "power_to_cl",
    "cl_to_power",
    "power_map_to_cl",
]

_EDGE_SLACK = 1e-9  # relative widening of the default outer edges so the end modes are kept


def default_ell_edges(
    geometry: MapGeometry,
    num_bins: int = 20,
    ell_min: float | None = None,
    ell_max: float | None = None,
) -> np.ndarray:
    """``num_bins + 1`` log-spaced bin edges from ``ell_min`` (default: fundamental) to
    ``ell_max`` (default: Nyquist)."""
    if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
        raise ValueError(f"num_bins must be a positive integer, got {num_bins!r}")
    lo = geometry.ell_fundamental * (1 - _EDGE_SLACK) if ell_min is None else float(ell_min)
    hi = geometry.ell_nyquist * (1 + _EDGE_SLACK) if ell_max is None else float(ell_max)
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo < hi):
        raise ValueError(f"need 0 < ell_min < ell_max, got ell_min={lo!r}, ell_max={hi!r}")
    return np.geomspace(lo, hi, int(num_bins) + 1)


def _check_edges(edges: np.ndarray) -> np.ndarray:
    edges = np.asarray(edges, dtype=float)
    if edges.ndim != 1 or edges.size < 2:
        raise ValueError(f"ell_edges must be 1-D with at least 2 entries, got shape {edges.shape}")
    if not np.all(np.isfinite(edges)) or np.any(edges < 0) or np.any(np.diff(edges) <= 0):
        raise ValueError("ell_edges must be finite, non-negative and strictly increasing")
    return edges


def _bin_index(geometry: MapGeometry, edges: np.ndarray) -> np.ndarray:
    """Bin of every Fourier mode (flattened), −1 for k=0 and modes outside the edges."""
    ell = geometry.ell.ravel()
    idx = np.searchsorted(edges, ell, side="right") - 1
    idx[ell == edges[-1]] = edges.size - 2  # last bin closed
    idx[(idx < 0) | (idx > edges.size - 2)] = -1
    idx[0] = -1  # k = 0
    return idx


def _binned_mean(values: np.ndarray, geometry: MapGeometry, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average ``values (..., N, N)`` over ℓ bins; returns (ℓ centres, means (..., nbins), counts)."""
    nbins = edges.size - 1
    idx = _bin_index(geometry, edges)
    keep = idx >= 0
    counts = np.bincount(idx[keep], minlength=nbins).astype(np.int64)
    ell_sum = np.bincount(idx[keep], weights=geometry.ell.ravel()[keep], minlength=nbins)
    batch_shape = values.shape[:-2]
    flat = values.reshape((-1, values.shape[-2] * values.shape[-1]))[:, keep]
    num_maps = flat.shape[0]
    # one bincount over all maps: map b's modes go to bins b*nbins + idx
    offsets = (np.arange(num_maps) * nbins)[:, None] + idx[keep][None, :]
    sums = np.bincount(offsets.ravel(), weights=flat.ravel(), minlength=num_maps * nbins)
    sums = sums.reshape(batch_shape + (nbins,))
    with np.errstate(invalid="ignore", divide="ignore"):
        centres = np.where(counts > 0, ell_sum / np.maximum(counts, 1), np.sqrt(edges[:-1] * edges[1:]))
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return centres, means, counts


def _as_numpy(x: np.ndarray | tf.Tensor, name: str) -> np.ndarray:
    if isinstance(x, (tf.Tensor, tf.Variable)):
        x = x.numpy()
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise ValueError(f"{name} must be a real numeric array, got dtype {x.dtype}")
    return x.astype(np.float64, copy=False)


def binned_power_spectrum(
    maps: np.ndarray | tf.Tensor,
    geometry: MapGeometry,
    num_bins: int = 20,
    ell_edges: np.ndarray | None = None,
    ell_min: float | None = None,
    ell_max: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binned power spectrum of real maps ``(..., N, N)`` (numpy or tf).

    Returns ``(ell_centres (B,), power (..., B), counts (B,))`` as numpy float64/int64:
    the mean ℓ of the modes in each bin, the mean of ``|κ̂_k|²/N`` over them (power-map
    units; NaN for an empty bin) and the number of modes per bin. Give either explicit
    ``ell_edges`` or ``num_bins`` (with optional ``ell_min``/``ell_max``) log-spaced bins.
    """
    maps = _as_numpy(maps, "maps")
    geometry.check_map(maps, "maps")
    if not np.all(np.isfinite(maps)):
        raise ValueError("maps must be finite")
    edges = default_ell_edges(geometry, num_bins, ell_min, ell_max) if ell_edges is None else _check_edges(ell_edges)
    power = np.abs(np.fft.fft2(maps)) ** 2 / geometry.num_pixels
    return _binned_mean(power, geometry, edges)


def bin_power_map(
    power_map: np.ndarray | tf.Tensor,
    geometry: MapGeometry,
    ell_edges: np.ndarray | None = None,
    num_bins: int = 20,
    ell_min: float | None = None,
    ell_max: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bin a theory power map ``(..., N, N)`` exactly like :func:`binned_power_spectrum`
    (mode average over the same annuli), so the two can be compared bin by bin."""
    power_map = _as_numpy(power_map, "power_map")
    geometry.check_map(power_map, "power_map")
    edges = default_ell_edges(geometry, num_bins, ell_min, ell_max) if ell_edges is None else _check_edges(ell_edges)
    return _binned_mean(power_map, geometry, edges)


def power_to_cl(power: np.ndarray | float, geometry: MapGeometry) -> np.ndarray:
    """Per-pixel power → angular power spectrum: ``C_ℓ = P · Ω_pix`` (steradians)."""
    return np.asarray(power, dtype=float) * geometry.pixel_area_sr


def cl_to_power(cl: np.ndarray | float, geometry: MapGeometry) -> np.ndarray:
    """Angular power spectrum → per-pixel power: ``P = C_ℓ / Ω_pix`` (no pixel window)."""
    return np.asarray(cl, dtype=float) / geometry.pixel_area_sr


power_map_to_cl = power_to_cl
