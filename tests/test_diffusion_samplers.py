"""Diffusion posterior samplers ("pc", "dps", "mmps") against exact Gaussian answers.

Problem: the 16² maps of tests/test_sampling.py (red power spectrum with pixel sd 0.02, σ_n = 0.02; "masked" has
two holes and per-datum noise 0.6–2 × σ_n). With the exact Gaussian prior the denoiser D is linear and Tweedie's
covariance exact, so

* the MMPS guided score is the exact score of the σ-convolved posterior p(x_σ | y) = N(m, C + σ² I) (checked
  directly against dense linear algebra), and a reverse diffusion driven by it (Heun, 40 levels 0.5 → 10⁻³) samples
  N(m, C + σ_min² I) up to its discretisation error (0.1–0.4 % in the variance, below the Monte-Carlo tolerance);
* PC with a Metropolis-adjusted HMC corrector (K = 2, 100 levels) ends at the tempered posterior at σ_min,
  which is what the dense solution with ``sigma=σ_min`` gives;
* DPS is biased: it drops V from the likelihood covariance. Measured here (Heun, 60 levels, 512 chains, masked
  problem, weighting="none"): mean pixel-variance ratio to the exact posterior 0.76 and RMS error of the mean
  0.49 posterior sd (Monte-Carlo error 0.044); with the default weighting="tempered" 1.27 and 0.41 (the early
  down-weighting over-disperses this Gaussian problem). The test asserts those bands.

Monte-Carlo tolerances (as in test_sampling.py): with C chains a mean has s.e. sd/√C, a sample variance relative
s.e. √(2/(C−1)); max |z| over 256 pixels < 4.5; the mean of d whitened squares is within 4·√(2/(C d)) of 1.
"""
import numpy as np
import pytest
import tensorflow as tf

from core.analysis.baselines import gaussian_posterior_dense
from core.inference.guidance import LinearGaussianObservation, dps_guidance, mmps_guidance
from core.inference.samplers.dps import DPSSampler
from core.inference.samplers.mmps import MMPSSampler
from core.inference.samplers.predictor_corrector import PredictorCorrector, ReverseDiffusionKernel
from core.inference.schedules import GeometricSchedule, ListSchedule
from core.physics.lensing import shear_kernel
from test_sampling import NPIX, check_against_dense, make_problem

SIGMA_MAX, SIGMA_MIN = 0.5, 1e-3


@pytest.fixture(scope="module")
def masked_problem():
    return make_problem(masked=True)


@pytest.fixture(scope="module")
def uniform_problem():
    return make_problem(masked=False)


def run_sampler(sampler, init: np.ndarray, seed: int = 0):
    """All transitions of ``sampler``'s kernel in one compiled loop; returns (final chains, final results)."""
    kernel = sampler.make_kernel()
    run_seed = tf.constant([seed, 17], tf.int32)

    @tf.function
    def run(x):
        results = kernel.bootstrap_results(x)

        def body(t, x, results):
            x, results = kernel.one_step(x, results, seed=tf.random.experimental.stateless_fold_in(run_seed, t))
            return t + 1, x, results

        _, x, results = tf.while_loop(lambda t, *_: t < sampler.num_transitions, body, (tf.constant(0), x, results))
        return x, results

    x, results = run(tf.constant(init, tf.float32))
    return x.numpy(), results


def wiener_init(mean: np.ndarray, num_chains: int, seed: int) -> np.ndarray:
    """The driver's "wiener" init: posterior mean + white noise of std σ_max."""
    rng = np.random.default_rng(seed)
    return (mean[None] + SIGMA_MAX * rng.normal(size=(num_chains,) + mean.shape)).astype(np.float32)


def dense_operators(likelihood, power):
    """Dense A = M∘P (2m × m, unobserved rows zero), Σ_y (2m,), mask (2m,) and the prior covariance S (m × m)."""
    n = likelihood.geometry.npix
    m = n * n
    basis = np.eye(m).reshape(m, n, n)
    g = np.fft.ifft2(shear_kernel(likelihood.geometry) * np.fft.fft2(basis))
    p_mat = np.concatenate([g.real.reshape(m, m).T, g.imag.reshape(m, m).T], axis=0)
    mask = np.broadcast_to(np.asarray(likelihood.mask, np.float64), (2, n, n)).reshape(2 * m)
    var = np.asarray(likelihood.variance(0.0), np.float64).reshape(2 * m)
    s = np.real(np.fft.ifft2(power * np.fft.fft2(basis))).reshape(m, m).T
    return mask[:, None] * p_mat, var, mask, s


