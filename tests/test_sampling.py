"""The sampling driver against exact Gaussian posteriors, reproducibility, validation and failure modes.

Exactness: Gaussian prior (power map P) × Gaussian shear likelihood has a Gaussian posterior. Without mask and
with uniform noise σ_n it is diagonal in Fourier space: shear has two components with per-pixel variance σ_n²
and |D_k| = 1, so ‖Pκ‖² = ‖κ − κ̄‖² and the likelihood precision per mode is 1/σ_n² (k ≠ 0; k = 0 is
unconstrained). At annealing level σ the per-mode posterior variance is
v_k = [1/(P_k + σ²) + 1/(σ_n² + σ²)]⁻¹ (v_0 = P_0 + σ²) — checked against the dense posterior below.

Monte-Carlo tolerances: C independent chains (final states). A sample mean has s.e. sd/√C; the average of
|κ̂_k − m̂_k|²/N_pix over C chains estimates v_k with relative s.e. 1/√C for complex modes (exponential
distribution) and √(2/C) for the four self-conjugate ones; a sample variance has relative s.e. √(2/(C−1)).
We bound max |z| over ≤ 256 statistics by 4.5 (P(any of 256 standard normals > 4.5) < 2e-3) and a mean of d
whitened squares by 4 s.e. √(2/(C d)).
"""
import threading

import numpy as np
import pytest
import tensorflow as tf

from core.analysis.baselines import gaussian_posterior_dense, wiener_filter
from core.priors.gaussian import GaussianPrior
from core.physics.geometry import MapGeometry
from core.physics.lensing import LensingOperator
from core.inference.likelihood import ShearLikelihood
from core.inference.posterior import PosteriorScore
from core.inference.driver import (Snapshot, _next_chunk_steps, initial_state, last_snapshot, make_sampler,
                                  resolve_defaults, run_to_completion, sample, sample_posterior)
from core.inference.schedules import GeometricSchedule, ListSchedule

NPIX = 16
SIGMA_N = 0.02
Z_MAX = 4.5


def synthetic_power(geometry: MapGeometry) -> np.ndarray:
    """A red power map with pixel variance 0.02² (no cosmology needed)."""
    k = np.hypot(geometry.k1, geometry.k2)
    p = 1.0 / (1.0 + (k / 0.1) ** 2) ** 1.5
    return p * (0.02**2 / p.mean())


def make_problem(masked: bool, seed: int = 1):
    geometry = MapGeometry(NPIX, 2.0)
    rng = np.random.default_rng(seed)
    power = synthetic_power(geometry)
    truth = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=geometry.shape)) * np.sqrt(power)))
    if masked:
        std = SIGMA_N * rng.uniform(0.6, 2.0, size=(2, NPIX, NPIX))
        mask = np.ones(geometry.shape)
        mask[3:7, 4:10] = 0.0
        mask[11:13, 1:15] = 0.0
    else:
        std = np.full((2, NPIX, NPIX), SIGMA_N)
        mask = np.ones(geometry.shape)
    gamma = LensingOperator(geometry).forward(truth[None].astype(np.float32))[0].numpy() + std * rng.normal(size=std.shape)
    likelihood = ShearLikelihood(geometry, gamma.astype(np.float32), std.astype(np.float32), mask.astype(np.float32))
    return PosteriorScore(likelihood, GaussianPrior(geometry, power)), power


@pytest.fixture(scope="module")
def uniform_problem():
    return make_problem(masked=False)


@pytest.fixture(scope="module")
def masked_problem():
    return make_problem(masked=True)


