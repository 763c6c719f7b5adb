r"""Predictor–corrector sampling along the reverse variance-exploding diffusion (``"pc"``), and the reverse-diffusion
kernel the DPS and MMPS samplers share.

Levels ``σ_0 ≥ σ_1 ≥ … ≥ σ_{L−1}`` of the schedule; the chains start at ``σ_0`` (the driver's init adds noise of
std ``σ_0``) and transition ``i`` (``i = 0 … L−2``) moves them from ``σ_i`` to ``σ_{i+1}`` with a score
``s(x, σ) ≈ ∇ log p_σ(x | y)``:

* **Euler–Maruyama** (``integrator="euler_maruyama"``) of the reverse VE SDE, ``Δ_i = σ_i² − σ_{i+1}²``:
  ``x ← x + Δ_i s(x, σ_i) + √Δ_i z``  (1 score evaluation; the move of
  :class:`~core.inference.kernels.ReverseDiffusionPredictor`, given the cached score);
* **Heun** (``integrator="heun"``) of the probability-flow ODE ``dx/dσ = −σ s(x, σ)``, with ``h = σ_{i+1} − σ_i``:
  ``d₀ = −σ_i s(x, σ_i)``, ``x̃ = x + h d₀``, ``d₁ = −σ_{i+1} s(x̃, σ_{i+1})``, ``x ← x + ½h(d₀ + d₁)``
  (2 evaluations; deterministic, 2nd order: on a Gaussian its variance error at 50 geometric levels from 0.5 to
  10⁻³ is 0.4 % against 14 % for Euler–Maruyama, and 0.1 % vs 7 % at 100 levels).
* then **K corrector steps** at ``σ_{i+1}`` (``num_corrector_steps``; 0 = plain reverse diffusion): unadjusted
  Langevin ``x ← x + ε A s + √(2ε) A^{1/2} z`` (1 evaluation each) or Metropolis-adjusted score HMC of
  :mod:`core.inference.kernels` (``L`` leapfrog + ``n − 1`` Simpson nodes each, 6 by default), with the same metric
  ``A = M⁻¹`` as the annealed samplers (``mass="auto"``: the Fourier posterior-variance metric for exact priors,
  its prior-capped variant for learned ones) and a constant step ``ε`` relative to that metric (Langevin 0.05;
  HMC ``min(1, (4/(L√d))^{1/3})``, adapted towards 70 % acceptance across levels, frozen at the last one).

  Adaptation: the corrector at each level is wrapped in :class:`~core.inference.kernels.StepSizeAdaptation`
  whose "step size" is the factor ``ε/ε(σ)`` on the level's nominal step (getter and setter divide and multiply
  by ``ε(σ)``), so one factor carries over from level to level (``step_scale`` in the results) and moves by
  ``log ε ← log ε + 0.05 (ᾱ − α*)`` after each corrector step (``α*`` = ``target_accept_prob``, 0.7); its step
  counter counts corrector steps (``K`` per transition), and it adapts for the first ``K (L − 2)`` of them, i.e. at
  every level but the last.

For ``"pc"`` the score is the tempered-likelihood posterior score of the annealed samplers,
``s = ∇ log L_σ(y | x) + ∇ log p_σ(x)`` (``posterior.score``). The reverse SDE of that family is not exact (the tempered
likelihood is not the σ-convolved one), so the predictor alone is biased (over-confident at intermediate σ; on the
16² exact-Gaussian test problem with mask, K = 0 and 60 levels: pixel variances 0.90 of the exact ones, mean off by
0.22 posterior sd); the correctors relax the chains towards the tempered posterior at each level, which is exact
at ``σ_min`` → 0 (K = 2 HMC steps on 100 levels pass the dense known-answer test).

NFE (score evaluations per chain, reported as ``nfe`` in the kernel results): ``bootstrap`` evaluates
``s(x₀, σ₀)`` once; every transition reuses the cached score at the current state, so one level costs
``c·(h + 1)`` without correctors and ``c·(h + 1 + K·k)`` with them, where ``c`` is the cost of one score evaluation
(1 for ``"pc"``; 2 for DPS, ``2 + n_cg`` for MMPS, see :mod:`core.inference.guidance`), ``h = 0`` (Euler–Maruyama) or
1 (Heun), the ``+1`` the score at the new state (the corrector's bootstrap), and ``k`` a corrector step's cost
(Langevin 1, HMC ``L + n − 1``).

The schedule's ``steps_per_level`` is not used: a run is ``L − 1`` transitions, one per level change.
"""
from __future__ import annotations

