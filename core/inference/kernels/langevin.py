r"""Score-based Langevin kernels: unadjusted (ULA) and Metropolis-adjusted (MALA).

Preconditioned Langevin proposal with step ``ε`` and diffusion matrix ``A = M⁻¹`` (a diagonal metric from
:mod:`core.inference.kernels.mass`):

.. math::  x' = x + ε A s(x) + \sqrt{2ε}\, A^{1/2} z,\qquad z ∼ N(0, I),

i.e. ``q(x' | x) = N(x + εA s(x), 2εA)``. ULA accepts every proposal (biased by ``O(ε)``); MALA corrects with

.. math::  \log α = [\log π(x') − \log π(x)] + \log q(x | x') − \log q(x' | x),

``log q(x' | x) = −½|z|² + c`` and ``log q(x | x') = −(x − x' − εA s(x'))ᵀ M (x − x' − εA s(x')) / (4ε) + c``.
As in :mod:`core.inference.kernels.score_hmc`, ``log π(x') − log π(x)`` comes from the Simpson line integral of the score
(or from an exact ``log_prob_fn``); :class:`UncalibratedScoreLangevin` stores it in ``log_acceptance_correction``
with ``target_log_prob ≡ 0`` and :class:`ScoreMALA` = ``tfp.mcmc.MetropolisHastings`` of it. :class:`ScoreULA`
skips the line integral and reports ``is_accepted = True``.
"""
from __future__ import annotations

import collections
from typing import Any, Callable

import tensorflow as tf
import tensorflow_probability as tfp

from core.inference.kernels._common import check_event_ndims, event_axes, expand_step_size, score_line_integral, simpson_weights
from core.inference.kernels.mass import as_mass_matrix
from core.inference.kernels.score_hmc import _check_step_size

__all__ = ["UncalibratedScoreLangevin", "ScoreMALA", "ScoreULA", "UncalibratedScoreLangevinKernelResults"]

ScoreFn = Callable[[tf.Tensor], tf.Tensor]


class UncalibratedScoreLangevinKernelResults(
    collections.namedtuple(
        "UncalibratedScoreLangevinKernelResults",
        ["log_acceptance_correction", "target_log_prob", "grads_target_log_prob", "step_size", "seed"],
    )
):
    """Diagnostics and cache of the Langevin kernels (TFP field names)."""

    __slots__ = ()


