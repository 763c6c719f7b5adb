"""Tests of core.physics.power_spectrum: binned |κ̂|²/N estimator, binning of theory maps, unit conversions."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from core.physics.geometry import MapGeometry
from core.physics.power_spectrum import (
    bin_power_map,
    binned_power_spectrum,
    cl_to_power,
    default_ell_edges,
    power_map_to_cl,
    power_to_cl,
)

GEOMETRY = MapGeometry(32, 2.0)


def test_default_edges_span_fundamental_to_nyquist():
    edges = default_ell_edges(GEOMETRY, 10)
    assert edges.shape == (11,)
    assert edges[0] == pytest.approx(GEOMETRY.ell_fundamental, rel=1e-8)
    assert edges[-1] == pytest.approx(GEOMETRY.ell_nyquist, rel=1e-8)
    np.testing.assert_allclose(np.diff(np.log(edges)), np.log(edges[1] / edges[0]))  # log-spaced
    with pytest.raises(ValueError, match="num_bins"):
        default_ell_edges(GEOMETRY, 0)
    with pytest.raises(ValueError, match="ell_min"):
        default_ell_edges(GEOMETRY, 5, ell_min=1e4, ell_max=1e3)


def test_single_cosine_mode_lands_in_its_bin_with_exact_power():
    """κ = A cos(2π m x₁/npix): κ̂ = A N/2 at k = ±(m/npix, 0), so |κ̂|²/N = A² N/4 on those two
    modes; the bin holding them averages that over its mode count."""
    npix, m, amplitude = GEOMETRY.npix, 3, 0.7
    x1 = np.arange(npix)[None, :] * np.ones((npix, 1))
    kappa = amplitude * np.cos(2 * np.pi * m * x1 / npix)
    ell_mode = 2 * np.pi * m / (npix * GEOMETRY.pixel_rad)
    edges = np.array([0.5, 0.99, 1.01, 10.0]) * ell_mode
    centres, power, counts = binned_power_spectrum(kappa, GEOMETRY, ell_edges=edges)
    n_modes = np.sum(np.isclose(GEOMETRY.ell, ell_mode, rtol=1e-9))  # modes at |k| = m/npix
    assert counts[1] == n_modes == 4  # (±m, 0) and (0, ±m)
    assert centres[1] == pytest.approx(ell_mode, rel=1e-12)
    expected = 2 * amplitude**2 * GEOMETRY.num_pixels / 4 / n_modes
    assert power[1] == pytest.approx(expected, rel=1e-10)
    assert abs(power[0]) < 1e-20 * expected and abs(power[2]) < 1e-20 * expected


def test_parseval_over_all_modes():
    """With bins covering every k ≠ 0, Σ_bins power·counts = Σ_{k≠0}|κ̂_k|²/N = Σκ² − (Σκ)²/N."""
    rng = np.random.default_rng(1)
    kappa = rng.normal(size=GEOMETRY.shape) + 0.3
    edges = np.array([0.5 * GEOMETRY.ell_fundamental, 2e3, GEOMETRY.ell.max() * 1.001])
    _, power, counts = binned_power_spectrum(kappa, GEOMETRY, ell_edges=edges)
    assert counts.sum() == GEOMETRY.num_pixels - 1
    expected = np.sum(kappa**2) - np.sum(kappa) ** 2 / GEOMETRY.num_pixels
    assert np.sum(power * counts) == pytest.approx(expected, rel=1e-10)


def test_white_noise_power_within_monte_carlo_error():
    """White noise of variance v has P_k = v. Per bin the estimator averages n_i values;
    ±k pairs are one complex mode whose |κ̂|²/N ~ v·Exp(1), so var ≤ 2v²/(M n_i) for M maps
    (self-conjugate modes give the same bound). Tolerance: 4 standard errors per bin."""
    variance, num_maps = 2.5, 50
    rng = np.random.default_rng(7)
    maps = rng.normal(scale=np.sqrt(variance), size=(num_maps,) + GEOMETRY.shape)
    centres, power, counts = binned_power_spectrum(maps, GEOMETRY, num_bins=6)
    assert power.shape == (num_maps, 6)
    mean = power.mean(axis=0)
    sigma = variance * np.sqrt(2.0 / (num_maps * counts))
    assert np.all(np.abs(mean - variance) < 4 * sigma)
    assert np.all(np.diff(centres) > 0)


def test_batching_and_tensor_input_and_theory_binning():
    rng = np.random.default_rng(3)
    maps = rng.normal(size=(2, 3) + GEOMETRY.shape).astype(np.float32)
    centres, power, counts = binned_power_spectrum(tf.constant(maps), GEOMETRY, num_bins=5)
    assert power.shape == (2, 3, 5) and centres.shape == counts.shape == (5,)
    _, single, _ = binned_power_spectrum(maps[1, 2], GEOMETRY, num_bins=5)
    np.testing.assert_allclose(power[1, 2], single, rtol=1e-12)
    # a theory map binned identically: a power map equal to |κ̂|²/N of one map gives the same numbers
    power_map = np.abs(np.fft.fft2(maps[0, 0].astype(np.float64))) ** 2 / GEOMETRY.num_pixels
    c2, binned, n2 = bin_power_map(power_map, GEOMETRY, num_bins=5)
    np.testing.assert_allclose(binned, power[0, 0], rtol=1e-5)
    np.testing.assert_array_equal(n2, counts)
    np.testing.assert_allclose(c2, centres)
    # empty bin → NaN power, count 0
    _, p_empty, n_empty = binned_power_spectrum(maps[0, 0], GEOMETRY, ell_edges=[1.0, 2.0, 1e9])
    assert n_empty[0] == 0 and np.isnan(p_empty[0])


def test_unit_conversions():
    power = np.array([1.0, 2.0])
    cl = power_to_cl(power, GEOMETRY)
    np.testing.assert_allclose(cl, power * GEOMETRY.pixel_area_sr)
    np.testing.assert_allclose(cl_to_power(cl, GEOMETRY), power)
    assert power_map_to_cl is power_to_cl


def test_validation():
    with pytest.raises(ValueError, match="maps"):
        binned_power_spectrum(np.zeros((16, 16)), GEOMETRY)
    with pytest.raises(ValueError, match="finite"):
        binned_power_spectrum(np.full(GEOMETRY.shape, np.nan), GEOMETRY)
    with pytest.raises(ValueError, match="ell_edges"):
        binned_power_spectrum(np.zeros(GEOMETRY.shape), GEOMETRY, ell_edges=[3.0, 2.0])
    with pytest.raises(ValueError, match="real"):
        binned_power_spectrum(np.zeros(GEOMETRY.shape, complex), GEOMETRY)
