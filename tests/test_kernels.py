"""Score-based TFP kernels on targets with exact answers (diagonal / Fourier-diagonal Gaussians).

Monte-Carlo tolerances: with C independent chains (final states only), a sample mean has standard error
sd/√C and a sample variance has relative standard error √(2/(C−1)). Tests compare max-abs z-scores over d
pixels with a bound of 4.5 (the probability that one of ≤ 256 standard normals exceeds 4.5 is < 2e-3) or
averages over pixels with 4 standard errors of the average.
"""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from core.physics.geometry import MapGeometry, fft2
from core.inference.kernels import (
    AnnealedKernel,
    FourierDiagonalMass,
    PixelDiagonalMass,
    ScoreHMC,
    ScoreMALA,
    ScoreULA,
    ReverseDiffusionPredictor,
    SigmaStepSize,
    StepSizeAdaptation,
    UncalibratedScoreHMC,
    UncalibratedScoreLangevin,
    denoise,
    posterior_mode_variance,
)
from core.inference.kernels._common import score_line_integral, simpson_weights
from core.inference.schedules import GeometricSchedule, ListSchedule

N = 8
pytestmark = pytest.mark.filterwarnings("ignore:supplied `TransitionKernel` is not calibrated")

RNG = np.random.default_rng(1234)
VAR = RNG.uniform(0.3, 2.0, (N, N)).astype(np.float32)
MU = RNG.normal(size=(N, N)).astype(np.float32)


def gauss_score(x):
    return -(x - MU) / VAR


def gauss_log_prob(x):
    return tf.reduce_sum(-0.5 * tf.square(x - MU) / VAR, axis=[-2, -1])


def run_chain(kernel, x0, num_steps, seed=(1, 2)):
    @tf.function
    def run(x0):
        return tfp.mcmc.sample_chain(
            num_steps, x0, kernel=kernel, trace_fn=lambda _, r: r.is_accepted if hasattr(r, "is_accepted") else (),
            seed=seed, return_final_kernel_results=True)
    return run(x0)


def assert_matches_gaussian(x, mean, var, z_max=4.5):
    """x (C, N, N) against independent N(mean, var) per pixel."""
    c = x.shape[0]
    z_mean = (x.mean(0) - mean) / np.sqrt(var / c)
    ratio = x.var(0, ddof=1) / var
    z_var = (ratio - 1.0) / np.sqrt(2.0 / (c - 1))
    assert np.abs(z_mean).max() < z_max, f"mean z-score {np.abs(z_mean).max():.2f}"
    assert np.abs(z_var).max() < z_max, f"variance z-score {np.abs(z_var).max():.2f} (ratios {ratio.min():.3f}–{ratio.max():.3f})"


# --------------------------------------------------------------------------------------------- line integral
def test_simpson_weights_and_validation():
    np.testing.assert_allclose(simpson_weights(2), [1 / 6, 4 / 6, 1 / 6])
    assert simpson_weights(8).sum() == pytest.approx(1.0)
    for bad in (0, 3, 2.0):
        with pytest.raises(ValueError, match="num_integration_intervals"):
            simpson_weights(bad)


def test_line_integral_exact_for_gaussian_and_converges_otherwise():
    x0 = tf.constant(RNG.normal(size=(3, N, N)), tf.float32)
    x1 = tf.constant(RNG.normal(size=(3, N, N)), tf.float32)
    got = score_line_integral(gauss_score, x0, x1, gauss_score(x0), gauss_score(x1), 2, 2)
    np.testing.assert_allclose(got, gauss_log_prob(x1) - gauss_log_prob(x0), rtol=1e-5, atol=1e-3)
    # log p = −Σ log cosh x (not a polynomial): composite Simpson's error is O(h⁴), ≈ 16× smaller per halving of h.
    a, b = tf.cast(x0, tf.float64), tf.cast(x1, tf.float64)
    score = lambda x: -tf.tanh(x)
    exact = tf.reduce_sum(tf.math.log(tf.cosh(a)) - tf.math.log(tf.cosh(b)), [-2, -1])
    errors = [np.abs(score_line_integral(score, a, b, score(a), score(b), n, 2) - exact).max() for n in (4, 8, 16)]
    assert errors[1] < errors[0] / 8 and errors[2] < errors[1] / 8


