"""Tests of core.inference.likelihood: value against an independent Gaussian log-density, score = autodiff, validation."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from core.physics.geometry import MapGeometry
from core.inference.likelihood import ShearLikelihood
from core.data.observation import NoiseModel, Observation, random_holes_mask

NPIX = 16


@pytest.fixture(scope="module")
def problem():
    geometry = MapGeometry(NPIX, 2.0)
    rng = np.random.default_rng(1)
    mask = random_holes_mask(geometry, 3, 6.0, seed=2)
    assert 0.3 < mask.mean() < 1.0
    std = rng.uniform(0.05, 0.3, size=(2, NPIX, NPIX)).astype(np.float32)  # inhomogeneous, per component
    kappa_true = rng.normal(0.0, 0.1, size=(NPIX, NPIX)).astype(np.float32)
    obs = Observation.simulated(geometry, kappa_true, NoiseModel.from_std_maps(std), mask, seed=5)
    return geometry, obs, ShearLikelihood.from_observation(obs), rng


def test_log_prob_matches_independent_gaussian_density(problem):
    geometry, obs, lik, rng = problem
    kappa = rng.normal(0.0, 0.1, size=(NPIX, NPIX)).astype(np.float32)
    model = lik.operator.forward(kappa).numpy().astype(np.float64)
    observed = np.broadcast_to(obs.mask > 0, (2, NPIX, NPIX))
    for sigma in (0.0, 0.05, 0.7):
        scale = np.sqrt(obs.noise_std.astype(np.float64) ** 2 + sigma**2)
        expected = stats.norm.logpdf(obs.shear[observed], loc=model[observed], scale=scale[observed]).sum()
        got = float(lik.log_prob(kappa, sigma))
        # float32 sums of ~400 terms of size ~10: relative error ≲ 1e-5.
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-2)


def test_log_prob_batched_over_kappa_and_sigma(problem):
    geometry, obs, lik, rng = problem
    kappa = rng.normal(0.0, 0.1, size=(3, NPIX, NPIX)).astype(np.float32)
    sigmas = np.array([0.0, 0.1, 1.0], np.float32)
    batched = lik.log_prob(kappa, sigmas).numpy()
    assert batched.shape == (3,)
    single = [float(lik.log_prob(kappa[i], sigmas[i])) for i in range(3)]
    np.testing.assert_allclose(batched, single, rtol=1e-6)
    score = lik.score(kappa, sigmas)
    assert score.shape == (3, NPIX, NPIX) and score.dtype == tf.float32
    np.testing.assert_allclose(score[1].numpy(), lik.score(kappa[1], 0.1).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sigma", [0.0, 0.02, 0.3, 2.0])
def test_score_equals_autodiff_of_log_prob(problem, sigma):
    geometry, obs, lik, rng = problem
    kappa = tf.constant(rng.normal(0.0, 0.1, size=(2, NPIX, NPIX)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(kappa)
        lp = tf.reduce_sum(lik.log_prob(kappa, sigma))
    grad = tape.gradient(lp, kappa).numpy()
    score = lik.score(kappa, sigma).numpy()
    # Both are float32 FFT computations of the same quantity; relative agreement to ~1e-5 of the scale.
    np.testing.assert_allclose(score, grad, rtol=1e-4, atol=1e-5 * np.abs(grad).max())


def test_score_ignores_unobserved_pixels(problem):
    geometry, obs, lik, rng = problem
    shear = obs.shear.copy()
    shear[:, obs.mask == 0] = 123.0  # garbage where nothing is observed
    std = obs.noise_std.copy()
    std[:, obs.mask == 0] = 0.0
    lik2 = ShearLikelihood(geometry, shear, std, obs.mask)
    kappa = rng.normal(0.0, 0.1, size=(NPIX, NPIX)).astype(np.float32)
    np.testing.assert_allclose(lik2.score(kappa, 0.1).numpy(), lik.score(kappa, 0.1).numpy(), rtol=1e-6, atol=1e-6)
    assert float(lik2.log_prob(kappa)) == pytest.approx(float(lik.log_prob(kappa)), rel=1e-6)


def test_validation_errors(problem):
    geometry, obs, lik, rng = problem
    shear, std, mask = obs.shear, obs.noise_std, obs.mask
    with pytest.raises(ValueError, match="shear"):
        ShearLikelihood(geometry, shear[0], std, mask)
    with pytest.raises(ValueError, match="noise_std"):
        ShearLikelihood(geometry, shear, std[:, :8], mask)
    bad = shear.copy()
    row, col = np.argwhere(mask > 0)[0]
    bad[0, row, col] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ShearLikelihood(geometry, bad, std, mask)
    with pytest.raises(ValueError, match="all zero"):
        ShearLikelihood(geometry, shear, std, np.zeros_like(mask))
    with pytest.raises(ValueError, match="positive"):
        ShearLikelihood(geometry, shear, -std, mask)
    with pytest.raises(ValueError, match="Observation"):
        ShearLikelihood.from_observation("not an observation")


def test_works_inside_tf_function_with_tensor_sigma(problem):
    geometry, obs, lik, rng = problem
    kappa = tf.constant(rng.normal(0.0, 0.1, size=(4, NPIX, NPIX)).astype(np.float32))
    sigmas = tf.constant([0.0, 0.1, 0.5, 1.0])
    compiled = tf.function(lambda k, s: (lik.log_prob(k, s), lik.score(k, s)))
    lp, sc = compiled(kappa, sigmas)
    np.testing.assert_allclose(lp.numpy(), lik.log_prob(kappa, sigmas).numpy(), rtol=1e-6)
    np.testing.assert_allclose(sc.numpy(), lik.score(kappa, sigmas).numpy(), rtol=1e-5, atol=1e-6)
