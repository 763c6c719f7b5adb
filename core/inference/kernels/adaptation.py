r"""Step-size adaptation as a wrapper kernel, in the style of ``tfp.mcmc.SimpleStepSizeAdaptation``.

:class:`StepSizeAdaptation` wraps any kernel whose results carry a step size and a log acceptance ratio
(reached through injectable getter/setter functions; by default TFP's HMC-like ones, i.e. the innermost
``step_size`` and ``log_accept_ratio`` fields). Before transition ``t`` it writes its current step size
``ε_t`` into the inner results; after it, with ``ᾱ_t`` the mean Metropolis acceptance probability
``min(1, e^{log_accept_ratio})`` over chains (a non-finite ratio counts as 0),

.. math::  \log ε_{t+1} = \log ε'_t + r\,(ᾱ_t − α^*)\quad (t < T_a),\qquad ε_{t+1} = ε'_t \quad (t ≥ T_a),

a Robbins–Monro step in ``log ε`` towards the target acceptance ``α* = target_accept_prob`` with rate
``r = adaptation_rate``, for the first ``T_a = num_adaptation_steps`` transitions; afterwards the kernel is the
fixed inner kernel. ``ε'_t`` is the step size the inner results report after the transition (read with the
getter), so an inner kernel that rescales its step size itself — :class:`~core.inference.kernels.AnnealedKernel`
carries the adapted factor ``ε/ε(σ)`` over when σ changes — keeps doing so.

It differs from TFP's wrapper only in the update: TFP multiplies ``ε`` by ``1 ± r`` according to the sign of
``ᾱ − α*``; the proportional step here settles without the ± ``r`` oscillation.
"""
from __future__ import annotations

import collections
from typing import Any, Callable

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.mcmc.simple_step_size_adaptation import (
    hmc_like_log_accept_prob_getter_fn,
    hmc_like_step_size_getter_fn,
    hmc_like_step_size_setter_fn,
)

from core.inference.kernels.base import HasParameters, exposes

__all__ = ["StepSizeAdaptation", "StepSizeAdaptationResults"]


class StepSizeAdaptationResults(
    collections.namedtuple("StepSizeAdaptationResults", ["inner_results", "target_accept_prob", "adaptation_rate", "step", "new_step_size"])
):
    """``new_step_size``: the step size of the next transition; ``step``: transitions done (int32)."""

    __slots__ = ()


@exposes("inner_kernel", "num_adaptation_steps", "target_accept_prob", "adaptation_rate", "name")
class StepSizeAdaptation(HasParameters, tfp.mcmc.TransitionKernel):
    """Adapts the inner kernel's step size towards ``target_accept_prob`` (see the module docstring).

    Parameters
    ----------
    inner_kernel: the kernel to adapt.
    num_adaptation_steps: transitions during which the step size adapts (then it is frozen).
    target_accept_prob: ``α*`` in (0, 1), default 0.7.
    adaptation_rate: ``r > 0``, default 0.05.
    step_size_setter_fn: ``(inner_results, new_step_size) -> inner_results``.
    step_size_getter_fn: ``inner_results -> step_size``.
    log_accept_prob_getter_fn: ``inner_results -> log acceptance ratio`` (batch shape).
    name: name scope.
    """

    def __init__(self, inner_kernel: tfp.mcmc.TransitionKernel, num_adaptation_steps: int, target_accept_prob: float = 0.7,
                 adaptation_rate: float = 0.05,
                 step_size_setter_fn: Callable[[Any, Any], Any] = hmc_like_step_size_setter_fn,
                 step_size_getter_fn: Callable[[Any], Any] = hmc_like_step_size_getter_fn,
                 log_accept_prob_getter_fn: Callable[[Any], Any] = hmc_like_log_accept_prob_getter_fn,
                 name: str | None = None) -> None:
        if isinstance(num_adaptation_steps, (bool, np.bool_)) or not isinstance(num_adaptation_steps, (int, np.integer)) \
                or num_adaptation_steps < 0:
            raise ValueError(f"num_adaptation_steps must be an integer ≥ 0, got {num_adaptation_steps!r}")
        if not 0.0 < float(target_accept_prob) < 1.0:
            raise ValueError(f"target_accept_prob must be in (0, 1), got {target_accept_prob!r}")
        if not (np.isfinite(float(adaptation_rate)) and float(adaptation_rate) > 0):
            raise ValueError(f"adaptation_rate must be positive and finite, got {adaptation_rate!r}")
        self._parameters = dict(
            inner_kernel=inner_kernel, num_adaptation_steps=int(num_adaptation_steps),
            target_accept_prob=float(target_accept_prob), adaptation_rate=float(adaptation_rate),
            step_size_setter_fn=step_size_setter_fn, step_size_getter_fn=step_size_getter_fn,
            log_accept_prob_getter_fn=log_accept_prob_getter_fn, name=name)

    @property
    def is_calibrated(self) -> bool:
        return self.inner_kernel.is_calibrated

    def one_step(self, current_state: Any, previous_kernel_results: StepSizeAdaptationResults,
                 seed: Any = None) -> tuple[Any, StepSizeAdaptationResults]:
        with tf.name_scope(self.name or "step_size_adaptation"):
            p = self._parameters
            inner_results = p["step_size_setter_fn"](previous_kernel_results.inner_results, previous_kernel_results.new_step_size)
            new_state, new_inner = self.inner_kernel.one_step(current_state, inner_results, seed=seed)
            log_ratio = tf.convert_to_tensor(p["log_accept_prob_getter_fn"](new_inner), dtype=tf.float32)
            safe = tf.where(tf.math.is_finite(log_ratio), log_ratio, tf.constant(-np.inf, tf.float32))
            accept_prob = tf.reduce_mean(tf.exp(tf.minimum(safe, 0.0)))
            adapting = previous_kernel_results.step < p["num_adaptation_steps"]
            log_factor = tf.where(adapting, previous_kernel_results.adaptation_rate
                                  * (accept_prob - previous_kernel_results.target_accept_prob), 0.0)
            step_size = tf.convert_to_tensor(p["step_size_getter_fn"](new_inner), dtype=tf.float32)
            return new_state, previous_kernel_results._replace(
                inner_results=new_inner, step=previous_kernel_results.step + 1, new_step_size=step_size * tf.exp(log_factor))

    def bootstrap_results(self, init_state: Any) -> StepSizeAdaptationResults:
        inner = self.inner_kernel.bootstrap_results(init_state)
        return StepSizeAdaptationResults(
            inner_results=inner,
            target_accept_prob=tf.constant(self.target_accept_prob, tf.float32),
            adaptation_rate=tf.constant(self.adaptation_rate, tf.float32),
            step=tf.constant(0, tf.int32),
            new_step_size=tf.convert_to_tensor(self._parameters["step_size_getter_fn"](inner), dtype=tf.float32),
        )
