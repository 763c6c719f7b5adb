r"""The sampling driver: any :class:`~core.inference.samplers.base.PosteriorSampler`, run in compiled chunks
sized by time, as a stream of :class:`Snapshot` s.

:func:`sample` runs ``C`` independent chains (state ``(C, N, N)`` float32) with the sampler's kernel for
``sampler.num_transitions`` transitions:

* Initialisation ``init``: ``"wiener"`` — the Wiener-filter map (:func:`core.analysis.baselines.wiener_filter` with
  the prior's power map; Kaiser–Squires when the prior has none), or the given ``initial_centre`` (a caller that
  already computed it passes it on: one Wiener computation per run), plus white noise of standard deviation
  ``σ_0 = sampler.initial_sigma`` per chain; ``"ks"`` — Kaiser–Squires plus the same noise; ``"prior"`` — noise
  only (zero mean, std ``σ_0``); or an array ``(N, N)`` / ``(C, N, N)`` used as given.
* Randomness: the seed is sanitised to a stateless ``[2]`` seed and split once into an initialisation seed and a
  run seed; transition ``t`` uses ``fold_in(run seed, t)``, so the chains depend only on (seed, settings) and
  not on how the run is cut into chunks.
* Chunks: transitions run inside one ``tf.function`` (optionally XLA-compiled) per chunk; the number of
  transitions ``n`` of a chunk is a tensor argument (one trace serves every size). The first chunk is one
  transition; after each chunk that did not trace, ``n ← clip(round(chunk_seconds / τ), 1, 4 n)`` with ``τ``
  the measured seconds per transition of that chunk, so a chunk takes ≈ ``chunk_seconds`` whatever the map
  size, prior or sampler, and ``cancel`` (checked between chunks) acts within about that time. With
  ``jit_compile=True`` the sizes are rounded down to powers of two (XLA needs static sizes: a handful of
  compilations). ``chunk_steps`` fixes ``n`` instead (the legacy ``snapshot_every``).
* Between chunks the driver checks finiteness (of the states and of the cached score) and yields a
  :class:`Snapshot` with numpy payloads. Non-finite values raise ``FloatingPointError`` naming the sampler, the
  level and σ.
* After the last transition, ``final_denoise`` (``"tweedie"``: ``x + σ² s_σ(x)``; ``"ode"``: the
  probability-flow ODE, :func:`core.inference.kernels.denoise`; ``"none"``) is applied at
  ``σ = sampler.final_sigma`` to the chains of the final snapshot.
* ``jit_compile`` (default ``False``): XLA-compiling the chunks was measured slower on this CPU (0.4–1.5× the
  ``tf.function`` throughput at 64²–128² after 6–13 s of compilation, ``benchmarks/bench_sampler.py``); it is
  available for accelerators.

:func:`sample_posterior` / :func:`run_to_completion` keep the older signature (posterior, schedule,
``sampler="hmc"``, options…) as thin wrappers; the sampling policy (metrics, step sizes, predictor, adaptation)
lives in :mod:`core.inference.samplers.annealed`.
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

from core.inference.kernels import DENOISE_METHODS, MassMatrix, SigmaStepSize, denoise
from core.inference.samplers.annealed import UncalibratedAnnealedHMC, resolve_defaults
from core.inference.samplers.base import PosteriorSampler
from core.inference.schedules import Schedule
from core.options import INITS, MASSES, PREDICTORS, resolve_sampler_name, sampler_names, sampler_spec
from core.physics.geometry import MapGeometry, as_float_tensor
from core.seeds import stateless_seed

__all__ = [
    "Snapshot",
    "sample",
    "make_sampler",
    "sample_posterior",
    "run_to_completion",
    "last_snapshot",
    "make_annealed_kernel",
    "initial_state",
    "SAMPLERS",
    "INIT_METHODS",
    "MASS_CHOICES",
    "PREDICTORS",
    "resolve_defaults",
]

log = logging.getLogger(__name__)

#: Names the legacy ``sample_posterior(sampler=…)`` accepts: the registry's, their aliases, and "hmc_uncalibrated".
SAMPLERS = sampler_names() + ("hmc_uncalibrated", "langevin")
INIT_METHODS = INITS
MASS_CHOICES = MASSES
NUM_TRACE_PIXELS = 4
FIRST_CHUNK_STEPS = 1
MAX_CHUNK_GROWTH = 4


@dataclass(frozen=True)
class Snapshot:
    """State of a run after a chunk of transitions (numpy payloads, safe to hand to a UI thread).

    ``chains`` ``(C, N, N)``; ``mean``/``std`` over chains ``(N, N)``; ``acceptance`` the mean acceptance of the
    last chunk (1 for unadjusted kernels); ``traces`` maps ``"step"``, ``"sigma"``, ``"acceptance"``, ``"nfe"`` to
    1-D arrays (one entry per transition so far) and ``"kappa[r,c]"`` to ``(T, C)`` arrays of a few pixel values
    per chain; ``nfe`` the score evaluations per chain so far; ``sampler`` the registry name.
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
    nfe: float = 0.0
    sampler: str = ""

    @property
    def progress(self) -> float:
        return self.step / max(self.total_steps, 1)


