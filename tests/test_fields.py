"""Tests of core.physics.fields: Gaussian and shifted-lognormal random fields with a target power map."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import tensorflow as tf

from core.physics.cosmology import default_power_map, empty_beam_convergence
from core.physics.fields import (
    DEFAULT_SHIFT,
    check_power_map,
    gaussian_field,
    lognormal_field,
    lognormal_gaussian_power,
    stateless_seed,
)
from core.physics.geometry import MapGeometry
from core.physics.power_spectrum import bin_power_map, binned_power_spectrum

GAUSS_GEOMETRY = MapGeometry(32, 1.0)
LOGNORMAL_GEOMETRY = MapGeometry(64, 0.29)  # the paper's pixel size: σ_κ ≈ 0.022, σ_κ/λ ≈ 0.33


def test_default_shift_is_the_empty_beam_convergence_at_z1():
    # DEFAULT_SHIFT is documented as |κ_empty(z_s = 1)| in Planck18, rounded to 2 digits
    assert DEFAULT_SHIFT == pytest.approx(abs(empty_beam_convergence(1.0)), abs=1e-3)


def test_gaussian_field_power_matches_input_within_monte_carlo_error():
    """Per bin, the estimator averages |κ̂_k|²/N over n modes; each ±k pair is one complex
    Gaussian mode with |κ̂|²/N ~ P_k·Exp(1) (self-conjugate modes: P_k·χ²₁, variance 2P_k²,
    counted once), so var(bin mean over M maps) ≤ 2 Σ_{k∈bin} P_k² / (M n²). Tolerance 4σ."""
    power = default_power_map(GAUSS_GEOMETRY)
    num_maps = 400
    fields = gaussian_field(power, num_maps, seed=11)
    assert fields.shape == (num_maps, 32, 32) and fields.dtype == tf.float32
    _, measured, counts = binned_power_spectrum(fields, GAUSS_GEOMETRY, num_bins=6)
    _, target, _ = bin_power_map(power, GAUSS_GEOMETRY, num_bins=6)
    _, target_sq, _ = bin_power_map(power**2, GAUSS_GEOMETRY, num_bins=6)
    sigma = np.sqrt(2.0 * target_sq / (num_maps * counts))
    np.testing.assert_array_less(np.abs(measured.mean(axis=0) - target), 4 * sigma)


def test_gaussian_field_seeds_and_zero_mode():
    power = default_power_map(GAUSS_GEOMETRY)
    a = gaussian_field(power, 3, seed=5)
    np.testing.assert_array_equal(a, gaussian_field(power, 3, seed=5))
    stateless_seed = tf.constant([4, 2], tf.int32)  # a TFP-style stateless seed works too
    np.testing.assert_array_equal(gaussian_field(power, 3, stateless_seed), gaussian_field(power, 3, stateless_seed))
    assert not np.allclose(a, gaussian_field(power, 3, seed=6))
    # a power map that is zero except at k = 0 gives constant maps of variance P_0
    only_mean = np.zeros((8, 8))
    only_mean[0, 0] = 4.0
    const = gaussian_field(only_mean, 2, seed=0).numpy()
    np.testing.assert_allclose(const, const[:, :1, :1] * np.ones((1, 8, 8)), rtol=1e-5)


@pytest.mark.parametrize(
    "power, match",
    [
        (np.ones((8, 6)), "square"),
        (np.ones((7, 7)), "even"),
        (-np.ones((8, 8)), "non-negative"),
        (np.full((8, 8), np.inf), "finite"),
        (np.arange(64.0).reshape(8, 8) + 1, "P\\(k\\) = P\\(-k\\)"),
    ],
)
def test_power_map_validation(power, match):
    with pytest.raises(ValueError, match=match):
        check_power_map(power)
    with pytest.raises(ValueError, match=match):
        gaussian_field(power, 1, seed=0)


def test_stateless_seed():
    np.testing.assert_array_equal(stateless_seed(7), [0, 7])
    np.testing.assert_array_equal(stateless_seed(2**40 + 3), [2**9, 3])
    np.testing.assert_array_equal(stateless_seed(np.array([1, 2])), [1, 2])
    for bad in (-1, True, 2**62, np.zeros(3, int), np.array([0.5, 1.0])):
        with pytest.raises(ValueError, match="seed"):
            stateless_seed(bad)


def test_num_validation():
    with pytest.raises(ValueError, match="num"):
        gaussian_field(np.ones((8, 8)), 0, seed=0)
    with pytest.raises(ValueError, match="shift"):
        lognormal_field(np.ones((8, 8)), 1, seed=0, shift=-0.1)


def test_lognormal_gaussian_power_small_field_limit():
    """For λ ≫ σ_κ, ξ_G = ln(1 + ξ/λ²) ≈ ξ/λ² − ξ²/(2λ⁴): λ²P_G = P minus a term bounded by
    max(P)·σ²/(2λ²) (the Fourier transform of ξ²/2λ²), so atol = max(P)·σ²/λ²."""
    power = default_power_map(GAUSS_GEOMETRY)
    variance = power.mean()
    shift = 100 * np.sqrt(variance)
    np.testing.assert_allclose(shift**2 * lognormal_gaussian_power(power, shift), power,
                               rtol=0, atol=power.max() * variance / shift**2)


def test_lognormal_gaussian_power_clipping_warning_and_unrealisable_shift(caplog):
    geometry = MapGeometry(32, 1.0)
    band = (geometry.ell > np.percentile(geometry.ell, 40)) & (geometry.ell < np.percentile(geometry.ell, 60))
    power = np.where(band, 1.0, 0.0)  # a sharp band: strongly non-lognormal for λ ~ σ
    sigma = np.sqrt(power.mean())
    with caplog.at_level(logging.WARNING, logger="core.physics.fields"):
        clipped = lognormal_gaussian_power(power, shift=2 * sigma)
    assert np.all(clipped >= 0)
    assert any("clipped" in rec.message for rec in caplog.records)
    with pytest.raises(ValueError, match="shift"):
        lognormal_gaussian_power(power, shift=0.5 * sigma)  # ξ reaches below −λ²


def test_lognormal_field_power_positivity_and_skewness():
    """Shifted lognormal κ = λ(e^g − 1), var g = s = mean(P_G):
    E κ = 0, E κ² = λ²(e^s − 1), E κ³ = λ³(e^{3s} − 3e^s + 2), skewness 3x + x³ with x = σ_κ/λ.
    The κ spectrum equals P exactly on the periodic grid except for clipped Gaussian power
    (measured < 1e-6 here, allowance 1e-3 relative). Monte-Carlo errors are taken from the
    spread over the M maps (the field is non-Gaussian, so no closed form): SE = std/√M, 4 SE."""
    power = default_power_map(LOGNORMAL_GEOMETRY)
    num_maps = 200
    kappa = lognormal_field(power, num_maps, seed=3).numpy().astype(np.float64)
    assert kappa.shape == (num_maps, 64, 64)
    assert kappa.min() > -DEFAULT_SHIFT

    _, measured, _ = binned_power_spectrum(kappa, LOGNORMAL_GEOMETRY, num_bins=6)
    _, target, _ = bin_power_map(power, LOGNORMAL_GEOMETRY, num_bins=6)
    se = measured.std(axis=0, ddof=1) / np.sqrt(num_maps)
    np.testing.assert_array_less(np.abs(measured.mean(axis=0) - target), 4 * se + 1e-3 * target)

    s = lognormal_gaussian_power(power, DEFAULT_SHIFT).mean()
    lam = DEFAULT_SHIFT
    per_map = [kappa.mean(axis=(1, 2)), (kappa**2).mean(axis=(1, 2)), (kappa**3).mean(axis=(1, 2))]
    expected = [0.0, lam**2 * np.expm1(s), lam**3 * (np.exp(3 * s) - 3 * np.exp(s) + 2)]
    for moment, value in zip(per_map, expected):
        assert abs(moment.mean() - value) < 4 * moment.std(ddof=1) / np.sqrt(num_maps)
    # the closed-form skewness and its value for these settings (clear positive skew)
    x = np.sqrt(np.expm1(s))
    skewness = expected[2] / expected[1] ** 1.5
    assert skewness == pytest.approx(3 * x + x**3, rel=1e-10)
    assert 0.5 < skewness < 2.0
    measured_skew = per_map[2].mean() / per_map[1].mean() ** 1.5
    assert measured_skew == pytest.approx(skewness, rel=0.15)  # 4 SE of m3 is ≈ 10% here


def test_lognormal_field_is_reproducible_and_respects_shift():
    power = default_power_map(GAUSS_GEOMETRY)
    a = lognormal_field(power, 2, seed=9, shift=0.03)
    np.testing.assert_array_equal(a, lognormal_field(power, 2, seed=9, shift=0.03))
    assert float(tf.reduce_min(a)) > -0.03
