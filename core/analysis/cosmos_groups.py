r"""Peak statistics of posterior convergence samples around known mass concentrations (COSMOS X-ray groups).

Geometry of the maps (``core.data.fits_io`` binning convention, ``assets/cosmos/README.md``): pixel ``[i, j]`` (row ``i``,
column ``j``) of an ``N × N`` map of side ``θ`` (degrees) centred on ``(α₀, δ₀)`` covers plain (α, δ) degrees

.. math::  α = α₀ − h + (j + ½)θ,\qquad δ = δ₀ − h + (i + ½)θ,\qquad h = Nθ/2,

i.e. columns increase with RA (the sky seen *mirrored*: east is to the right) and rows with DEC. Positions are
continuous pixel coordinates ``(row, col)`` with pixel centres at integers, so a group at (α, δ) sits at
``col = (α − α₀ + h)/θ − ½`` and ``row = (δ − δ₀ + h)/θ − ½`` — the same as ``wcs.world_to_pixel_values`` of
:func:`core.data.fits_io.make_wcs`.

Statistics, for posterior samples ``κ_s`` (``s = 1…S``) and positions ``p_m``:

* :func:`peak_fraction_near` — ``f_m = (1/S) Σ_s 1[∃ peak q of κ_s (or κ_s/σ) with height > t and |q − p_m| ≤ r]``,
  the posterior probability that a peak above threshold ``t`` lies within ``r`` pixels of ``p_m``; peaks are local
  maxima over a 3×3 neighbourhood (:func:`core.analysis.summaries.find_peaks`, non-periodic: the sky does not wrap).
* :func:`significance_at` — a map sampled at the positions (bilinear interpolation by default, NaN outside).
* :func:`random_positions_in_mask` — positions uniform over the observed area (observed pixel chosen uniformly,
  then a uniform offset within it), the null sample for comparison.
* :func:`compare_to_random` — mean/median of the values at the groups vs at random positions, with the one-sided
  Mann–Whitney U and two-sample Kolmogorov–Smirnov p-values (``scipy.stats``) of "groups sit higher".
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import ndimage, stats

from core.physics.geometry import MapGeometry

logger = logging.getLogger(__name__)

__all__ = [
    "group_pixel_positions",
    "positions_in_mask",
    "peak_fraction_near",
    "significance_at",
    "random_positions_in_mask",
    "compare_to_random",
    "group_statistics",
]


def _numpy(x: Any) -> np.ndarray:
    return np.asarray(x.numpy() if hasattr(x, "numpy") else x)


def _radec(groups: Any) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) arrays from a table/mapping with ``ra``/``dec`` (any case) or an ``(M, 2)`` array."""
    if isinstance(groups, Mapping) or hasattr(groups, "colnames"):
        names = list(groups.colnames) if hasattr(groups, "colnames") else list(groups.keys())
        lower = {str(n).lower(): n for n in names}
        if "ra" not in lower or "dec" not in lower:
            raise ValueError(f"groups must have 'ra' and 'dec' columns, found {names}")
        ra, dec = np.asarray(groups[lower["ra"]], float), np.asarray(groups[lower["dec"]], float)
    else:
        arr = np.asarray(groups, dtype=float)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(f"groups must be a table with ra/dec columns or an (M, 2) array of (ra, dec), got shape {arr.shape}")
        ra, dec = arr[:, 0], arr[:, 1]
    if ra.shape != dec.shape or ra.ndim != 1:
        raise ValueError("groups ra and dec must be 1-D of equal length")
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        raise ValueError("groups contain non-finite ra/dec")
    return ra, dec