# ----------------------------------------------------------------------------------------------- validation
def _check_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


def _check_positive(value: Any, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)) or float(value) <= 0:
        raise ValueError(f"{name} must be a positive finite number of seconds, got {value!r}")
    return float(value)


def _denoise_method(final_denoise: Any) -> str | None:
    if final_denoise is None or final_denoise == "none":
        return None
    if final_denoise not in DENOISE_METHODS:
        raise ValueError(f"final_denoise must be one of {DENOISE_METHODS + ('none',)}, got {final_denoise!r}")
    return final_denoise


# ----------------------------------------------------------------------------------------------- init
def initial_state(posterior: Any, init: Any, num_chains: int, sigma: float, seed: Any,
                  initial_centre: Any = None) -> tf.Tensor:
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
    if init == "wiener" and initial_centre is not None:
        centre = initial_centre
    else:
        likelihood = getattr(posterior, "likelihood", None)
        if likelihood is None or getattr(likelihood, "shear", None) is None:
            raise ValueError(f"init={init!r} needs a posterior with a shear likelihood; use init='prior' or an array")
        from core.analysis import baselines  # imported lazily: only the driver needs it

        if init == "wiener" and getattr(posterior, "power_map", None) is not None:
            centre = baselines.wiener_filter(likelihood, posterior.power_map).kappa
        else:
            centre = baselines.kaiser_squires_map(likelihood.shear, geometry, mask=getattr(likelihood, "mask", None))[0]
    centre = as_float_tensor(centre, "initial_centre")
    if tuple(centre.shape) != geometry.shape:
        raise ValueError(f"initial_centre has shape {tuple(centre.shape)}; expected {geometry.shape}")
    return centre[None] + noise


# ----------------------------------------------------------------------------------------------- results
def _result(results: Any, name: str, default: Any = None) -> Any:
    """A field of the kernel results: top-level, else the innermost one of that name (the sampler contract)."""
    if hasattr(results, name):
        return getattr(results, name)
    if unnest.has_nested(results, name):
        return unnest.get_innermost(results, name)
    if default is not None:
        return default
    raise ValueError(f"the sampler's kernel results have no {name!r} field (see core.inference.samplers.base)")


def _acceptance(results: Any) -> tf.Tensor:
    """Mean of ``is_accepted`` over chains (1 for kernels without a Metropolis step)."""
    if unnest.has_nested(results, "is_accepted"):
        return tf.reduce_mean(tf.cast(unnest.get_innermost(results, "is_accepted"), tf.float32))
    return tf.constant(1.0, tf.float32)


def _step_size(results: Any) -> tf.Tensor:
    if unnest.has_nested(results, "step_size"):
        return tf.reduce_mean(tf.cast(unnest.get_innermost(results, "step_size"), tf.float32))
    return tf.constant(float("nan"), tf.float32)


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


def _next_chunk_steps(steps: int, seconds: float, chunk_seconds: float, traced: bool, power_of_two: bool) -> int:
    """Transitions of the next chunk from the last one's ``steps`` and wall ``seconds`` (see the module doc)."""
    if traced or seconds <= 0:
        return steps  # the measurement includes tracing/compilation: repeat the size once untraced
    target = chunk_seconds * steps / seconds
    n = int(max(1, min(round(target), MAX_CHUNK_GROWTH * steps)))
    if power_of_two:
        n = 1 << (n.bit_length() - 1)
    return n