class UncalibratedScoreLangevin(tfp.mcmc.TransitionKernel):
    """Langevin proposal from a score; MALA correction via the score line integral (see module doc).

    ``compute_acceptance=False`` skips the correction (ULA: ``log_acceptance_correction = 0``).
    """

    def __init__(
        self,
        score_fn: ScoreFn,
        step_size: Any,
        momentum_scale: Any = None,
        log_prob_fn: Callable[[tf.Tensor], tf.Tensor] | None = None,
        num_integration_intervals: int = 4,
        compute_acceptance: bool = True,
        event_ndims: int = 2,
        name: str | None = None,
    ) -> None:
        if not callable(score_fn):
            raise ValueError(f"score_fn must be callable, got {type(score_fn).__name__}")
        if log_prob_fn is not None and not callable(log_prob_fn):
            raise ValueError(f"log_prob_fn must be callable or None, got {type(log_prob_fn).__name__}")
        simpson_weights(num_integration_intervals)
        self._mass = as_mass_matrix(momentum_scale)
        self._parameters = dict(
            score_fn=score_fn,
            step_size=_check_step_size(step_size),
            momentum_scale=momentum_scale,
            log_prob_fn=log_prob_fn,
            num_integration_intervals=int(num_integration_intervals),
            compute_acceptance=bool(compute_acceptance),
            event_ndims=check_event_ndims(event_ndims),
            name=name,
        )

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
    def log_prob_fn(self) -> Callable[[tf.Tensor], tf.Tensor] | None:
        return self._parameters["log_prob_fn"]

    @property
    def event_ndims(self) -> int:
        return self._parameters["event_ndims"]

    @property
    def name(self) -> str | None:
        return self._parameters["name"]

    @property
    def is_calibrated(self) -> bool:
        return False

    def _batch_zeros(self, x: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(tf.zeros_like(x), axis=event_axes(self.event_ndims))

    def _target_log_prob(self, x: tf.Tensor) -> tf.Tensor:
        if self.log_prob_fn is None or not self._parameters["compute_acceptance"]:
            return self._batch_zeros(x)
        return tf.convert_to_tensor(self.log_prob_fn(x), dtype=x.dtype)

    def one_step(
        self, current_state: tf.Tensor, previous_kernel_results: UncalibratedScoreLangevinKernelResults, seed: Any = None
    ) -> tuple[tf.Tensor, UncalibratedScoreLangevinKernelResults]:
        with tf.name_scope(self.name or "score_langevin"):
            seed = tfp.random.sanitize_seed(seed)
            x0 = tf.convert_to_tensor(current_state, dtype=tf.float32)
            g0 = previous_kernel_results.grads_target_log_prob
            step_size = previous_kernel_results.step_size
            eps = expand_step_size(step_size, self.event_ndims)
            momentum = self._mass.sample_momentum(x0, seed)  # M^{1/2} z
            noise = self._mass.velocity(momentum)  # A^{1/2} z with A = M⁻¹
            x1 = x0 + eps * self._mass.velocity(g0) + tf.sqrt(2.0 * eps) * noise
            g1 = tf.convert_to_tensor(self.score_fn(x1), dtype=tf.float32)
            if self._parameters["compute_acceptance"]:
                # log q(x1|x0) = -½|z|², and |z|² = pᵀM⁻¹p for p = M^{1/2} z.
                log_q_forward = -self._mass.kinetic_energy(momentum, self.event_ndims)
                residual = x0 - x1 - eps * self._mass.velocity(g1)
                step_batch = tf.convert_to_tensor(step_size, dtype=tf.float32)  # scalar or batch-shaped
                log_q_reverse = -self._mass.mass_quadratic(residual, self.event_ndims) / (4.0 * step_batch)
                correction = log_q_reverse - log_q_forward
                if self.log_prob_fn is None:
                    correction += score_line_integral(
                        self.score_fn, x0, x1, g0, g1, self._parameters["num_integration_intervals"], self.event_ndims
                    )
            else:
                correction = self._batch_zeros(x0)
            results = UncalibratedScoreLangevinKernelResults(
                log_acceptance_correction=correction,
                target_log_prob=self._target_log_prob(x1),
                grads_target_log_prob=g1,
                step_size=step_size,
                seed=seed,
            )
            return x1, results

    def bootstrap_results(self, init_state: tf.Tensor) -> UncalibratedScoreLangevinKernelResults:
        x = tf.convert_to_tensor(init_state, dtype=tf.float32)
        return UncalibratedScoreLangevinKernelResults(
            log_acceptance_correction=self._batch_zeros(x),
            target_log_prob=self._target_log_prob(x),
            grads_target_log_prob=tf.convert_to_tensor(self.score_fn(x), dtype=tf.float32),
            step_size=tf.convert_to_tensor(self.step_size, dtype=tf.float32),
            seed=tf.zeros([2], dtype=tf.int32),
        )


class ScoreMALA(tfp.mcmc.TransitionKernel):
    """Metropolis-adjusted Langevin from a score: ``MetropolisHastings(UncalibratedScoreLangevin(...))``."""

    def __init__(
        self,
        score_fn: ScoreFn,
        step_size: Any,
        momentum_scale: Any = None,
        log_prob_fn: Callable[[tf.Tensor], tf.Tensor] | None = None,
        num_integration_intervals: int = 4,
        event_ndims: int = 2,
        name: str | None = None,
    ) -> None:
        self._impl = tfp.mcmc.MetropolisHastings(
            UncalibratedScoreLangevin(
                score_fn,
                step_size,
                momentum_scale=momentum_scale,
                log_prob_fn=log_prob_fn,
                num_integration_intervals=num_integration_intervals,
                compute_acceptance=True,
                event_ndims=event_ndims,
                name=name,
            )
        )
        params = dict(self._impl.inner_kernel.parameters)
        params.pop("compute_acceptance")
        self._parameters = params

    @property
    def parameters(self) -> dict[str, Any]:
        return self._parameters

    @property
    def inner_kernel(self) -> UncalibratedScoreLangevin:
        return self._impl.inner_kernel

    @property
    def step_size(self) -> Any:
        return self._parameters["step_size"]

    @property
    def is_calibrated(self) -> bool:
        return True

    def one_step(self, current_state: tf.Tensor, previous_kernel_results: Any, seed: Any = None) -> tuple[tf.Tensor, Any]:
        return self._impl.one_step(current_state, previous_kernel_results, seed=seed)

    def bootstrap_results(self, init_state: tf.Tensor) -> Any:
        return self._impl.bootstrap_results(init_state)


class ScoreULA(UncalibratedScoreLangevin):
    """Unadjusted Langevin algorithm (annealed Langevin dynamics when wrapped in an ``AnnealedKernel``)."""

    def __init__(
        self,
        score_fn: ScoreFn,
        step_size: Any,
        momentum_scale: Any = None,
        event_ndims: int = 2,
        name: str | None = None,
    ) -> None:
        super().__init__(
            score_fn, step_size, momentum_scale=momentum_scale, compute_acceptance=False, event_ndims=event_ndims, name=name
        )
        self._parameters = {k: self._parameters[k] for k in ("score_fn", "step_size", "momentum_scale", "event_ndims", "name")}

    @property
    def log_prob_fn(self) -> None:
        return None

    def _target_log_prob(self, x: tf.Tensor) -> tf.Tensor:
        return self._batch_zeros(x)

    def one_step(self, current_state: tf.Tensor, previous_kernel_results: Any, seed: Any = None) -> tuple[tf.Tensor, Any]:
        with tf.name_scope(self.name or "score_ula"):
            seed = tfp.random.sanitize_seed(seed)
            x0 = tf.convert_to_tensor(current_state, dtype=tf.float32)
            step_size = previous_kernel_results.step_size
            eps = expand_step_size(step_size, self.event_ndims)
            noise = self._mass.sqrt_inverse_mass_noise(x0, seed)
            x1 = x0 + eps * self._mass.velocity(previous_kernel_results.grads_target_log_prob) + tf.sqrt(2.0 * eps) * noise
            g1 = tf.convert_to_tensor(self.score_fn(x1), dtype=tf.float32)
            return x1, UncalibratedScoreLangevinKernelResults(
                log_acceptance_correction=self._batch_zeros(x0),
                target_log_prob=self._batch_zeros(x0),
                grads_target_log_prob=g1,
                step_size=step_size,
                seed=seed,
            )