# ------------------------------------------------------------------------------------------- guidance terms
def test_mmps_guidance_is_the_exact_convolved_posterior_score(masked_problem):
    """∇ log p(x_σ | y) = −(C + σ²I)⁻¹(x − m) for the Gaussian problem; MMPS with enough CG iterations gives it, by
    reverse-mode and by forward-mode Jacobian products; the data part matches the closed form
    J_Dᵀ Aᵀ K⁻¹(y − A D) with K = Σ_y + σ² A J_D Aᵀ built densely."""
    posterior, power = masked_problem
    mean, cov = gaussian_posterior_dense(posterior.likelihood, power, sigma=0.0)
    observation = LinearGaussianObservation.from_shear_likelihood(posterior.likelihood)
    rng = np.random.default_rng(5)
    sigma = 0.03
    x = (mean[None] + np.sqrt(np.diag(cov).mean() + sigma**2) * rng.normal(size=(3, NPIX, NPIX))).astype(np.float32)
    m = NPIX * NPIX
    exact = -np.linalg.solve(cov + sigma**2 * np.eye(m), (x.reshape(3, m) - mean.ravel()).T).T
    for product in ("vjp", "jvp"):
        terms = mmps_guidance(observation, posterior.prior.score, x, sigma, cg_iterations=60, jacobian_product=product)
        total = (terms.prior_score + terms.likelihood_score).numpy().reshape(3, m)
        err = np.linalg.norm(total - exact) / np.linalg.norm(exact)
        assert err < 2e-3, (product, err)
    a, var, mask, s = dense_operators(posterior.likelihood, power)
    j = s @ np.linalg.inv(s + sigma**2 * np.eye(m))  # D(x) = S(S + σ²)⁻¹ x for the zero-mean Gaussian prior
    y = np.asarray(posterior.likelihood.shear, np.float64).reshape(2 * m) * mask
    x64 = x.reshape(3, m).astype(np.float64)
    seen = mask > 0
    k = np.diag(var[seen]) + sigma**2 * a[seen] @ j @ a[seen].T
    resid = (y[seen][None] - (a[seen] @ j @ x64.T).T)
    expected = (j.T @ a[seen].T @ np.linalg.solve(k, resid.T)).T
    got = terms.likelihood_score.numpy().reshape(3, m)
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 2e-3
    # a few CG iterations already get most of the way (the default is 3)
    few = mmps_guidance(observation, posterior.prior.score, x, sigma, cg_iterations=3).likelihood_score.numpy().reshape(3, m)
    assert np.linalg.norm(few - expected) / np.linalg.norm(expected) < 0.5


@pytest.mark.parametrize("sigma", [0.3, 0.03, 0.003])
def test_mmps_gaussian_jacobian_is_exact_for_the_gaussian_prior(masked_problem, sigma):
    """``jacobian_product="gaussian"`` uses the Tweedie Jacobian P/(P+σ²) of the prior's Gaussian part instead of
    differentiating the denoiser: for the exact Gaussian prior that *is* the denoiser's Jacobian, so the guided score
    equals the reverse-mode one (float32 round-off) at one score evaluation instead of 2 + n."""
    posterior, power = masked_problem
    mean, cov = gaussian_posterior_dense(posterior.likelihood, power, sigma=0.0)
    rng = np.random.default_rng(11)
    x = (mean[None] + np.sqrt(np.diag(cov).mean() + sigma**2) * rng.normal(size=(4, NPIX, NPIX))).astype(np.float32)
    schedule = GeometricSchedule(SIGMA_MAX, SIGMA_MIN, num_levels=4)
    by_vjp = MMPSSampler(posterior, schedule, cg_iterations=5)
    surrogate = MMPSSampler(posterior, schedule, cg_iterations=5, jacobian_product="gaussian")
    assert surrogate.score_cost == 1 and by_vjp.score_cost == 7
    a = by_vjp.guided_score(by_vjp.observation, tf.constant(x), tf.constant(sigma, tf.float32)).numpy()
    b = surrogate.guided_score(surrogate.observation, tf.constant(x), tf.constant(sigma, tf.float32)).numpy()
    assert np.linalg.norm(a - b) / np.linalg.norm(a) < 1e-4
    # one σ per chain broadcasts like a scalar σ
    per_chain = surrogate.gaussian_tweedie_jacobian(tf.constant(x), tf.fill([4], tf.constant(sigma, tf.float32)))
    np.testing.assert_allclose(per_chain.numpy(), surrogate.gaussian_tweedie_jacobian(tf.constant(x), sigma).numpy(),
                               rtol=1e-5, atol=1e-9)


