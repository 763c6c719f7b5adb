"""Metric helpers of ``benchmarks/halo_posterior.py`` (window search, paired errors, halo pixels, significance).

Small numpy inputs with known answers; no sampling, no network (fast)."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.halo_posterior import (
    HaloPosteriorConfig,
    best_window,
    halo_pixels,
    halo_significance,
    nearest_indices,
    paired_difference,
    pooled,
)
from core.physics.halos import HaloCatalogue


def _brute_force_window(mask: np.ndarray, size: int) -> tuple[int, int]:
    n0, n1 = mask.shape
    counts = np.array([[mask[r:r + size, c:c + size].sum() for c in range(n1 - size + 1)] for r in range(n0 - size + 1)])
    r, c = np.unravel_index(int(np.argmax(counts)), counts.shape)
    return int(r), int(c)


def test_best_window_matches_brute_force_on_random_masks():
    rng = np.random.default_rng(3)
    for trial in range(5):
        mask = (rng.random((20, 17)) < 0.4).astype(np.float32)
        assert best_window(mask, 6) == _brute_force_window(mask, 6)
    block = np.zeros((12, 12))
    block[5:9, 2:6] = 1  # a 4×4 observed block: the best 4-window is exactly on it
    assert best_window(block, 4) == (5, 2)
    with pytest.raises(ValueError, match="size"):
        best_window(block, 13)


def test_nearest_indices_cover_the_span():
    idx = nearest_indices(120, 64)
    assert idx.shape == (64,) and idx[0] == 0 and idx[-1] == 119
    assert np.all(np.diff(idx) >= 1)
    np.testing.assert_array_equal(nearest_indices(8, 8), np.arange(8))


def test_paired_difference_is_the_standard_error_of_differences():
    rng = np.random.default_rng(0)
    common = rng.normal(0.0, 1.0, 8)  # large shared map-to-map scatter cancels in the paired difference
    a, b = common + 0.1 + rng.normal(0, 0.01, 8), common + rng.normal(0, 0.01, 8)
    d = paired_difference(a, b)
    assert d["n"] == 8
    assert d["mean"] == pytest.approx(np.mean(a - b))
    assert d["se"] == pytest.approx(np.std(a - b, ddof=1) / np.sqrt(8))
    assert d["se"] < 0.1 * np.std(a, ddof=1) / np.sqrt(8)  # much smaller than the unpaired error
    assert np.isnan(paired_difference([1.0], [0.5])["se"])
    with pytest.raises(ValueError, match="same non-zero length"):
        paired_difference([1.0, 2.0], [1.0])


def test_pooled_drops_non_finite_values():
    p = pooled([1.0, 3.0, float("nan")])
    assert p["n"] == 2 and p["mean"] == pytest.approx(2.0) and p["se"] == pytest.approx(np.sqrt(2.0) / np.sqrt(2))
    assert pooled([])["n"] == 0


def _catalogue(x, y, mass):
    n = len(x)
    return HaloCatalogue(np.asarray(x, float), np.asarray(y, float), np.asarray(mass, float), np.full(n, 0.5),
                         np.full(n, 1.0), np.full(n, 1e-9))


def test_halo_pixels_selects_massive_observed_haloes():
    mask = np.ones((8, 8))
    mask[:, 6:] = 0  # columns 6, 7 unobserved
    cat = _catalogue(x=[1.2, 6.5, 3.9, 2.0], y=[2.7, 1.0, 7.99, 5.5], mass=[2e14, 5e14, 1e14, 5e13])
    rows, cols, inside = halo_pixels(cat, mask, 1e14)
    np.testing.assert_array_equal(rows, [2, 7])  # x is the column, y the row; pixel i covers [i, i+1)
    np.testing.assert_array_equal(cols, [1, 3])
    np.testing.assert_allclose(inside.mass, [2e14, 1e14])  # the 5e14 halo is masked, the 5e13 one too light


def test_halo_significance_reads_the_pixels_and_a_random_null():
    mask = np.ones((16, 16))
    mask[:8] = 0
    sig = np.zeros((16, 16))
    sig[10, 4] = 5.0  # the observed half is zero except at the halo pixel
    out = halo_significance(sig, np.array([10]), np.array([4]), mask, num_random=4000, seed=1)
    assert out["at_haloes"] == [5.0]
    # the random null only sees observed pixels: mean = 5 × (chance of hitting the one halo pixel of 128)
    expected = 5.0 / 128
    tolerance = 4 * 5.0 * np.sqrt((1 / 128) * (1 - 1 / 128) / 4000)
    assert abs(out["at_random_mean"] - expected) < tolerance
    sig[:8] = 100.0  # values in unobserved pixels never enter the null
    assert halo_significance(sig, np.array([10]), np.array([4]), mask, 4000, 1)["at_random_mean"] == out["at_random_mean"]


def test_config_validation_names_the_option():
    with pytest.raises(ValueError, match="scales"):
        HaloPosteriorConfig(scales=("0.5",)).validate()
    with pytest.raises(ValueError, match="num_chains"):
        HaloPosteriorConfig(num_chains=1).validate()
    with pytest.raises(ValueError, match="hybrid_maps"):
        HaloPosteriorConfig(hybrid_maps={"0.87": 0}).validate()