# --------------------------------------------------------------------------------------------- mass matrices
def test_fourier_mass_is_consistent():
    g = MapGeometry(N)
    k = np.hypot(g.k1, g.k2)
    v = (1.0 / (0.05 + k**2)).astype(np.float32)
    mass = FourierDiagonalMass(v)
    x = tf.constant(RNG.normal(size=(4, N, N)), tf.float32)
    np.testing.assert_allclose(mass.velocity(mass.apply_mass(x)), x, atol=1e-4)
    # p ~ N(0, M) with M = F⁻¹ diag(1/v) F: E|p̂_k|² = N_pix / v_k, and E[K] = d/2.
    p = mass.sample_momentum(tf.zeros((4000, N, N)), seed=[3, 4])
    power = np.mean(np.abs(fft2(p).numpy()) ** 2, axis=0) / N**2
    np.testing.assert_allclose(power * v, 1.0, rtol=0.15)  # 4000 draws: rel. s.e. ≤ √(2/4000) ≈ 2.2 %, 6.7 σ
    kinetic = mass.kinetic_energy(p).numpy()
    assert kinetic.mean() == pytest.approx(N * N / 2, rel=4 * np.sqrt(2 / (N * N)) / np.sqrt(4000) * 2)
    with pytest.raises(ValueError, match="Hermitian"):
        FourierDiagonalMass(RNG.uniform(1, 2, (N, N)))
    with pytest.raises(ValueError, match="positive"):
        FourierDiagonalMass(-v)


def test_posterior_mode_variance_formula():
    p = np.full((N, N), 2.0, np.float32)
    v = posterior_mode_variance(p, 1.0, sigma=1.0).numpy()
    assert v[0, 0] == pytest.approx(3.0)  # k = 0: the prior only
    assert v[1, 2] == pytest.approx(1.0 / (1 / 3.0 + 1 / 2.0))


# --------------------------------------------------------------------------------------------- HMC
def test_uncalibrated_results_follow_tfp_contract():
    k = UncalibratedScoreHMC(gauss_score, 0.3, 2)
    assert not k.is_calibrated and k.parameters["num_leapfrog_steps"] == 2
    x = tf.zeros((5, N, N))
    r = k.bootstrap_results(x)
    for name in ("target_log_prob", "grads_target_log_prob", "log_acceptance_correction", "step_size",
                 "num_leapfrog_steps", "seed", "initial_momentum", "final_momentum"):
        assert hasattr(r, name)
    assert r.target_log_prob.shape == (5,)
    x1, r1 = k.one_step(x, r, seed=[1, 1])
    np.testing.assert_array_equal(r1.target_log_prob, 0.0)
    np.testing.assert_allclose(r1.grads_target_log_prob, gauss_score(x1), rtol=1e-6)
    copy = k.copy(step_size=0.1)
    assert copy.step_size == 0.1 and copy.num_leapfrog_steps == 2


def test_line_integral_correction_equals_exact_energy_change():
    x = tf.constant(MU + RNG.normal(size=(16, N, N)), tf.float32)
    by_score = UncalibratedScoreHMC(gauss_score, 0.4, 3)
    by_density = UncalibratedScoreHMC(gauss_score, 0.4, 3, log_prob_fn=gauss_log_prob)
    xs, rs = by_score.one_step(x, by_score.bootstrap_results(x), seed=[5, 6])
    xd, rd = by_density.one_step(x, by_density.bootstrap_results(x), seed=[5, 6])
    np.testing.assert_array_equal(xs, xd)
    exact = rd.log_acceptance_correction + rd.target_log_prob - gauss_log_prob(x)
    np.testing.assert_allclose(rs.log_acceptance_correction, exact, atol=2e-3)


