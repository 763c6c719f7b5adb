r"""Summaries of posterior samples: moments, convergence diagnostics, power spectra, peaks, coverage.

* :func:`posterior_summary` — per-pixel sample mean ``m``, standard deviation ``s`` (``ddof = 1``) and the
  significance ``m / s`` (the signal-to-noise map; 0 where ``s = 0``).
* :func:`rhat_ess` — Gelman–Rubin split-free potential scale reduction ``R̂`` and the effective sample size of
  chain histories ``(T, C, ...)`` via ``tfp.mcmc.potential_scale_reduction`` and
  ``tfp.mcmc.effective_sample_size`` (ESS summed over chains, cross-chain form) — for stationary chains, not a
  convergence test of annealed runs (see :mod:`core.analysis.diagnostics`).
* :func:`sample_power_spectra` — the binned power spectrum of every sample (:mod:`core.physics.power_spectrum`, per-pixel
  power units), with the mean and the 16/84 percentiles over samples.
* :func:`find_peaks` / :func:`peak_counts` — local maxima over a ``size × size`` neighbourhood
  (``scipy.ndimage.maximum_filter``, periodic boundary) above a threshold; counts histogrammed in bins of height
  (optionally in units of a noise map, i.e. peaks of ``map / noise``).
* :func:`interval_coverage` — the fraction of pixels whose true value lies in the central credible interval of
  probability ``q`` of the samples (empirical quantiles ``(1 − q)/2`` and ``(1 + q)/2``); for a calibrated
  posterior and a truth drawn from it the expected coverage is ``q``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import ndimage

from core.physics.geometry import MapGeometry

__all__ = [
    "PosteriorSummary",
    "posterior_summary",
    "rhat_ess",
    "sample_power_spectra",
    "find_peaks",
    "peak_counts",
    "interval_coverage",
]


def _as_array(x: Any, name: str, min_ndim: int) -> np.ndarray:
    if isinstance(x, (tf.Tensor, tf.Variable)):
        x = x.numpy()
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values")
    return arr


@dataclass(frozen=True)
class PosteriorSummary:
    """Per-pixel ``mean``, ``std`` and ``significance = mean/std`` (float32 ``(N, N)``), and ``num_samples``."""

    mean: np.ndarray
    std: np.ndarray
    significance: np.ndarray
    num_samples: int


def posterior_summary(samples: Any) -> PosteriorSummary:
    """Moments over the leading axis of ``samples (S, N, N)`` (needs ``S ≥ 2``)."""
    x = _as_array(samples, "samples", 3).astype(np.float64)
    if x.shape[0] < 2:
        raise ValueError(f"samples needs at least 2 samples along axis 0, got {x.shape[0]}")
    mean = x.mean(axis=0)
    std = x.std(axis=0, ddof=1)
    significance = np.divide(mean, std, out=np.zeros_like(mean), where=std > 0)
    return PosteriorSummary(mean.astype(np.float32), std.astype(np.float32), significance.astype(np.float32), int(x.shape[0]))


def rhat_ess(chains_history: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(R̂, ESS)`` for a history ``(T, C, ...)`` of ``C ≥ 2`` chains over ``T ≥ 4`` draws, each of shape ``(...)``.

    R̂ uses ``tfp.mcmc.potential_scale_reduction`` (independent chains on axis 1); the ESS is
    ``tfp.mcmc.effective_sample_size`` with ``cross_chain_dims=1`` (total over chains).

    For stationary MCMC only: over the levels of an annealed run the target moves with σ, so R̂ ≫ 1.1 there says
    nothing about the final samples (a good hybrid-prior run can show R̂ > 100). The diagnostics of annealed runs are
    in :mod:`core.analysis.diagnostics`.
    """
    x = _as_array(chains_history, "chains_history", 2)
    if x.shape[1] < 2:
        raise ValueError(f"chains_history needs at least 2 chains on axis 1, got shape {x.shape}")
    if x.shape[0] < 4:
        raise ValueError(f"chains_history needs at least 4 draws on axis 0, got shape {x.shape}")
    t = tf.constant(x, tf.float64)
    rhat = tfp.mcmc.potential_scale_reduction(t, independent_chain_ndims=1)
    ess = tfp.mcmc.effective_sample_size(t, cross_chain_dims=1)
    return np.asarray(rhat), np.asarray(ess)