import collections
import dataclasses
import weakref
from typing import Any, Callable, ClassVar

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import unnest

from core.inference.kernels import ReverseDiffusionPredictor, StepSizeAdaptation, StepSizeAdaptationResults
from core.inference.samplers.annealed import ADAPTATION_RATE, default_step_size, effective_noise_variance, resolve_defaults
from core.inference.samplers.base import PosteriorSampler
from core.inference.samplers.diffusion_options import INTEGRATORS
from core.inference.schedules import Schedule

__all__ = ["ReverseDiffusionKernel", "ReverseDiffusionResults", "PredictorCorrector", "DiffusionSampler", "SIMPSON_INTERVALS"]

ScoreFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
SIMPSON_INTERVALS = 4
LANGEVIN_STEP = 0.05
TARGET_ACCEPT = 0.7


class ReverseDiffusionResults(
    collections.namedtuple(
        "ReverseDiffusionResults",
        ["step", "level", "sigma", "nfe", "grads_target_log_prob", "is_accepted", "step_size", "step_scale", "seed"],
    )
):
    """``step`` transitions done; ``level``/``sigma`` of the state; ``nfe`` per chain so far; ``grads_target_log_prob`` the cached
    ``s(state, sigma)``; ``is_accepted`` ``(C,)`` of the last corrector step (all true without a Metropolis test);
    ``step_size`` of the corrector (0 without); ``step_scale`` the adapted factor ``ε/ε(σ)`` on its nominal step
    size (1 without adaptation)."""

    __slots__ = ()