def group_pixel_positions(
    groups: Any,
    wcs: Any = None,
    geometry: MapGeometry | None = None,
    center: tuple[float, float] | None = None,
) -> np.ndarray:
    """Continuous pixel positions ``(M, 2)`` = (row, col) of sky positions (degrees).

    ``groups`` is an astropy Table / mapping with ``ra`` and ``dec`` columns (e.g. :func:`core.data.fits_io.read_xray_groups`)
    or an ``(M, 2)`` array of (ra, dec). Give either the map's celestial ``wcs`` or its ``geometry`` and grid
    ``center`` (ra, dec) of the binning convention in the module docstring (RA increasing with the column).
    """
    ra, dec = _radec(groups)
    if wcs is not None:
        if geometry is not None or center is not None:
            raise ValueError("give either wcs or geometry + center, not both")
        x, y = wcs.celestial.world_to_pixel_values(ra, dec)
        return np.column_stack([np.asarray(y, float), np.asarray(x, float)])
    if geometry is None or center is None:
        raise ValueError("give the map's wcs, or its geometry and center (ra, dec)")
    if not isinstance(geometry, MapGeometry):
        raise ValueError(f"geometry must be a MapGeometry, got {type(geometry).__name__}")
    ra0, dec0 = (float(c) for c in center)
    if not (np.isfinite(ra0) and np.isfinite(dec0)):
        raise ValueError(f"center must be finite (ra, dec), got {center!r}")
    step = geometry.pixel_size_arcmin / 60.0
    half = geometry.npix * step / 2.0
    col = (ra - ra0 + half) / step - 0.5
    row = (dec - dec0 + half) / step - 0.5
    return np.column_stack([row, col])


def _check_positions(positions: Any, name: str = "positions") -> np.ndarray:
    pos = np.asarray(positions, dtype=float)
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise ValueError(f"{name} must have shape (M, 2) = (row, col), got {pos.shape}")
    if not np.all(np.isfinite(pos)):
        raise ValueError(f"{name} contains non-finite values")
    return pos


