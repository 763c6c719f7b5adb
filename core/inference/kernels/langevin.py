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
skips the correction (``compute_acceptance=False``) and is used unwrapped (no Metropolis test).

Cost per transition and chain: one score evaluation (at the proposal) plus, for MALA without
``log_prob_fn``, ``n − 1`` for the line integral (``num_score_evaluations``).
"""
from __future__ import annotations

import collections
from typing import Any, Callable

import tensorflow as tf

from core.inference.kernels.base import MetropolisAdjusted, ScoreKernel

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


class UncalibratedScoreLangevin(ScoreKernel):
    """Langevin proposal from a score; MALA correction via the score line integral (see module doc).

    ``compute_acceptance=False`` skips the correction (ULA: ``log_acceptance_correction = 0``); the other
    arguments are those of :class:`~core.inference.kernels.base.ScoreKernel`.
    """

    def __init__(self, score_fn: ScoreFn, step_size: Any, momentum_scale: Any = None,
                 log_prob_fn: Callable[[tf.Tensor], tf.Tensor] | None = None, num_integration_intervals: int = 4,
                 compute_acceptance: bool = True, event_ndims: int = 2, name: str | None = None) -> None:
        super().__init__(score_fn, step_size, momentum_scale, log_prob_fn, num_integration_intervals, event_ndims, name,
                         compute_acceptance=bool(compute_acceptance))
        self._compute_acceptance = bool(compute_acceptance)

    @property
    def compute_acceptance(self) -> bool:
        """Whether ``one_step`` computes the MALA correction (False for ULA)."""
        return self._compute_acceptance

    @property
    def num_score_evaluations(self) -> int:
        return 1 + (self._line_integral_evaluations if self.compute_acceptance else 0)

    def _target_log_prob(self, x: tf.Tensor) -> tf.Tensor:
        return super()._target_log_prob(x) if self.compute_acceptance else self._batch_zeros(x)

    def one_step(
        self, current_state: tf.Tensor, previous_kernel_results: UncalibratedScoreLangevinKernelResults, seed: Any = None
    ) -> tuple[tf.Tensor, UncalibratedScoreLangevinKernelResults]:
        with tf.name_scope(self.name or "score_langevin"):
            seed, x0, g0, step_size, eps = self._start(current_state, previous_kernel_results, seed)
            momentum = self.mass.sample_momentum(x0, seed)  # M^{1/2} z
            noise = self.mass.velocity(momentum)  # A^{1/2} z with A = M⁻¹
            x1 = x0 + eps * self.mass.velocity(g0) + tf.sqrt(2.0 * eps) * noise
            g1 = self._score(x1)
            if self.compute_acceptance:
                # log q(x1|x0) = -½|z|², and |z|² = pᵀM⁻¹p for p = M^{1/2} z.
                log_q_forward = -self.mass.kinetic_energy(momentum, self.event_ndims)
                residual = x0 - x1 - eps * self.mass.velocity(g1)
                step_batch = tf.convert_to_tensor(step_size, dtype=tf.float32)  # scalar or batch-shaped
                log_q_reverse = -self.mass.mass_quadratic(residual, self.event_ndims) / (4.0 * step_batch)
                correction = log_q_reverse - log_q_forward + self._log_density_change(x0, x1, g0, g1)
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
        return UncalibratedScoreLangevinKernelResults(**self._bootstrap_common(init_state))


class ScoreMALA(MetropolisAdjusted):
    """Metropolis-adjusted Langevin from a score: ``MetropolisHastings(UncalibratedScoreLangevin(...))``."""

    def __init__(self, score_fn: ScoreFn, step_size: Any, momentum_scale: Any = None,
                 log_prob_fn: Callable[[tf.Tensor], tf.Tensor] | None = None, num_integration_intervals: int = 4,
                 event_ndims: int = 2, name: str | None = None) -> None:
        inner = UncalibratedScoreLangevin(score_fn, step_size, momentum_scale, log_prob_fn, num_integration_intervals,
                                          compute_acceptance=True, event_ndims=event_ndims, name=name)
        super().__init__(inner, drop_parameters=("compute_acceptance",))


class ScoreULA(UncalibratedScoreLangevin):
    """Unadjusted Langevin algorithm (annealed Langevin dynamics inside an ``AnnealedKernel``); no Metropolis test."""

    def __init__(self, score_fn: ScoreFn, step_size: Any, momentum_scale: Any = None, event_ndims: int = 2,
                 name: str | None = None) -> None:
        super().__init__(score_fn, step_size, momentum_scale, compute_acceptance=False, event_ndims=event_ndims, name=name)
        self._parameters = {k: self._parameters[k] for k in ("score_fn", "step_size", "momentum_scale", "event_ndims", "name")}

    @property
    def log_prob_fn(self) -> None:
        return None
