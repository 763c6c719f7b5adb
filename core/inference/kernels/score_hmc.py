r"""Score-based Hamiltonian Monte Carlo as TFP transition kernels.

Target ``π(x)`` known only through its score ``s(x) = ∇ log π(x)`` (a network, or the analytic
posterior score). Hamiltonian ``H(x, p) = −log π(x) + ½ pᵀM⁻¹p`` with a diagonal metric ``M``
(:mod:`core.inference.kernels.mass`). One transition:

1. draw ``p₀ ~ N(0, M)``;
2. ``L`` leapfrog steps of size ``ε`` with the score in place of ``∇ log π``:
   ``p ← p + ½ε s(x)``, ``x ← x + ε M⁻¹p``, ``p ← p + ½ε s(x)``;
3. Metropolis correction with ``log α = −ΔH = [log π(x') − log π(x)] + K(p₀) − K(p_L)``.

:class:`UncalibratedScoreHMC` returns the proposal and stores ``log_acceptance_correction = K(p₀) −
K(p_L) + Δ`` with ``Δ`` the Simpson line integral of the score along the segment ``x → x'``
(:func:`core.inference.kernels._common.score_line_integral`) and keeps ``target_log_prob ≡ 0``; wrapped in
``tfp.mcmc.MetropolisHastings`` (``log_accept_ratio = target_log_prob' − target_log_prob +
log_acceptance_correction``) this is an exact Metropolis-adjusted HMC for a conservative score field
up to the quadrature error (zero for Gaussian targets). When an exact ``log_prob_fn`` is given it is used
instead (``target_log_prob = log π``, correction = kinetic-energy change only).
:class:`ScoreHMC` is that calibrated composition.

Kernel results follow TFP's ``UncalibratedHamiltonianMonteCarloKernelResults`` field names; the step size is
read from ``previous_kernel_results.step_size`` so that ``tfp.mcmc.SimpleStepSizeAdaptation`` and
``DualAveragingStepSizeAdaptation`` can adapt it. States are ``(*batch, *event)`` tensors, ``event_ndims``
trailing axes (2 for maps), one independent chain per batch entry.
"""
from __future__ import annotations

import collections
from typing import Any, Callable

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from core.inference.kernels._common import check_event_ndims, event_axes, expand_step_size, score_line_integral, simpson_weights
from core.inference.kernels.mass import as_mass_matrix

__all__ = ["UncalibratedScoreHMC", "ScoreHMC", "UncalibratedScoreHMCKernelResults"]

ScoreFn = Callable[[tf.Tensor], tf.Tensor]


class UncalibratedScoreHMCKernelResults(
    collections.namedtuple(
        "UncalibratedScoreHMCKernelResults",
        [
            "log_acceptance_correction",
            "target_log_prob",
            "grads_target_log_prob",
            "initial_momentum",
            "final_momentum",
            "step_size",
            "num_leapfrog_steps",
            "seed",
        ],
    )
):
    """Diagnostics and cache of :class:`UncalibratedScoreHMC` (TFP HMC field names)."""

    __slots__ = ()


def _check_step_size(step_size: Any) -> Any:
    if isinstance(step_size, tf.Tensor) and not tf.executing_eagerly():
        return step_size
    value = np.asarray(step_size, dtype=np.float64)
    if value.size == 0 or not np.all(np.isfinite(value)) or np.any(value <= 0):
        raise ValueError(f"step_size must be positive and finite, got {step_size!r}")
    return step_size


def _check_leapfrog(num_leapfrog_steps: Any) -> int:
    if isinstance(num_leapfrog_steps, (bool, np.bool_)) or not isinstance(num_leapfrog_steps, (int, np.integer)):
        raise ValueError(f"num_leapfrog_steps must be an integer ≥ 1, got {num_leapfrog_steps!r}")
    if num_leapfrog_steps < 1:
        raise ValueError(f"num_leapfrog_steps must be an integer ≥ 1, got {num_leapfrog_steps!r}")
    return int(num_leapfrog_steps)