@pytest.mark.parametrize("mass", ["identity", "pixel"])
def test_score_hmc_samples_diagonal_gaussian(mass):
    metric = None if mass == "identity" else PixelDiagonalMass(VAR)
    kernel = ScoreHMC(gauss_score, 0.5 if mass == "identity" else 0.9, 3, momentum_scale=metric)
    assert kernel.is_calibrated
    x, acc, _ = run_chain(kernel, tf.zeros((512, N, N)), 150)
    assert 0.5 < acc.numpy()[50:].mean() < 0.99
    assert_matches_gaussian(x[-1].numpy(), MU, VAR)


def test_score_only_hmc_on_a_non_gaussian_target():
    """p(x) ∝ Π sech(x): Simpson's rule is no longer exact, the chain must still be right.
    Exact moments: E x² = π²/4, E x⁴ = 5π⁴/16, so one pixel's sample variance over C = 512 chains has s.e.
    √((5π⁴/16 − π⁴/16)/C) = (π²/2)/√512 ≈ 0.218; the mean over 64 pixels has s.e. 0.027 — we allow 4 s.e."""
    kernel = ScoreHMC(lambda x: -tf.tanh(x), 0.6, 3)
    x, acc, _ = run_chain(kernel, tf.zeros((512, N, N)), 200)
    assert acc.numpy()[50:].mean() > 0.5
    second_moment = np.mean(x[-1].numpy() ** 2, axis=0)
    assert second_moment.mean() == pytest.approx(np.pi**2 / 4, abs=4 * 0.218 / 8)
    assert abs(x[-1].numpy().mean()) < 4 * np.sqrt(np.pi**2 / 4 / (512 * 64))


def test_mala_samples_and_ula_has_its_known_bias():
    kernel = ScoreMALA(gauss_score, 0.25, momentum_scale=PixelDiagonalMass(VAR))
    x, acc, _ = run_chain(kernel, tf.zeros((512, N, N)), 150)
    assert 0.4 < acc.numpy()[50:].mean() < 1.0
    assert_matches_gaussian(x[-1].numpy(), MU, VAR)
    # ULA preconditioned by the exact covariance: x' = x − ε(x−μ) + √(2ε) A^{1/2} z has the stationary variance
    # 2ε/(1−(1−ε)²)·VAR = VAR/(1 − ε/2): a 5.3 % bias at ε = 0.1, ≈ 7 s.e. of the 64-pixel mean ratio below.
    eps = 0.1
    ula = ScoreULA(gauss_score, eps, momentum_scale=PixelDiagonalMass(VAR))
    assert not ula.is_calibrated
    x, _, _ = run_chain(ula, tf.zeros((512, N, N)), 150)
    ratio = x[-1].numpy().var(0, ddof=1) / VAR
    # mean of 64 ratios: s.e. √(2/511)/8 ≈ 0.0078; expected 1/(1−ε/2) = 1.0526
    assert ratio.mean() == pytest.approx(1 / (1 - eps / 2), abs=4 * np.sqrt(2 / 511) / 8)


def test_langevin_correction_matches_exact_log_prob():
    x = tf.constant(MU + RNG.normal(size=(16, N, N)), tf.float32)
    a = UncalibratedScoreLangevin(gauss_score, 0.2)
    b = UncalibratedScoreLangevin(gauss_score, 0.2, log_prob_fn=gauss_log_prob)
    xa, ra = a.one_step(x, a.bootstrap_results(x), seed=[2, 9])
    xb, rb = b.one_step(x, b.bootstrap_results(x), seed=[2, 9])
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_allclose(ra.log_acceptance_correction,
                               rb.log_acceptance_correction + rb.target_log_prob - gauss_log_prob(x), atol=2e-3)


