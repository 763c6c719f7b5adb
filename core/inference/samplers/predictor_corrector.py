r"""Predictor–corrector sampling along the reverse variance-exploding diffusion (``"pc"``), and the reverse-diffusion
kernel the DPS and MMPS samplers share.

Levels ``σ_0 ≥ σ_1 ≥ … ≥ σ_{L−1}`` of the schedule; the chains start at ``σ_0`` (the driver's init adds noise of
std ``σ_0``) and transition ``i`` (``i = 0 … L−2``) moves them from ``σ_i`` to ``σ_{i+1}`` with a score
``s(x, σ) ≈ ∇ log p_σ(x | y)``:

* **Euler–Maruyama** (``integrator="euler_maruyama"``) of the reverse VE SDE, ``Δ_i = σ_i² − σ_{i+1}²``:
  ``x ← x + Δ_i s(x, σ_i) + √Δ_i z``  (1 score evaluation);
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
import math
import weakref
from typing import Any, Callable, ClassVar

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import unnest

from core.inference.samplers.annealed import effective_noise_variance
from core.inference.samplers.base import PosteriorSampler
from core.inference.samplers.diffusion_options import INTEGRATORS
from core.inference.schedules import Schedule

__all__ = ["ReverseDiffusionKernel", "ReverseDiffusionResults", "PredictorCorrector", "DiffusionSampler", "SIMPSON_INTERVALS"]

ScoreFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
SIMPSON_INTERVALS = 4
LANGEVIN_STEP = 0.05
TARGET_ACCEPT = 0.7
ADAPTATION_RATE = 0.05


class ReverseDiffusionResults(
    collections.namedtuple(
        "ReverseDiffusionResults",
        ["step", "level", "sigma", "nfe", "grads_target_log_prob", "is_accepted", "step_size", "log_step_scale", "seed"],
    )
):
    """``step`` transitions done; ``level``/``sigma`` of the state; ``nfe`` per chain so far; ``grads_target_log_prob`` the cached
    ``s(state, sigma)``; ``is_accepted`` ``(C,)`` of the last corrector step (all true without a Metropolis test);
    ``step_size`` of the corrector (0 without); ``log_step_scale`` the adapted log factor on it."""

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
        correctors only), frozen at the last level.
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
        self._sigmas = sigmas
        self._parameters = dict(
            score_fn=score_fn, sigmas=sigmas, integrator=integrator, score_cost=float(score_cost),
            make_corrector=make_corrector, num_corrector_steps=int(num_corrector_steps),
            corrector_cost=float(corrector_cost), adapt_step_size=bool(adapt_step_size),
            target_accept_prob=float(target_accept_prob), event_ndims=int(event_ndims), name=name,
        )

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
            if p["integrator"] == "euler_maruyama":
                dvar = tf.maximum(tf.square(sigma_from) - tf.square(sigma_to), 0.0)
                noise = tf.random.stateless_normal(tf.shape(x), seed=predictor_seed, dtype=tf.float32)
                x = x + dvar * prev.grads_target_log_prob + tf.sqrt(dvar) * noise
            else:
                h = sigma_to - sigma_from
                d0 = -sigma_from * prev.grads_target_log_prob
                x_euler = x + h * d0
                d1 = -sigma_to * tf.convert_to_tensor(score_fn(x_euler, sigma_to), tf.float32)
                x = x + 0.5 * h * (d0 + d1)
                nfe = nfe + p["score_cost"]
            level = tf.cast(i + 1, tf.int32)
            log_scale = prev.log_step_scale
            if p["num_corrector_steps"] == 0:
                score = tf.convert_to_tensor(score_fn(x, sigma_to), tf.float32)
                nfe = nfe + p["score_cost"]
                accepted = tf.ones(self._batch_shape(x), tf.bool)
                step_size = tf.constant(0.0, tf.float32)
            else:
                x, score, accepted, step_size, log_scale = self._correct(x, sigma_to, level, log_scale, corrector_seed)
                nfe = nfe + p["score_cost"] + p["num_corrector_steps"] * p["corrector_cost"]
            return x, ReverseDiffusionResults(
                step=prev.step + 1, level=level, sigma=sigma_to, nfe=nfe, grads_target_log_prob=score, is_accepted=accepted,
                step_size=step_size, log_step_scale=log_scale, seed=seed,
            )

    def _correct(self, x: tf.Tensor, sigma: tf.Tensor, level: tf.Tensor, log_scale: tf.Tensor, seed: Any) -> tuple[tf.Tensor, ...]:
        p = self._parameters
        kernel = p["make_corrector"](sigma)
        inner = kernel.bootstrap_results(x)
        adapt = p["adapt_step_size"] and unnest.has_nested(inner, "step_size") and unnest.has_nested(inner, "log_accept_ratio")
        base = tf.convert_to_tensor(unnest.get_innermost(inner, "step_size"), tf.float32) if unnest.has_nested(inner, "step_size") else None
        last_level = tf.constant(self.num_transitions, tf.int32)

        def body(k: tf.Tensor, x: tf.Tensor, inner: Any, log_scale: tf.Tensor, accepted: tf.Tensor) -> tuple[Any, ...]:
            if adapt:
                inner = unnest.replace_innermost(inner, step_size=base * tf.exp(log_scale))
            step_seed = tf.random.experimental.stateless_fold_in(seed, k)
            x, inner = kernel.one_step(x, inner, seed=step_seed)
            if unnest.has_nested(inner, "is_accepted"):
                accepted = tf.cast(unnest.get_innermost(inner, "is_accepted"), tf.bool)
            if adapt:
                log_ratio = unnest.get_innermost(inner, "log_accept_ratio")
                safe = tf.where(tf.math.is_finite(log_ratio), log_ratio, tf.constant(-np.inf, log_ratio.dtype))
                mean_accept = tf.reduce_mean(tf.exp(tf.minimum(safe, 0.0)))
                update = ADAPTATION_RATE * (mean_accept - p["target_accept_prob"])
                log_scale = log_scale + tf.where(level < last_level, update, 0.0)
            return k + 1, x, inner, log_scale, accepted

        accepted0 = tf.ones(self._batch_shape(x), tf.bool)
        _, x, inner, log_scale, accepted = tf.while_loop(
            lambda k, *_: k < p["num_corrector_steps"], body, (tf.constant(0), x, inner, log_scale, accepted0),
            maximum_iterations=p["num_corrector_steps"],
        )
        score = tf.convert_to_tensor(unnest.get_innermost(inner, "grads_target_log_prob"), tf.float32)
        step = unnest.get_innermost(inner, "step_size") if base is not None else tf.constant(0.0)
        return x, score, accepted, tf.reduce_mean(tf.cast(step, tf.float32)), log_scale

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
            log_step_scale=tf.constant(0.0, tf.float32),
            seed=tf.zeros([2], tf.int32),
        )


#: compiled guided scores, per prior object: tracing a VJP through the score network costs tens of seconds, so one
#: trace serves every observation with the same operator (the data enter as arguments, not as constants).
_COMPILED_GUIDANCE: "weakref.WeakKeyDictionary[Any, dict[Any, Any]]" = weakref.WeakKeyDictionary()


class DiffusionSampler(PosteriorSampler):
    """Shared plumbing of ``"pc"``, ``"dps"``, ``"mmps"``: ``L − 1`` transitions of a :class:`ReverseDiffusionKernel`.

    Subclasses give ``score_fn``/``score_cost`` (and, for PC, a corrector). Guided samplers (DPS, MMPS) implement
    ``guided_score(observation, x, sigma)``; :meth:`compiled_guided_score` wraps it in one ``tf.function`` per
    (prior, operator, options), shared by every sampler built on the same prior.
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

    def compiled_guided_score(self, x: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
        """``guided_score(self.observation, x, σ)`` through the shared compiled function (see the class docstring)."""
        observation = self.observation
        try:
            cache = _COMPILED_GUIDANCE.setdefault(self.prior, {})
        except TypeError:  # a prior that cannot be weakly referenced: no sharing
            cache = self.__dict__.setdefault("_own_guidance_cache", {})
        key = (type(self).__name__, observation.operator_key, tuple(sorted(self.options.items())))
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
            name=self.name,
        )

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

        mass = self.options["mass"]
        learned = not bool(getattr(self.posterior, "has_log_prob", True))
        noise_var = effective_noise_variance(getattr(self.posterior, "likelihood", None))
        power_map = getattr(self.posterior, "power_map", None)
        if mass == "auto":
            mass = "identity" if power_map is None or noise_var is None else ("fourier_capped" if learned else "fourier")
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
        identity = self._resolved_mass == "identity"
        sigma_floor = float(self.schedule.last_sigma)
        kind = self.options["corrector"]
        leapfrog = int(self.options["num_leapfrog_steps"])
        d = float(self.posterior.geometry.num_pixels)
        base = self.options["corrector_step_size"]
        if base is None:
            base = LANGEVIN_STEP if kind == "langevin" else min(1.0, (4.0 / (leapfrog * math.sqrt(d))) ** (1.0 / 3.0))
        base = float(base)
        exponent = 2.0 if kind == "langevin" else 1.0

        def step_size(sigma: tf.Tensor) -> tf.Tensor:
            if not identity:  # the Fourier metric already scales with σ
                return tf.constant(base, tf.float32)
            return base * tf.pow(tf.square(sigma) + sigma_floor**2, 0.5 * exponent)

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