class ReverseDiffusionKernel(tfp.mcmc.TransitionKernel):
    """One level change per transition: predictor, then ``num_corrector_steps`` corrector steps (module docstring).

    Parameters
    ----------
    score_fn:
        ``(x, sigma) -> s(x, σ)`` with ``sigma`` a float32 scalar tensor.
    sigmas:
        The levels, non-increasing, at least two.
    integrator:
        ``"euler_maruyama"`` or ``"heun"``.
    score_cost:
        NFE of one ``score_fn`` call.
    make_corrector:
        ``sigma -> TransitionKernel`` targeting the level-σ posterior (its results must keep one structure), or None.
    corrector_cost:
        NFE of one corrector step (its bootstrap counts ``score_cost``).
    adapt_step_size:
        Robbins–Monro adaptation of the corrector's ``step_size`` towards ``target_accept_prob`` (Metropolis
        correctors only, through :class:`~core.inference.kernels.StepSizeAdaptation`), frozen at the last level.
    split_below, prior_score_fn, prior_cost:
        MMPS's noise split: from level ``split_below`` down the steps are the prior's own reverse SDE, with
        ``prior_score_fn`` (``prior_cost`` NFE) recomputing the score at ``split_below``.
    split_noise_gain:
        ``(white, sigma_from, sigma_to) -> noise`` for the prior-only steps, or None (Euler–Maruyama: white noise of
        variance ``δ = σ_from² − σ_to²``). With it a prior-only step is ``x + δ s(x, σ_from) + √δ · gain(z)``: the
        drift is the exact mean ``E[x_{σ_to} | x_{σ_from}]`` (Tweedie for the Gaussian step between the levels)
        and ``gain`` shapes the noise, e.g. to the Gaussian part's exact transition covariance
        ``δ (P_k + σ_to²)/(P_k + σ_from²)`` (MMPS ``split_step="tweedie"``).
    """

    def __init__(
        self,
        score_fn: ScoreFn,
        sigmas: Any,
        integrator: str = "euler_maruyama",
        score_cost: float = 1.0,
        make_corrector: Callable[[tf.Tensor], tfp.mcmc.TransitionKernel] | None = None,
        num_corrector_steps: int = 0,
        corrector_cost: float = 0.0,
        adapt_step_size: bool = False,
        target_accept_prob: float = TARGET_ACCEPT,
        event_ndims: int = 2,
        name: str | None = None,
        split_below: float | None = None,
        prior_score_fn: ScoreFn | None = None,
        prior_cost: float = 1.0,
        split_noise_gain: Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor] | None = None,
    ) -> None:
        if not callable(score_fn):
            raise ValueError(f"score_fn must be callable (x, sigma) -> score, got {type(score_fn).__name__}")
        sigmas = np.asarray(sigmas, dtype=np.float32)
        if sigmas.ndim != 1 or sigmas.size < 2 or not np.all(np.isfinite(sigmas)) or np.any(sigmas <= 0):
            raise ValueError(f"sigmas must be ≥ 2 positive finite levels, got {sigmas!r}")
        if np.any(np.diff(sigmas) > 0):
            raise ValueError("sigmas must be non-increasing")
        if integrator not in INTEGRATORS:
            raise ValueError(f"integrator must be one of {INTEGRATORS}, got {integrator!r}")
        if isinstance(num_corrector_steps, bool) or not isinstance(num_corrector_steps, (int, np.integer)) or num_corrector_steps < 0:
            raise ValueError(f"num_corrector_steps must be an integer ≥ 0, got {num_corrector_steps!r}")
        if num_corrector_steps > 0 and not callable(make_corrector):
            raise ValueError("num_corrector_steps > 0 needs make_corrector (sigma -> TransitionKernel)")
        if split_below is not None and (not callable(prior_score_fn) or num_corrector_steps > 0):
            raise ValueError("split_below needs prior_score_fn (x, sigma) -> prior score and no corrector steps")
        if split_noise_gain is not None and (split_below is None or not callable(split_noise_gain)):
            raise ValueError("split_noise_gain must be a callable (white, sigma_from, sigma_to) -> noise and needs "
                             "split_below")
        self._sigmas = sigmas
        self._parameters = dict(
            score_fn=score_fn, sigmas=sigmas, integrator=integrator, score_cost=float(score_cost),
            make_corrector=make_corrector, num_corrector_steps=int(num_corrector_steps),
            corrector_cost=float(corrector_cost), adapt_step_size=bool(adapt_step_size),
            target_accept_prob=float(target_accept_prob), event_ndims=int(event_ndims), name=name,
            split_below=None if split_below is None else float(np.float32(split_below)), prior_score_fn=prior_score_fn,
            prior_cost=float(prior_cost), split_noise_gain=split_noise_gain,
        )

    def _cost(self, sigma: tf.Tensor) -> tf.Tensor:
        """NFE of one ``score_fn`` call at ``sigma``: ``prior_cost`` below ``split_below`` (where ``score_fn`` is the
        prior's alone, MMPS's noise split), ``score_cost`` elsewhere."""
        p = self._parameters
        if p["split_below"] is None:
            return tf.constant(p["score_cost"], tf.float32)
        return tf.where(sigma < p["split_below"], p["prior_cost"], p["score_cost"])

    @property
    def parameters(self) -> dict[str, Any]:
        return self._parameters

    @property
    def is_calibrated(self) -> bool:
        return False  # the target changes every transition

    @property
    def num_transitions(self) -> int:
        return int(self._sigmas.size - 1)

    @property
    def nfe_per_transition(self) -> float:
        p = self._parameters
        heun = 1.0 if p["integrator"] == "heun" else 0.0
        return p["score_cost"] * (1.0 + heun) + p["num_corrector_steps"] * p["corrector_cost"]

    def _batch_shape(self, x: tf.Tensor) -> tf.Tensor:
        return tf.shape(x)[: tf.rank(x) - self._parameters["event_ndims"]]

    def one_step(
        self, current_state: tf.Tensor, previous_kernel_results: ReverseDiffusionResults, seed: Any = None
    ) -> tuple[tf.Tensor, ReverseDiffusionResults]:
        p = self._parameters
        with tf.name_scope(p["name"] or "reverse_diffusion"):
            seed = tfp.random.sanitize_seed(seed)
            predictor_seed, corrector_seed = tfp.random.split_seed(seed)
            x = tf.convert_to_tensor(current_state, tf.float32)
            prev = previous_kernel_results
            sigmas = tf.constant(self._sigmas)
            i = tf.minimum(prev.step, self.num_transitions - 1)
            sigma_to = tf.gather(sigmas, i + 1)
            # past the end the predictor stands still (the correctors, if any, keep sampling the last level)
            sigma_from = tf.where(prev.step < self.num_transitions, tf.gather(sigmas, i), sigma_to)
            score_fn = p["score_fn"]
            nfe = prev.nfe

            def euler_maruyama(grads: tf.Tensor) -> tf.Tensor:
                return ReverseDiffusionPredictor.move(x, grads, sigma_from, sigma_to, predictor_seed)

            def heun() -> tf.Tensor:
                h = sigma_to - sigma_from
                d0 = -sigma_from * prev.grads_target_log_prob
                x_euler = x + h * d0
                d1 = -sigma_to * tf.convert_to_tensor(score_fn(x_euler, sigma_to), tf.float32)
                return x + 0.5 * h * (d0 + d1)

            if p["split_below"] is not None:
                # noise split: from split_below down, the prior-only reverse SDE (stochastic: it samples p(x | x_σ*));
                # the stored score at split_below is the guided one (the end of the guided stage): recompute it
                below = sigma_from <= p["split_below"]
                at_split = tf.equal(sigma_from, p["split_below"]) & (prev.step < self.num_transitions)
                grads = tf.cond(at_split, lambda: tf.convert_to_tensor(p["prior_score_fn"](x, sigma_from), tf.float32),
                                lambda: prev.grads_target_log_prob)
                nfe = nfe + tf.where(at_split, p["prior_cost"], 0.0)

                def prior_step() -> tf.Tensor:
                    return ReverseDiffusionPredictor.move(x, grads, sigma_from, sigma_to, predictor_seed,
                                                          noise_gain=p["split_noise_gain"])

                if p["integrator"] == "euler_maruyama":
                    x = prior_step() if p["split_noise_gain"] is None else tf.cond(
                        below, prior_step, lambda: euler_maruyama(grads))
                else:
                    x = tf.cond(below, prior_step, heun)
                    nfe = nfe + tf.where(below, 0.0, self._cost(sigma_to))
            elif p["integrator"] == "euler_maruyama":
                x = euler_maruyama(prev.grads_target_log_prob)
            else:
                x = heun()
                nfe = nfe + self._cost(sigma_to)
            level = tf.cast(i + 1, tf.int32)
            step_scale = prev.step_scale
            if p["num_corrector_steps"] == 0:
                score = tf.convert_to_tensor(score_fn(x, sigma_to), tf.float32)
                nfe = nfe + self._cost(sigma_to)
                accepted = tf.ones(self._batch_shape(x), tf.bool)
                step_size = tf.constant(0.0, tf.float32)
            else:
                x, score, accepted, step_size, step_scale = self._correct(x, sigma_to, prev.step, step_scale, corrector_seed)
                nfe = nfe + self._cost(sigma_to) + p["num_corrector_steps"] * p["corrector_cost"]
            return x, ReverseDiffusionResults(
                step=prev.step + 1, level=level, sigma=sigma_to, nfe=nfe, grads_target_log_prob=score, is_accepted=accepted,
                step_size=step_size, step_scale=step_scale, seed=seed,
            )

    def _correct(self, x: tf.Tensor, sigma: tf.Tensor, transitions_done: tf.Tensor, step_scale: tf.Tensor,
                 seed: Any) -> tuple[tf.Tensor, ...]:
        """``num_corrector_steps`` corrector steps at ``sigma``: ``(x, score, is_accepted, step_size, step_scale)``."""
        p = self._parameters
        num_steps = p["num_corrector_steps"]
        kernel = p["make_corrector"](sigma)
        results = kernel.bootstrap_results(x)
        has_step = unnest.has_nested(results, "step_size")
        if p["adapt_step_size"] and has_step and unnest.has_nested(results, "log_accept_ratio"):
            nominal = tf.convert_to_tensor(unnest.get_innermost(results, "step_size"), tf.float32)
            kernel = StepSizeAdaptation(
                kernel, num_adaptation_steps=num_steps * (self.num_transitions - 1),
                target_accept_prob=p["target_accept_prob"], adaptation_rate=ADAPTATION_RATE,
                step_size_setter_fn=lambda r, scale: unnest.replace_innermost(r, step_size=nominal * scale),
                step_size_getter_fn=lambda r: tf.cast(unnest.get_innermost(r, "step_size"), tf.float32) / nominal,
            )
            # resume the adaptation where the last level left it (fresh inner results: the state has moved)
            results = StepSizeAdaptationResults(
                inner_results=results, target_accept_prob=tf.constant(kernel.target_accept_prob, tf.float32),
                adaptation_rate=tf.constant(kernel.adaptation_rate, tf.float32), step=transitions_done * num_steps,
                new_step_size=step_scale,
            )

        def body(k: tf.Tensor, x: tf.Tensor, results: Any, accepted: tf.Tensor) -> tuple[Any, ...]:
            x, results = kernel.one_step(x, results, seed=tf.random.experimental.stateless_fold_in(seed, k))
            if unnest.has_nested(results, "is_accepted"):
                accepted = tf.cast(unnest.get_innermost(results, "is_accepted"), tf.bool)
            return k + 1, x, results, accepted

        _, x, results, accepted = tf.while_loop(
            lambda k, *_: k < num_steps, body, (tf.constant(0), x, results, tf.ones(self._batch_shape(x), tf.bool)),
            maximum_iterations=num_steps,
        )
        score = tf.convert_to_tensor(unnest.get_innermost(results, "grads_target_log_prob"), tf.float32)
        step_size = tf.cast(unnest.get_innermost(results, "step_size"), tf.float32) if has_step else tf.constant(0.0)
        if isinstance(results, StepSizeAdaptationResults):
            step_scale = results.new_step_size
        return x, score, accepted, tf.reduce_mean(step_size), step_scale

    def bootstrap_results(self, init_state: tf.Tensor) -> ReverseDiffusionResults:
        x = tf.convert_to_tensor(init_state, tf.float32)
        sigma0 = tf.constant(self._sigmas[0])
        return ReverseDiffusionResults(
            step=tf.constant(0, tf.int32),
            level=tf.constant(0, tf.int32),
            sigma=sigma0,
            nfe=tf.constant(self._parameters["score_cost"], tf.float32),
            grads_target_log_prob=tf.convert_to_tensor(self._parameters["score_fn"](x, sigma0), tf.float32),
            is_accepted=tf.ones(self._batch_shape(x), tf.bool),
            step_size=tf.constant(0.0, tf.float32),
            step_scale=tf.constant(1.0, tf.float32),
            seed=tf.zeros([2], tf.int32),
        )