def positions_in_mask(positions: Any, mask: Any) -> np.ndarray:
    """Boolean ``(M,)``: the position lies on the map and its nearest pixel is observed (``mask > 0``)."""
    pos = _check_positions(positions)
    m = _numpy(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be a 2-D map, got shape {m.shape}")
    idx = np.rint(pos).astype(int)
    on_map = (idx[:, 0] >= 0) & (idx[:, 0] < m.shape[0]) & (idx[:, 1] >= 0) & (idx[:, 1] < m.shape[1])
    out = np.zeros(len(pos), bool)
    out[on_map] = m[idx[on_map, 0], idx[on_map, 1]] > 0
    return out


def peak_fraction_near(
    samples: Any,
    positions: Any,
    radius_pix: float,
    threshold: float,
    noise: Any = None,
    size: int = 3,
) -> np.ndarray:
    """Fraction ``(M,)`` of samples ``(S, N, N)`` with a peak above ``threshold`` within ``radius_pix`` of each
    position (see the module docstring). With a positive ``noise`` map ``(N, N)`` the peaks are those of
    ``sample / noise`` (threshold in signal-to-noise units)."""
    from core.analysis.summaries import find_peaks

    x = _numpy(samples).astype(np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[0] < 1:
        raise ValueError(f"samples must have shape (S, N, N), got {x.shape}")
    pos = _check_positions(positions)
    if not np.isfinite(radius_pix) or radius_pix < 0:
        raise ValueError(f"radius_pix must be a non-negative finite number, got {radius_pix!r}")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold!r}")
    if noise is not None:
        n = _numpy(noise).astype(np.float64)
        if n.shape != x.shape[1:]:
            raise ValueError(f"noise has shape {n.shape}; expected {x.shape[1:]}")
        if not np.all(n > 0):
            raise ValueError("noise must be positive everywhere")
        x = x / n
    hits = np.zeros((x.shape[0], len(pos)), bool)
    for s, m in enumerate(x):
        peaks = find_peaks(m, threshold=float(threshold), size=size, periodic=False)
        if len(peaks) and len(pos):
            d2 = ((pos[:, None, :] - peaks[None, :, :].astype(float)) ** 2).sum(-1)
            hits[s] = (d2 <= radius_pix**2).any(axis=1)
    return hits.mean(axis=0)


def significance_at(kappa_map: Any, positions: Any, order: int = 1) -> np.ndarray:
    """Values ``(M,)`` of a 2-D map at continuous positions (row, col): spline interpolation of ``order``
    (0 = nearest pixel, 1 = bilinear) by ``scipy.ndimage.map_coordinates``; NaN off the map."""
    m = _numpy(kappa_map).astype(np.float64)
    if m.ndim != 2:
        raise ValueError(f"kappa_map must be a 2-D map, got shape {m.shape}")
    if order not in (0, 1, 3):
        raise ValueError(f"order must be 0, 1 or 3, got {order!r}")
    pos = _check_positions(positions)
    values = ndimage.map_coordinates(m, pos.T, order=order, mode="nearest")
    off = (pos[:, 0] < -0.5) | (pos[:, 0] > m.shape[0] - 0.5) | (pos[:, 1] < -0.5) | (pos[:, 1] > m.shape[1] - 0.5)
    values[off] = np.nan
    return values


def random_positions_in_mask(mask: Any, num: int, seed: int) -> np.ndarray:
    """``num`` positions ``(num, 2)`` uniform over the observed pixels of ``mask`` (explicit ``seed``)."""
    m = _numpy(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be a 2-D map, got shape {m.shape}")
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"num must be a positive integer, got {num!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    observed = np.argwhere(m > 0)
    if len(observed) == 0:
        raise ValueError("mask has no observed pixel")
    rng = np.random.default_rng(int(seed))
    pick = observed[rng.integers(0, len(observed), size=num)]
    return pick + rng.uniform(-0.5, 0.5, size=(num, 2))


def compare_to_random(at_groups: Any, at_random: Any) -> dict[str, float]:
    """Summary of values at the groups vs at random positions (NaNs dropped): counts, means, medians, the
    one-sided Mann–Whitney U p-value (alternative: groups larger) and the two-sample KS p-value."""
    g = np.asarray(at_groups, float)
    r = np.asarray(at_random, float)
    g, r = g[np.isfinite(g)], r[np.isfinite(r)]
    if len(g) < 1 or len(r) < 1:
        raise ValueError(f"need at least one finite value on each side, got {len(g)} at groups and {len(r)} random")
    mw = stats.mannwhitneyu(g, r, alternative="greater")
    ks = stats.ks_2samp(g, r)
    return {
        "num_groups": int(len(g)),
        "num_random": int(len(r)),
        "mean_groups": float(g.mean()),
        "mean_random": float(r.mean()),
        "median_groups": float(np.median(g)),
        "median_random": float(np.median(r)),
        "std_random": float(r.std(ddof=1)) if len(r) > 1 else float("nan"),
        "mannwhitney_p_greater": float(mw.pvalue),
        "ks_p": float(ks.pvalue),
    }


def group_statistics(
    samples: Any,
    mask: Any,
    group_positions: Any,
    pixel_size_arcmin: float,
    radius_arcmin: float = 2.0,
    threshold: float = 2.0,
    num_random: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """All statistics for posterior ``samples (S, N, N)`` and the groups at ``group_positions`` that lie in the mask.

    Peaks are those of ``sample / posterior std`` above ``threshold``; the significance map is ``mean / std``.
    The same peak fraction at ``num_random`` random positions in the mask gives the chance level.
    """
    from core.analysis.summaries import posterior_summary

    summary = posterior_summary(samples)
    pos = _check_positions(group_positions, "group_positions")
    inside = positions_in_mask(pos, mask)
    pos = pos[inside]
    radius_pix = float(radius_arcmin) / float(pixel_size_arcmin)
    noise = np.where(summary.std > 0, summary.std, np.inf)
    random_pos = random_positions_in_mask(mask, num_random, seed)
    frac_groups = peak_fraction_near(samples, pos, radius_pix, threshold, noise=noise)
    frac_random = peak_fraction_near(samples, random_pos, radius_pix, threshold, noise=noise)
    sig_groups = significance_at(summary.significance, pos)
    sig_random = significance_at(summary.significance, random_pos)
    return {
        "num_groups_in_mask": int(inside.sum()),
        "num_groups_total": int(len(inside)),
        "radius_arcmin": float(radius_arcmin),
        "threshold_snr": float(threshold),
        "num_samples": int(summary.num_samples),
        "peak_fraction_groups_mean": float(frac_groups.mean()) if len(frac_groups) else float("nan"),
        "peak_fraction_random_mean": float(frac_random.mean()),
        "peak_fraction_compare": compare_to_random(frac_groups, frac_random) if len(frac_groups) else {},
        "significance_compare": compare_to_random(sig_groups, sig_random) if len(sig_groups) else {},
        "peak_fraction_groups": frac_groups.tolist(),
        "significance_groups": sig_groups.tolist(),
        "inside_mask": inside.tolist(),
    }
