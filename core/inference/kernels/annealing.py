r"""Annealing over noise levels as a TFP transition kernel, and σ-dependent step sizes.

:class:`AnnealedKernel` walks a :mod:`core.inference.schedules` schedule ``σ_0 ≥ … ≥ σ_{L−1}``: transition number
``t`` (0-based, carried in the kernel results as ``step``) runs at level
``l(t) = min(#{j : e_j ≤ t}, L − 1)`` with ``e_j = Σ_{i≤j} n_i`` the cumulative step counts, i.e. ``n_0``
transitions at ``σ_0``, then ``n_1`` at ``σ_1``, …, and every transition past the end at ``σ_{L−1}``.
At each transition the inner kernel is rebuilt from a **σ tensor** by ``make_kernel_fn(sigma)``, so a single
traced/compiled graph serves every level. When the level changes, the inner kernel results are re-bootstrapped
at the current state (the cached score ``∇ log p_σ`` and any step size/metric belong to the old σ).

Optional predictor (``predictor_score_fn``, a ``(state, sigma) -> score`` callable): at the first transition of a
new level ``l`` the state is first moved by one Euler–Maruyama step of the reverse variance-exploding diffusion,
``x ← x + (σ_{l−1}² − σ_l²) s_{σ_{l−1}}(x) + (σ_{l−1}² − σ_l²)^{1/2} z`` (the predictor of a predictor–corrector
sampler; the inner kernel is the corrector). It is a non-equilibrium move between targets, like the change of σ
itself, and draws its noise from a seed split off the transition's seed.

Optional step-size adaptation across levels (``adapt_step_size=True``): the step size handed to HMC-like inner
kernels (those reading ``step_size`` from their results) is ``exp(λ) ε(σ)``, and after every transition
``λ ← λ + r (ᾱ − α*)`` with ``ᾱ`` the mean Metropolis acceptance probability ``min(1, e^{log_accept_ratio})`` over
chains, ``α*`` = ``target_accept_prob`` and ``r`` = ``adaptation_rate`` (a Robbins–Monro step in log ε). ``λ`` is
frozen during the last level (``freeze_last_level=True``), so the final level is a fixed, exactly
π-invariant kernel.

Step size rule (:class:`SigmaStepSize`, configurable): ``ε(σ) = ε₀ (σ² + τ²)^{a/2}``.
``a = 1`` with a floor ``τ`` (a data scale, e.g. the smallest posterior standard deviation) follows the
width of the σ-smoothed target with an identity metric — at large σ every direction has standard deviation
≈ σ/√2; ``a = 0`` (constant) is right when the metric already tracks the σ-dependent covariance (the
Fourier metric of :func:`core.inference.kernels.mass.posterior_mode_variance`); ``a = 2`` is the usual annealed-Langevin
rule ``ε ∝ σ²``.
"""
from __future__ import annotations

import collections
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import unnest

from core.inference.schedules import Schedule

__all__ = ["AnnealedKernel", "AnnealedKernelResults", "SigmaStepSize"]


class AnnealedKernelResults(
    collections.namedtuple(
        "AnnealedKernelResults", ["inner_results", "step", "level", "sigma", "log_step_scale", "seed"]
    )
):
    """``step``: transitions done so far (int32); ``level``/``sigma``: of the last transition;
    ``log_step_scale``: the adapted log factor on the σ-rule step size (0 without adaptation)."""

    __slots__ = ()


