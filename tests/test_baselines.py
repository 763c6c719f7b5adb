"""Tests of core.analysis.baselines: Wiener filter vs dense and closed-form solutions, exact posterior samples, KS."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from core.analysis.baselines import (
    constrained_realisations,
    gaussian_posterior_dense,
    kaiser_squires_map,
    wiener_filter,
)
from core.physics.geometry import MapGeometry
from core.physics.lensing import LensingOperator
from core.inference.likelihood import ShearLikelihood
from core.data.observation import NoiseModel, Observation, full_mask, random_holes_mask


def power_law_map(geometry: MapGeometry, amplitude: float = 0.02) -> np.ndarray:
    """Analytic power map P_k = A (ℓ₀/(ℓ + ℓ₀))², ℓ₀ the fundamental mode; positive everywhere."""
    ell0 = geometry.ell_fundamental
    return amplitude * (ell0 / (geometry.ell + ell0)) ** 2


def gaussian_map(geometry: MapGeometry, power: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    white = rng.normal(size=geometry.shape)
    return np.real(np.fft.ifft2(np.sqrt(power) * np.fft.fft2(white))).astype(np.float32)


@pytest.fixture(scope="module")
def masked_problem():
    geometry = MapGeometry(16, 2.0)
    rng = np.random.default_rng(7)
    power = power_law_map(geometry)
    mask = random_holes_mask(geometry, 3, 6.0, seed=11)
    std = rng.uniform(0.03, 0.2, size=(2, 16, 16)).astype(np.float32)
    obs = Observation.simulated(geometry, gaussian_map(geometry, power, rng), NoiseModel.from_std_maps(std), mask, seed=3)
    return geometry, power, ShearLikelihood.from_observation(obs)


@pytest.mark.parametrize("sigma", [0.0, 0.05, 0.5])
def test_wiener_filter_matches_dense_solution(masked_problem, sigma):
    geometry, power, lik = masked_problem
    result = wiener_filter(lik, power, sigma=sigma, tol=1e-8)
    mean, _ = gaussian_posterior_dense(lik, power, sigma=sigma)
    assert result.converged and result.residual < 1e-6
    assert result.kappa.dtype == tf.float32 and result.kappa.shape == (16, 16)
    err = np.linalg.norm(result.kappa.numpy() - mean) / np.linalg.norm(mean)
    assert err < 1e-4, f"relative error {err:.2e} at sigma={sigma}"


@pytest.mark.parametrize("sigma", [0.0, 0.3])
def test_wiener_filter_zeroes_the_posterior_score(masked_problem, sigma):
    """At the posterior mean the tempered posterior score vanishes: ShearLikelihood.score (float32) plus the
    Gaussian prior score −F⁻¹[F(κ)/(P+σ²)] cancel to float32 round-off relative to either term."""
    geometry, power, lik = masked_problem
    kappa = wiener_filter(lik, power, sigma=sigma, tol=1e-8).kappa
    prior_score = -np.real(np.fft.ifft2(np.fft.fft2(kappa.numpy().astype(np.float64)) / (power + sigma**2)))
    like_score = lik.score(kappa, sigma).numpy()
    total = np.linalg.norm(like_score + prior_score) / np.linalg.norm(prior_score)
    assert total < 1e-4


def test_wiener_filter_accepts_observation_batches_and_x0(masked_problem):
    geometry, power, lik = masked_problem
    obs = Observation(geometry, lik.shear.numpy(), lik.noise_std.numpy(), lik.mask.numpy())
    single = wiener_filter(obs, power).kappa.numpy()
    batch = tf.stack([lik.shear, 2.0 * lik.shear])
    batched = wiener_filter(lik, power, shear=batch).kappa.numpy()
    scale = np.abs(single).max()
    np.testing.assert_allclose(batched[0], single, atol=1e-5 * scale)
    np.testing.assert_allclose(batched[1], 2.0 * single, atol=1e-5 * scale)  # linear in the data
    warm = wiener_filter(lik, power, x0=single, tol=1e-5)
    assert warm.iterations <= 2


def test_wiener_filter_closed_form_without_mask():
    """Full mask, uniform noise: the posterior is diagonal in Fourier space,
    κ̂_WF = (P_k+σ²)/(P_k+σ²+σ_n²+σ²) · F(Pᵀγ) for k ≠ 0 and 0 at k = 0 (Pᵀγ has zero mean)."""
    geometry = MapGeometry(32, 1.0)
    rng = np.random.default_rng(3)
    power = power_law_map(geometry)
    noise = NoiseModel.from_galaxy_density(geometry, sigma_e=0.26, n_gal_arcmin2=30.0)
    obs = Observation.simulated(geometry, gaussian_map(geometry, power, rng), noise, full_mask(geometry), seed=1)
    lik = ShearLikelihood.from_observation(obs)
    noise_var = float(noise.std[0, 0, 0]) ** 2
    adjoint = np.fft.fft2(lik.operator.adjoint(lik.shear).numpy().astype(np.float64))
    for sigma in (0.0, 0.1):
        result = wiener_filter(lik, power, sigma=sigma)
        prior = power + sigma**2
        expected = np.real(np.fft.ifft2(prior / (prior + noise_var + sigma**2) * adjoint))
        assert result.iterations <= 2  # the Fourier preconditioner is exact here
        np.testing.assert_allclose(result.kappa.numpy(), expected, atol=1e-5 * np.abs(expected).max())


def test_constrained_realisations_have_the_dense_posterior():
    """Whitened samples z = L⁻¹(x − μ) (Σ = LLᵀ, dense) must be i.i.d. N(0, 1).

    Tolerances from the Monte-Carlo error with n samples in d = 64 dimensions:
    * each mean of z has std 1/√n; Bonferroni over 64 entries at 4.5σ (two-sided p = 6.8e-6 each)
      gives a family-wise false-alarm rate < 5e-4;
    * each off-diagonal entry of cov(z) has std ≈ 1/√n and each diagonal one ≈ √(2/n); 5σ over
      2080 entries: false-alarm rate < 2e-3;
    * mean of |z|² is 64 with std √(2·64/n).
    """
    geometry = MapGeometry(8, 3.0)
    rng = np.random.default_rng(5)
    power = power_law_map(geometry, 0.05)
    mask = np.ones(geometry.shape, np.float32)
    mask[2:4, 3:6] = 0.0
    std = rng.uniform(0.1, 0.3, size=(2, 8, 8)).astype(np.float32)
    obs = Observation.simulated(geometry, gaussian_map(geometry, power, rng), NoiseModel.from_std_maps(std), mask, seed=9)
    lik = ShearLikelihood.from_observation(obs)
    n, d = 4000, 64
    for sigma in (0.0, 0.2):
        samples = constrained_realisations(lik, power, n, seed=21, sigma=sigma).numpy().reshape(n, d).astype(np.float64)
        mean, cov = gaussian_posterior_dense(lik, power, sigma=sigma)
        chol = np.linalg.cholesky(cov)
        z = np.linalg.solve(chol, (samples - mean.reshape(d)).T).T
        assert np.abs(z.mean(axis=0)).max() < 4.5 / np.sqrt(n)
        c = np.cov(z, rowvar=False, bias=True)
        tol = np.where(np.eye(d, dtype=bool), 5.0 * np.sqrt(2.0 / n), 5.0 / np.sqrt(n))
        assert np.all(np.abs(c - np.eye(d)) < tol), np.abs(c - np.eye(d)).max()
        assert abs(np.mean(np.sum(z**2, axis=1)) - d) < 5.0 * np.sqrt(2.0 * d / n)


def test_constrained_realisations_are_seeded(masked_problem):
    geometry, power, lik = masked_problem
    a = constrained_realisations(lik, power, 3, seed=4).numpy()
    b = constrained_realisations(lik, power, 3, seed=4).numpy()
    c = constrained_realisations(lik, power, 3, seed=5).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert a.shape == (3, 16, 16) and a.dtype == np.float32


def test_kaiser_squires_map():
    geometry = MapGeometry(32, 1.0)
    rng = np.random.default_rng(0)
    kappa = gaussian_map(geometry, power_law_map(geometry), rng)
    shear = LensingOperator(geometry).forward(kappa)
    e, b = kaiser_squires_map(shear, geometry, smoothing_fwhm_arcmin=0.0)
    np.testing.assert_allclose(e.numpy(), kappa - kappa.mean(), atol=1e-5)
    np.testing.assert_allclose(b.numpy(), 0.0, atol=1e-5)
    mask = random_holes_mask(geometry, 4, 3.0, seed=0)
    garbage = shear.numpy().copy()
    garbage[:, mask == 0] = 7.0
    e_masked, _ = kaiser_squires_map(garbage, geometry, mask=mask, smoothing_fwhm_arcmin=1.5)
    e_ref, _ = kaiser_squires_map(shear.numpy() * mask, geometry, smoothing_fwhm_arcmin=1.5)
    np.testing.assert_allclose(e_masked.numpy(), e_ref.numpy(), atol=1e-6)
    smoothed, _ = kaiser_squires_map(shear, geometry, smoothing_fwhm_arcmin=3.0)
    assert smoothed.numpy().std() < e.numpy().std()


def test_argument_validation(masked_problem):
    geometry, power, lik = masked_problem
    with pytest.raises(ValueError, match="power_map"):
        wiener_filter(lik, power[:8])
    with pytest.raises(ValueError, match="power_map"):
        wiener_filter(lik, -power)
    with pytest.raises(ValueError, match="sigma"):
        wiener_filter(lik, power, sigma=-1.0)
    with pytest.raises(ValueError, match="tol"):
        wiener_filter(lik, power, tol=0.0)
    with pytest.raises(ValueError, match="num"):
        constrained_realisations(lik, power, 0, seed=0)
    with pytest.raises(ValueError, match="likelihood"):
        wiener_filter("nope", power)
    with pytest.raises(ValueError, match="smoothing_fwhm_arcmin"):
        kaiser_squires_map(lik.shear, geometry, smoothing_fwhm_arcmin=-1.0)
    big = MapGeometry(34, 1.0)
    big_lik = ShearLikelihood(big, np.zeros((2, 34, 34)), np.ones((34, 34)), np.ones((34, 34)))
    with pytest.raises(ValueError, match="npix"):
        gaussian_posterior_dense(big_lik, np.ones((34, 34)))
