r"""The sampling driver: annealed score-based MCMC over a σ schedule, in compiled chunks, as snapshots.

For a posterior object with ``score(κ, sigma)`` (:class:`core.inference.posterior.PosteriorScore`) and a
:class:`core.inference.schedules.Schedule` ``σ_0 ≥ … ≥ σ_{L−1}``, :func:`sample_posterior` runs ``C`` independent chains
(state ``(C, N, N)`` float32) with an :class:`core.inference.kernels.AnnealedKernel` whose inner kernel at level σ targets
the σ-smoothed posterior ``p_σ(κ | γ)`` through its score ``s_σ(κ) = ∇ log p_σ(κ | γ)``:

* ``sampler="hmc"`` — Metropolis-adjusted score HMC (acceptance from the Simpson line integral of the score),
  ``"hmc_uncalibrated"`` — the same leapfrog proposals always accepted, ``"mala"`` — Metropolis-adjusted
  Langevin, ``"ula"`` (alias ``"langevin"``) — unadjusted (annealed) Langevin.
* Metric (``mass``): ``"fourier"`` uses ``M⁻¹ = F⁻¹ diag(v_k(σ)) F`` with
  ``v_k(σ) = [1/(P_k + σ²) + 1/(σ̄_n² + σ²)]⁻¹`` the per-mode variance of the Gaussian posterior with the
  prior's power map ``P`` and the effective noise variance ``σ̄_n² = 1 / mean(mask/σ_n²)`` (harmonic mean over
  both shear components, masked pixels counting as zero precision) — exact for the Gaussian posterior
  without mask; ``"fourier_capped"`` replaces the prior variance ``P_k + σ²`` by ``min(P_k + σ², σ²)``
  (:func:`core.inference.kernels.mass.posterior_mode_variance` with ``prior_cap=1``); ``"identity"`` uses ``M = I``.
  ``"auto"`` picks ``"fourier"`` for priors with an exact log density (the Gaussian prior) and
  ``"fourier_capped"`` for learned priors (no log density, e.g. the hybrid prior), ``"identity"`` without a
  power map or noise model.
* Predictor (``predictor``): ``"reverse_diffusion"`` moves the chains between levels by one Euler–Maruyama step
  of the reverse variance-exploding diffusion, ``x ← x + (σ_{l−1}² − σ_l²) s_{σ_{l−1}}(x) + (σ_{l−1}² − σ_l²)^{1/2} z``
  (Song et al. 2021's predictor–corrector scheme, the MCMC transitions being the corrector); ``"none"`` does not.
  ``"auto"``: ``"reverse_diffusion"`` for learned priors, ``"none"`` for exact ones.

  Why learned priors get both: denoising score matching fixes a learned score only in the Fourier modes that
  the noise σ dominates (``P_k ≲ σ²``); in signal-dominated modes its loss is blind (an error ``δ`` costs
  ``σ²|δ|²``), so the hybrid prior's residual is filtered to the noise-dominated modes
  (:mod:`core.priors.hybrid`) and, at small σ, is nearly Gaussian in the others. A metric matched to the full
  prior variance re-equilibrates those modes at every level under that Gaussian score and erases the
  non-Gaussian structure built at the levels where it was learned: measured on 64² lognormal maps at 0.87′
  (cosmos mask, σ_n = 0.043, 16 chains, σ 0.5 → 0.001), posterior-sample skewness 0.22–0.25 with
  ``"fourier"`` (with or without the predictor) against 0.79 with the predictor and ``"fourier_capped"``
  (truth 0.93; Gaussian prior, same sampler, 0.06) at a lower RMSE of the mean (0.0145 vs 0.0160). The capped
  metric moves each prior-dominated mode by about σ per step, so it keeps what the predictor and the coarser
  levels gave it, as in annealed sampling of diffusion models. The Gaussian prior keeps the exact
  ``"fourier"`` metric (its score is exact at every σ, so re-equilibrating is right and fastest).
* Step size ``ε(σ) = ε₀ (σ² + τ²)^{a/2}`` (:class:`core.inference.kernels.SigmaStepSize`). Defaults, with ``d`` the number
  of pixels and ``L`` the leapfrog steps: ``ε₀ = min(1, (4/(L√d))^{1/3})`` (HMC), ``min(0.5, 1.6 d^{−1/3})``
  (MALA), ``0.03`` (ULA) — relative to the target's standard deviation; with the Fourier metric ``a = 0``
  (the metric already scales with σ), with the identity metric ``τ = σ_min`` and ``a = 1`` (HMC/MALA) or ``a = 2`` (ULA, the usual ``ε ∝ σ²``). A float
  ``step_size`` replaces ``ε₀`` and keeps the default ``a`` and ``τ``. With ``adapt_step_size=True`` (default) the
  Metropolis kernels multiply ``ε(σ)`` by a factor adapted towards 70 % acceptance during all but the last level
  (:class:`core.inference.kernels.AnnealedKernel`); the last level runs with the factor frozen, a fixed exact kernel.
* ``jit_compile`` (default ``False``): XLA-compiling the chunks was measured slower on this CPU (0.4–1.5× the
  ``tf.function`` throughput at 64²–128² after 6–13 s of compilation, ``benchmarks/bench_sampler.py``); it is
  available for accelerators.
* Initialisation ``init``: ``"wiener"`` — the Wiener-filter map (:func:`core.analysis.baselines.wiener_filter` with the
  prior's power map; Kaiser–Squires when the prior has none) plus white noise of standard deviation ``σ_0`` per
  chain; ``"ks"`` — Kaiser–Squires plus the same noise; ``"prior"`` — noise only (zero mean, std ``σ_0``); or an
  array ``(N, N)`` / ``(C, N, N)`` used as given.
* Randomness: the seed is sanitised to a stateless ``[2]`` seed and split once into an initialisation seed and a
  run seed; transition ``t`` uses ``fold_in(run seed, t)``, so the chains depend only on (seed, settings) and not
  on ``snapshot_every``.
* Chunks of ``snapshot_every`` transitions run inside one ``tf.function`` (optionally XLA-compiled); between
  chunks the driver checks ``cancel`` and finiteness (of the states and of the score at the states) and yields a
  :class:`Snapshot` with numpy payloads. Non-finite values raise ``FloatingPointError`` naming the level and σ.
* After the last transition, ``final_denoise`` (``"tweedie"``: ``x + σ_min² s_{σ_min}(x)``; ``"ode"``: the
  probability-flow ODE, :func:`core.inference.kernels.denoise`) is applied to the chains of the final snapshot.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import unnest

from core.physics.geometry import MapGeometry, as_float_tensor
from core.inference.kernels import (
    DENOISE_METHODS,
    AnnealedKernel,
    FourierDiagonalMass,
    IdentityMass,
    MassMatrix,
    ScoreHMC,
    ScoreMALA,
    ScoreULA,
    SigmaStepSize,
    UncalibratedScoreHMC,
    denoise,
    posterior_mode_variance,
)
from core.inference.schedules import Schedule
from core.seeds import stateless_seed

__all__ = [
    "Snapshot",
    "sample_posterior",
    "run_to_completion",
    "make_annealed_kernel",
    "initial_state",
    "SAMPLERS",
    "INIT_METHODS",
    "MASS_CHOICES",
    "PREDICTORS",
    "resolve_defaults",
]

log = logging.getLogger(__name__)

SAMPLERS = ("hmc", "hmc_uncalibrated", "mala", "ula", "langevin")
INIT_METHODS = ("wiener", "ks", "prior")
MASS_CHOICES = ("auto", "fourier", "fourier_capped", "identity")
PREDICTORS = ("auto", "reverse_diffusion", "none")
PRIOR_CAP = 1.0
NUM_TRACE_PIXELS = 4


@dataclass(frozen=True)
class Snapshot:
    """State of a run after a chunk of transitions (numpy payloads, safe to hand to a UI thread).

    ``chains`` ``(C, N, N)``; ``mean``/``std`` over chains ``(N, N)``; ``acceptance`` the mean acceptance of the
    last chunk (1 for unadjusted kernels); ``traces`` maps ``"step"``, ``"sigma"``, ``"acceptance"`` to 1-D arrays
    (one entry per transition so far) and ``"kappa[r,c]"`` to ``(T, C)`` arrays of a few pixel values per chain.
    """

    step: int
    total_steps: int
    level: int
    num_levels: int
    sigma: float
    chains: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    acceptance: float
    step_size: float
    elapsed_s: float
    traces: dict[str, np.ndarray] = field(default_factory=dict)
    done: bool = False
    denoised: bool = False

    @property
    def progress(self) -> float:
        return self.step / max(self.total_steps, 1)


# ----------------------------------------------------------------------------------------------- validation
def _check_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


def _effective_noise_variance(likelihood: Any) -> float | None:
    """``1/mean(mask/σ_n²)`` over pixels and both shear components, or ``None`` if unavailable."""
    inv_var = getattr(likelihood, "inverse_variance", None)
    if not callable(inv_var):
        return None
    precision = float(tf.reduce_mean(inv_var(0.0)))
    if not math.isfinite(precision) or precision <= 0:
        return None
    return 1.0 / precision


def _default_step_size(sampler: str, mass: str, schedule: Schedule, num_pixels: int, num_leapfrog_steps: int) -> SigmaStepSize:
    """Dimension-aware defaults (``d`` = number of pixels, ``L`` leapfrog steps; see the module docstring).

    For a metric matched to the target covariance, leapfrog conserves the shadow energy of each (whitened)
    harmonic mode, so the energy error of a trajectory is ``ΔH ≈ (ε²/8) Σ (x_L² − x_0²)`` with
    ``x_L ≈ x_0 cos Lε + p sin Lε``; its standard deviation is ≈ ``L ε³ √d / 4`` for ``Lε ≲ 1``. The default
    ``ε₀ = min(1, (4/(L√d))^{1/3})`` keeps it ≈ 1 (acceptance ≈ 0.7 when the metric is exact; measured
    0.95–1 on 64²–128² masked maps, where the σ-dependent metric over-estimates the posterior variance).
    MALA's optimal scaling is ``2ε ∝ d^{−1/3}`` (``ε₀ = min(0.5, 1.6 d^{−1/3})``); ULA inflates a unit Gaussian's
    variance by
    ``≈ ε/2``, so ``ε₀ = 0.03`` (≈ 1.5 %).
    """
    d = float(num_pixels)
    if sampler in ("ula", "langevin"):
        base, exponent = 0.03, 2.0
    elif sampler == "mala":
        base, exponent = min(0.5, 1.6 * d ** (-1.0 / 3.0)), 1.0
    else:
        base, exponent = min(1.0, (4.0 / (num_leapfrog_steps * math.sqrt(d))) ** (1.0 / 3.0)), 1.0
    if mass in ("fourier", "fourier_capped"):
        return SigmaStepSize(base=base, exponent=0.0)
    return SigmaStepSize(base=base, floor=schedule.sigma_min, exponent=exponent)


def _as_step_size(
    step_size: Any, sampler: str, mass: str, schedule: Schedule, num_pixels: int, num_leapfrog_steps: int
) -> SigmaStepSize:
    if step_size is None:
        return _default_step_size(sampler, mass, schedule, num_pixels, num_leapfrog_steps)
    if isinstance(step_size, SigmaStepSize):
        return step_size
    if isinstance(step_size, (bool, np.bool_)) or not isinstance(step_size, (int, float, np.floating, np.integer)):
        raise ValueError(f"step_size must be a positive number or a SigmaStepSize, got {step_size!r}")
    if not math.isfinite(float(step_size)) or float(step_size) <= 0:
        raise ValueError(f"step_size must be positive and finite, got {step_size!r}")
    default = _default_step_size(sampler, mass, schedule, num_pixels, num_leapfrog_steps)
    return SigmaStepSize(base=float(step_size), floor=default.floor, exponent=default.exponent)


# ----------------------------------------------------------------------------------------------- kernels
def resolve_defaults(posterior: Any, mass: Any = "auto", predictor: str | None = "auto") -> tuple[Any, str]:
    """Resolve ``mass="auto"`` and ``predictor="auto"`` for ``posterior`` (see the module docstring); any other
    ``mass`` (a name or a callable metric) is returned unchanged.

    Exact-log-density priors (Gaussian): ``("fourier", "none")``; learned priors (no log density):
    ``("fourier_capped", "reverse_diffusion")``; ``"identity"`` when there is no power map or noise model.
    """
    if predictor is None:
        predictor = "none"
    if predictor not in PREDICTORS:
        raise ValueError(f"predictor must be one of {PREDICTORS}, got {predictor!r}")
    learned = not bool(getattr(posterior, "has_log_prob", True))
    if predictor == "auto":
        predictor = "reverse_diffusion" if learned else "none"
    if mass == "auto":
        noise_var = _effective_noise_variance(getattr(posterior, "likelihood", None))
        if getattr(posterior, "power_map", None) is None or noise_var is None:
            mass = "identity"
        else:
            mass = "fourier_capped" if learned else "fourier"
    return mass, predictor


def make_annealed_kernel(
    posterior: Any,
    schedule: Schedule,
    sampler: str = "hmc",
    num_leapfrog_steps: int = 3,
    step_size: SigmaStepSize | float | None = None,
    mass: str | Callable[[tf.Tensor], MassMatrix] = "auto",
    num_integration_intervals: int = 4,
    use_exact_log_prob: bool = False,
    adapt_step_size: bool = True,
    predictor: str | None = "auto",
) -> AnnealedKernel:
    """The :class:`~core.inference.kernels.AnnealedKernel` used by :func:`sample_posterior` (see the module docstring).

    ``mass`` may also be a callable ``sigma -> MassMatrix``.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be a core.inference.schedules.Schedule, got {type(schedule).__name__}")
    num_leapfrog_steps = _check_int(num_leapfrog_steps, "num_leapfrog_steps")
    power_map = getattr(posterior, "power_map", None)
    if not callable(mass) and mass not in MASS_CHOICES:
        raise ValueError(f"mass must be one of {MASS_CHOICES} or a callable sigma -> MassMatrix, got {mass!r}")
    mass, predictor = resolve_defaults(posterior, mass, predictor)  # a callable mass passes through
    if callable(mass):
        mass_fn = mass
        mass_kind = "custom"
    else:
        if mass in ("fourier", "fourier_capped"):
            noise_var = _effective_noise_variance(getattr(posterior, "likelihood", None))
            if power_map is None:
                raise ValueError(f"mass={mass!r} needs a posterior whose prior has a power_map")
            if noise_var is None:
                raise ValueError(f"mass={mass!r} needs a likelihood with inverse_variance(sigma)")
            power = tf.constant(np.asarray(power_map, dtype=np.float32))
            cap = PRIOR_CAP if mass == "fourier_capped" else None

            def mass_fn(sigma: tf.Tensor) -> MassMatrix:
                return FourierDiagonalMass(posterior_mode_variance(power, noise_var, sigma, prior_cap=cap))

        else:

            def mass_fn(sigma: tf.Tensor) -> MassMatrix:
                return IdentityMass()

        mass_kind = mass
    rule = _as_step_size(step_size, sampler, mass_kind, schedule, posterior.geometry.num_pixels, num_leapfrog_steps)
    exact = bool(use_exact_log_prob)
    if exact and not getattr(posterior, "has_log_prob", False):
        raise ValueError("use_exact_log_prob=True needs a posterior with log_prob (a Gaussian prior)")

    def make_kernel(sigma: tf.Tensor) -> tfp.mcmc.TransitionKernel:
        def score_fn(x: tf.Tensor) -> tf.Tensor:
            return posterior.score(x, sigma)

        log_prob_fn = (lambda x: posterior.log_prob(x, sigma)) if exact else None
        eps = rule(sigma)
        metric = mass_fn(sigma)
        if sampler == "hmc":
            return ScoreHMC(score_fn, eps, num_leapfrog_steps, momentum_scale=metric, log_prob_fn=log_prob_fn,
                            num_integration_intervals=num_integration_intervals)
        if sampler == "hmc_uncalibrated":
            return UncalibratedScoreHMC(score_fn, eps, num_leapfrog_steps, momentum_scale=metric,
                                        log_prob_fn=log_prob_fn, num_integration_intervals=num_integration_intervals)
        if sampler == "mala":
            return ScoreMALA(score_fn, eps, momentum_scale=metric, log_prob_fn=log_prob_fn,
                             num_integration_intervals=num_integration_intervals)
        return ScoreULA(score_fn, eps, momentum_scale=metric)

    predictor_fn = posterior.score if predictor == "reverse_diffusion" else None
    return AnnealedKernel(make_kernel, schedule, adapt_step_size=bool(adapt_step_size), predictor_score_fn=predictor_fn)


