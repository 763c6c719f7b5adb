r"""What every score-driven kernel shares: its constructor checks, its parameters and properties, and the
Metropolis-adjusted composition ``MetropolisHastings(Uncalibrated…)`` (the pattern of TFP's ``hmc.py``).

A :class:`ScoreKernel` targets ``π(x)`` known through its score ``s(x) = ∇ log π(x)`` (and optionally an exact
``log π``). It stores its constructor arguments in ``parameters`` (TFP convention) and offers:

* ``_start(state, results, seed)`` — the sanitised seed, ``x₀``, the cached score ``s(x₀)``, the step size
  and its event-broadcast form, the common first lines of every ``one_step``;
* ``_target_log_prob(x)`` — ``log π(x)`` when ``log_prob_fn`` is given, else zeros of the batch shape (then the
  whole ``log π(x') − log π(x)`` is carried by ``log_acceptance_correction``);
* ``_log_density_change(x₀, x₁, s₀, s₁)`` — the Simpson line integral ``∫₀¹ s(x(t))·(x₁ − x₀) dt`` of
  :func:`core.inference.kernels._common.score_line_integral` without ``log_prob_fn``, 0 with it;
* ``num_score_evaluations`` — score evaluations per chain of one transition (``bootstrap_results`` costs one).

:class:`MetropolisAdjusted` wraps an uncalibrated score kernel in ``tfp.mcmc.MetropolisHastings``; its results
are TFP's ``MetropolisHastingsKernelResults`` (``is_accepted``, ``log_accept_ratio``, ``accepted_results`` …).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from core.inference.kernels._common import check_event_ndims, event_axes, expand_step_size, score_line_integral, simpson_weights
from core.inference.kernels.mass import MassMatrix, as_mass_matrix

__all__ = ["ScoreKernel", "MetropolisAdjusted", "HasParameters", "exposes", "parameter", "check_step_size", "check_positive_int"]

ScoreFn = Callable[[tf.Tensor], tf.Tensor]


def parameter(key: str, doc: str | None = None) -> property:
    """A read-only property returning ``self.parameters[key]`` (one line per documented kernel parameter)."""
    return property(lambda self: self.parameters[key], doc=doc or f"The ``{key}`` constructor argument.")


class HasParameters:
    """TFP's ``parameters`` convention: the constructor arguments in ``self._parameters``."""

    _parameters: dict[str, Any]

    @property
    def parameters(self) -> dict[str, Any]:
        return self._parameters


def exposes(*keys: str) -> Callable[[type], type]:
    """Class decorator: a read-only property per constructor argument in ``keys`` (see :func:`parameter`)."""

    def decorate(cls: type) -> type:
        for key in keys:
            setattr(cls, key, parameter(key))
        return cls

    return decorate


def check_step_size(step_size: Any) -> Any:
    """Positive, finite step size(s); traced tensors (inside ``tf.function``) pass unchecked."""
    if isinstance(step_size, tf.Tensor) and not tf.executing_eagerly():
        return step_size
    value = np.asarray(step_size, dtype=np.float64)
    if value.size == 0 or not np.all(np.isfinite(value)) or np.any(value <= 0):
        raise ValueError(f"step_size must be positive and finite, got {step_size!r}")
    return step_size


def check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")
    return int(value)


