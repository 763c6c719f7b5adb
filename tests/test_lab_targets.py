"""The 2-D lab targets: exact σ-smoothed densities, scores, samples, marginals and moments (core/lab/targets.py).

Tolerances: Monte-Carlo standard errors of the sample statistics (stated per test) or float32 rounding.
"""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from core.lab.metrics import energy_distance
from core.lab.targets import TARGETS, GaussianMixtureTarget, InverseProblemTarget, make_target

NAMES = list(TARGETS)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("sigma", [0.0, 0.7])
def test_exact_moments_match_exact_samples(name, sigma):
    target = make_target(name)
    n = 40_000
    x = target.sample(n, seed=3, sigma=sigma).numpy().astype(np.float64)
    mean, cov = target.moments(sigma)
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(x.mean(0) - mean) < 5 * se_mean), (x.mean(0), mean)
    centred = x - mean
    var = (centred**2).mean(0)
    se_var = np.sqrt(((centred**4).mean(0) - var**2) / n)
    assert np.all(np.abs(var - np.diag(cov)) < 5 * se_var), (var, np.diag(cov))


@pytest.mark.parametrize("name", NAMES)
def test_score_is_the_gradient_of_the_log_density(name):
    target = make_target(name)
    x = target.sample(64, seed=5, sigma=0.3).numpy().astype(np.float64)
    h = 1e-2
    for sigma in (0.05, 0.8):
        score = target.score(x, sigma).numpy()
        for axis in range(2):
            dx = np.zeros(2)
            dx[axis] = h
            fd = (target.log_prob(x + dx, sigma).numpy().astype(np.float64)
                  - target.log_prob(x - dx, sigma).numpy().astype(np.float64)) / (2 * h)
            scale = np.abs(score[:, axis]).max() + 1.0
            assert np.max(np.abs(fd - score[:, axis])) < 2e-2 * scale, (name, sigma, axis)


@pytest.mark.parametrize("name", ["gaussian", "bimodal", "banana", "ring"])
def test_smoothing_is_convolution_with_a_gaussian(name):
    """π_σ = π * N(0, σ²I): exact samples of π plus σz are samples of π_σ (energy distance ≈ 0 within its
    sampling spread, estimated from independent pairs), and the moments add σ²I to the covariance."""
    target = make_target(name)
    sigma, n = 0.6, 1500
    smoothed_by_hand = target.sample(n, seed=7).numpy() + sigma * np.random.default_rng(0).standard_normal((n, 2))
    exact = target.sample(n, seed=8, sigma=sigma).numpy()
    null = [energy_distance(target.sample(n, seed=20 + i, sigma=sigma).numpy(),
                            target.sample(n, seed=40 + i, sigma=sigma).numpy()) for i in range(6)]
    spread = np.std(null) + abs(np.mean(null))
    assert abs(energy_distance(smoothed_by_hand, exact)) < 5 * spread
    mean0, cov0 = target.moments(0.0)
    mean, cov = target.moments(sigma)
    np.testing.assert_allclose(mean, mean0, atol=1e-5)
    np.testing.assert_allclose(cov, cov0 + sigma**2 * np.eye(2), atol=1e-4)


@pytest.mark.parametrize("convention", InverseProblemTarget.CONVENTIONS)
@pytest.mark.parametrize("sigma", [0.0, 0.5])
def test_inverse_problem_density_is_prior_times_likelihood(convention, sigma):
    """On a fine grid, the normalised product (smoothed prior × tempered likelihood, or the posterior then
    convolved) equals exp(log π_σ)."""
    base = make_target("inverse")
    target = InverseProblemTarget(base.prior, base.operator, base.observation, base.noise_std, convention=convention)
    xs = np.linspace(-7, 7, 281)
    gx, gy = np.meshgrid(xs, xs)
    pts = np.stack([gx.ravel(), gy.ravel()], -1).astype(np.float32)
    cell = (xs[1] - xs[0]) ** 2
    a, y, eta = base.operator[0].astype(np.float64), float(base.observation[0]), base.noise_std
    if convention == "tempered":
        prior = np.exp(base.prior.log_prob(pts, sigma).numpy().astype(np.float64))
        like = np.exp(-0.5 * (y - pts @ a) ** 2 / (eta**2 + sigma**2))
        product = prior * like
    else:
        prior = np.exp(base.prior.log_prob(pts, 0.0).numpy().astype(np.float64))
        post = (prior * np.exp(-0.5 * (y - pts @ a) ** 2 / eta**2)).reshape(gx.shape)
        post /= post.sum() * cell
        if sigma > 0:  # convolve with N(0, σ²I) on the grid (separable)
            k = np.exp(-0.5 * ((xs - xs.mean()) / sigma) ** 2)
            k /= k.sum()
            post = np.apply_along_axis(lambda r: np.convolve(r, k, mode="same"), 0, post)
            post = np.apply_along_axis(lambda r: np.convolve(r, k, mode="same"), 1, post)
        product = post.ravel()
    product /= product.sum() * cell
    exact = np.exp(target.log_prob(pts, sigma).numpy().astype(np.float64))
    assert abs(exact.sum() * cell - 1) < 1e-3
    assert np.max(np.abs(product - exact)) < 2e-3 * exact.max()


