r"""kappascope's own kernels on the 2-D lab targets, driven over a σ schedule one frame at a time.

A :class:`LabRun` holds ``C`` chains ``(C, 2)`` (``event_ndims = 1``) and one
:class:`core.inference.kernels.AnnealedKernel` whose inner kernel at level σ is built from the registry name:

* ``hmc``  — :class:`~core.inference.kernels.ScoreHMC` (identity metric, ``L`` leapfrog steps),
* ``mala`` — :class:`~core.inference.kernels.ScoreMALA`,
* ``ula``  — :class:`~core.inference.kernels.ScoreULA` (no Metropolis test: annealed Langevin dynamics),

each on ``π_σ`` of the target (score ``s_σ``; with an exact target the Metropolis test uses the exact
``log π_σ``, with a learned score it uses kappascope's Simpson line integral of the score). Transition ``t``
runs at level ``l(t)`` of the schedule; past the end every transition runs at ``σ_min`` (sampling goes on, so
histograms keep filling).

The diffusion samplers of the registry run through engineer S's
:class:`~core.inference.samplers.predictor_corrector.ReverseDiffusionKernel` (one Euler–Maruyama level change per
transition, then they stop at ``σ_min``; their ``PosteriorSampler`` classes need a map posterior, so the lab builds
the same kernel and guidance directly):

* ``pc``   — reverse diffusion on the smoothed target's score with ``steps_per_level − 1`` MALA corrector steps;
* ``dps``  — prior score + :func:`core.inference.guidance.dps_guidance` (likelihood variance ``η² + σ²``, S's
  default "tempered" weighting) of the target's observation ``y = A x + n`` (the ``inverse`` target only);
* ``mmps`` — prior score + :func:`core.inference.guidance.mmps_guidance` (exact for a Gaussian prior).

Step sizes follow the width of the σ-smoothed target, ``τ_σ = (τ² + σ²)^{1/2}`` with ``τ`` the target's
smallest standard deviation (:attr:`~core.lab.targets.LabTarget.length_scale`): the user's dimensionless
``step_size`` ``ε₀`` gives ``ε(σ) = ε₀ τ_σ`` for HMC (a position step) and ``ε(σ) = ε₀ τ_σ²`` for Langevin (a
variance step: the proposal moves by ``√(2ε)``) — :class:`~core.inference.kernels.SigmaStepSize` with exponent
1 or 2 and floor ``τ``.

Work is cut into frames: :meth:`LabRun.advance` runs ``n`` transitions in one ``tf.function`` (``n`` is a tensor,
so changing it does not retrace) and returns a :class:`LabFrame` of numpy arrays. For the highlighted chain the
frame carries the last proposal's path: for HMC the leapfrog trajectory is **re-run** for display from the state
before the last transition with the *same* initial momentum and step size the kernel used (read from the
kernel results), so it is the exact path of that proposal; for the Langevin kernels it is the straight
proposal segment. Its colour is the Metropolis decision of that transition.

Speed: with ``compiled_target=True`` the exact target's score and log density are XLA-compiled
(:meth:`~core.lab.targets.LabTarget.fast_score`, ≈5× faster frames on a CPU); the kernel results are then
bootstrapped lazily, so construction is cheap and :meth:`LabRun.warm` can do all tracing and compilation on a
worker thread. Runs that differ only in step size, seed or initial state share one compiled graph.

Chains start from ``σ_max z`` (``init="noise"``, the variance-exploding convention), from exact samples of
``π_{σ_max}`` (``init="exact"``), or from a given ``(C, 2)`` array.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import unnest

from core.inference.kernels import (
    AnnealedKernel,
    AnnealedKernelResults,
    IdentityMass,
    ScoreHMC,
    ScoreLeapfrogIntegrator,
    ScoreMALA,
    ScoreULA,
    SigmaStepSize,
    StepSizeAdaptation,
)
from core.inference.guidance import check_positive_finite
from core.inference.schedules import GeometricSchedule, Schedule
from core.lab.targets import LabTarget

__all__ = ["LabFrame", "LabRun", "LAB_KERNELS", "INITS", "lab_sampler_names", "MAX_CHAINS", "MAX_LEAPFROG"]

#: Samplers the lab builds from kappascope's kernels (registry names).
LAB_KERNELS = ("hmc", "mala", "ula")
#: Diffusion samplers (engineer S's guidance terms and reverse-diffusion kernel, on 2-D states).
LAB_DIFFUSION = ("pc", "dps", "mmps")
#: Samplers that need a linear-Gaussian observation (the ``inverse`` target).
NEEDS_OBSERVATION = ("dps", "mmps")
INITS = ("noise", "exact")
MAX_CHAINS = 5000
MAX_LEAPFROG = 100

ScoreModel = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def lab_sampler_names() -> tuple[str, ...]:
    """The registry's samplers the lab can run on 2-D targets (registry order)."""
    try:
        from core.options import sampler_names

        names = sampler_names()
    except Exception:  # pragma: no cover - registry not importable: fall back to the kernels
        names = LAB_KERNELS
    supported = set(LAB_KERNELS) | set(LAB_DIFFUSION)
    return tuple(n for n in names if n in supported) or LAB_KERNELS