# ----------------------------------------------------------------------------------------------- driver
def sample(
    sampler: PosteriorSampler,
    num_chains: int = 8,
    init: Any = "wiener",
    seed: Any = 0,
    cancel: threading.Event | Callable[[], bool] | None = None,
    chunk_seconds: float = 0.5,
    final_denoise: str | None = "tweedie",
    jit_compile: bool = False,
    initial_centre: np.ndarray | None = None,
    chunk_steps: int | None = None,
    num_trace_pixels: int = NUM_TRACE_PIXELS,
) -> Iterator[Snapshot]:
    """Generator of :class:`Snapshot` s of a run of ``sampler`` (see the module docstring).

    All settings are validated before any work: a bad setting raises ``ValueError`` at the call (the generator
    itself is returned only when they are valid).
    """
    if not isinstance(sampler, PosteriorSampler):
        raise ValueError(f"sampler must be a core.inference.samplers.base.PosteriorSampler, got {type(sampler).__name__}")
    num_chains = _check_int(num_chains, "num_chains")
    chunk_seconds = _check_positive(chunk_seconds, "chunk_seconds")
    if chunk_steps is not None:
        chunk_steps = _check_int(chunk_steps, "chunk_steps")
    num_trace_pixels = _check_int(num_trace_pixels, "num_trace_pixels", minimum=0)
    method = _denoise_method(final_denoise)
    if isinstance(init, str) and init not in INIT_METHODS:
        raise ValueError(f"init must be one of {INIT_METHODS} or an array, got {init!r}")
    if not isinstance(jit_compile, bool):
        raise ValueError(f"jit_compile must be a bool, got {jit_compile!r}")
    master_seed = stateless_seed(seed)
    if not isinstance(init, str) or initial_centre is not None:  # validate arrays now
        initial_state(sampler.posterior, init, num_chains, sampler.initial_sigma, master_seed, initial_centre)
    return _run(sampler, num_chains, init, master_seed, chunk_seconds, chunk_steps, method, cancel, jit_compile,
                num_trace_pixels, initial_centre)