def test_mmps_gaussian_jacobian_needs_a_power_map():
    """Without a map-shaped Gaussian part (e.g. a vector problem) the option is refused by name."""

    class _NoPower:
        prior = None
        power_map = None

    with pytest.raises(ValueError, match="jacobian_product='gaussian'"):
        MMPSSampler._check_gaussian_jacobian(_NoPower())


def test_dps_guidance_matches_the_dense_formula(masked_problem):
    posterior, power = masked_problem
    observation = LinearGaussianObservation.from_shear_likelihood(posterior.likelihood)
    a, var, mask, s = dense_operators(posterior.likelihood, power)
    m = NPIX * NPIX
    sigma = 0.05
    x = np.random.default_rng(2).normal(scale=0.03, size=(2, NPIX, NPIX)).astype(np.float32)
    j = s @ np.linalg.inv(s + sigma**2 * np.eye(m))
    y = np.asarray(posterior.likelihood.shear, np.float64).reshape(2 * m) * mask
    for extra in (0.0, sigma**2):
        terms = dps_guidance(observation, posterior.prior.score, x, sigma, extra_variance=extra)
        d = (j @ x.reshape(2, m).T.astype(np.float64)).T
        np.testing.assert_allclose(terms.denoised.numpy().reshape(2, m), d, atol=1e-6)
        resid = mask * (y[None] - d @ a.T)
        expected = (j.T @ a.T @ (resid / (var + extra)).T).T
        got = terms.likelihood_score.numpy().reshape(2, m)
        assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 1e-4
        np.testing.assert_allclose(terms.residual_norm.numpy(), np.sqrt(np.sum(mask * resid**2 / var, axis=1)), rtol=1e-4)


def test_vector_observation_for_the_teaching_lab():
    """event_ndims = 1: a 2-D Gaussian prior N(0, diag(v)) observed through a 1×2 matrix; MMPS gives the exact
    score of p(x_σ | y), DPS its V-free approximation (closed forms)."""
    v = np.array([1.0, 0.25])
    a = np.array([[1.0, 2.0]])
    noise = 0.1
    y = np.array([0.7])
    observation = LinearGaussianObservation.from_matrix(a, y, noise)
    assert observation.event_ndims == 1 and observation.data_shape == (1,)
    sigma = 0.6
    prior_score = lambda x, s: -x / (tf.constant(v, tf.float32) + tf.square(s))  # noqa: E731
    x = np.array([[0.3, -0.2], [1.0, 0.5]], np.float32)
    post_cov = np.linalg.inv(np.diag(1 / v) + a.T @ a / noise)
    post_mean = post_cov @ a.T @ y / noise
    exact = -np.linalg.solve(post_cov + sigma**2 * np.eye(2), (x - post_mean).T).T
    terms = mmps_guidance(observation, prior_score, x, sigma, cg_iterations=1)  # one datum: CG is exact in 1 step
    np.testing.assert_allclose(terms.prior_score + terms.likelihood_score, exact, rtol=1e-4, atol=1e-5)
    j = np.diag(v / (v + sigma**2))
    dps = dps_guidance(observation, prior_score, x, sigma).likelihood_score.numpy()
    np.testing.assert_allclose(dps, (j @ a.T @ (y[:, None] - a @ j @ x.T) / noise).T, rtol=1e-4, atol=1e-6)