# ----------------------------------------------------------------------------------------------- init
def initial_state(posterior: Any, init: Any, num_chains: int, sigma: float, seed: Any) -> tf.Tensor:
    """Initial chains ``(C, N, N)`` float32 (see the module docstring for the methods)."""
    geometry: MapGeometry = posterior.geometry
    shape = (num_chains,) + geometry.shape
    if not isinstance(init, str):
        arr = as_float_tensor(init, "init")
        if tuple(arr.shape) == geometry.shape:
            arr = tf.broadcast_to(arr, shape)
        if tuple(arr.shape) != shape:
            raise ValueError(f"init array has shape {tuple(arr.shape)}; expected {geometry.shape} or {shape}")
        if not bool(tf.reduce_all(tf.math.is_finite(arr))):
            raise ValueError("init array contains non-finite values")
        return tf.identity(arr)
    noise = sigma * tf.random.stateless_normal(shape, seed=seed, dtype=tf.float32)
    if init == "prior":
        return noise
    likelihood = getattr(posterior, "likelihood", None)
    if likelihood is None or getattr(likelihood, "shear", None) is None:
        raise ValueError(f"init={init!r} needs a posterior with a shear likelihood; use init='prior' or an array")
    from core.analysis import baselines  # imported lazily: only the driver needs it

    if init == "wiener" and getattr(posterior, "power_map", None) is not None:
        centre = baselines.wiener_filter(likelihood, posterior.power_map).kappa
    else:
        centre = baselines.kaiser_squires_map(likelihood.shear, geometry, mask=getattr(likelihood, "mask", None))[0]
    return as_float_tensor(centre, "centre")[None] + noise


