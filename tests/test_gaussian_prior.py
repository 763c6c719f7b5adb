"""Tests of core.priors.gaussian: exact σ-convolved Gaussian prior (log-density, score, samples)."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from scipy.stats import multivariate_normal

from core.physics.cosmology import default_power_map
from core.priors.gaussian import GaussianPrior
from core.physics.geometry import MapGeometry

SMALL = MapGeometry(8, 4.0)
MEDIUM = MapGeometry(16, 2.0)


def _dense_covariance(power: np.ndarray) -> np.ndarray:
    """C = F⁻¹ diag(P) F built from the explicit DFT matrix (independent of numpy/TF FFTs):
    with Φ_{x,k} = exp(2πi k·x)/√N (unitary), C = Φ diag(P) Φᴴ (real for symmetric P)."""
    npix = power.shape[0]
    idx = np.arange(npix)
    x2, x1 = np.meshgrid(idx, idx, indexing="ij")  # rows, columns
    xs = np.stack([x1.ravel(), x2.ravel()], axis=1)
    ks = xs / npix  # same index grid → frequencies m/npix (aliases are equivalent)
    phase = np.exp(2j * np.pi * xs @ ks.T) / npix  # Φ (N×N), 1/√N with N = npix²
    cov = (phase * power.ravel()[None, :]) @ phase.conj().T
    assert np.max(np.abs(cov.imag)) < 1e-12 * np.max(np.abs(cov.real))
    return cov.real


@pytest.mark.parametrize("sigma", [0.0, 1e-3, 0.1, 1.0])
def test_log_prob_equals_dense_multivariate_normal(sigma):
    power = default_power_map(SMALL)
    prior = GaussianPrior(SMALL, power)
    cov = _dense_covariance(power) + sigma**2 * np.eye(SMALL.num_pixels)
    rng = np.random.default_rng(0)
    kappa = rng.multivariate_normal(np.zeros(SMALL.num_pixels), cov, size=3).astype(np.float32)
    expected = multivariate_normal(mean=np.zeros(SMALL.num_pixels), cov=cov).logpdf(kappa.astype(np.float64))
    ours = prior.log_prob(kappa.reshape(3, 8, 8), sigma).numpy()
    # float32 round-off: each of the N log-det terms |log 2π(P+σ²)| (and the O(1) quadratic
    # terms) carries ~eps = 6e-8 relative error; allow 3·eps per term (measured error ~1e-5,
    # tolerance ~1e-4; dropping the Hermitian weights would be off by O(100))
    scale = np.sum(np.abs(np.log(2 * np.pi * (power + sigma**2)))) + SMALL.num_pixels
    np.testing.assert_allclose(ours, expected, rtol=0, atol=2e-7 * scale)


@pytest.mark.parametrize("sigma", [0.0, 1e-3, 0.1, 1.0])
def test_score_matches_autodiff(sigma):
    power = default_power_map(MEDIUM)
    prior = GaussianPrior(MEDIUM, power)
    kappa = prior.sample(4, seed=1, sigma=sigma)
    with tf.GradientTape() as tape:
        tape.watch(kappa)
        log_prob = prior.log_prob(kappa, sigma)
    autodiff = tape.gradient(log_prob, kappa).numpy()
    score = prior.score(kappa, sigma).numpy()
    # both are float32 FFT chains of depth ~2 log2(N): relative error ~1e-6 of the largest entry
    np.testing.assert_allclose(score, autodiff, rtol=1e-4, atol=1e-5 * np.abs(autodiff).max())


def test_per_chain_sigma_broadcasts():
    prior = GaussianPrior(MEDIUM, default_power_map(MEDIUM))
    sigmas = tf.constant([0.0, 0.01, 0.5], tf.float32)
    kappa = prior.sample(3, seed=2, sigma=sigmas)
    lp = prior.log_prob(kappa, sigmas)
    score = prior.score(kappa, sigmas)
    assert lp.shape == (3,) and score.shape == (3, 16, 16)
    for i, s in enumerate(sigmas.numpy()):
        np.testing.assert_allclose(lp[i], prior.log_prob(kappa[i], float(s)), rtol=1e-6)
        np.testing.assert_allclose(score[i], prior.score(kappa[i], float(s)), rtol=1e-6, atol=1e-6 * np.abs(score[i]).max())
    # a batch of maps with one scalar σ
    assert prior.log_prob(kappa, 0.1).shape == (3,)
    # works inside tf.function with σ as a tensor argument
    compiled = tf.function(lambda x, s: (prior.log_prob(x, s), prior.score(x, s)))
    lp_c, score_c = compiled(kappa, sigmas)
    np.testing.assert_allclose(lp_c, lp, rtol=1e-6)
    np.testing.assert_allclose(score_c, score, rtol=1e-5, atol=1e-6 * np.abs(score).max())


def test_samples_covariance_matches_circulant_covariance():
    """Empirical covariance of M samples vs C + σ²I. For Gaussian data the sample covariance has
    var(Ĉ_ij) = (C_ij² + C_ii C_jj)/M; tolerance 5 standard errors on each of the 2080 distinct
    entries (false-alarm probability ~1e-3 in all; the seed is fixed)."""
    power = default_power_map(SMALL)
    prior = GaussianPrior(SMALL, power)
    num = 20000
    for sigma in (0.0, 0.02):
        samples = prior.sample(num, seed=4, sigma=sigma).numpy().reshape(num, -1).astype(np.float64)
        cov = _dense_covariance(power) + sigma**2 * np.eye(SMALL.num_pixels)
        empirical = samples.T @ samples / num  # zero mean known
        se = np.sqrt((cov**2 + np.outer(np.diag(cov), np.diag(cov))) / num)
        assert np.max(np.abs(empirical - cov) / se) < 5.0


def test_denoise_is_the_wiener_filter():
    """Tweedie x + σ²∇log p_σ(x) equals the Wiener filter F⁻¹[P/(P+σ²) x̂] for a Gaussian prior."""
    power = default_power_map(MEDIUM)
    prior = GaussianPrior(MEDIUM, power)
    sigma = 0.03
    x = prior.sample(2, seed=5, sigma=sigma).numpy().astype(np.float64)
    wiener = np.fft.ifft2(power / (power + sigma**2) * np.fft.fft2(x)).real
    np.testing.assert_allclose(prior.denoise(x, sigma), wiener, rtol=0, atol=1e-5 * np.abs(x).max())


def test_sample_pixel_variance_per_sigma():
    """Pixel variance of samples at σ is mean(P) + σ²; with M·N = 400·256 correlated values the
    relative standard error is ~sqrt(2/M_eff); using M_eff = M (one independent value per map,
    the pessimistic case) gives 7% — tolerance 4 × that."""
    power = default_power_map(MEDIUM)
    prior = GaussianPrior(MEDIUM, power)
    sigmas = np.array([0.0, 0.05], np.float32)
    num = 400
    samples = prior.sample(num, seed=6, sigma=np.repeat(sigmas, num // 2)).numpy()
    for i, s in enumerate(sigmas):
        var = samples[i * num // 2 : (i + 1) * num // 2].var()
        expected = power.mean() + s**2
        assert abs(var / expected - 1) < 4 * np.sqrt(2 / (num // 2))


def test_default_and_validation():
    prior = GaussianPrior.default(MEDIUM)
    np.testing.assert_allclose(prior.power_map, default_power_map(MEDIUM))
    assert prior.has_log_prob and prior.pixel_variance == pytest.approx(default_power_map(MEDIUM).mean())
    with pytest.raises(ValueError, match="power_map has shape"):
        GaussianPrior(MEDIUM, np.ones((8, 8)))
    with pytest.raises(ValueError, match="strictly positive"):
        GaussianPrior(SMALL, np.zeros((8, 8)))
    with pytest.raises(ValueError, match="geometry"):
        GaussianPrior((8, 8), np.ones((8, 8)))
    with pytest.raises(ValueError, match="sigma"):
        prior.score(np.zeros((16, 16)), -1.0)
    with pytest.raises(ValueError, match="kappa"):
        prior.log_prob(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="num"):
        prior.sample(0, seed=0)


def test_denoiser_jacobian_products_match_the_dense_jacobian_and_autodiff():
    # D(x) = x + σ² s(x) is linear with Jacobian J = S (S + σ²)⁻¹ (dense circulant covariance S = C):
    # the closed-form JVP/VJP must equal J t, Jᵀ u, and what tf autodiff gives through denoise()
    power = default_power_map(SMALL) * (1 + np.arange(64).reshape(8, 8) % 3)  # anisotropic, still even in k
    power = 0.5 * (power + np.roll(power[::-1, ::-1], (1, 1), axis=(0, 1)))  # P(-k) = P(k)
    prior = GaussianPrior(SMALL, power)
    sigma = 0.02
    cov = _dense_covariance(power)
    jac = cov @ np.linalg.inv(cov + sigma**2 * np.eye(64))
    rng = np.random.default_rng(3)
    x, t, u = (tf.constant(rng.standard_normal((2, 8, 8)) * 0.02, tf.float32) for _ in range(3))
    d, jvp = prior.denoise_jvp(x, sigma, t)
    _, vjp = prior.denoise_vjp(x, sigma, u)
    scale = np.abs(jac).max() * 8
    np.testing.assert_allclose(d.numpy(), prior.denoise(x, sigma).numpy(), rtol=0, atol=0)
    np.testing.assert_allclose(jvp.numpy().reshape(2, 64), t.numpy().reshape(2, 64) @ jac.T, atol=1e-5 * scale)
    np.testing.assert_allclose(vjp.numpy().reshape(2, 64), u.numpy().reshape(2, 64) @ jac, atol=1e-5 * scale)
    with tf.autodiff.ForwardAccumulator(x, t) as acc:
        dd = prior.denoise(x, sigma)
    np.testing.assert_allclose(acc.jvp(dd).numpy(), jvp.numpy(), atol=1e-5 * scale)
    with tf.GradientTape() as tape:
        tape.watch(x)
        dd = prior.denoise(x, sigma)
    np.testing.assert_allclose(tape.gradient(dd, x, output_gradients=u).numpy(), vjp.numpy(), atol=1e-5 * scale)