def _run(
    sampler: PosteriorSampler,
    num_chains: int,
    init: Any,
    master_seed: tf.Tensor,
    chunk_seconds: float,
    chunk_steps: int | None,
    final_denoise: str | None,
    cancel: Any,
    jit_compile: bool,
    num_trace_pixels: int,
    initial_centre: Any,
) -> Iterator[Snapshot]:
    start = time.perf_counter()
    posterior = sampler.posterior
    geometry: MapGeometry = posterior.geometry
    kernel = sampler.make_kernel()
    init_seed, run_seed = tfp.random.split_seed(master_seed, n=2)
    total = int(sampler.num_transitions)
    pixels = _trace_pixels(geometry, num_trace_pixels)
    rows = tf.constant([p[0] for p in pixels], tf.int32)
    cols = tf.constant([p[1] for p in pixels], tf.int32)

    state = initial_state(posterior, init, num_chains, sampler.initial_sigma, init_seed, initial_centre)
    results = kernel.bootstrap_results(state)
    _check_finite(sampler, state, results, where="the initial state")

    def chunk(state: tf.Tensor, results: Any, num_steps: Any) -> tuple[tf.Tensor, Any, tuple[tf.Tensor, ...]]:
        def body(i: tf.Tensor, state: tf.Tensor, results: Any, arrays: tuple[tf.TensorArray, ...]) -> tuple[Any, ...]:
            step_seed = tf.random.experimental.stateless_fold_in(run_seed, _result(results, "step"))
            state, results = kernel.one_step(state, results, seed=step_seed)
            pix = tf.gather(tf.gather(state, rows, axis=-2), cols, axis=-1)  # (C, K, K)
            pix = tf.linalg.diag_part(pix) if len(pixels) else tf.zeros([num_chains, 0])
            values = (tf.cast(_result(results, "sigma"), tf.float32), _acceptance(results), _step_size(results),
                      tf.cast(_result(results, "nfe"), tf.float32), pix)
            arrays = tuple(a.write(i, v) for a, v in zip(arrays, values))
            return i + 1, state, results, arrays

        arrays = tuple(tf.TensorArray(tf.float32, size=num_steps) for _ in range(4)) + (
            tf.TensorArray(tf.float32, size=num_steps, element_shape=[num_chains, len(pixels)]),)
        _, state, results, arrays = tf.while_loop(lambda i, *_: i < num_steps, body, (tf.constant(0), state, results, arrays))
        return state, results, tuple(a.stack() for a in arrays)

    compiled = tf.function(chunk, jit_compile=jit_compile, reduce_retracing=False)
    names = ("sigma", "acceptance", "step_size", "nfe")
    traces: dict[str, list[np.ndarray]] = {"step": [], **{k: [] for k in names}}
    pixel_keys = [f"kappa[{r},{c}]" for r, c in pixels]
    pixel_traces: list[np.ndarray] = []
    done_steps = 0
    n = chunk_steps or FIRST_CHUNK_STEPS
    while done_steps < total:
        if _is_cancelled(cancel):
            log.info("sampling cancelled at transition %d/%d", done_steps, total)
            return
        n = min(n, total - done_steps)
        if jit_compile and chunk_steps is None:  # XLA compiles once per size: powers of two, ≤ log₂ T compilations
            n = 1 << (n.bit_length() - 1)
        tracings = compiled.experimental_get_tracing_count()
        t0 = time.perf_counter()
        # XLA needs static sizes (a Python int, rounded to powers of two); otherwise one trace serves every size.
        state, results, arrays = compiled(state, results, n if jit_compile else tf.constant(n, tf.int32))
        arrays_np = [a.numpy() for a in arrays]
        seconds = time.perf_counter() - t0
        traced = compiled.experimental_get_tracing_count() != tracings
        _check_finite(sampler, state, results, where=f"transitions {done_steps + 1}–{done_steps + n}")
        traces["step"].append(np.arange(done_steps + 1, done_steps + n + 1))
        for key, values in zip(names, arrays_np[:4]):
            traces[key].append(values)
        pixel_traces.append(arrays_np[4])
        done_steps += n
        done = done_steps >= total
        chains = state
        denoised = False
        if done and final_denoise is not None:
            chains = _denoise_chains(sampler, state, final_denoise, jit_compile)
            denoised = True
        chains_np = chains.numpy()
        trace_out = {k: np.concatenate(v) for k, v in traces.items()}
        all_pix = np.concatenate(pixel_traces)
        for j, key in enumerate(pixel_keys):
            trace_out[key] = all_pix[:, :, j]
        yield Snapshot(
            step=done_steps,
            total_steps=total,
            level=int(_result(results, "level")),
            num_levels=sampler.num_levels,
            sigma=float(_result(results, "sigma")),
            chains=chains_np,
            mean=chains_np.mean(axis=0),
            std=chains_np.std(axis=0, ddof=1) if num_chains > 1 else np.zeros_like(chains_np[0]),
            acceptance=float(np.mean(arrays_np[1])),
            step_size=float(arrays_np[2][-1]),
            elapsed_s=time.perf_counter() - start,
            traces=trace_out,
            done=done,
            denoised=denoised,
            nfe=float(_result(results, "nfe")),
            sampler=sampler.name,
        )
        if chunk_steps is None:
            n = _next_chunk_steps(n, seconds, chunk_seconds, traced, power_of_two=jit_compile)


def _check_finite(sampler: PosteriorSampler, state: tf.Tensor, results: Any, where: str) -> None:
    if bool(tf.reduce_all(tf.math.is_finite(state))):
        score = unnest.get_innermost(results, "grads_target_log_prob", None)
        if score is None or bool(tf.reduce_all(tf.math.is_finite(score))):
            return
        what, advice = "the score is non-finite at the current chains", "check the score model (prior/likelihood) for NaN/inf"
    else:
        what, advice = "chains became non-finite", "reduce the step size or check the score model"
    level = int(_result(results, "level"))
    sigma = float(_result(results, "sigma"))
    raise FloatingPointError(f"{what} in the {sampler.name!r} sampler at level {level} (sigma={sigma:.4g}), {where}; {advice}")


def _denoise_chains(sampler: PosteriorSampler, state: tf.Tensor, method: str, jit_compile: bool) -> tf.Tensor:
    sigma = float(sampler.final_sigma)
    fn = tf.function(lambda x: denoise(sampler.posterior.score, x, sigma, method=method),
                     jit_compile=jit_compile and method == "tweedie")
    chains = fn(state)
    if not bool(tf.reduce_all(tf.math.is_finite(chains))):
        raise FloatingPointError(f"final {method} denoising of the {sampler.name!r} sampler at sigma={sigma:.4g} "
                                 "produced non-finite values")
    return chains