def test_step_size_adaptation_composes_and_adapts():
    kernel = tfp.mcmc.SimpleStepSizeAdaptation(ScoreHMC(gauss_score, 1.5, 2), num_adaptation_steps=100,
                                               target_accept_prob=0.75, adaptation_rate=0.05)

    @tf.function
    def run():
        return tfp.mcmc.sample_chain(150, tf.zeros((64, N, N)), kernel=kernel,
                                     trace_fn=lambda _, r: (r.new_step_size, r.inner_results.is_accepted), seed=[7, 7])

    _, (steps, acc) = run()
    steps, acc = steps.numpy(), acc.numpy()
    assert steps[-1] < 0.8 * steps[0]  # shrank from a too large 1.5 (stability needs ε < 2·min sd ≈ 1.1)
    assert 0.6 < acc[-40:].mean() < 0.9  # target 0.75; 40×64 draws
    dual = tfp.mcmc.DualAveragingStepSizeAdaptation(ScoreHMC(gauss_score, 2.5, 2), num_adaptation_steps=20)
    x = tf.zeros((8, N, N))
    r = dual.bootstrap_results(x)
    for i in range(3):
        x, r = dual.one_step(x, r, seed=[i, 0])
    assert np.isfinite(x.numpy()).all()


def test_per_chain_step_size():
    kernel = ScoreHMC(gauss_score, tf.constant([0.1, 0.5, 1.0]), 2)
    x = tf.zeros((3, N, N))
    x1, r = kernel.one_step(x, kernel.bootstrap_results(x), seed=[1, 3])
    assert r.accepted_results.step_size.shape == (3,)


def test_kernel_argument_validation():
    with pytest.raises(ValueError, match="step_size"):
        ScoreHMC(gauss_score, 0.0, 3)
    with pytest.raises(ValueError, match="step_size"):
        ScoreHMC(gauss_score, -1.0, 3)
    with pytest.raises(ValueError, match="num_leapfrog_steps"):
        ScoreHMC(gauss_score, 0.1, 0)
    with pytest.raises(ValueError, match="score_fn"):
        ScoreHMC(None, 0.1, 1)
    with pytest.raises(ValueError, match="num_integration_intervals"):
        ScoreHMC(gauss_score, 0.1, 1, num_integration_intervals=3)
    with pytest.raises(ValueError, match="momentum_scale"):
        ScoreHMC(gauss_score, 0.1, 1, momentum_scale="big")
    with pytest.raises(ValueError, match="base"):
        SigmaStepSize(0.0)


def test_nan_score_is_rejected_not_propagated_by_metropolis():
    def bad_score(x):
        return tf.where(tf.reduce_max(x) > 0.5, np.nan, 1.0) * gauss_score(x)

    k = ScoreHMC(bad_score, 0.5, 2)
    x = tf.zeros((4, N, N))
    x1, r = k.one_step(x, k.bootstrap_results(x), seed=[0, 1])
    assert np.isfinite(x1.numpy()).all()


# --------------------------------------------------------------------------------------------- annealing
def test_annealed_kernel_walks_levels_and_rebootstraps():
    schedule = ListSchedule([1.0, 0.5, 0.25], steps_per_level=[2, 1, 3])
    seen = []

    def make_kernel(sigma):
        return ScoreHMC(lambda x: gauss_score(x) / (1.0 + sigma**2), SigmaStepSize(0.3)(sigma), 1)

    kernel = AnnealedKernel(make_kernel, schedule)
    x = tf.zeros((2, N, N))
    r = kernel.bootstrap_results(x)
    for i in range(8):
        x, r = kernel.one_step(x, r, seed=[i, 0])
        seen.append((int(r.step), int(r.level), float(r.sigma), float(r.inner_results.accepted_results.step_size)))
        # the cached score belongs to the current σ
        np.testing.assert_allclose(r.inner_results.accepted_results.grads_target_log_prob,
                                   gauss_score(x) / (1 + float(r.sigma) ** 2), rtol=1e-5, atol=1e-6)
    assert [s[1] for s in seen] == [0, 0, 1, 2, 2, 2, 2, 2]
    assert [s[2] for s in seen] == pytest.approx([1.0, 1.0, 0.5, 0.25, 0.25, 0.25, 0.25, 0.25])
    assert [s[3] for s in seen] == pytest.approx([0.3, 0.3, 0.15, 0.075, 0.075, 0.075, 0.075, 0.075])
    assert not kernel.is_calibrated