# ----------------------------------------------------------------------------------------------- driver
def _acceptance(results: Any) -> tf.Tensor:
    """Mean of ``is_accepted`` over chains (1 for kernels without a Metropolis step)."""
    if unnest.has_nested(results, "is_accepted"):
        return tf.reduce_mean(tf.cast(unnest.get_innermost(results, "is_accepted"), tf.float32))
    return tf.constant(1.0, tf.float32)


def _is_cancelled(cancel: Any) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def _trace_pixels(geometry: MapGeometry, num: int) -> list[tuple[int, int]]:
    n = geometry.npix
    candidates = [(n // 2, n // 2), (n // 4, n // 4), (3 * n // 4, n // 4), (n // 4, 3 * n // 4), (3 * n // 4, 3 * n // 4)]
    return candidates[:num]


def sample_posterior(
    posterior: Any,
    schedule: Schedule,
    num_chains: int = 8,
    sampler: str = "hmc",
    num_leapfrog_steps: int = 3,
    init: Any = "wiener",
    seed: Any = 0,
    snapshot_every: int = 10,
    final_denoise: str | None = "tweedie",
    cancel: threading.Event | Callable[[], bool] | None = None,
    step_size: SigmaStepSize | float | None = None,
    mass: str | Callable[[tf.Tensor], MassMatrix] = "auto",
    num_integration_intervals: int = 4,
    use_exact_log_prob: bool = False,
    adapt_step_size: bool = True,
    jit_compile: bool = False,
    num_trace_pixels: int = NUM_TRACE_PIXELS,
    predictor: str | None = "auto",
) -> Iterator[Snapshot]:
    """Generator of :class:`Snapshot` s of an annealed score-based MCMC run (see the module docstring).

    All settings are validated before any work: a bad setting raises ``ValueError`` at the call (the generator
    itself is returned only when they are valid). ``jit_compile=True`` XLA-compiles each chunk.
    """
    if not callable(getattr(posterior, "score", None)) or not isinstance(getattr(posterior, "geometry", None), MapGeometry):
        raise ValueError("posterior must have .score(kappa, sigma) and a MapGeometry .geometry (e.g. core.inference.posterior.PosteriorScore)")
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be a core.inference.schedules.Schedule, got {type(schedule).__name__}")
    num_chains = _check_int(num_chains, "num_chains")
    snapshot_every = _check_int(snapshot_every, "snapshot_every")
    num_trace_pixels = _check_int(num_trace_pixels, "num_trace_pixels", minimum=0)
    if final_denoise not in (None,) + DENOISE_METHODS:
        raise ValueError(f"final_denoise must be None or one of {DENOISE_METHODS}, got {final_denoise!r}")
    if isinstance(init, str) and init not in INIT_METHODS:
        raise ValueError(f"init must be one of {INIT_METHODS} or an array, got {init!r}")
    for flag, flag_name in ((jit_compile, "jit_compile"), (adapt_step_size, "adapt_step_size")):
        if not isinstance(flag, bool):
            raise ValueError(f"{flag_name} must be a bool, got {flag!r}")
    kernel = make_annealed_kernel(posterior, schedule, sampler, num_leapfrog_steps, step_size, mass,
                                  num_integration_intervals, use_exact_log_prob, adapt_step_size, predictor)
    master_seed = stateless_seed(seed)
    if not isinstance(init, str):
        initial_state(posterior, init, num_chains, schedule.sigma_max, master_seed)  # validate the array now
    return _run(posterior, schedule, kernel, num_chains, init, master_seed, snapshot_every, final_denoise, cancel,
                jit_compile, num_trace_pixels)


def _run(
    posterior: Any,
    schedule: Schedule,
    kernel: AnnealedKernel,
    num_chains: int,
    init: Any,
    master_seed: tf.Tensor,
    snapshot_every: int,
    final_denoise: str | None,
    cancel: Any,
    jit_compile: bool,
    num_trace_pixels: int,
) -> Iterator[Snapshot]:
    start = time.perf_counter()
    geometry: MapGeometry = posterior.geometry
    init_seed, run_seed = tfp.random.split_seed(master_seed, n=2)
    sigmas = schedule.sigmas
    total = schedule.total_steps
    pixels = _trace_pixels(geometry, num_trace_pixels)
    rows = tf.constant([p[0] for p in pixels], tf.int32)
    cols = tf.constant([p[1] for p in pixels], tf.int32)

    state = initial_state(posterior, init, num_chains, float(sigmas[0]), init_seed)
    results = kernel.bootstrap_results(state)
    _check_finite(state, results, level=0, sigma=float(sigmas[0]), where="initial state")

    def chunk(state: tf.Tensor, results: Any, num_steps: int) -> tuple[tf.Tensor, Any, tuple[tf.Tensor, ...]]:
        def body(i: tf.Tensor, state: tf.Tensor, results: Any, arrays: tuple[tf.TensorArray, ...]) -> tuple[Any, ...]:
            step_seed = tf.random.experimental.stateless_fold_in(run_seed, results.step)
            state, results = kernel.one_step(state, results, seed=step_seed)
            acc = _acceptance(results.inner_results)
            eps = tf.reduce_mean(tf.cast(unnest.get_innermost(results.inner_results, "step_size"), tf.float32))
            pix = tf.gather(tf.gather(state, rows, axis=-2), cols, axis=-1)  # (C, K, K)
            pix = tf.linalg.diag_part(pix) if len(pixels) else tf.zeros([num_chains, 0])
            values = (results.sigma, acc, eps, pix)
            arrays = tuple(a.write(i, v) for a, v in zip(arrays, values))
            return i + 1, state, results, arrays

        arrays = (
            tf.TensorArray(tf.float32, size=num_steps),
            tf.TensorArray(tf.float32, size=num_steps),
            tf.TensorArray(tf.float32, size=num_steps),
            tf.TensorArray(tf.float32, size=num_steps, element_shape=[num_chains, len(pixels)]),
        )
        _, state, results, arrays = tf.while_loop(
            lambda i, *_: i < num_steps, body, (tf.constant(0), state, results, arrays), maximum_iterations=num_steps
        )
        return state, results, tuple(a.stack() for a in arrays)

    compiled = tf.function(chunk, jit_compile=jit_compile, reduce_retracing=False)
    traces: dict[str, list[np.ndarray]] = {"step": [], "sigma": [], "acceptance": []}
    pixel_keys = [f"kappa[{r},{c}]" for r, c in pixels]
    pixel_traces: list[np.ndarray] = []
    done_steps = 0
    while done_steps < total:
        if _is_cancelled(cancel):
            log.info("sampling cancelled at transition %d/%d", done_steps, total)
            return
        n = min(snapshot_every, total - done_steps)
        state, results, (tr_sigma, tr_acc, tr_eps, tr_pix) = compiled(state, results, n)
        level = int(results.level)
        sigma = float(results.sigma)
        _check_finite(state, results, level=level, sigma=sigma, where=f"transitions {done_steps + 1}–{done_steps + n}")
        traces["step"].append(np.arange(done_steps + 1, done_steps + n + 1))
        traces["sigma"].append(tr_sigma.numpy())
        traces["acceptance"].append(tr_acc.numpy())
        pixel_traces.append(tr_pix.numpy())
        done_steps += n
        done = done_steps >= total
        chains = state
        denoised = False
        if done and final_denoise is not None:
            chains = _denoise_chains(posterior, state, float(sigmas[-1]), final_denoise, jit_compile)
            if not bool(tf.reduce_all(tf.math.is_finite(chains))):
                raise FloatingPointError(
                    f"final {final_denoise} denoising at sigma={float(sigmas[-1]):.4g} produced non-finite values"
                )
            denoised = True
        chains_np = chains.numpy()
        trace_out = {k: np.concatenate(v) for k, v in traces.items()}
        all_pix = np.concatenate(pixel_traces)
        for j, key in enumerate(pixel_keys):
            trace_out[key] = all_pix[:, :, j]
        yield Snapshot(
            step=done_steps,
            total_steps=total,
            level=level,
            num_levels=schedule.num_levels,
            sigma=sigma,
            chains=chains_np,
            mean=chains_np.mean(axis=0),
            std=chains_np.std(axis=0, ddof=1) if num_chains > 1 else np.zeros_like(chains_np[0]),
            acceptance=float(np.mean(tr_acc.numpy())),
            step_size=float(tr_eps.numpy()[-1]),
            elapsed_s=time.perf_counter() - start,
            traces=trace_out,
            done=done,
            denoised=denoised,
        )


def _check_finite(state: tf.Tensor, results: Any, level: int, sigma: float, where: str) -> None:
    if not bool(tf.reduce_all(tf.math.is_finite(state))):
        raise FloatingPointError(
            f"chains became non-finite at level {level} (sigma={sigma:.4g}), {where}; "
            "reduce the step size or check the score model"
        )
    score = unnest.get_innermost(results, "grads_target_log_prob", None)
    if score is not None and not bool(tf.reduce_all(tf.math.is_finite(score))):
        raise FloatingPointError(
            f"the score is non-finite at the current chains at level {level} (sigma={sigma:.4g}), {where}; "
            "check the score model (prior/likelihood) for NaN/inf"
        )


def _denoise_chains(posterior: Any, state: tf.Tensor, sigma: float, method: str, jit_compile: bool) -> tf.Tensor:
    fn = tf.function(lambda x: denoise(posterior.score, x, sigma, method=method), jit_compile=jit_compile and method == "tweedie")
    return fn(state)


def run_to_completion(posterior: Any, schedule: Schedule, **kwargs: Any) -> Snapshot:
    """Run :func:`sample_posterior` to the end and return its final snapshot (``done=True``)."""
    last = None
    for last in sample_posterior(posterior, schedule, **kwargs):
        pass
    if last is None or not last.done:
        raise RuntimeError("the run was cancelled before completion")
    return last