def test_inverse_problem_exposes_a_linear_gaussian_observation():
    target = make_target("inverse")
    assert target.operator.shape == (1, 2) and target.observation.shape == (1,) and target.noise_std > 0
    x = target.sample(16, seed=1).numpy()
    # posterior score = prior score + likelihood score at σ = 0 (both conventions agree there)
    np.testing.assert_allclose(
        target.score(x, 0.0).numpy(),
        (target.prior.score(x, 0.0) + target.likelihood_score(x, 0.0)).numpy(), rtol=1e-3, atol=1e-3)
    # the ridge: the posterior is much narrower along a than across it
    _, cov = target.moments(0.0)
    a = target.operator[0] / np.linalg.norm(target.operator[0])
    across = np.array([a[1], -a[0]])
    assert a @ cov @ a < 0.1 * (across @ cov @ across)


@pytest.mark.parametrize("name", NAMES)
def test_marginals_are_normalised_and_match_samples(name):
    target = make_target(name)
    x = target.sample(20_000, seed=11, sigma=0.2).numpy()
    for axis in (0, 1):
        grid = np.linspace(-12, 12, 4001)
        pdf = target.marginal_pdf(grid, axis, 0.2)
        assert abs(np.trapezoid(pdf, grid) - 1) < 1e-3
        edges = np.linspace(np.quantile(x[:, axis], 0.01), np.quantile(x[:, axis], 0.99), 21)
        counts, _ = np.histogram(x[:, axis], edges)
        fine = np.linspace(edges[0], edges[-1], 2001)
        cdf = np.concatenate([[0], np.cumsum(0.5 * (target.marginal_pdf(fine[1:], axis, 0.2)
                                                    + target.marginal_pdf(fine[:-1], axis, 0.2)) * np.diff(fine))])
        expected = len(x) * np.diff(np.interp(edges, fine, cdf))
        assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected) + 2)


def test_bimodal_weights_and_bad_inputs():
    target = make_target("bimodal")
    np.testing.assert_allclose(target.weights(), [0.3, 0.7], atol=1e-6)
    np.testing.assert_allclose(target.weights(2.0), [0.3, 0.7], atol=1e-6)  # smoothing keeps the weights
    with pytest.raises(ValueError, match="target"):
        make_target("donut")
    with pytest.raises(ValueError, match="sigma"):
        target.log_prob(np.zeros((1, 2)), -1.0)
    with pytest.raises(ValueError, match="weights"):
        GaussianMixtureTarget([-1.0], [[0.0, 0.0]], [np.eye(2)])
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixtureTarget([1.0], [[0.0, 0.0]], [np.diag([1.0, -1.0])])
    with pytest.raises(ValueError, match="convention"):
        InverseProblemTarget(target, [[1.0, 0.0]], [0.0], 0.1, convention="exact")
    with pytest.raises(ValueError, match="num"):
        target.sample(0, seed=1)


def test_energy_distance_detects_a_shift():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((800, 2)), rng.standard_normal((800, 2))
    same = energy_distance(a, b)
    shifted = energy_distance(a, b + [0.5, 0.0])
    assert abs(same) < 0.02 and shifted > 0.1
    with pytest.raises(ValueError, match="dimension"):
        energy_distance(a, b[:, :1])