def test_annealed_kernel_in_one_compiled_graph():
    schedule = GeometricSchedule(1.0, 0.1, num_levels=4, steps_per_level=2)
    traces = []

    def make_kernel(sigma):
        traces.append(1)
        return ScoreMALA(lambda x: -x / (1.0 + sigma**2), SigmaStepSize(0.5, exponent=0.0)(sigma))

    kernel = AnnealedKernel(make_kernel, schedule)

    @tf.function
    def run(x):
        return tfp.mcmc.sample_chain(10, x, kernel=kernel, trace_fn=lambda _, r: r.sigma, seed=[1, 1])

    _, sig = run(tf.zeros((4, N, N)))
    expected = np.concatenate([np.repeat(schedule.sigmas, 2), schedule.sigmas[-1:].repeat(2)])
    np.testing.assert_allclose(sig.numpy(), expected, rtol=1e-6)
    assert len(traces) <= 4  # built while tracing only (bootstrap, one_step, cond branch), never per level


def test_annealed_step_size_adaptation_then_frozen_last_level():
    """StepSizeAdaptation(AnnealedKernel(...)) adapts one factor across levels and freezes it after T_a steps."""
    schedule = ListSchedule([1.0, 0.8, 0.6], steps_per_level=[20, 20, 10])

    def make_kernel(sigma):  # ε = 3 is far too large for unit-scale targets → acceptance ≪ 0.7
        return ScoreHMC(lambda x: -x / (0.5 + sigma**2), SigmaStepSize(3.0, exponent=0.0)(sigma), 2)

    kernel = StepSizeAdaptation(AnnealedKernel(make_kernel, schedule), num_adaptation_steps=40,
                                target_accept_prob=0.7, adaptation_rate=0.2)

    @tf.function
    def run(x):
        return tfp.mcmc.sample_chain(
            50, x, kernel=kernel, seed=[2, 5],
            trace_fn=lambda _, r: (r.new_step_size, r.inner_results.inner_results.accepted_results.step_size,
                                   r.inner_results.inner_results.is_accepted,
                                   r.inner_results.inner_results.log_accept_ratio))

    _, (new_eps, eps, acc, log_ratio) = run(tf.zeros((64, N, N)))
    new_eps, eps, acc, log_ratio = new_eps.numpy(), eps.numpy(), acc.numpy(), log_ratio.numpy()
    assert new_eps[39] < 3.0 * np.exp(-0.5)  # shrank while annealing
    np.testing.assert_allclose(eps, np.concatenate([[3.0], new_eps[:-1]]), rtol=1e-5)  # ε_t is the previous update
    accept_prob = np.exp(np.minimum(log_ratio, 0.0)).mean(axis=1)
    np.testing.assert_allclose(np.log(new_eps[:40] / eps[:40]), 0.2 * (accept_prob[:40] - 0.7), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(new_eps[40:], new_eps[39])  # frozen after num_adaptation_steps
    assert acc[40:].mean() > 0.4
    with pytest.raises(ValueError, match="target_accept_prob"):
        StepSizeAdaptation(AnnealedKernel(make_kernel, schedule), 10, target_accept_prob=1.5)
    with pytest.raises(ValueError, match="num_adaptation_steps"):
        StepSizeAdaptation(AnnealedKernel(make_kernel, schedule), -1)


def test_annealed_kernel_keeps_the_adapted_factor_across_levels():
    """With a σ-dependent rule ε(σ), a level change rescales the adapted step size by ε(σ_l)/ε(σ_{l−1})."""
    schedule = ListSchedule([1.0, 0.5], steps_per_level=[1, 1])

    def make_kernel(sigma):
        return ScoreHMC(lambda x: -x / (0.5 + sigma**2), SigmaStepSize(0.4)(sigma), 1)

    kernel = AnnealedKernel(make_kernel, schedule)
    x = tf.zeros((2, N, N))
    r = kernel.bootstrap_results(x)
    r = r._replace(inner_results=r.inner_results._replace(
        accepted_results=r.inner_results.accepted_results._replace(step_size=tf.constant(0.4 * 1.0 * 3.0))))
    x, r = kernel.one_step(x, r, seed=[1, 1])
    x, r = kernel.one_step(x, r, seed=[2, 1])
    assert float(r.inner_results.accepted_results.step_size) == pytest.approx(0.4 * 0.5 * 3.0, rel=1e-6)


def test_nfe_counts_score_evaluations_honestly():
    """nfe = 1 (bootstrap) + per transition (L + n − 1) + per level change (1 re-bootstrap + 1 predictor);
    checked against a score function that counts its own calls in eager mode."""
    schedule = ListSchedule([1.0, 0.5, 0.25], steps_per_level=[2, 1, 2])
    calls = []

    def score(x, sigma):
        calls.append(1)
        return -x / (1.0 + sigma**2)

    def make_kernel(sigma):
        return ScoreHMC(lambda x: score(x, sigma), 0.2, 3, num_integration_intervals=4)

    kernel = AnnealedKernel(make_kernel, schedule, predictor=ReverseDiffusionPredictor(score))
    x = tf.zeros((2, N, N))
    r = kernel.bootstrap_results(x)
    for i in range(5):
        x, r = kernel.one_step(x, r, seed=[i, 3])
    assert float(r.nfe) == len(calls) == 1 + 5 * (3 + 3) + 2 * (1 + 1)
    assert ScoreMALA(gauss_score, 0.1).num_score_evaluations == 4
    assert ScoreMALA(gauss_score, 0.1, log_prob_fn=gauss_log_prob).num_score_evaluations == 1
    assert ScoreULA(gauss_score, 0.1).num_score_evaluations == 1


def test_kernels_work_on_points_with_event_ndims_1():
    """2-D points (event_ndims=1): HMC and MALA sample N(μ, diag v) in a few hundred transitions."""
    mu = np.array([1.0, -2.0], np.float32)
    var = np.array([0.5, 2.0], np.float32)

    def score(x):
        return -(x - mu) / var

    for kernel in (ScoreHMC(score, 0.6, 3, momentum_scale=1.0 / np.sqrt(var), event_ndims=1),
                   ScoreMALA(score, 0.4, momentum_scale=1.0 / np.sqrt(var), event_ndims=1)):
        run = tf.function(lambda x0: tfp.mcmc.sample_chain(150, x0, kernel=kernel, seed=[3, 4], trace_fn=None)[-1])
        final = run(tf.zeros((1024, 2))).numpy()
        assert_matches_gaussian(final[:, :, None], mu[:, None], var[:, None])


def test_sigma_step_size_rule():
    rule = SigmaStepSize(0.5, floor=0.1, exponent=1.0)
    assert float(rule(tf.constant(0.0))) == pytest.approx(0.05)
    assert float(rule(1.0)) == pytest.approx(0.5 * np.sqrt(1.01))
    assert float(SigmaStepSize(0.2, exponent=0.0)(3.0)) == pytest.approx(0.2)
    assert float(SigmaStepSize(0.2, exponent=2.0)(3.0)) == pytest.approx(1.8)


# --------------------------------------------------------------------------------------------- denoising
def test_tweedie_and_ode_denoising_are_exact_for_gaussians():
    """p_σ = N(μ, S + σ²) per pixel with S = VAR: Tweedie gives μ + S/(S+σ²)(x−μ); the flow gives
    μ + √((S + σ_end²)/(S + σ²)) (x − μ)."""
    sigma = 0.7

    def score(x, s):
        return -(x - MU) / (VAR + tf.square(s))

    x = tf.constant(MU + RNG.normal(size=(3, N, N)), tf.float32)
    tweedie = denoise(score, x, sigma, method="tweedie").numpy()
    np.testing.assert_allclose(tweedie, MU + VAR / (VAR + sigma**2) * (x.numpy() - MU), rtol=1e-5, atol=1e-5)
    ode = denoise(score, x, sigma, method="ode", sigma_end=1e-3).numpy()
    expected = MU + np.sqrt((VAR + 1e-6) / (VAR + sigma**2)) * (x.numpy() - MU)
    np.testing.assert_allclose(ode, expected, rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="method"):
        denoise(score, x, sigma, method="euler")
    with pytest.raises(ValueError, match="sigma"):
        denoise(score, x, 0.0)