class UncalibratedScoreHMC(tfp.mcmc.TransitionKernel):
    """HMC proposal driven by a score function; Metropolis correction from the score line integral.

    Parameters
    ----------
    score_fn:
        ``x -> ∇ log π(x)``, same shape as ``x``.
    step_size:
        Leapfrog step ``ε`` > 0: a scalar or a per-chain tensor of the batch shape.
    num_leapfrog_steps:
        Number of leapfrog steps ``L`` ≥ 1 (Python int).
    momentum_scale:
        The metric: ``None`` (identity), a :class:`~core.inference.kernels.mass.MassMatrix` (e.g.
        ``FourierDiagonalMass`` from the prior power spectrum) or a per-pixel momentum standard deviation.
    log_prob_fn:
        Optional exact ``log π`` (batch shape out); when given it replaces the line integral.
    num_integration_intervals:
        Even number of Simpson intervals for the line integral (default 4: 3 extra score evaluations).
    event_ndims:
        Number of trailing event axes of the state (2 for maps).
    """

    def __init__(
        self,
        score_fn: ScoreFn,
        step_size: Any,
        num_leapfrog_steps: int,
        momentum_scale: Any = None,
        log_prob_fn: Callable[[tf.Tensor], tf.Tensor] | None = None,
        num_integration_intervals: int = 4,
        event_ndims: int = 2,
        name: str | None = None,
    ) -> None:
        if not callable(score_fn):
            raise ValueError(f"score_fn must be callable, got {type(score_fn).__name__}")
        if log_prob_fn is not None and not callable(log_prob_fn):
            raise ValueError(f"log_prob_fn must be callable or None, got {type(log_prob_fn).__name__}")
        simpson_weights(num_integration_intervals)  # validates
        self._mass = as_mass_matrix(momentum_scale)
        self._parameters = dict(
            score_fn=score_fn,
            step_size=_check_step_size(step_size),
            num_leapfrog_steps=_check_leapfrog(num_leapfrog_steps),
            momentum_scale=momentum_scale,
            log_prob_fn=log_prob_fn,
            num_integration_intervals=int(num_integration_intervals),
            event_ndims=check_event_ndims(event_ndims),
            name=name,
        )

    # ----------------------------------------------------------------- properties
    @property
    def parameters(self) -> dict[str, Any]:
        return self._parameters

    @property
    def score_fn(self) -> ScoreFn:
        return self._parameters["score_fn"]

    @property
    def step_size(self) -> Any:
        return self._parameters["step_size"]

    @property
    def num_leapfrog_steps(self) -> int:
        return self._parameters["num_leapfrog_steps"]

    @property
    def log_prob_fn(self) -> Callable[[tf.Tensor], tf.Tensor] | None:
        return self._parameters["log_prob_fn"]

    @property
    def mass(self) -> Any:
        return self._mass

    @property
    def event_ndims(self) -> int:
        return self._parameters["event_ndims"]

    @property
    def name(self) -> str | None:
        return self._parameters["name"]

    @property
    def is_calibrated(self) -> bool:
        return False

    # ------------------------------------------------------------------ helpers
    def _batch_zeros(self, x: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(tf.zeros_like(x), axis=event_axes(self.event_ndims))

    def _target_log_prob(self, x: tf.Tensor) -> tf.Tensor:
        if self.log_prob_fn is None:
            return self._batch_zeros(x)
        return tf.convert_to_tensor(self.log_prob_fn(x), dtype=x.dtype)

    # ------------------------------------------------------------------ kernel API
    def one_step(
        self, current_state: tf.Tensor, previous_kernel_results: UncalibratedScoreHMCKernelResults, seed: Any = None
    ) -> tuple[tf.Tensor, UncalibratedScoreHMCKernelResults]:
        with tf.name_scope(self.name or "score_hmc"):
            seed = tfp.random.sanitize_seed(seed)
            x0 = tf.convert_to_tensor(current_state, dtype=tf.float32)
            g0 = previous_kernel_results.grads_target_log_prob
            step_size = previous_kernel_results.step_size
            eps = expand_step_size(step_size, self.event_ndims)
            p0 = self._mass.sample_momentum(x0, seed)

            def leapfrog(i: tf.Tensor, x: tf.Tensor, p: tf.Tensor, g: tf.Tensor) -> tuple[tf.Tensor, ...]:
                p_half = p + 0.5 * eps * g
                x_new = x + eps * self._mass.velocity(p_half)
                g_new = self.score_fn(x_new)
                return i + 1, x_new, p_half + 0.5 * eps * g_new, g_new

            _, x1, p1, g1 = tf.while_loop(
                lambda i, *_: i < self.num_leapfrog_steps,
                leapfrog,
                (tf.constant(0), x0, p0, g0),
                maximum_iterations=self.num_leapfrog_steps,
            )
            kinetic_change = self._mass.kinetic_energy(p0, self.event_ndims) - self._mass.kinetic_energy(p1, self.event_ndims)
            if self.log_prob_fn is None:
                log_density_change = score_line_integral(
                    self.score_fn, x0, x1, g0, g1, self._parameters["num_integration_intervals"], self.event_ndims
                )
                correction = kinetic_change + log_density_change
            else:
                correction = kinetic_change
            results = UncalibratedScoreHMCKernelResults(
                log_acceptance_correction=correction,
                target_log_prob=self._target_log_prob(x1),
                grads_target_log_prob=g1,
                initial_momentum=p0,
                final_momentum=p1,
                step_size=step_size,
                num_leapfrog_steps=previous_kernel_results.num_leapfrog_steps,
                seed=seed,
            )
            return x1, results

    def bootstrap_results(self, init_state: tf.Tensor) -> UncalibratedScoreHMCKernelResults:
        with tf.name_scope((self.name or "score_hmc") + "_bootstrap"):
            x = tf.convert_to_tensor(init_state, dtype=tf.float32)
            zeros = tf.zeros_like(x)
            return UncalibratedScoreHMCKernelResults(
                log_acceptance_correction=self._batch_zeros(x),
                target_log_prob=self._target_log_prob(x),
                grads_target_log_prob=tf.convert_to_tensor(self.score_fn(x), dtype=tf.float32),
                initial_momentum=zeros,
                final_momentum=zeros,
                step_size=tf.convert_to_tensor(self.step_size, dtype=tf.float32),
                num_leapfrog_steps=tf.convert_to_tensor(self.num_leapfrog_steps, dtype=tf.int32),
                seed=tf.zeros([2], dtype=tf.int32),
            )


class ScoreHMC(tfp.mcmc.TransitionKernel):
    """Metropolis-adjusted score HMC: ``tfp.mcmc.MetropolisHastings(UncalibratedScoreHMC(...))``.

    Same arguments as :class:`UncalibratedScoreHMC`; results are TFP ``MetropolisHastingsKernelResults``
    (``is_accepted``, ``log_accept_ratio``, ``accepted_results``, ``proposed_results``, …).
    """

    def __init__(
        self,
        score_fn: ScoreFn,
        step_size: Any,
        num_leapfrog_steps: int,
        momentum_scale: Any = None,
        log_prob_fn: Callable[[tf.Tensor], tf.Tensor] | None = None,
        num_integration_intervals: int = 4,
        event_ndims: int = 2,
        name: str | None = None,
    ) -> None:
        self._impl = tfp.mcmc.MetropolisHastings(
            UncalibratedScoreHMC(
                score_fn,
                step_size,
                num_leapfrog_steps,
                momentum_scale=momentum_scale,
                log_prob_fn=log_prob_fn,
                num_integration_intervals=num_integration_intervals,
                event_ndims=event_ndims,
                name=name,
            )
        )
        self._parameters = dict(self._impl.inner_kernel.parameters)

    @property
    def parameters(self) -> dict[str, Any]:
        return self._parameters

    @property
    def inner_kernel(self) -> UncalibratedScoreHMC:
        return self._impl.inner_kernel

    @property
    def step_size(self) -> Any:
        return self._parameters["step_size"]

    @property
    def num_leapfrog_steps(self) -> int:
        return self._parameters["num_leapfrog_steps"]

    @property
    def is_calibrated(self) -> bool:
        return True

    def one_step(self, current_state: tf.Tensor, previous_kernel_results: Any, seed: Any = None) -> tuple[tf.Tensor, Any]:
        return self._impl.one_step(current_state, previous_kernel_results, seed=seed)

    def bootstrap_results(self, init_state: tf.Tensor) -> Any:
        return self._impl.bootstrap_results(init_state)
