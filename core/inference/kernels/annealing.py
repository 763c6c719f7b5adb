r"""Annealing over noise levels as a TFP transition kernel, and σ-dependent step sizes.

:class:`AnnealedKernel` walks a :mod:`core.inference.schedules` schedule ``σ_0 ≥ … ≥ σ_{L−1}`` and does nothing
else: transition number ``t`` (0-based, carried in the kernel results as ``step``) runs at level
``l(t) = min(#{j : e_j ≤ t}, L − 1)`` with ``e_j = Σ_{i≤j} n_i`` the cumulative step counts, i.e. ``n_0``
transitions at ``σ_0``, then ``n_1`` at ``σ_1``, …, and every transition past the end at ``σ_{L−1}``.
At each transition the inner kernel is rebuilt from a **σ tensor** by ``make_kernel_fn(sigma)``, so a single
traced/compiled graph serves every level. When the level changes:

1. the optional ``predictor`` (e.g. :class:`~core.inference.kernels.predictor.ReverseDiffusionPredictor`) moves the
   state from ``σ_{l−1}`` to ``σ_l``, with a seed split off the transition's seed;
2. the inner kernel results are re-bootstrapped at the current state (the cached score ``∇ log p_σ`` belongs
   to the old σ); if the results carry a ``step_size``, its ratio to the kernel's nominal step size is kept,
   ``ε_l = ε(σ_l) · ε_{l−1}/ε(σ_{l−1})``, so an outer
   :class:`~core.inference.kernels.adaptation.StepSizeAdaptation` (or ``tfp.mcmc.SimpleStepSizeAdaptation``)
   adapts one factor across all levels while the σ rule shapes ``ε`` within it.

The results count score evaluations per chain in ``nfe``: the bootstrap's one, each inner transition's
``num_score_evaluations``, and at each level change one for the re-bootstrap plus the predictor's.

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

from core.inference.kernels.base import HasParameters, exposes
from core.inference.schedules import Schedule

__all__ = ["AnnealedKernel", "AnnealedKernelResults", "SigmaStepSize"]


class AnnealedKernelResults(
    collections.namedtuple("AnnealedKernelResults", ["inner_results", "step", "level", "sigma", "nfe", "seed"])
):
    """``step``: transitions done so far (int32); ``level``/``sigma``: of the last transition; ``nfe``: score
    evaluations per chain so far (float32)."""

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


@exposes("make_kernel_fn", "schedule", "predictor", "name")
class AnnealedKernel(HasParameters, tfp.mcmc.TransitionKernel):
    """Runs ``make_kernel_fn(sigma)`` kernels along a σ schedule (see the module docstring).

    Parameters
    ----------
    make_kernel_fn:
        ``sigma (scalar float32 tensor) -> TransitionKernel``; its results must keep the same structure for
        every σ (build step sizes and metrics as tensors of fixed shape from σ). Its kernels should report
        ``num_score_evaluations`` (the score kernels of this package do); otherwise ``nfe`` is NaN.
    schedule:
        A :class:`core.inference.schedules.Schedule`.
    predictor:
        ``None`` or a callable ``(state, sigma_from, sigma_to, seed) -> state`` applied when the level changes
        (with a ``num_score_evaluations`` attribute for the ``nfe`` count).
    name:
        Name scope of the kernel's ops.
    """

    def __init__(self, make_kernel_fn: Callable[[tf.Tensor], tfp.mcmc.TransitionKernel], schedule: Schedule,
                 predictor: Callable[..., tf.Tensor] | None = None, name: str | None = None) -> None:
        if not callable(make_kernel_fn):
            raise ValueError(f"make_kernel_fn must be callable, got {type(make_kernel_fn).__name__}")
        if not isinstance(schedule, Schedule):
            raise ValueError(f"schedule must be a core.inference.schedules.Schedule, got {type(schedule).__name__}")
        if predictor is not None and not callable(predictor):
            raise ValueError(f"predictor must be None or callable (state, sigma_from, sigma_to, seed), got {type(predictor).__name__}")
        self._parameters = dict(make_kernel_fn=make_kernel_fn, schedule=schedule, predictor=predictor, name=name)
        self._sigmas = schedule.sigmas
        self._ends = np.cumsum(schedule.steps_array).astype(np.int32)

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

    @staticmethod
    def _score_evaluations(kernel: Any) -> float:
        count = unnest.get_innermost(kernel, "num_score_evaluations", None)
        return float("nan") if count is None else float(count)

    def _rebootstrap(self, kernel: tfp.mcmc.TransitionKernel, state: tf.Tensor, previous: AnnealedKernelResults) -> Any:
        """Inner results at the new level, keeping the step size's ratio to its nominal value (module doc)."""
        fresh = kernel.bootstrap_results(state)
        if not (unnest.has_nested(fresh, "step_size") and unnest.has_nested(kernel, "step_size")):
            return fresh
        old_nominal = unnest.get_innermost(self.make_kernel_fn(previous.sigma), "step_size")
        ratio = tf.cast(unnest.get_innermost(previous.inner_results, "step_size"), tf.float32) / tf.cast(old_nominal, tf.float32)
        new_step = tf.cast(unnest.get_innermost(fresh, "step_size"), tf.float32) * ratio
        return unnest.replace_innermost(fresh, step_size=new_step)

    def one_step(
        self, current_state: tf.Tensor, previous_kernel_results: AnnealedKernelResults, seed: Any = None
    ) -> tuple[tf.Tensor, AnnealedKernelResults]:
        with tf.name_scope(self.name or "annealed"):
            seed = tfp.random.sanitize_seed(seed)
            previous = previous_kernel_results
            level = self.level_of_step(previous.step)
            sigma = self.sigma_of_level(level)
            changed = tf.not_equal(level, previous.level)
            nfe_change = 1.0
            if self.predictor is not None:
                seed, predictor_seed = tfp.random.split_seed(seed)
                current_state = tf.cond(
                    changed, lambda: self.predictor(current_state, previous.sigma, sigma, predictor_seed), lambda: current_state)
                nfe_change += float(getattr(self.predictor, "num_score_evaluations", float("nan")))
            kernel = self.make_kernel_fn(sigma)
            inner_previous = tf.cond(changed, lambda: self._rebootstrap(kernel, current_state, previous),
                                     lambda: previous.inner_results)
            next_state, inner = kernel.one_step(current_state, inner_previous, seed=seed)
            nfe = previous.nfe + self._score_evaluations(kernel) + tf.where(changed, nfe_change, 0.0)
            return next_state, AnnealedKernelResults(inner_results=inner, step=previous.step + 1, level=level, sigma=sigma,
                                                     nfe=nfe, seed=seed)

    def bootstrap_results(self, init_state: tf.Tensor) -> AnnealedKernelResults:
        level = tf.constant(0, dtype=tf.int32)
        sigma = self.sigma_of_level(level)
        return AnnealedKernelResults(
            inner_results=self.make_kernel_fn(sigma).bootstrap_results(init_state),
            step=tf.constant(0, tf.int32),
            level=level,
            sigma=sigma,
            nfe=tf.constant(1.0, tf.float32),  # the score at the initial state
            seed=tf.zeros([2], tf.int32),
        )