@exposes("score_fn", "step_size", "log_prob_fn", "num_integration_intervals", "event_ndims", "name")
class ScoreKernel(HasParameters, tfp.mcmc.TransitionKernel):
    """Base of the uncalibrated score kernels (see the module docstring).

    Parameters
    ----------
    score_fn: ``x -> ∇ log π(x)``, same shape as ``x``.
    step_size: ``ε > 0``, a scalar or a per-chain tensor of the batch shape.
    momentum_scale: the metric — ``None`` (identity), a :class:`~core.inference.kernels.mass.MassMatrix` or a
        per-pixel momentum standard deviation (:func:`~core.inference.kernels.mass.as_mass_matrix`).
    log_prob_fn: optional exact ``log π`` (batch shape out); it replaces the score line integral.
    num_integration_intervals: even number of Simpson intervals of the line integral (default 4).
    event_ndims: trailing event axes of the state (2 for maps, 1 for points).
    name: name scope of the kernel's ops.
    **extra: further parameters of a subclass, stored in ``parameters`` after the common ones.
    """

    def __init__(self, score_fn: ScoreFn, step_size: Any, momentum_scale: Any = None,
                 log_prob_fn: Callable[[tf.Tensor], tf.Tensor] | None = None, num_integration_intervals: int = 4,
                 event_ndims: int = 2, name: str | None = None, **extra: Any) -> None:
        if not callable(score_fn):
            raise ValueError(f"score_fn must be callable, got {type(score_fn).__name__}")
        if log_prob_fn is not None and not callable(log_prob_fn):
            raise ValueError(f"log_prob_fn must be callable or None, got {type(log_prob_fn).__name__}")
        simpson_weights(num_integration_intervals)  # validates: even integer ≥ 2
        self._mass = as_mass_matrix(momentum_scale)
        self._parameters = dict(score_fn=score_fn, step_size=check_step_size(step_size), **extra,
                                momentum_scale=momentum_scale, log_prob_fn=log_prob_fn,
                                num_integration_intervals=int(num_integration_intervals),
                                event_ndims=check_event_ndims(event_ndims), name=name)

    @property
    def mass(self) -> MassMatrix:
        return self._mass

    @property
    def is_calibrated(self) -> bool:
        return False

    @property
    def num_score_evaluations(self) -> int:
        """Score evaluations per chain of one ``one_step`` (subclasses)."""
        raise NotImplementedError

    @property
    def _line_integral_evaluations(self) -> int:
        """Extra score evaluations of the line integral: ``n − 1`` without ``log_prob_fn``, else 0."""
        return 0 if self.log_prob_fn is not None else self.num_integration_intervals - 1

    # ------------------------------------------------------------------ helpers
    def _batch_zeros(self, x: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(tf.zeros_like(x), axis=event_axes(self.event_ndims))

    def _target_log_prob(self, x: tf.Tensor) -> tf.Tensor:
        if self.log_prob_fn is None:
            return self._batch_zeros(x)
        return tf.convert_to_tensor(self.log_prob_fn(x), dtype=x.dtype)

    def _score(self, x: tf.Tensor) -> tf.Tensor:
        return tf.convert_to_tensor(self.score_fn(x), dtype=tf.float32)

    def _log_density_change(self, x0: tf.Tensor, x1: tf.Tensor, g0: tf.Tensor, g1: tf.Tensor) -> tf.Tensor:
        if self.log_prob_fn is not None:
            return self._batch_zeros(x0)
        return score_line_integral(self.score_fn, x0, x1, g0, g1, self.num_integration_intervals, self.event_ndims)

    def _start(self, current_state: Any, previous_kernel_results: Any, seed: Any) -> tuple[tf.Tensor, ...]:
        """``(seed, x₀, s(x₀), step_size, ε broadcast over the event axes)`` for ``one_step``."""
        seed = tfp.random.sanitize_seed(seed)
        x0 = tf.convert_to_tensor(current_state, dtype=tf.float32)
        step_size = previous_kernel_results.step_size
        return seed, x0, previous_kernel_results.grads_target_log_prob, step_size, expand_step_size(step_size, self.event_ndims)

    def _bootstrap_common(self, init_state: Any) -> dict[str, tf.Tensor]:
        """The result fields every score kernel starts with (score and log density at the initial state)."""
        x = tf.convert_to_tensor(init_state, dtype=tf.float32)
        return dict(log_acceptance_correction=self._batch_zeros(x), target_log_prob=self._target_log_prob(x),
                    grads_target_log_prob=self._score(x),
                    step_size=tf.convert_to_tensor(self.step_size, dtype=tf.float32), seed=tf.zeros([2], tf.int32))


@exposes("step_size")
class MetropolisAdjusted(HasParameters, tfp.mcmc.TransitionKernel):
    """``tfp.mcmc.MetropolisHastings(inner_kernel)`` with the inner kernel's parameters and properties."""

    def __init__(self, inner_kernel: ScoreKernel, drop_parameters: tuple[str, ...] = ()) -> None:
        self._impl = tfp.mcmc.MetropolisHastings(inner_kernel)
        self._parameters = {k: v for k, v in inner_kernel.parameters.items() if k not in drop_parameters}

    @property
    def inner_kernel(self) -> ScoreKernel:
        return self._impl.inner_kernel

    @property
    def num_score_evaluations(self) -> int:
        return self.inner_kernel.num_score_evaluations

    @property
    def is_calibrated(self) -> bool:
        return True

    def one_step(self, current_state: tf.Tensor, previous_kernel_results: Any, seed: Any = None) -> tuple[tf.Tensor, Any]:
        return self._impl.one_step(current_state, previous_kernel_results, seed=seed)

    def bootstrap_results(self, init_state: tf.Tensor) -> Any:
        return self._impl.bootstrap_results(init_state)