def overdispersed_init(mean: np.ndarray, num_chains: int, scale: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (mean[None] + scale * rng.normal(size=(num_chains,) + mean.shape)).astype(np.float32)


def mode_variance(power: np.ndarray, sigma: float) -> np.ndarray:
    v = 1.0 / (1.0 / (power + sigma**2) + 1.0 / (SIGMA_N**2 + sigma**2))
    v[0, 0] = power[0, 0] + sigma**2
    return v


def test_posterior_score_composes_and_is_the_gradient_of_log_prob(masked_problem):
    posterior, _ = masked_problem
    x = tf.constant(np.random.default_rng(3).normal(scale=0.02, size=(3, NPIX, NPIX)), tf.float32)
    sigma = tf.constant(0.05)
    np.testing.assert_allclose(
        posterior.score(x, sigma),
        posterior.likelihood.score(x, sigma) + posterior.prior.score(x, sigma), rtol=1e-6)
    with tf.GradientTape() as tape:
        tape.watch(x)
        lp = posterior.log_prob(x, sigma)
    grad = tape.gradient(lp, x)
    assert lp.shape == (3,) and posterior.has_log_prob
    np.testing.assert_allclose(grad, posterior.score(x, sigma), rtol=1e-3, atol=1e-3 * float(tf.reduce_max(tf.abs(grad))))
    assert posterior.geometry == MapGeometry(NPIX, 2.0) and posterior.power_map is not None

    class ScoreOnlyPrior:
        has_log_prob = False
        geometry = posterior.geometry

        def score(self, k, s=0.0):
            return -k

    score_only = PosteriorScore(posterior.likelihood, ScoreOnlyPrior())
    assert not score_only.has_log_prob and score_only.power_map is None
    with pytest.raises(ValueError, match="log_prob"):
        score_only.log_prob(x, sigma)
    with pytest.raises(ValueError, match="prior"):
        PosteriorScore(posterior.likelihood, object())


def test_fourier_posterior_variance_matches_dense(uniform_problem):
    posterior, power = uniform_problem
    sigma = 0.01
    mean, cov = gaussian_posterior_dense(posterior.likelihood, power, sigma=sigma)
    # Covariance of a stationary field: F⁻¹ diag(v) F; compare the full dense matrix.
    n = NPIX * NPIX
    f = np.fft.fft2(np.eye(n).reshape(n, NPIX, NPIX)).reshape(n, n)  # row i: F e_i
    expected = np.real(np.conj(f) @ np.diag(mode_variance(power, sigma).ravel()) @ f.T) / n
    np.testing.assert_allclose(cov, expected, atol=1e-6 * np.abs(expected).max() * 10, rtol=1e-6)


def test_exact_fourier_diagonal_posterior_score_only_hmc(uniform_problem):
    """(i) no mask, uniform noise: sample mean = Wiener filter, per-mode variance = v_k; Metropolis via the
    score line integral only (no log density anywhere)."""
    posterior, power = uniform_problem
    sigma = 1e-4
    num_chains = 512
    wf = wiener_filter(posterior.likelihood, power, sigma=sigma).kappa.numpy()
    init = overdispersed_init(wf, num_chains, scale=0.04, seed=11)  # ≈ 3 posterior sd away
    snap = run_to_completion(posterior, ListSchedule([sigma], steps_per_level=120), num_chains=num_chains,
                             sampler="hmc", init=init, seed=3, snapshot_every=60, final_denoise=None)
    assert 0.6 < snap.acceptance < 0.99
    x = snap.chains.astype(np.float64)
    v = mode_variance(power, sigma)
    pixel_sd = np.sqrt(v.mean())
    z_mean = (x.mean(0) - wf) / (pixel_sd / np.sqrt(num_chains))
    assert np.abs(z_mean).max() < Z_MAX, np.abs(z_mean).max()
    z_var = mode_variance_z(x - wf, v)
    assert np.abs(z_var).max() < Z_MAX, np.abs(z_var).max()


def mode_variance_z(deviations: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """z-scores of the per-mode variance estimate mean_c |x̂_k|²/N_pix of ``deviations`` (C, N, N) against ``variance``:
    relative s.e. 1/√C for complex modes, √(2/C) for the four self-conjugate ones (module docstring)."""
    num, n = deviations.shape[0], deviations.shape[-1]
    est = np.mean(np.abs(np.fft.fft2(deviations)) ** 2, axis=0) / n**2
    rel_se = np.full(variance.shape, 1.0 / np.sqrt(num))
    for i in (0, n // 2):
        for j in (0, n // 2):
            rel_se[i, j] = np.sqrt(2.0 / num)
    return (est / variance - 1.0) / rel_se


@pytest.mark.parametrize("sampler", ["hmc", "mala"])
def test_exact_masked_inhomogeneous_posterior(masked_problem, sampler):
    """(ii) mask + inhomogeneous noise: mean, pixel variances and the whole covariance (whitened samples)
    against the dense posterior, score-only Metropolis acceptance."""
    posterior, power = masked_problem
    sigma = 1e-4
    num_chains = 512
    mean, cov = gaussian_posterior_dense(posterior.likelihood, power, sigma=sigma)
    init = overdispersed_init(mean, num_chains, scale=0.04, seed=12)
    steps = 200 if sampler == "hmc" else 400
    snap = run_to_completion(posterior, ListSchedule([sigma], steps_per_level=steps), num_chains=num_chains,
                             sampler=sampler, init=init, seed=4, snapshot_every=steps, final_denoise=None)
    assert snap.acceptance > 0.4
    check_against_dense(snap.chains, mean, cov)


def check_against_dense(chains: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> None:
    x = chains.astype(np.float64).reshape(chains.shape[0], -1)
    c, d = x.shape
    var = np.diag(cov)
    z_mean = (x.mean(0) - mean.ravel()) / np.sqrt(var / c)
    assert np.abs(z_mean).max() < Z_MAX, f"mean z {np.abs(z_mean).max():.2f}"
    z_var = (x.var(0, ddof=1) / var - 1.0) / np.sqrt(2.0 / (c - 1))
    assert np.abs(z_var).max() < Z_MAX, f"variance z {np.abs(z_var).max():.2f}"
    white = np.linalg.solve(np.linalg.cholesky(cov), (x - mean.ravel()).T)  # (d, C), iid N(0,1) if exact
    mean_sq = np.mean(white**2)
    assert abs(mean_sq - 1.0) < 4 * np.sqrt(2.0 / (c * d)), f"whitened mean square {mean_sq:.4f}"


def test_annealing_from_far_reaches_the_posterior(masked_problem):
    """Chains started from pure noise of std σ_max = 0.5 (25× the prior sd) end at the σ_min posterior."""
    posterior, power = masked_problem
    levels = GeometricSchedule(0.5, 1e-3, num_levels=20).sigmas
    steps = [5] * 19 + [150]
    schedule = ListSchedule(levels, steps_per_level=steps)
    snap = run_to_completion(posterior, schedule, num_chains=512, sampler="hmc", init="prior", seed=5,
                             snapshot_every=100, final_denoise=None)
    assert snap.sigma == pytest.approx(1e-3, rel=1e-5) and snap.level == 19
    mean, cov = gaussian_posterior_dense(posterior.likelihood, power, sigma=float(schedule.sigmas[-1]))
    check_against_dense(snap.chains, mean, cov)


def test_predictor_with_capped_metric_reaches_the_posterior(masked_problem):
    """The learned-prior path (reverse-diffusion predictor between levels + capped Fourier metric, which barely
    moves signal-dominated modes at small σ) still ends at the exact σ_min posterior when the score is exact:
    chains from pure noise, 100 levels × 2 transitions, checked against the dense Gaussian posterior."""
    posterior, power = masked_problem
    schedule = GeometricSchedule(0.5, 1e-3, num_levels=100, steps_per_level=2)
    snap = run_to_completion(posterior, schedule, num_chains=512, sampler="hmc", init="prior", seed=5,
                             snapshot_every=100, final_denoise=None, mass="fourier_capped",
                             predictor="reverse_diffusion")
    mean, cov = gaussian_posterior_dense(posterior.likelihood, power, sigma=1e-3)
    check_against_dense(snap.chains, mean, cov)


class _Learned:
    """The same posterior presented as a learned one (no log density), as the hybrid prior is."""

    has_log_prob = False

    def __init__(self, posterior):
        self.geometry, self.likelihood, self.power_map = posterior.geometry, posterior.likelihood, posterior.power_map
        self.score = posterior.score


def test_auto_defaults_follow_the_kind_of_prior(uniform_problem):
    posterior, _ = uniform_problem
    assert resolve_defaults(posterior) == ("fourier", "none")
    assert resolve_defaults(_Learned(posterior)) == ("fourier_capped", "reverse_diffusion")
    assert resolve_defaults(_Learned(posterior), "identity", None) == ("identity", "none")
    with pytest.raises(ValueError, match="predictor"):
        resolve_defaults(posterior, "auto", "ddim")
    # the predictor actually moves the chains between levels
    a = small_run(uniform_problem, predictor="none")[-1].chains
    b = small_run(uniform_problem, predictor="reverse_diffusion")[-1].chains
    assert np.all(np.isfinite(b)) and not np.allclose(a, b)


def small_run(problem, **kw):
    posterior, _ = problem
    args = dict(num_chains=4, sampler="hmc", init="wiener", seed=7, snapshot_every=3, final_denoise=None)
    args.update(kw)
    schedule = args.pop("schedule", GeometricSchedule(0.05, 0.01, num_levels=3, steps_per_level=3))
    return list(sample_posterior(posterior, schedule, **args))


def test_reproducible_and_seed_dependent(uniform_problem):
    a = small_run(uniform_problem)
    b = small_run(uniform_problem)
    c = small_run(uniform_problem, seed=8)
    d = small_run(uniform_problem, snapshot_every=4)  # different chunking, same transitions
    np.testing.assert_array_equal(a[-1].chains, b[-1].chains)
    np.testing.assert_array_equal(a[-1].chains, d[-1].chains)
    assert not np.allclose(a[-1].chains, c[-1].chains)
    assert not np.allclose(a[-1].chains[0], a[-1].chains[1])  # chains differ from each other
    np.testing.assert_array_equal(a[-1].traces["acceptance"], d[-1].traces["acceptance"])


def test_snapshots_follow_the_contract(uniform_problem):
    snaps = small_run(uniform_problem, final_denoise="tweedie", sampler="mala")
    assert [s.step for s in snaps] == [3, 6, 9] and [s.done for s in snaps] == [False, False, True]
    last = snaps[-1]
    assert isinstance(last, Snapshot) and last.total_steps == 9 and last.num_levels == 3 and last.level == 2
    assert last.chains.shape == (4, NPIX, NPIX) and last.chains.dtype == np.float32
    assert last.mean.shape == (NPIX, NPIX) and last.std.shape == (NPIX, NPIX)
    assert last.denoised and not snaps[0].denoised
    assert len(last.traces["sigma"]) == 9 and len(last.traces["acceptance"]) == 9
    np.testing.assert_allclose(last.traces["sigma"], np.repeat(GeometricSchedule(0.05, 0.01, 3).sigmas, 3), rtol=1e-6)
    pixel_keys = [k for k in last.traces if k.startswith("kappa[")]
    assert pixel_keys and last.traces[pixel_keys[0]].shape == (9, 4)
    assert 0.0 <= last.acceptance <= 1.0 and last.step_size > 0 and last.elapsed_s > 0
    # Tweedie at σ_min: x + σ² s(x, σ) applied to the (undenoised) final state
    raw = small_run(uniform_problem, sampler="mala")[-1].chains
    posterior, _ = uniform_problem
    expected = raw + 0.01**2 * posterior.score(raw, 0.01).numpy()
    np.testing.assert_allclose(last.chains, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("sampler", ["ula", "langevin", "hmc_uncalibrated"])
def test_other_samplers_run(uniform_problem, sampler):
    snaps = small_run(uniform_problem, sampler=sampler, init="ks", mass="identity")
    assert snaps[-1].done and np.isfinite(snaps[-1].chains).all()


def test_ode_final_denoising(uniform_problem):
    """final_denoise="ode" applies core.inference.kernels.denoise(…, method="ode") to the final chains (the flow itself is
    checked against its closed form in tests/test_kernels.py)."""
    from core.inference.kernels import denoise

    posterior, _ = uniform_problem
    schedule = ListSchedule([0.02, 0.01], steps_per_level=2)
    raw = small_run(uniform_problem, schedule=schedule)[-1].chains
    out = small_run(uniform_problem, schedule=schedule, final_denoise="ode")[-1]
    assert out.done and out.denoised
    np.testing.assert_allclose(out.chains, denoise(posterior.score, raw, 0.01, method="ode").numpy(), atol=1e-5)
    assert not np.allclose(out.chains, raw, atol=1e-4)


def test_xla_compiled_run(uniform_problem):
    snaps = small_run(uniform_problem, jit_compile=True, final_denoise="tweedie")
    assert snaps[-1].done and np.isfinite(snaps[-1].chains).all() and snaps[-1].acceptance > 0


def test_cancel_stops_between_chunks(uniform_problem):
    cancel = threading.Event()
    posterior, _ = uniform_problem
    seen = []
    for snap in sample_posterior(posterior, GeometricSchedule(0.05, 0.01, 3, 3), num_chains=2, init="prior",
                                 snapshot_every=2, cancel=cancel, final_denoise=None):
        seen.append(snap.step)
        cancel.set()
    assert seen == [2]
    calls = iter([False, True])
    steps = [s.step for s in sample_posterior(posterior, GeometricSchedule(0.05, 0.01, 3, 3), num_chains=2,
                                              init="prior", snapshot_every=2, cancel=lambda: next(calls))]
    assert steps == [2]
    with pytest.raises(RuntimeError, match="cancelled"):
        run_to_completion(posterior, GeometricSchedule(0.05, 0.01, 3, 3), num_chains=2, init="prior", cancel=lambda: True)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_chains=0), "num_chains"),
        (dict(num_chains=2.5), "num_chains"),
        (dict(step_size=0.0), "step_size"),
        (dict(step_size=-0.1), "step_size"),
        (dict(num_leapfrog_steps=0), "num_leapfrog_steps"),
        (dict(snapshot_every=0), "snapshot_every"),
        (dict(sampler="nuts"), "sampler"),
        (dict(init="zeros"), "init"),
        (dict(init=np.zeros((3, 3))), "init"),
        (dict(final_denoise="median"), "final_denoise"),
        (dict(seed="abc"), "seed"),
        (dict(mass="dense"), "mass"),
        (dict(predictor="ddim"), "predictor"),
        (dict(schedule=[0.1, 0.2]), "schedule"),
    ],
)
def test_bad_settings_raise_before_any_work(uniform_problem, kwargs, match):
    posterior, _ = uniform_problem
    schedule = kwargs.pop("schedule", GeometricSchedule(0.05, 0.01, 3, 3))
    with pytest.raises(ValueError, match=match):
        sample_posterior(posterior, schedule, **kwargs)  # raises at the call, not at the first next()


class _NanBelow:
    """A posterior whose score turns NaN below a given σ (a broken score network)."""

    def __init__(self, posterior, sigma_bad):
        self.posterior, self.sigma_bad = posterior, sigma_bad
        self.geometry = posterior.geometry
        self.likelihood = posterior.likelihood
        self.power_map = posterior.power_map

    def score(self, x, sigma):
        bad = tf.cast(sigma, tf.float32) < self.sigma_bad
        return tf.where(bad, tf.constant(np.nan, tf.float32), self.posterior.score(x, sigma))


@pytest.mark.parametrize("sampler", ["hmc", "ula"])
def test_nan_score_stops_with_a_clear_message(uniform_problem, sampler):
    posterior, _ = uniform_problem
    broken = _NanBelow(posterior, sigma_bad=0.03)
    schedule = GeometricSchedule(0.1, 0.01, num_levels=4, steps_per_level=2)  # levels 0.1, 0.046, 0.022, 0.01
    with pytest.raises(FloatingPointError, match=rf"'{sampler}' sampler at level 2 \(sigma=0.02154"):
        run_to_completion(broken, schedule, num_chains=2, sampler=sampler, init="prior", snapshot_every=1,
                          final_denoise=None)
    with pytest.raises(FloatingPointError, match="level 0"):
        run_to_completion(_NanBelow(posterior, sigma_bad=1.0), schedule, num_chains=2, init="prior")


# --------------------------------------------------------------------------------------------- time-sized chunks
def test_time_sized_chunks_do_not_change_the_chains(uniform_problem):
    """Transition t uses fold_in(seed, t): chunks sized by time (many small ones) give the chains of one big chunk."""
    posterior, _ = uniform_problem
    schedule = GeometricSchedule(0.05, 0.01, num_levels=3, steps_per_level=4)
    sampler = make_sampler(posterior, schedule, "hmc")
    timed = list(sample(sampler, num_chains=3, seed=11, chunk_seconds=0.01, final_denoise="none"))
    whole = list(sample(sampler, num_chains=3, seed=11, chunk_steps=12, final_denoise="none"))
    assert len(timed) > 2 and timed[0].step == 1 and len(whole) == 1  # the first timed chunk is one transition
    np.testing.assert_array_equal(timed[-1].chains, whole[-1].chains)
    np.testing.assert_array_equal(timed[-1].traces["acceptance"], whole[-1].traces["acceptance"])


def test_chunk_size_rule():
    assert _next_chunk_steps(1, 5.0, 0.5, traced=True, power_of_two=False) == 1  # tracing time is not a measurement
    assert _next_chunk_steps(10, 0.1, 0.5, traced=False, power_of_two=False) == 40  # wants 50, grows at most 4×
    assert _next_chunk_steps(10, 1.0, 0.5, traced=False, power_of_two=False) == 5  # shrinks at once
    assert _next_chunk_steps(10, 100.0, 0.5, traced=False, power_of_two=False) == 1
    assert _next_chunk_steps(16, 0.4, 0.5, traced=False, power_of_two=True) == 16  # 20 → 16 for XLA
    with pytest.raises(ValueError, match="chunk_seconds"):
        sample(make_sampler(make_problem(False)[0], ListSchedule([0.1]), "ula"), chunk_seconds=0)


def test_snapshots_report_nfe_and_sampler(uniform_problem):
    """nfe per chain: 1 at the start + (L + n − 1) per HMC transition + 1 per level change (the new σ's score)."""
    posterior, _ = uniform_problem
    schedule = GeometricSchedule(0.05, 0.01, num_levels=3, steps_per_level=2)
    sampler = make_sampler(posterior, schedule, "hmc", num_leapfrog_steps=2, num_integration_intervals=4)
    snaps = list(sample(sampler, num_chains=2, chunk_steps=2, final_denoise="none"))
    assert [s.sampler for s in snaps] == ["hmc"] * 3
    assert [s.nfe for s in snaps] == [1 + 2 * 5, 1 + 4 * 5 + 1, 1 + 6 * 5 + 2]
    np.testing.assert_array_equal(snaps[-1].traces["nfe"], [6, 11, 17, 22, 28, 33])


def test_initial_centre_is_used_as_given(uniform_problem):
    posterior, _ = uniform_problem
    centre = np.full((NPIX, NPIX), 0.3, np.float32)
    seed = tf.constant([4, 5], tf.int32)
    noise = initial_state(posterior, "prior", 2, 0.1, seed).numpy()
    given = initial_state(posterior, "wiener", 2, 0.1, seed, initial_centre=centre).numpy()
    np.testing.assert_allclose(given, centre + noise, rtol=1e-6)
    with pytest.raises(ValueError, match="initial_centre has shape"):
        sample(make_sampler(posterior, ListSchedule([0.1]), "ula"), initial_centre=np.zeros((3, 3)))


# --------------------------------------------------------------------------------------------- annealed samplers
def test_annealed_samplers_compose_their_kernels(uniform_problem):
    import json

    from core.inference.kernels import AnnealedKernel, ReverseDiffusionPredictor, StepSizeAdaptation

    posterior, _ = uniform_problem
    schedule = ListSchedule([0.1, 0.05, 0.01], steps_per_level=[3, 4, 5])
    hmc = make_sampler(posterior, schedule, "hmc")
    kernel = hmc.make_kernel()
    assert isinstance(kernel, StepSizeAdaptation) and kernel.num_adaptation_steps == 7  # frozen on the last level
    assert isinstance(kernel.inner_kernel, AnnealedKernel) and kernel.inner_kernel.predictor is None
    assert isinstance(make_sampler(posterior, schedule, "hmc", adapt_step_size=False).make_kernel(), AnnealedKernel)
    ula = make_sampler(posterior, schedule, "langevin", predictor="reverse_diffusion")
    assert ula.name == "ula" and isinstance(ula.make_kernel(), AnnealedKernel)
    assert isinstance(ula.make_kernel().predictor, ReverseDiffusionPredictor)
    settings = hmc.settings()
    assert settings["sampler"] == "hmc" and settings["mass"] == "fourier" and settings["predictor"] == "none"
    assert settings["num_transitions"] == 12 and json.loads(json.dumps(settings)) == settings
    with pytest.raises(ValueError, match="does not take option"):
        make_sampler(posterior, schedule, "ula", num_leapfrog_steps=3)
    with pytest.raises(ValueError, match="num_leapfrog_steps must be an integer in"):
        make_sampler(posterior, schedule, "hmc", num_leapfrog_steps=0)
    with pytest.raises(ValueError, match="sampler must be one of"):
        make_sampler(posterior, schedule, "nuts")