@dataclass(frozen=True)
class LabFrame:
    """One frame of a lab run (numpy payloads).

    ``positions``/``previous``: chains after / before the last transition ``(C, 2)``; ``is_accepted`` ``(C,)``
    of the last transition; ``acceptance``: mean acceptance over the frame's transitions; ``trajectory``:
    ``(T, 2)`` path of the highlighted chain's last proposal and ``trajectory_accepted`` its fate.
    """

    step: int
    level: int
    sigma: float
    num_levels: int
    total_steps: int
    positions: np.ndarray
    previous: np.ndarray
    is_accepted: np.ndarray
    acceptance: float
    trajectory: np.ndarray
    trajectory_accepted: bool
    highlight: int
    transitions: int = 0
    elapsed_s: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def annealing_done(self) -> bool:
        return self.step >= self.total_steps


def _annealed(results: Any) -> Any:
    """The results carrying ``step``/``level``/``sigma`` (:class:`AnnealedKernelResults` inside a possible
    adaptation wrapper, or the reverse-diffusion kernel's own results)."""
    while not (hasattr(results, "sigma") and hasattr(results, "level") and hasattr(results, "step")):
        results = results.inner_results
    return results


def _check_int(value: Any, name: str, minimum: int, maximum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not minimum <= value <= maximum:
        raise ValueError(f"{name} must be an integer in [{minimum}, {maximum}], got {value!r}")
    return int(value)


class _CompiledSampler:
    """The traced part of a lab run: the annealed kernel and its compiled chunk / trajectory functions.

    The base step size and the seed are *arguments* of the compiled chunk (the step size is read by
    ``make_inner`` through ``_step_base``, which holds the argument tensor while the chunk is traced), so runs
    that differ only in step size, seed or initial state share one graph (:func:`_compiled`).
    """

    def __init__(self, target: LabTarget, sampler: str, schedule: Schedule, num_chains: int, num_leapfrog_steps: int,
                 score_model: ScoreModel | None, exact_log_prob: bool, compiled_target: bool, adapt_step_size: bool) -> None:
        self.target = target
        self.sampler = sampler
        self.schedule = schedule
        self.num_chains = num_chains
        self.num_leapfrog_steps = num_leapfrog_steps
        self.score_model = score_model
        self.exact_log_prob = exact_log_prob
        self.compiled_target = compiled_target
        self.adapt = adapt_step_size and sampler != "ula"
        #: ε(σ) / ε₀ = (σ² + τ²)^{a/2} (a = 1 for HMC, 2 for Langevin)
        self.step_rule = SigmaStepSize(base=1.0, floor=float(target.length_scale), exponent=1.0 if sampler == "hmc" else 2.0)
        self._step_base: Any = tf.constant(0.5, tf.float32)
        self.diffusion = sampler in LAB_DIFFUSION
        if self.diffusion:
            self.kernel = self._diffusion_kernel()
            self.chunk = tf.function(self._chunk_fn, reduce_retracing=True)
            self.leapfrog = None
            return
        kernel: tfp.mcmc.TransitionKernel = AnnealedKernel(self.make_inner, schedule)
        if self.adapt:
            last = int(np.asarray(schedule.steps_array)[-1])
            kernel = StepSizeAdaptation(kernel, num_adaptation_steps=max(int(schedule.total_steps) - last, 0))
        self.kernel = kernel
        self.chunk = tf.function(self._chunk_fn, reduce_retracing=True)
        self.leapfrog = tf.function(self._leapfrog_fn)

    def score(self, x: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
        if self.score_model is not None:
            return tf.convert_to_tensor(self.score_model(x, sigma), tf.float32)
        if self.compiled_target:
            return self.target.fast_score(x, sigma)
        return self.target.score(x, sigma)

    def _diffusion_kernel(self) -> tfp.mcmc.TransitionKernel:
        """Reverse VE diffusion over the schedule's levels (one level per transition), engineer S's kernel.

        ``pc``: the smoothed target's score, with ``steps_per_level − 1`` MALA corrector steps per level;
        ``dps`` / ``mmps``: the prior's smoothed score plus the DPS / MMPS likelihood guidance of the
        target's linear-Gaussian observation (:mod:`core.inference.guidance`), no corrector.
        """
        from core.inference.guidance import LinearGaussianObservation, dps_guidance, mmps_guidance
        from core.inference.samplers.predictor_corrector import ReverseDiffusionKernel

        sigmas = np.asarray(self.schedule.sigmas, np.float32)
        if sigmas.size < 2:
            raise ValueError(f"sampler {self.sampler!r} needs at least 2 levels (num_levels), got {sigmas.size}")
        if self.sampler == "pc":
            correctors = max(int(np.asarray(self.schedule.steps_array)[0]) - 1, 0)
            return ReverseDiffusionKernel(self.score, sigmas, make_corrector=self.make_inner if correctors else None,
                                          num_corrector_steps=correctors, corrector_cost=1.0, event_ndims=1)
        target = self.target
        if not all(hasattr(target, a) for a in ("prior", "operator", "observation", "noise_std")):
            raise ValueError(f"sampler {self.sampler!r} needs a target with a linear-Gaussian observation "
                             f"(the 'inverse' target), got {target.name!r}")
        observation = LinearGaussianObservation.from_matrix(target.operator, target.observation, target.noise_std**2)
        prior_score = target.prior.score

        if self.sampler == "dps":
            def score(x: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:  # S's default weighting: Σ_y + σ² ("tempered")
                terms = dps_guidance(observation, prior_score, x, sigma, extra_variance=tf.square(sigma))
                return terms.prior_score + terms.likelihood_score
        else:
            def score(x: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
                terms = mmps_guidance(observation, prior_score, x, sigma, cg_iterations=1)
                return terms.prior_score + terms.likelihood_score

        return ReverseDiffusionKernel(score, sigmas, event_ndims=1)

    def make_inner(self, sigma: tf.Tensor) -> tfp.mcmc.TransitionKernel:
        def score_fn(x: tf.Tensor) -> tf.Tensor:
            return self.score(x, sigma)

        log_prob = self.target.fast_log_prob if self.compiled_target else self.target.log_prob
        log_prob_fn = (lambda x: log_prob(x, sigma)) if self.exact_log_prob else None
        eps = self._step_base * self.step_rule(sigma)
        if self.sampler == "hmc":
            return ScoreHMC(score_fn, eps, self.num_leapfrog_steps, log_prob_fn=log_prob_fn, event_ndims=1)
        if self.sampler in ("mala", "pc"):
            return ScoreMALA(score_fn, eps, log_prob_fn=log_prob_fn, event_ndims=1)
        return ScoreULA(score_fn, eps, event_ndims=1)

    def with_step(self, step_base: Any, fn: Callable[[], Any]) -> Any:
        saved = self._step_base
        self._step_base = tf.cast(step_base, tf.float32)
        try:
            return fn()
        finally:
            self._step_base = saved

    def bootstrap(self, state: tf.Tensor, step_base: float) -> Any:
        """Initial kernel results (in a graph, like the chunks, so a compiled target compiles once)."""
        if self._bootstrap_fn is None:
            self._bootstrap_fn = tf.function(
                lambda x, base: self.with_step(base, lambda: self.kernel.bootstrap_results(x)))
        return self._bootstrap_fn(tf.convert_to_tensor(state, tf.float32), tf.constant(step_base, tf.float32))

    _bootstrap_fn: Any = None
    _restart_fn: Any = None

    def restart_inner(self, state: tf.Tensor, results: Any, step_base: float) -> Any:
        """``results`` with fresh inner results at the current σ and a new base step size (same step/level)."""
        if self.adapt or self.diffusion:
            raise ValueError("the step size of this run cannot change mid-run; reset the run")

        def restart(x: tf.Tensor, r: Any, base: tf.Tensor) -> Any:
            annealed = _annealed(r)
            inner = self.with_step(base, lambda: self.make_inner(annealed.sigma).bootstrap_results(x))
            return annealed._replace(inner_results=inner)

        if self._restart_fn is None:
            self._restart_fn = tf.function(restart)
        return self._restart_fn(state, results, tf.constant(step_base, tf.float32))

    def _chunk_fn(self, state: tf.Tensor, results: Any, num_steps: tf.Tensor, step_base: tf.Tensor,
                  seed: tf.Tensor) -> tuple[Any, ...]:
        def body(i: tf.Tensor, previous: tf.Tensor, x: tf.Tensor, r: Any, accepted: tf.Tensor) -> tuple[Any, ...]:
            step_seed = tf.random.experimental.stateless_fold_in(seed, _annealed(r).step)
            x_new, r_new = self.kernel.one_step(x, r, seed=step_seed)
            return i + 1, x, x_new, r_new, accepted + _accepted(r_new)

        def run() -> tuple[Any, ...]:
            zero = tf.zeros([self.num_chains], tf.float32)
            _, previous, x, r, accepted = tf.while_loop(
                lambda i, *_: i < num_steps, body, (tf.constant(0), state, state, results, zero)
            )
            progress = _annealed(r)
            inner = getattr(progress, "inner_results", progress)
            proposed = inner.proposed_results if hasattr(inner, "proposed_results") else inner
            momentum = getattr(proposed, "initial_momentum", tf.zeros_like(x))
            eps = tf.convert_to_tensor(unnest.get_innermost(proposed, "step_size"), tf.float32)
            proposal = inner.proposed_state if hasattr(inner, "proposed_state") else x
            return x, r, previous, proposal, _accepted(r), accepted / tf.cast(num_steps, tf.float32), momentum, eps

        return self.with_step(step_base, run)

    def _leapfrog_fn(self, x0: tf.Tensor, p0: tf.Tensor, eps: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
        """Positions ``(L + 1, 2)`` of one leapfrog trajectory (identity metric) from ``(x0, p0)``: the kernels' own
        :class:`~core.inference.kernels.ScoreLeapfrogIntegrator`, one step at a time."""
        x, p = x0[None], p0[None]
        score = self.score_model if self.score_model is not None else self.target.score  # one chain: no XLA
        g = tf.convert_to_tensor(score(x, sigma), tf.float32)
        one_step = ScoreLeapfrogIntegrator(lambda y: score(y, sigma), IdentityMass(), eps, 1)
        path = [x[0]]
        for _ in range(self.num_leapfrog_steps):
            p, x, g = one_step(p, x, g)
            path.append(x[0])
        return tf.stack(path)


def _accepted(results: Any) -> tf.Tensor:
    progress = _annealed(results)
    inner = getattr(progress, "inner_results", progress)
    if hasattr(inner, "is_accepted"):
        return tf.cast(inner.is_accepted, tf.float32)
    return tf.ones(tf.shape(inner.grads_target_log_prob)[:-1], tf.float32)


_COMPILED: "OrderedDict[tuple, _CompiledSampler]" = OrderedDict()
_COMPILED_LOCK = threading.Lock()
_MAX_COMPILED = 12


def _compiled(**kwargs: Any) -> _CompiledSampler:
    """A cached :class:`_CompiledSampler` (least recently used of :data:`_MAX_COMPILED` kept)."""
    key = tuple((k, id(v) if k in ("target", "score_model") else (repr(v) if k == "schedule" else v))
                for k, v in sorted(kwargs.items()))
    with _COMPILED_LOCK:
        if key in _COMPILED:
            _COMPILED.move_to_end(key)
            return _COMPILED[key]
        compiled = _CompiledSampler(**kwargs)
        _COMPILED[key] = compiled
        while len(_COMPILED) > _MAX_COMPILED:
            _COMPILED.popitem(last=False)
        return compiled


class LabRun:
    """``C`` chains of an annealed kappascope kernel on a 2-D target (see the module docstring).

    Parameters
    ----------
    target: a :class:`~core.lab.targets.LabTarget`.
    sampler: ``"hmc"``, ``"mala"`` or ``"ula"``.
    schedule: the σ schedule (default geometric 3 → 0.01, 30 levels × 10 transitions).
    num_chains, step_size (dimensionless ``ε₀``, see the module docstring), num_leapfrog_steps, seed.
    score_model: optional learned score ``(x, sigma) -> s`` replacing the exact one (the Metropolis test then
        uses the score line integral instead of the exact log density).
    use_exact_log_prob: for exact targets, use ``log π_σ`` in the Metropolis test (default ``True``);
        ``False`` uses the line integral of the score like the map mode.
    compiled_target: evaluate the exact target through its XLA-compiled score/log density
        (:meth:`~core.lab.targets.LabTarget.fast_score`; ~2 s of compilation once per target and chain count).
    adapt_step_size: wrap the annealed kernel in :class:`~core.inference.kernels.StepSizeAdaptation`, adapting
        the step size towards 70 % acceptance until the last level (then frozen).
    init: ``"noise"``, ``"exact"`` or a ``(C, 2)`` array; highlight: the chain whose trajectory is shown.
    """

    def __init__(
        self,
        target: LabTarget,
        sampler: str = "hmc",
        schedule: Schedule | None = None,
        num_chains: int = 500,
        step_size: float = 0.5,
        num_leapfrog_steps: int = 5,
        seed: int = 0,
        score_model: ScoreModel | None = None,
        use_exact_log_prob: bool = True,
        adapt_step_size: bool = False,
        init: Any = "noise",
        highlight: int = 0,
        compiled_target: bool = False,
    ) -> None:
        if not isinstance(target, LabTarget):
            raise ValueError(f"target must be a core.lab.targets.LabTarget, got {type(target).__name__}")
        if sampler not in LAB_KERNELS + LAB_DIFFUSION:
            raise ValueError(f"sampler must be one of {LAB_KERNELS + LAB_DIFFUSION} in the lab, got {sampler!r}")
        if schedule is None:
            schedule = GeometricSchedule(3.0, 0.01, 30, 10)
        if not isinstance(schedule, Schedule):
            raise ValueError(f"schedule must be a core.inference.schedules.Schedule, got {type(schedule).__name__}")
        if score_model is not None and not callable(score_model):
            raise ValueError(f"score_model must be callable (x, sigma) -> score, got {type(score_model).__name__}")
        self.target = target
        self.sampler = sampler
        self.schedule = schedule
        self.num_chains = _check_int(num_chains, "num_chains", 1, MAX_CHAINS)
        self.step_size = check_positive_finite(step_size, "step_size")
        self.num_leapfrog_steps = _check_int(num_leapfrog_steps, "num_leapfrog_steps", 1, MAX_LEAPFROG)
        self.seed = _check_int(seed, "seed", 0, 2**31 - 2)
        self.highlight = _check_int(highlight, "highlight", 0, self.num_chains - 1)
        self.score_model = score_model
        self.exact_log_prob = bool(use_exact_log_prob) and score_model is None and target.has_log_prob
        self._compiled = _compiled(
            target=target, sampler=sampler, schedule=schedule, num_chains=self.num_chains,
            num_leapfrog_steps=self.num_leapfrog_steps if sampler == "hmc" else 1, score_model=score_model,
            exact_log_prob=self.exact_log_prob, compiled_target=bool(compiled_target), adapt_step_size=bool(adapt_step_size),
        )
        self._seed = tf.constant([self.seed, 7919], tf.int32)
        self._state = tf.constant(self._initial_state(init))
        self._results_cache: Any = None  # bootstrapped on first use (warm() may do it on a worker thread)
        self._results_lock = threading.Lock()
        self._transitions = 0
        self._elapsed = 0.0
        self.last_frame: LabFrame | None = None

    def score(self, x: Any, sigma: Any) -> tf.Tensor:
        """The score the sampler uses at σ (learned if a ``score_model`` is set, else exact)."""
        return self._compiled.score(tf.convert_to_tensor(x, tf.float32), tf.cast(sigma, tf.float32))

    def set_step_size(self, step_size: float) -> None:
        """Change ``ε₀`` mid-run (the inner kernel restarts at the current state and σ; no retracing)."""
        value = check_positive_finite(step_size, "step_size")
        if self._results_cache is not None:
            self._results = self._compiled.restart_inner(self._state, self._results, value)
        self.step_size = value

    def _initial_state(self, init: Any) -> np.ndarray:
        sigma_max = float(self.schedule.first_sigma)
        if isinstance(init, str):
            if init == "noise":
                z = tf.random.stateless_normal([self.num_chains, 2], seed=[self.seed, 17])
                return (sigma_max * z).numpy().astype(np.float32)
            if init == "exact":
                return self.target.sample(self.num_chains, seed=[self.seed, 23], sigma=sigma_max).numpy().astype(np.float32)
            raise ValueError(f"init must be one of {INITS} or a ({self.num_chains}, 2) array, got {init!r}")
        arr = np.asarray(init, dtype=np.float32)
        if arr.shape != (self.num_chains, 2) or not np.all(np.isfinite(arr)):
            raise ValueError(f"init must be one of {INITS} or a finite ({self.num_chains}, 2) array, got shape {arr.shape}")
        return arr

    # ------------------------------------------------------------------ public API
    @property
    def positions(self) -> np.ndarray:
        return self._state.numpy()

    @property
    def _results(self) -> Any:
        """The kernel results (bootstrapped lazily: with XLA-compiled targets this compiles the score)."""
        with self._results_lock:
            if self._results_cache is None:
                self._results_cache = self._compiled.bootstrap(self._state, self.step_size)
            return self._results_cache

    @_results.setter
    def _results(self, value: Any) -> None:
        self._results_cache = value

    @property
    def diffusion(self) -> bool:
        return self._compiled.diffusion

    @property
    def total_transitions(self) -> int:
        """Transitions of the annealing (diffusion samplers: one per level change, and then they stop)."""
        return int(self.schedule.num_levels - 1) if self.diffusion else int(self.schedule.total_steps)

    @property
    def step(self) -> int:
        return int(_annealed(self._results).step.numpy())

    def advance(self, num_transitions: int = 1) -> LabFrame:
        """Run ``num_transitions`` transitions and return the frame after them."""
        n = _check_int(num_transitions, "num_transitions", 1, 100_000)
        if self.diffusion:  # a reverse diffusion ends at σ_min: no transitions past the last level
            n = min(n, self.total_transitions - self.step)
            if n <= 0:
                return self.current_frame()
        start = time.perf_counter()
        state, results, previous, proposal, last_accepted, mean_accepted, momentum, eps = self._compiled.chunk(
            self._state, self._results, tf.constant(n, tf.int32), tf.constant(self.step_size, tf.float32), self._seed
        )
        self._state, self._results = state, results
        results = _annealed(results)
        h = self.highlight
        sigma = results.sigma
        accepted = last_accepted.numpy() > 0.5
        if self.sampler == "hmc":
            eps_h = eps if eps.shape.rank == 0 else eps[h]
            trajectory = self._compiled.leapfrog(previous[h], momentum[h], eps_h, sigma).numpy()
        else:
            trajectory = np.stack([previous[h].numpy(), proposal[h].numpy()])
        self._transitions += n
        self._elapsed += time.perf_counter() - start
        frame = LabFrame(
            step=int(results.step.numpy()),
            level=int(results.level.numpy()),
            sigma=float(sigma.numpy()),
            num_levels=int(self.schedule.num_levels),
            total_steps=self.total_transitions,
            positions=state.numpy(),
            previous=previous.numpy(),
            is_accepted=accepted,
            acceptance=float(np.mean(mean_accepted.numpy())),
            trajectory=trajectory.astype(np.float32),
            trajectory_accepted=bool(accepted[h]),
            highlight=h,
            transitions=self._transitions,
            elapsed_s=self._elapsed,
        )
        self.last_frame = frame
        return frame

    def current_frame(self) -> LabFrame:
        """The frame of the current state (before any transition: no trajectory yet, a single point)."""
        if self.last_frame is not None:
            return self.last_frame
        pos = self._state.numpy()
        h = self.highlight
        if self._results_cache is None:
            step, level, sigma = 0, 0, float(self.schedule.sigmas[0])
        else:
            annealed = _annealed(self._results_cache)
            step, level, sigma = int(annealed.step.numpy()), int(annealed.level.numpy()), float(annealed.sigma.numpy())
        return LabFrame(
            step=step, level=level, sigma=sigma,
            num_levels=int(self.schedule.num_levels), total_steps=self.total_transitions, positions=pos,
            previous=pos, is_accepted=np.ones(len(pos), bool), acceptance=float("nan"), trajectory=pos[h:h + 1].copy(),
            trajectory_accepted=True, highlight=h,
        )

    def warm(self) -> None:
        """Trace (compile) the chunk and trajectory functions without changing the run (safe from another thread)."""
        out = self._compiled.chunk(self._state, self._results, tf.constant(1, tf.int32),
                                   tf.constant(self.step_size, tf.float32), self._seed)
        if self.sampler == "hmc":
            eps = out[7] if out[7].shape.rank == 0 else out[7][0]
            self._compiled.leapfrog(out[2][0], out[6][0], eps, _annealed(out[1]).sigma)

    def run(self, num_transitions: int, chunk: int = 200) -> LabFrame:
        """Advance by ``num_transitions`` in chunks of at most ``chunk`` (headless use)."""
        remaining = _check_int(num_transitions, "num_transitions", 1, 10_000_000)
        frame = None
        while remaining > 0:
            n = min(chunk, remaining)
            frame = self.advance(n)
            remaining -= n
        assert frame is not None
        return frame