def test_mmps_jacobian_product_applies_only_without_a_surrogate():
    """With a ``surrogate_jacobian`` the vjp/jvp option is irrelevant: any value (even a bad one) gives the same,
    exact score of the 2-D Gaussian problem above (the surrogate diag(v/(v+σ²)) is the denoiser's Jacobian there);
    without one a bad value is a ValueError naming the option, and a non-callable surrogate names its own."""
    v = np.array([1.0, 0.25])
    a = np.array([[1.0, 2.0]])
    noise, y, sigma = 0.1, np.array([0.7]), 0.6
    observation = LinearGaussianObservation.from_matrix(a, y, noise)
    prior_score = lambda x, s: -x / (tf.constant(v, tf.float32) + tf.square(s))  # noqa: E731
    gain = tf.constant(v / (v + sigma**2), tf.float32)
    surrogate = lambda w: gain * w  # noqa: E731
    x = np.array([[0.3, -0.2], [1.0, 0.5]], np.float32)
    post_cov = np.linalg.inv(np.diag(1 / v) + a.T @ a / noise)
    exact = -np.linalg.solve(post_cov + sigma**2 * np.eye(2), (x - post_cov @ a.T @ y / noise).T).T
    ref = mmps_guidance(observation, prior_score, x, sigma, cg_iterations=1, surrogate_jacobian=surrogate)
    np.testing.assert_allclose(ref.prior_score + ref.likelihood_score, exact, rtol=1e-4, atol=1e-5)
    for ignored in ("jvp", "gaussian", None):
        got = mmps_guidance(observation, prior_score, x, sigma, cg_iterations=1, jacobian_product=ignored,
                            surrogate_jacobian=surrogate)
        np.testing.assert_array_equal(got.likelihood_score.numpy(), ref.likelihood_score.numpy())
    for bad in ("gaussian", None):
        with pytest.raises(ValueError, match="jacobian_product"):
            mmps_guidance(observation, prior_score, x, sigma, cg_iterations=1, jacobian_product=bad)
    with pytest.raises(ValueError, match="surrogate_jacobian"):
        mmps_guidance(observation, prior_score, x, sigma, cg_iterations=1, surrogate_jacobian=np.eye(2))


def test_mmps_compiled_score_is_not_shared_across_power_maps(masked_problem):
    """The compiled guided score is shared per (prior, operator, options) and holds MMPS's power map as a constant:
    a posterior with the same prior object but another power map must get its own trace, not the first one's."""
    from core.inference.posterior import PosteriorScore

    posterior, power = masked_problem

    class OtherPower(PosteriorScore):
        @property
        def power_map(self):
            return 4.0 * np.asarray(power)

    other = OtherPower(posterior.likelihood, posterior.prior)
    schedule = GeometricSchedule(SIGMA_MAX, SIGMA_MIN, num_levels=5)
    x = tf.constant(np.random.default_rng(2).normal(scale=0.05, size=(3, NPIX, NPIX)), tf.float32)
    sigma = tf.constant(0.05, tf.float32)
    scores = []
    for post in (posterior, other):
        sampler = MMPSSampler(post, schedule, jacobian_product="gaussian", cg_iterations=2)
        direct = sampler.guided_score(sampler.observation, x, sigma).numpy()
        compiled = sampler.compiled_guided_score(x, sigma).numpy()
        np.testing.assert_allclose(compiled, direct, rtol=1e-4, atol=1e-4 * np.abs(direct).max())
        scores.append(compiled)
    assert np.abs(scores[0] - scores[1]).max() > 1e-2 * np.abs(scores[0]).max()  # the power map matters here


# ------------------------------------------------------------------------------------------- known answers
@pytest.mark.parametrize("masked", [True, False])
def test_mmps_samples_the_exact_gaussian_posterior(masked, masked_problem, uniform_problem):
    posterior, power = masked_problem if masked else uniform_problem
    num_chains = 512 if masked else 256
    mean, cov = gaussian_posterior_dense(posterior.likelihood, power, sigma=0.0)
    schedule = GeometricSchedule(SIGMA_MAX, SIGMA_MIN, num_levels=40)
    sampler = MMPSSampler(posterior, schedule, integrator="heun", cg_iterations=8)
    chains, results = run_sampler(sampler, wiener_init(mean, num_chains, seed=3), seed=3)
    assert float(results.sigma) == pytest.approx(SIGMA_MIN, rel=1e-5) and int(results.level) == 39
    # the reverse diffusion ends at the σ_min-convolved posterior N(m, C + σ_min² I)
    check_against_dense(chains, mean, cov + SIGMA_MIN**2 * np.eye(NPIX * NPIX))


def test_pc_with_hmc_corrector_samples_the_exact_gaussian_posterior(masked_problem):
    posterior, power = masked_problem
    mean0, _ = gaussian_posterior_dense(posterior.likelihood, power, sigma=0.0)
    schedule = GeometricSchedule(SIGMA_MAX, SIGMA_MIN, num_levels=100)
    sampler = PredictorCorrector(posterior, schedule, num_corrector_steps=2, corrector="hmc")
    chains, results = run_sampler(sampler, wiener_init(mean0, 512, seed=4), seed=4)
    assert np.mean(results.is_accepted.numpy()) > 0.3 and float(results.step_size) > 0
    mean, cov = gaussian_posterior_dense(posterior.likelihood, power, sigma=SIGMA_MIN)  # tempered at σ_min
    check_against_dense(chains, mean, cov)