# ----------------------------------------------------------------------------------------------- legacy API
def make_sampler(posterior: Any, schedule: Schedule, name: str = "hmc", **options: Any) -> PosteriorSampler:
    """The registered sampler ``name`` (aliases accepted; ``"hmc_uncalibrated"`` too) on ``posterior``/``schedule``."""
    if name == UncalibratedAnnealedHMC.name:
        return UncalibratedAnnealedHMC(posterior, schedule, **options)
    return sampler_spec(name).load()(posterior, schedule, **options)


def _legacy_sampler(posterior: Any, schedule: Schedule, sampler: str, **options: Any) -> PosteriorSampler:
    """A sampler from the old keyword set: options the sampler does not take are dropped (as before)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    spec = sampler_spec("hmc" if sampler == UncalibratedAnnealedHMC.name else resolve_sampler_name(sampler))
    known = {o.name for o in spec.options}
    if options.get("predictor") is None:
        options["predictor"] = "none"
    kept = {k: v for k, v in options.items() if k in known}
    return make_sampler(posterior, schedule, sampler, **kept)


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
) -> tfp.mcmc.TransitionKernel:
    """The kernel :func:`sample_posterior` runs (``make_sampler(...).make_kernel()``; kept for benchmarks)."""
    return _legacy_sampler(posterior, schedule, sampler, num_leapfrog_steps=num_leapfrog_steps, step_size=step_size,
                           mass=mass, num_integration_intervals=num_integration_intervals,
                           use_exact_log_prob=use_exact_log_prob, adapt_step_size=adapt_step_size,
                           predictor=predictor).make_kernel()


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
    """The older entry point: :func:`sample` with a sampler built by name and fixed chunks of ``snapshot_every``.

    All settings are validated before any work (``ValueError`` at the call).
    """
    if not callable(getattr(posterior, "score", None)) or not isinstance(getattr(posterior, "geometry", None), MapGeometry):
        raise ValueError("posterior must have .score(kappa, sigma) and a MapGeometry .geometry (e.g. core.inference.posterior.PosteriorScore)")
    if not isinstance(schedule, Schedule):
        raise ValueError(f"schedule must be a core.inference.schedules.Schedule, got {type(schedule).__name__}")
    if not isinstance(adapt_step_size, bool):
        raise ValueError(f"adapt_step_size must be a bool, got {adapt_step_size!r}")
    if not callable(mass) and mass not in MASS_CHOICES:
        raise ValueError(f"mass must be one of {MASS_CHOICES} or a callable sigma -> MassMatrix, got {mass!r}")
    if predictor is not None and predictor not in PREDICTORS:
        raise ValueError(f"predictor must be one of {PREDICTORS}, got {predictor!r}")
    if step_size is not None and not isinstance(step_size, SigmaStepSize) and (
            isinstance(step_size, (bool, np.bool_)) or not isinstance(step_size, (int, float, np.integer, np.floating))):
        raise ValueError(f"step_size must be a positive number or a SigmaStepSize, got {step_size!r}")
    num_leapfrog_steps = _check_int(num_leapfrog_steps, "num_leapfrog_steps")
    chosen = _legacy_sampler(posterior, schedule, sampler, num_leapfrog_steps=num_leapfrog_steps, step_size=step_size,
                             mass=mass, num_integration_intervals=num_integration_intervals,
                             use_exact_log_prob=use_exact_log_prob, adapt_step_size=adapt_step_size, predictor=predictor)
    return sample(chosen, num_chains=num_chains, init=init, seed=seed, cancel=cancel,
                  final_denoise=final_denoise, jit_compile=jit_compile,
                  chunk_steps=_check_int(snapshot_every, "snapshot_every"), num_trace_pixels=num_trace_pixels)


def run_to_completion(posterior: Any, schedule: Schedule, **kwargs: Any) -> Snapshot:
    """Run :func:`sample_posterior` to the end and return its final snapshot (``done=True``)."""
    return last_snapshot(sample_posterior(posterior, schedule, **kwargs))


def last_snapshot(snapshots: Iterator[Snapshot]) -> Snapshot:
    """The final snapshot of a stream (``RuntimeError`` if the run was cancelled before completion)."""
    last = None
    for last in snapshots:
        pass
    if last is None or not last.done:
        raise RuntimeError("the run was cancelled before completion")
    return last