@dataclass(frozen=True)
class SigmaStepSize:
    """``ε(σ) = base · (σ² + floor²)^{exponent/2}`` (see the module docstring for choices)."""

    base: float
    floor: float = 0.0
    exponent: float = 1.0

    def __post_init__(self) -> None:
        if not (isinstance(self.base, (int, float, np.floating)) and math.isfinite(self.base) and self.base > 0):
            raise ValueError(f"step size base must be positive and finite, got {self.base!r}")
        if not (math.isfinite(self.floor) and self.floor >= 0):
            raise ValueError(f"step size floor must be a non-negative finite number, got {self.floor!r}")
        if not math.isfinite(self.exponent):
            raise ValueError(f"step size exponent must be finite, got {self.exponent!r}")
        if self.exponent != 0 and self.floor == 0 and self.exponent < 0:
            raise ValueError("a negative exponent needs a positive floor")

    def __call__(self, sigma: Any) -> tf.Tensor:
        sigma = tf.cast(sigma, tf.float32)
        if self.exponent == 0:
            return tf.fill(tf.shape(sigma), tf.constant(self.base, tf.float32))
        return self.base * tf.pow(tf.square(sigma) + self.floor**2, 0.5 * self.exponent)


class AnnealedKernel(tfp.mcmc.TransitionKernel):
    """Runs ``make_kernel_fn(sigma)`` kernels along a σ schedule (see the module docstring).

    Parameters
    ----------
    make_kernel_fn:
        ``sigma (scalar float32 tensor) -> TransitionKernel``; its results must keep the same structure for
        every σ (build step sizes and metrics as tensors of fixed shape from σ).
    schedule:
        A :class:`core.inference.schedules.Schedule`.
    """

    def __init__(
        self,
        make_kernel_fn: Callable[[tf.Tensor], tfp.mcmc.TransitionKernel],
        schedule: Schedule,
        adapt_step_size: bool = False,
        target_accept_prob: float = 0.7,
        adaptation_rate: float = 0.05,
        freeze_last_level: bool = True,
        predictor_score_fn: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None = None,
        name: str | None = None,
    ) -> None:
        if not callable(make_kernel_fn):
            raise ValueError(f"make_kernel_fn must be callable, got {type(make_kernel_fn).__name__}")
        if not isinstance(schedule, Schedule):
            raise ValueError(f"schedule must be a core.inference.schedules.Schedule, got {type(schedule).__name__}")
        if not 0.0 < float(target_accept_prob) < 1.0:
            raise ValueError(f"target_accept_prob must be in (0, 1), got {target_accept_prob!r}")
        if not (math.isfinite(float(adaptation_rate)) and float(adaptation_rate) > 0):
            raise ValueError(f"adaptation_rate must be positive and finite, got {adaptation_rate!r}")
        self._parameters = dict(
            make_kernel_fn=make_kernel_fn,
            schedule=schedule,
            adapt_step_size=bool(adapt_step_size),
            target_accept_prob=float(target_accept_prob),
            adaptation_rate=float(adaptation_rate),
            freeze_last_level=bool(freeze_last_level),
            predictor_score_fn=predictor_score_fn,
            name=name,
        )
        if predictor_score_fn is not None and not callable(predictor_score_fn):
            raise ValueError(f"predictor_score_fn must be callable (kappa, sigma) -> score, got {type(predictor_score_fn).__name__}")
        self._sigmas = schedule.sigmas
        self._ends = np.cumsum(schedule.steps_array).astype(np.int32)

    @property
    def parameters(self) -> dict[str, Any]:
        return self._parameters

    @property
    def make_kernel_fn(self) -> Callable[[tf.Tensor], tfp.mcmc.TransitionKernel]:
        return self._parameters["make_kernel_fn"]

    @property
    def schedule(self) -> Schedule:
        return self._parameters["schedule"]

    @property
    def name(self) -> str | None:
        return self._parameters["name"]

    @property
    def is_calibrated(self) -> bool:
        return False  # the target changes with σ

    def level_of_step(self, step: tf.Tensor) -> tf.Tensor:
        """Level (int32) of transition number ``step``; past the end, the last level."""
        ends = tf.constant(self._ends)
        level = tf.searchsorted(ends, tf.reshape(tf.cast(step, tf.int32), [1]), side="right")[0]
        return tf.minimum(tf.cast(level, tf.int32), len(self._sigmas) - 1)

    def sigma_of_level(self, level: tf.Tensor) -> tf.Tensor:
        return tf.gather(tf.constant(self._sigmas), level)

    def one_step(
        self, current_state: tf.Tensor, previous_kernel_results: AnnealedKernelResults, seed: Any = None
    ) -> tuple[tf.Tensor, AnnealedKernelResults]:
        with tf.name_scope(self.name or "annealed"):
            seed = tfp.random.sanitize_seed(seed)
            step = previous_kernel_results.step
            level = self.level_of_step(step)
            sigma = self.sigma_of_level(level)
            predictor = self._parameters["predictor_score_fn"]
            if predictor is not None:
                seed, predictor_seed = tfp.random.split_seed(seed)
                current_state = tf.cond(
                    tf.not_equal(level, previous_kernel_results.level),
                    lambda: self._reverse_diffusion(predictor, current_state, previous_kernel_results.sigma, sigma, predictor_seed),
                    lambda: current_state,
                )
            kernel = self.make_kernel_fn(sigma)
            inner_previous = tf.cond(
                tf.not_equal(level, previous_kernel_results.level),
                lambda: kernel.bootstrap_results(current_state),
                lambda: previous_kernel_results.inner_results,
            )
            log_scale = previous_kernel_results.log_step_scale
            adapt = self._parameters["adapt_step_size"] and self._adaptable(kernel, inner_previous)
            if adapt:
                base = tf.convert_to_tensor(unnest.get_innermost(kernel, "step_size"), dtype=tf.float32)
                inner_previous = unnest.replace_innermost(inner_previous, step_size=base * tf.exp(log_scale))
            next_state, inner = kernel.one_step(current_state, inner_previous, seed=seed)
            if adapt:
                log_ratio = unnest.get_innermost(inner, "log_accept_ratio")
                safe = tf.where(tf.math.is_finite(log_ratio), log_ratio, tf.constant(-np.inf, log_ratio.dtype))
                accept_prob = tf.reduce_mean(tf.exp(tf.minimum(safe, 0.0)))
                update = self._parameters["adaptation_rate"] * (accept_prob - self._parameters["target_accept_prob"])
                if self._parameters["freeze_last_level"]:
                    update = tf.where(level < len(self._sigmas) - 1, update, 0.0)
                log_scale = log_scale + update
            return next_state, AnnealedKernelResults(
                inner_results=inner, step=step + 1, level=level, sigma=sigma, log_step_scale=log_scale, seed=seed
            )

    @staticmethod
    def _reverse_diffusion(
        score_fn: Callable[[tf.Tensor, tf.Tensor], tf.Tensor], state: tf.Tensor, sigma_from: tf.Tensor, sigma_to: tf.Tensor, seed: Any
    ) -> tf.Tensor:
        """One Euler–Maruyama step of the reverse VE diffusion from ``sigma_from`` down to ``sigma_to``."""
        dvar = tf.maximum(tf.square(sigma_from) - tf.square(sigma_to), 0.0)
        noise = tf.random.stateless_normal(tf.shape(state), seed=seed, dtype=state.dtype)
        return state + dvar * score_fn(state, sigma_from) + tf.sqrt(dvar) * noise

    @staticmethod
    def _adaptable(kernel: tfp.mcmc.TransitionKernel, results: Any) -> bool:
        """Adapt only kernels that read ``step_size`` from their results and report ``log_accept_ratio``."""
        return (
            unnest.has_nested(kernel, "step_size")
            and unnest.has_nested(results, "step_size")
            and unnest.has_nested(results, "log_accept_ratio")
        )

    def bootstrap_results(self, init_state: tf.Tensor) -> AnnealedKernelResults:
        level = tf.constant(0, dtype=tf.int32)
        sigma = self.sigma_of_level(level)
        inner = self.make_kernel_fn(sigma).bootstrap_results(init_state)
        return AnnealedKernelResults(
            inner_results=inner,
            step=tf.constant(0, tf.int32),
            level=level,
            sigma=sigma,
            log_step_scale=tf.constant(0.0, tf.float32),
            seed=tf.zeros([2], tf.int32),
        )