def _bias(chains: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> tuple[float, float]:
    x = chains.reshape(chains.shape[0], -1).astype(np.float64)
    var = np.diag(cov)
    return float(np.mean(x.var(0, ddof=1) / var)), float(np.sqrt(np.mean((x.mean(0) - mean.ravel()) ** 2 / var)))


def test_dps_bias_on_the_gaussian_problem_is_measured(masked_problem):
    """DPS is biased (module docstring): plain DPS under-disperses (variance ratio 0.76) and misplaces the mean
    (0.49 sd RMS); the tempered weighting over-disperses (1.27) and is still off in the mean (0.41 sd). Both far
    outside the Monte-Carlo errors (±0.004 in the ratio, 0.044 sd in the mean)."""
    posterior, power = masked_problem
    num_chains = 512
    mean, cov = gaussian_posterior_dense(posterior.likelihood, power, sigma=0.0)
    cov = cov + SIGMA_MIN**2 * np.eye(NPIX * NPIX)
    schedule = GeometricSchedule(SIGMA_MAX, SIGMA_MIN, num_levels=60)
    init = wiener_init(mean, num_chains, seed=6)
    plain, _ = run_sampler(DPSSampler(posterior, schedule, integrator="heun", weighting="none"), init, seed=6)
    ratio, mean_err = _bias(plain, mean, cov)
    assert 0.6 < ratio < 0.9, ratio
    assert 0.3 < mean_err < 0.7, mean_err
    tempered, _ = run_sampler(DPSSampler(posterior, schedule, integrator="heun"), init, seed=6)
    ratio_t, mean_err_t = _bias(tempered, mean, cov)
    assert 1.1 < ratio_t < 1.5, ratio_t
    assert 0.25 < mean_err_t < 0.6, mean_err_t


# ------------------------------------------------------------------------------------------- cost accounting
@pytest.mark.parametrize(
    "cls, options, per_level",
    [
        (PredictorCorrector, dict(num_corrector_steps=0), 1),
        (PredictorCorrector, dict(num_corrector_steps=0, integrator="heun"), 2),
        (PredictorCorrector, dict(num_corrector_steps=3), 4),
        (PredictorCorrector, dict(num_corrector_steps=1, corrector="hmc"), 7),
        (DPSSampler, dict(), 2),
        (DPSSampler, dict(integrator="heun", weighting="normalized"), 4),
        (MMPSSampler, dict(cg_iterations=2), 4),
        (MMPSSampler, dict(cg_iterations=2, integrator="heun", jacobian_product="jvp"), 8),
        (MMPSSampler, dict(jacobian_product="gaussian"), 1),
        (MMPSSampler, dict(jacobian_product="gaussian", integrator="heun"), 2),
    ],
)
def test_nfe_is_counted_per_chain(uniform_problem, cls, options, per_level):
    posterior, _ = uniform_problem
    schedule = GeometricSchedule(0.1, 0.01, num_levels=4, steps_per_level=7)
    sampler = cls(posterior, schedule, **options)
    assert sampler.num_transitions == 3 and sampler.final_sigma == pytest.approx(0.01, rel=1e-6)
    assert sampler.nfe_per_transition == per_level
    init = np.random.default_rng(0).normal(scale=0.1, size=(3, NPIX, NPIX)).astype(np.float32)
    chains, results = run_sampler(sampler, init)
    assert np.all(np.isfinite(chains)) and chains.shape == (3, NPIX, NPIX)
    assert float(results.nfe) == pytest.approx(sampler.expected_nfe)
    assert int(results.step) == 3 and int(results.level) == 3
    settings = sampler.settings()
    assert settings["sampler"] == cls.name and settings["expected_nfe"] == pytest.approx(float(results.nfe))
    assert settings["num_transitions"] == 3


def test_reproducible_and_seed_dependent(uniform_problem):
    posterior, _ = uniform_problem
    schedule = GeometricSchedule(0.1, 0.01, num_levels=4)
    init = np.random.default_rng(0).normal(scale=0.1, size=(2, NPIX, NPIX)).astype(np.float32)
    a, _ = run_sampler(PredictorCorrector(posterior, schedule), init, seed=1)
    b, _ = run_sampler(PredictorCorrector(posterior, schedule), init, seed=1)
    c, _ = run_sampler(PredictorCorrector(posterior, schedule), init, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


# ------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "cls, options, name",
    [
        (PredictorCorrector, dict(num_corrector_steps=-1), "num_corrector_steps"),
        (PredictorCorrector, dict(corrector="mala"), "corrector"),
        (PredictorCorrector, dict(integrator="rk4"), "integrator"),
        (MMPSSampler, dict(cg_iterations=0), "cg_iterations"),
        (MMPSSampler, dict(jacobian_product="fd"), "jacobian_product"),
        (DPSSampler, dict(guidance_scale=0.0), "guidance_scale"),
        (DPSSampler, dict(guidance_scale=-1.0), "guidance_scale"),
        (DPSSampler, dict(guidance_scale=float("nan")), "guidance_scale"),
        (DPSSampler, dict(guidance_scale=float("inf")), "guidance_scale"),
        (DPSSampler, dict(weighting="chung"), "weighting"),
        (DPSSampler, dict(num_corrector_steps=1), "num_corrector_steps"),
    ],
)
def test_bad_options_raise_one_clear_value_error(uniform_problem, cls, options, name):
    posterior, _ = uniform_problem
    with pytest.raises(ValueError, match=name):
        cls(posterior, GeometricSchedule(0.1, 0.01, num_levels=4), **options)


def test_bad_schedule_and_observation(uniform_problem):
    posterior, _ = uniform_problem
    with pytest.raises(ValueError, match="num_levels"):
        MMPSSampler(posterior, ListSchedule([0.01], steps_per_level=5))
    with pytest.raises(ValueError, match="noise_variance"):
        LinearGaussianObservation.from_matrix(np.ones((1, 2)), [0.0], 0.0)
    with pytest.raises(ValueError, match="observed"):
        LinearGaussianObservation.from_matrix(np.ones((1, 2)), [0.0], 1.0, observed=[0.0])
    with pytest.raises(ValueError, match="cg_iterations"):
        obs = LinearGaussianObservation.from_matrix(np.ones((1, 2)), [0.0], 1.0)
        mmps_guidance(obs, lambda x, s: -x, np.zeros((1, 2), np.float32), 0.1, cg_iterations=0)
    with pytest.raises(ValueError, match="sigmas"):
        ReverseDiffusionKernel(lambda x, s: -x, [0.1])


def test_registry_offers_the_diffusion_samplers():
    from core.options import sampler_names, sampler_spec

    for name, cls in (("pc", PredictorCorrector), ("dps", DPSSampler), ("mmps", MMPSSampler)):
        assert name in sampler_names()
        assert sampler_spec(name).load() is cls
    assert sampler_spec("pc").option("num_corrector_steps").minimum == 0
    assert sampler_spec("mmps").option("cg_iterations").minimum == 1
    assert sampler_spec("dps").option("guidance_scale").default == 1.0


@pytest.mark.parametrize("name", ["pc", "dps", "mmps"])
def test_driver_streams_snapshots_with_nfe(uniform_problem, name):
    """Through the driver (core.inference.driver.sample): snapshots carry the sampler's name and its NFE per chain;
    the cached score is checked for finiteness like the annealed samplers'."""
    from core.inference.driver import make_sampler, sample

    posterior, _ = uniform_problem
    sampler = make_sampler(posterior, GeometricSchedule(0.1, 0.01, num_levels=5), name)
    snaps = list(sample(sampler, num_chains=2, seed=3, chunk_steps=2, final_denoise="none"))
    last = snaps[-1]
    assert last.done and last.sampler == name and last.step == 4 and last.level == 4
    assert last.nfe == pytest.approx(sampler.expected_nfe) and last.sigma == pytest.approx(0.01, rel=1e-6)
    assert [s.step for s in snaps] == [2, 4] and np.all(np.isfinite(last.chains))
    assert len(last.traces["nfe"]) == 4 and last.traces["nfe"][-1] == pytest.approx(last.nfe)


def test_transitions_past_the_end_stand_still(uniform_problem):
    posterior, _ = uniform_problem
    sampler = PredictorCorrector(posterior, GeometricSchedule(0.1, 0.01, num_levels=3), num_corrector_steps=0)
    kernel = sampler.make_kernel()
    x = tf.constant(np.random.default_rng(1).normal(scale=0.05, size=(2, NPIX, NPIX)), tf.float32)
    results = kernel.bootstrap_results(x)
    for t in range(sampler.num_transitions):
        x, results = kernel.one_step(x, results, seed=[t, 0])
    x_end = x.numpy()
    x, results = kernel.one_step(x, results, seed=[9, 0])
    np.testing.assert_array_equal(x.numpy(), x_end)
    assert int(results.level) == 2 and float(results.sigma) == pytest.approx(0.01, rel=1e-6)


# ------------------------------------------------------------------------------------------- MMPS noise split
def _split_variance(posterior, fraction):
    observation = LinearGaussianObservation.from_shear_likelihood(posterior.likelihood)
    var = np.asarray(observation.noise_variance)[np.asarray(observation.observed) > 0]
    return observation, fraction * float(var.min())


@pytest.mark.parametrize("sigma_factor", [30.0, 3.0, 1.0])
def test_mmps_split_guidance_is_the_score_of_the_split_conditional(masked_problem, sigma_factor):
    """With the split y = A x_* + e (x_* = x + σ* z, z the white noise split off the data noise, Cov e =
    Σ_y − σ*² A Aᵀ) the diffusion state x_σ = x_* + τ ξ is correlated with the data noise, so the guided score must be
    ∇ log p(x_σ | y) of *that* joint Gaussian: mean (S + σ*²)Aᵀ(ASAᵀ + Σ_y)⁻¹ y, covariance
    S + σ² − (S + σ*²)Aᵀ(ASAᵀ + Σ_y)⁻¹A(S + σ*²). Checked at σ ≫ σ*, 3 σ* and σ* itself (exact likelihood)."""
    posterior, power = masked_problem
    observation, split = _split_variance(posterior, 0.5)
    sigma = float(np.sqrt(split)) * sigma_factor
    a, var, mask, s = dense_operators(posterior.likelihood, power)
    m = NPIX * NPIX
    seen = mask > 0
    y = (np.asarray(posterior.likelihood.shear, np.float64).reshape(2 * m) * mask)[seen]
    cov_y = a[seen] @ s @ a[seen].T + np.diag(var[seen])
    cross = (s + split * np.eye(m)) @ a[seen].T
    mu = cross @ np.linalg.solve(cov_y, y)
    cov = s + sigma**2 * np.eye(m) - cross @ np.linalg.solve(cov_y, cross.T)
    rng = np.random.default_rng(8)
    x = (mu.reshape(NPIX, NPIX)[None] + np.sqrt(np.diag(cov).mean()) * rng.normal(size=(3, NPIX, NPIX))).astype(np.float32)
    exact = -np.linalg.solve(cov, (x.reshape(3, m) - mu).T).T
    terms = mmps_guidance(observation, posterior.prior.score, x, sigma, cg_iterations=80, split_variance=split)
    total = (terms.prior_score + terms.likelihood_score).numpy().reshape(3, m)
    assert np.linalg.norm(total - exact) / np.linalg.norm(exact) < 5e-3
    # the standard MMPS score targets the other joint (x_σ independent of the noise): different, except far above σ*
    plain = mmps_guidance(observation, posterior.prior.score, x, sigma, cg_iterations=80)
    other = (plain.prior_score + plain.likelihood_score).numpy().reshape(3, m)
    if sigma_factor <= 3.0:
        assert np.linalg.norm(other - exact) / np.linalg.norm(exact) > 0.05


def test_mmps_noise_split_samples_the_exact_gaussian_posterior(masked_problem):
    """Guided Heun levels down to σ*, then the prior-only reverse SDE (100 levels): the σ_min posterior exactly."""
    posterior, power = masked_problem
    mean, cov = gaussian_posterior_dense(posterior.likelihood, power, sigma=0.0)
    schedule = GeometricSchedule(SIGMA_MAX, SIGMA_MIN, num_levels=40)
    sampler = MMPSSampler(posterior, schedule, integrator="heun", cg_iterations=8, noise_split=0.5, split_levels=100)
    _, split = _split_variance(posterior, 0.5)
    levels = np.asarray(sampler.schedule.sigmas)
    assert sampler.split_sigma == pytest.approx(np.sqrt(split), rel=1e-6)
    assert np.sum(levels <= sampler.split_sigma * (1 + 1e-6)) == 100 and levels[-1] == pytest.approx(SIGMA_MIN)
    assert np.all(levels[levels > sampler.split_sigma * (1 + 1e-6)] == np.asarray(schedule.sigmas)[
        np.asarray(schedule.sigmas) > sampler.split_sigma * (1 + 1e-6)])
    chains, results = run_sampler(sampler, wiener_init(mean, 512, seed=3), seed=3)
    assert float(results.nfe) == pytest.approx(sampler.expected_nfe)
    assert float(results.sigma) == pytest.approx(SIGMA_MIN, rel=1e-5)
    check_against_dense(chains, mean, cov + SIGMA_MIN**2 * np.eye(NPIX * NPIX))


def test_mmps_noise_split_tweedie_step_is_exact_with_few_prior_levels(masked_problem):
    """``split_step="tweedie"``: the exact-mean drift with the Gaussian part's exact transition covariance samples the
    exact Gaussian posterior with only 4 prior-only levels, where Euler–Maruyama's white noise of variance
    σ_from² − σ_to² (exact only where P_k ≫ σ²) over-disperses the modes it leaves unconstrained."""
    posterior, power = masked_problem
    mean, cov = gaussian_posterior_dense(posterior.likelihood, power, sigma=0.0)
    cov = cov + SIGMA_MIN**2 * np.eye(NPIX * NPIX)
    schedule = GeometricSchedule(SIGMA_MAX, SIGMA_MIN, num_levels=40)
    whitened = {}
    for step in ("tweedie", "euler_maruyama"):
        sampler = MMPSSampler(posterior, schedule, integrator="heun", cg_iterations=8, noise_split=0.5, split_levels=4,
                              split_step=step)
        chains, results = run_sampler(sampler, wiener_init(mean, 512, seed=3), seed=3)
        assert float(results.nfe) == pytest.approx(sampler.expected_nfe)
        if step == "tweedie":
            check_against_dense(chains, mean, cov)
        x = chains.astype(np.float64).reshape(chains.shape[0], -1) - mean.ravel()
        whitened[step] = float(np.mean(np.linalg.solve(np.linalg.cholesky(cov), x.T) ** 2))
    tolerance = 4 * np.sqrt(2.0 / (512 * NPIX * NPIX))
    assert abs(whitened["tweedie"] - 1.0) < tolerance
    assert whitened["euler_maruyama"] - 1.0 > 3 * tolerance, whitened


def test_mmps_tweedie_split_step_needs_a_power_map(uniform_problem):
    posterior, _ = uniform_problem

    class NoPower:
        def __init__(self, inner):
            self._inner = inner

        def __getattr__(self, name):
            if name == "power_map":
                return None
            return getattr(self._inner, name)

    schedule = GeometricSchedule(SIGMA_MAX, SIGMA_MIN, num_levels=8)
    with pytest.raises(ValueError, match="split_step='tweedie' needs the prior's Gaussian power map"):
        MMPSSampler(NoPower(posterior), schedule, noise_split=0.9, split_step="tweedie")
    with pytest.raises(ValueError, match="split_step"):
        MMPSSampler(posterior, schedule, noise_split=0.9, split_step="ancestral")


@pytest.mark.parametrize("integrator", ["euler_maruyama", "heun"])
def test_mmps_noise_split_counts_its_cheaper_prior_levels(uniform_problem, integrator):
    posterior, _ = uniform_problem
    schedule = GeometricSchedule(SIGMA_MAX, SIGMA_MIN, num_levels=10)
    plain = MMPSSampler(posterior, schedule, integrator=integrator, cg_iterations=2)
    split = MMPSSampler(posterior, schedule, integrator=integrator, cg_iterations=2, noise_split=0.9, split_levels=7)
    guided = int(np.sum(np.asarray(split.schedule.sigmas)[1:] >= np.float32(split.split_sigma)))
    heun = 2 if integrator == "heun" else 1
    assert split.expected_nfe == pytest.approx(4 * (1 + heun * guided) + 1 + 6)
    init = np.random.default_rng(0).normal(scale=SIGMA_MAX, size=(3, NPIX, NPIX)).astype(np.float32)
    _, results = run_sampler(split, init)
    assert float(results.nfe) == pytest.approx(split.expected_nfe)
    assert split.expected_nfe < plain.expected_nfe + 7


def test_mmps_noise_split_outside_the_schedule_is_refused_by_name(uniform_problem):
    posterior, _ = uniform_problem
    with pytest.raises(ValueError, match=r"noise_split=0.9 gives σ\* = .* between the schedule's σ_max"):
        MMPSSampler(posterior, GeometricSchedule(0.01, 0.005, num_levels=4), noise_split=0.9)
    with pytest.raises(ValueError, match="noise_split"):
        MMPSSampler(posterior, GeometricSchedule(SIGMA_MAX, SIGMA_MIN, num_levels=4), noise_split=1.5)