def sample_power_spectra(
    samples: Any, geometry: MapGeometry, num_bins: int = 20, ell_edges: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Binned power spectrum of every sample ``(S, N, N)``.

    Returns ``ell`` (bin centres), ``power`` ``(S, nbins)``, ``mean``, ``p16``, ``p84`` (over samples) and
    ``counts`` (modes per bin), in the per-pixel power units of :mod:`core.physics.geometry`.
    """
    from core.physics.power_spectrum import binned_power_spectrum

    x = _as_array(samples, "samples", 3)
    geometry.check_map(x, "samples")
    ell, power, counts = binned_power_spectrum(x, geometry, num_bins=num_bins, ell_edges=ell_edges)
    power = np.asarray(power)
    return {
        "ell": np.asarray(ell),
        "power": power,
        "mean": power.mean(axis=0),
        "p16": np.percentile(power, 16, axis=0),
        "p84": np.percentile(power, 84, axis=0),
        "counts": np.asarray(counts),
    }


def find_peaks(kappa_map: Any, threshold: float, size: int = 3, periodic: bool = True) -> np.ndarray:
    """Positions ``(num_peaks, 2)`` (row, col) of local maxima of a 2-D map strictly above ``threshold``.

    A pixel is a peak when it equals the maximum of its ``size × size`` neighbourhood (wrap-around
    boundary if ``periodic``, else edge pixels are excluded); plateaus count every maximal pixel.
    """
    x = _as_array(kappa_map, "kappa_map", 2)
    if x.ndim != 2:
        raise ValueError(f"kappa_map must be a single 2-D map, got shape {x.shape}")
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)) or size < 3 or size % 2 == 0:
        raise ValueError(f"size must be an odd integer ≥ 3, got {size!r}")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold!r}")
    local_max = ndimage.maximum_filter(x, size=size, mode="wrap" if periodic else "constant", cval=-np.inf)
    is_peak = (x == local_max) & (x > threshold)
    if not periodic:
        half = size // 2
        is_peak[:half, :] = is_peak[-half:, :] = False
        is_peak[:, :half] = is_peak[:, -half:] = False
    return np.argwhere(is_peak)


def peak_counts(
    maps: Any, bins: Sequence[float] | np.ndarray, noise: Any = None, size: int = 3, periodic: bool = True
) -> np.ndarray:
    """Histogram of peak heights ``(S, len(bins) − 1)`` of maps ``(S, N, N)`` (or one map ``(N, N)``).

    Peaks are local maxima above ``bins[0]`` of ``map`` (or of ``map / noise`` when a positive ``noise`` map
    is given, i.e. peaks counted in signal-to-noise units).
    """
    x = _as_array(maps, "maps", 2)
    single = x.ndim == 2
    x = x[None] if single else x
    edges = np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0) or not np.all(np.isfinite(edges)):
        raise ValueError("bins must be a finite, strictly increasing 1-D sequence of at least 2 edges")
    if noise is not None:
        n = _as_array(noise, "noise", 2)
        if np.any(n <= 0):
            raise ValueError("noise must be positive everywhere")
        x = x / n
    counts = np.zeros((x.shape[0], edges.size - 1), dtype=np.int64)
    for i, m in enumerate(x):
        pos = find_peaks(m, threshold=float(edges[0]), size=size, periodic=periodic)
        heights = m[pos[:, 0], pos[:, 1]]
        counts[i] = np.histogram(heights, bins=edges)[0]
    return counts[0] if single else counts


def interval_coverage(samples: Any, truth: Any, levels: Sequence[float] = (0.68, 0.95), mask: Any = None) -> dict[float, float]:
    """Fraction of (masked-in) pixels whose true value lies in the central ``q`` credible interval, per level."""
    x = _as_array(samples, "samples", 3)
    t = _as_array(truth, "truth", 2)
    if t.shape != x.shape[1:]:
        raise ValueError(f"truth has shape {t.shape}; expected {x.shape[1:]} to match the samples")
    if x.shape[0] < 2:
        raise ValueError("samples needs at least 2 samples along axis 0")
    sel = np.ones(t.shape, bool) if mask is None else np.asarray(mask) > 0
    if sel.shape != t.shape or not sel.any():
        raise ValueError("mask must match the map shape and select at least one pixel")
    out: dict[float, float] = {}
    for q in levels:
        q = float(q)
        if not 0 < q < 1:
            raise ValueError(f"levels must be in (0, 1), got {q!r}")
        lo, hi = np.quantile(x, [(1 - q) / 2, (1 + q) / 2], axis=0)
        inside = (t >= lo) & (t <= hi)
        out[q] = float(inside[sel].mean())
    return out
