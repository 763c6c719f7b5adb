r"""Score-based Hamiltonian Monte Carlo as TFP transition kernels.

Target ``π(x)`` known only through its score ``s(x) = ∇ log π(x)`` (a network, or the analytic
posterior score). Hamiltonian ``H(x, p) = −log π(x) + ½ pᵀM⁻¹p`` with a diagonal metric ``M``
(:mod:`core.inference.kernels.mass`). One transition:

1. draw ``p₀ ~ N(0, M)``;
2. ``L`` leapfrog steps of size ``ε`` with the score in place of ``∇ log π``
   (:class:`~core.inference.kernels.leapfrog.ScoreLeapfrogIntegrator`);
3. Metropolis correction with ``log α = −ΔH = [log π(x') − log π(x)] + K(p₀) − K(p_L)``.

:class:`UncalibratedScoreHMC` returns the proposal and stores ``log_acceptance_correction = K(p₀) −
K(p_L) + Δ`` with ``Δ`` the Simpson line integral of the score along the segment ``x → x'``
(:func:`core.inference.kernels._common.score_line_integral`) and keeps ``target_log_prob ≡ 0``; wrapped in
``tfp.mcmc.MetropolisHastings`` (``log_accept_ratio = target_log_prob' − target_log_prob +
log_acceptance_correction``) this is an exact Metropolis-adjusted HMC for a conservative score field
up to the quadrature error (zero for Gaussian targets). When an exact ``log_prob_fn`` is given it is used
instead (``target_log_prob = log π``, correction = kinetic-energy change only).
:class:`ScoreHMC` is that calibrated composition.

Cost per transition and chain: ``L`` score evaluations (leapfrog) plus ``n − 1`` for the line integral with
``n`` Simpson intervals (none with ``log_prob_fn``): ``num_score_evaluations``.

Kernel results follow TFP's ``UncalibratedHamiltonianMonteCarloKernelResults`` field names; the step size is
read from ``previous_kernel_results.step_size`` so that ``tfp.mcmc.SimpleStepSizeAdaptation``,
``DualAveragingStepSizeAdaptation`` and :class:`~core.inference.kernels.adaptation.StepSizeAdaptation` can adapt
it. States are ``(*batch, *event)`` tensors, ``event_ndims`` trailing axes (2 for maps), one independent chain
per batch entry.
"""
from __future__ import annotations

import collections
from typing import Any, Callable

import tensorflow as tf

from core.inference.kernels.base import MetropolisAdjusted, ScoreKernel, check_positive_int, parameter
from core.inference.kernels.leapfrog import ScoreLeapfrogIntegrator

__all__ = ["UncalibratedScoreHMC", "ScoreHMC", "UncalibratedScoreHMCKernelResults"]

ScoreFn = Callable[[tf.Tensor], tf.Tensor]


class UncalibratedScoreHMCKernelResults(
    collections.namedtuple(
        "UncalibratedScoreHMCKernelResults",
        ["log_acceptance_correction", "target_log_prob", "grads_target_log_prob", "initial_momentum",
         "final_momentum", "step_size", "num_leapfrog_steps", "seed"],
    )
):
    """Diagnostics and cache of :class:`UncalibratedScoreHMC` (TFP HMC field names)."""

    __slots__ = ()


class UncalibratedScoreHMC(ScoreKernel):
    """HMC proposal driven by a score function; Metropolis correction from the score line integral.

    ``num_leapfrog_steps``: the number ``L ≥ 1`` of leapfrog steps (Python int); the other arguments are those
    of :class:`~core.inference.kernels.base.ScoreKernel`.
    """

    def __init__(self, score_fn: ScoreFn, step_size: Any, num_leapfrog_steps: int, momentum_scale: Any = None,
                 log_prob_fn: Callable[[tf.Tensor], tf.Tensor] | None = None, num_integration_intervals: int = 4,
                 event_ndims: int = 2, name: str | None = None) -> None:
        leapfrog = check_positive_int(num_leapfrog_steps, "num_leapfrog_steps")
        super().__init__(score_fn, step_size, momentum_scale, log_prob_fn, num_integration_intervals, event_ndims, name,
                         num_leapfrog_steps=leapfrog)

    num_leapfrog_steps = parameter("num_leapfrog_steps")

    @property
    def num_score_evaluations(self) -> int:
        return self.num_leapfrog_steps + self._line_integral_evaluations

    def one_step(
        self, current_state: tf.Tensor, previous_kernel_results: UncalibratedScoreHMCKernelResults, seed: Any = None
    ) -> tuple[tf.Tensor, UncalibratedScoreHMCKernelResults]:
        with tf.name_scope(self.name or "score_hmc"):
            seed, x0, g0, step_size, eps = self._start(current_state, previous_kernel_results, seed)
            p0 = self.mass.sample_momentum(x0, seed)
            integrate = ScoreLeapfrogIntegrator(self.score_fn, self.mass, eps, self.num_leapfrog_steps)
            p1, x1, g1 = integrate(p0, x0, g0)
            kinetic_change = self.mass.kinetic_energy(p0, self.event_ndims) - self.mass.kinetic_energy(p1, self.event_ndims)
            results = UncalibratedScoreHMCKernelResults(
                log_acceptance_correction=kinetic_change + self._log_density_change(x0, x1, g0, g1),
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
            common = self._bootstrap_common(init_state)
            zeros = tf.zeros_like(common["grads_target_log_prob"])
            return UncalibratedScoreHMCKernelResults(
                initial_momentum=zeros, final_momentum=zeros,
                num_leapfrog_steps=tf.convert_to_tensor(self.num_leapfrog_steps, dtype=tf.int32), **common)


class ScoreHMC(MetropolisAdjusted):
    """Metropolis-adjusted score HMC: ``tfp.mcmc.MetropolisHastings(UncalibratedScoreHMC(...))``.

    Same arguments as :class:`UncalibratedScoreHMC`; results are TFP ``MetropolisHastingsKernelResults``
    (``is_accepted``, ``log_accept_ratio``, ``accepted_results``, ``proposed_results``, …).
    """

    def __init__(self, score_fn: ScoreFn, step_size: Any, num_leapfrog_steps: int, momentum_scale: Any = None,
                 log_prob_fn: Callable[[tf.Tensor], tf.Tensor] | None = None, num_integration_intervals: int = 4,
                 event_ndims: int = 2, name: str | None = None) -> None:
        super().__init__(UncalibratedScoreHMC(score_fn, step_size, num_leapfrog_steps, momentum_scale, log_prob_fn,
                                              num_integration_intervals, event_ndims, name))

    num_leapfrog_steps = parameter("num_leapfrog_steps")
