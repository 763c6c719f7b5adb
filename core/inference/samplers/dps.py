r"""Diffusion posterior sampling (``"dps"``, Chung et al. 2022) along the reverse VE diffusion.

The posterior score at level σ is ``∇ log p_σ(x) + ∇ log p(y | x_σ)``; DPS replaces the intractable second term by
the likelihood of the denoised state, ``p(y | x_σ) ≈ N(y | A D(x_σ), Σ_y)`` with ``D(x) = x + σ² s_prior(x, σ)``
(Tweedie) and ``A = M ∘ P`` (mask ∘ shear operator, masked data dropped):

.. math::  s_{DPS}(x, σ) = s_{prior}(x, σ) + w(x, σ)\, J_D^T A^T Σ_w^{-1} (y − A D(x)),

computed by one vector–Jacobian product through the prior (:func:`core.inference.guidance.dps_guidance`), then
moved between levels by :class:`~core.inference.samplers.predictor_corrector.ReverseDiffusionKernel` (Euler–Maruyama
or Heun). The likelihood weighting (``weighting``; ``ζ`` = ``guidance_scale`` > 0):

* ``"none"`` — ``w = ζ``, ``Σ_w = Σ_y``: the DPS likelihood as written.
* ``"tempered"`` (default) — ``w = ζ``, ``Σ_w = Σ_y + σ² I``: each datum's weight is reduced by
  ``σ_n²/(σ_n² + σ²)``, i.e. the likelihood is down-weighted early in sampling (large σ) and becomes plain DPS as
  σ → 0. This is the fix of the DPS mass-mapping papers (Boruah, Jacob & Jain 2025, arXiv:2502.04158 and
  arXiv:2511.14667: standard DPS is biased; down-weighting the likelihood score at early times removes it),
  written as the likelihood inflation of SDA (Rozet & Louppe 2023, ``Σ_y + σ²Γ/μ²`` with ``Γ = I``, ``μ = 1``).
* ``"normalized"`` — ``w = ζ √m / ‖Σ_y^{-1/2} (y − A D)‖`` with ``m`` the number of observed data: the step size
  ``ζ'/‖y − A D‖`` of Chung et al. (2022, Algorithm 1) in units where ``ζ = 1`` is plain DPS once the residual is at
  the noise level (``‖·‖ ≈ √m``) and the data are down-weighted while the residual is larger.

Why DPS is biased (and why MMPS is not): DPS drops the Tweedie covariance ``V = σ² J_D`` from the likelihood
covariance. For a Gaussian prior (per mode: prior variance ``P``, noise ``n``, ``a = P/(P+σ²)``) its likelihood
precision is ``a²/n`` instead of ``a/(n + σ² a)``: at large σ it pulls ``D`` onto the data (over-shooting the
signal-dominated modes), at small σ the reverse SDE driven by it under-disperses. ``tests/test_diffusion_samplers.py``
measures the bias on the 16² exact-Gaussian problem (pixel variances and mean error against the dense posterior).

NFE per guided score: 2 (the prior score forward + its VJP, :data:`core.inference.guidance.DPS_NFE`); a level costs
2 (Euler–Maruyama) or 4 (Heun).
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

import tensorflow as tf

from core.inference.guidance import DPS_NFE, LinearGaussianObservation, dps_guidance
from core.inference.samplers.predictor_corrector import DiffusionSampler
from core.inference.schedules import Schedule

__all__ = ["DPSSampler"]


class DPSSampler(DiffusionSampler):
    """``"dps"``: reverse diffusion driven by ``s_prior + w J_Dᵀ Aᵀ Σ_w⁻¹ (y − A D)`` (module docstring)."""

    name: ClassVar[str] = "dps"
    score_cost = float(DPS_NFE)

    def __init__(self, posterior: Any, schedule: Schedule, **options: Any) -> None:
        super().__init__(posterior, schedule, **options)
        scale = float(self.options["guidance_scale"])
        if not math.isfinite(scale) or scale <= 0:  # the Option bounds already say so; kept for direct callers
            raise ValueError(f"guidance_scale (the DPS weight ζ) must be positive and finite, got {scale!r}")
        self.observation = observation_of(posterior)
        self.prior = posterior.prior

    def score_fn(self, x: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
        return self.compiled_guided_score(x, sigma)

    def guided_score(self, observation: LinearGaussianObservation, x: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
        """``s_prior + w J_Dᵀ Aᵀ Σ_w⁻¹ (y − A D)`` for ``observation`` (module docstring)."""
        weighting = self.options["weighting"]
        zeta = float(self.options["guidance_scale"])
        extra = tf.square(tf.cast(sigma, tf.float32)) if weighting == "tempered" else 0.0
        terms = dps_guidance(observation, self.prior.score, x, sigma, extra_variance=extra)
        if weighting == "normalized":
            num_observed = tf.reduce_sum(observation.observed)
            weight = zeta * tf.sqrt(num_observed) / tf.maximum(terms.residual_norm, 1e-12)
            weight = tf.reshape(weight, tf.concat([tf.shape(weight), tf.ones([observation.event_ndims], tf.int32)], 0))
        else:
            weight = zeta
        return terms.prior_score + weight * terms.likelihood_score


def observation_of(posterior: Any) -> LinearGaussianObservation:
    """The linear-Gaussian observation of a posterior (a shear likelihood, or an observation given directly)."""
    likelihood = getattr(posterior, "likelihood", None)
    if isinstance(likelihood, LinearGaussianObservation):
        return likelihood
    observation = getattr(posterior, "observation", None)
    if isinstance(observation, LinearGaussianObservation):
        return observation
    if likelihood is None or not hasattr(likelihood, "operator"):
        raise ValueError("DPS/MMPS need a posterior whose likelihood is linear-Gaussian (a ShearLikelihood)")
    return LinearGaussianObservation.from_shear_likelihood(likelihood)