#: compiled guided scores, per prior object: tracing a VJP through the score network costs tens of seconds, so one
#: trace serves every observation with the same operator (the data enter as arguments, not as constants).
_COMPILED_GUIDANCE: "weakref.WeakKeyDictionary[Any, dict[Any, Any]]" = weakref.WeakKeyDictionary()


class DiffusionSampler(PosteriorSampler):
    """Shared plumbing of ``"pc"``, ``"dps"``, ``"mmps"``: ``L − 1`` transitions of a :class:`ReverseDiffusionKernel`.

    Subclasses give ``score_fn``/``score_cost`` (and, for PC, a corrector). Guided samplers (DPS, MMPS) implement
    ``guided_score(observation, x, sigma)``; :meth:`compiled_guided_score` wraps it in one ``tf.function`` per
    (prior, operator, options, :meth:`guidance_key`), shared by every sampler built on the same prior.
    """

    name: ClassVar[str]

    def __init__(self, posterior: Any, schedule: Schedule, **options: Any) -> None:
        super().__init__(posterior, schedule, **options)
        if schedule.num_levels < 2:
            raise ValueError(
                f"sampler {self.name!r} moves the chains between levels and needs num_levels ≥ 2, got {schedule.num_levels}"
            )

    # subclass hooks
    score_cost: float = 1.0

    def score_fn(self, x: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def _corrector(self) -> tuple[Callable[[tf.Tensor], tfp.mcmc.TransitionKernel] | None, int, float, bool]:
        return None, 0, 0.0, False

    def guided_score(self, observation: Any, x: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:  # pragma: no cover
        raise NotImplementedError

    def guidance_key(self) -> tuple[Any, ...]:
        """What else, beyond (prior, operator, options), the traced guided score bakes in as constants (e.g. MMPS's
        power map); part of the compiled-function cache key."""
        return ()

    def compiled_guided_score(self, x: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
        """``guided_score(self.observation, x, σ)`` through the shared compiled function (see the class docstring)."""
        observation = self.observation
        try:
            cache = _COMPILED_GUIDANCE.setdefault(self.prior, {})
        except TypeError:  # a prior that cannot be weakly referenced: no sharing
            cache = self.__dict__.setdefault("_own_guidance_cache", {})
        key = (type(self).__name__, observation.operator_key, tuple(sorted(self.options.items())), self.guidance_key())
        fn = cache.get(key)
        if fn is None:
            template = observation

            def guided(x: tf.Tensor, sigma: tf.Tensor, data: tf.Tensor, variance: tf.Tensor, observed: tf.Tensor) -> tf.Tensor:
                return self.guided_score(template.with_arrays(data, variance, observed), x, sigma)

            fn = cache[key] = tf.function(guided)
        return fn(tf.convert_to_tensor(x, tf.float32), tf.cast(sigma, tf.float32), observation.data,
                  observation.noise_variance, observation.observed)

    def make_kernel(self) -> ReverseDiffusionKernel:
        make_corrector, k, cost, adapt = self._corrector()
        return ReverseDiffusionKernel(
            self.score_fn, self.schedule.sigmas, integrator=self.options["integrator"], score_cost=self.score_cost,
            make_corrector=make_corrector, num_corrector_steps=k, corrector_cost=cost, adapt_step_size=adapt,
            name=self.name, **self.kernel_options(),
        )

    def kernel_options(self) -> dict[str, Any]:
        """Extra :class:`ReverseDiffusionKernel` arguments of a subclass (e.g. MMPS's cheaper prior-only levels)."""
        return {}

    @property
    def num_transitions(self) -> int:
        return self.schedule.num_levels - 1

    @property
    def nfe_per_transition(self) -> float:
        """Score evaluations per chain of one transition (constant; see the module docstring)."""
        return self.make_kernel().nfe_per_transition

    @property
    def expected_nfe(self) -> float:
        """NFE per chain of a full run, bootstrap included (the final denoising is the driver's)."""
        return self.score_cost + self.num_transitions * self.nfe_per_transition

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        out["nfe_per_transition"] = float(self.nfe_per_transition)
        out["expected_nfe"] = float(self.expected_nfe)
        return out


class PredictorCorrector(DiffusionSampler):
    """``"pc"``: reverse-VE predictor + K Langevin/HMC corrector steps per level, tempered posterior score."""

    name: ClassVar[str] = "pc"
    score_cost = 1.0

    def score_fn(self, x: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
        return self.posterior.score(x, sigma)

    def _mass_fn(self) -> Callable[[tf.Tensor], Any]:
        from core.inference.kernels import FourierDiagonalMass, IdentityMass, posterior_mode_variance

        mass, _ = resolve_defaults(self.posterior, self.options["mass"], predictor="none")
        noise_var = effective_noise_variance(getattr(self.posterior, "likelihood", None))
        power_map = getattr(self.posterior, "power_map", None)
        if mass in ("fourier", "fourier_capped"):
            if power_map is None or noise_var is None:
                raise ValueError(f"mass={mass!r} needs a prior with a power_map and a likelihood with inverse_variance")
            power = tf.constant(np.asarray(power_map, dtype=np.float32))
            cap = 1.0 if mass == "fourier_capped" else None
            self._resolved_mass = mass
            return lambda sigma: FourierDiagonalMass(posterior_mode_variance(power, noise_var, sigma, prior_cap=cap))
        self._resolved_mass = "identity"
        return lambda sigma: IdentityMass()

    def _corrector(self) -> tuple[Callable[[tf.Tensor], tfp.mcmc.TransitionKernel] | None, int, float, bool]:
        k = int(self.options["num_corrector_steps"])
        if k == 0:
            return None, 0, 0.0, False
        from core.inference.kernels import ScoreHMC, ScoreULA

        mass_fn = self._mass_fn()
        kind = self.options["corrector"]
        leapfrog = int(self.options["num_leapfrog_steps"])
        # ε(σ) as for the annealed ULA / HMC (constant with the Fourier metric, which already scales with σ); the
        # Langevin corrector's own base step 0.05
        step_size = default_step_size("ula" if kind == "langevin" else "hmc", self._resolved_mass, self.schedule,
                                      self.posterior.geometry.num_pixels, leapfrog)
        base = self.options["corrector_step_size"]
        if base is None and kind == "langevin":
            base = LANGEVIN_STEP
        if base is not None:
            step_size = dataclasses.replace(step_size, base=float(base))

        posterior = self.posterior

        def make(sigma: tf.Tensor) -> tfp.mcmc.TransitionKernel:
            def score(x: tf.Tensor) -> tf.Tensor:
                return posterior.score(x, sigma)

            if kind == "langevin":
                return ScoreULA(score, step_size(sigma), momentum_scale=mass_fn(sigma))
            return ScoreHMC(score, step_size(sigma), leapfrog, momentum_scale=mass_fn(sigma),
                            num_integration_intervals=SIMPSON_INTERVALS)

        cost = 1.0 if kind == "langevin" else float(leapfrog + SIMPSON_INTERVALS - 1)
        return make, k, cost, kind == "hmc"

    def settings(self) -> dict[str, Any]:
        out = super().settings()
        if self.options["num_corrector_steps"] > 0:
            out["mass"] = getattr(self, "_resolved_mass", self.options["mass"])
        return out

