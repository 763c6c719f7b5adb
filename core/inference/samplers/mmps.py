r"""Moment-matching posterior sampling (``"mmps"``, Rozet, Andry, Lanusse & Louppe 2024) along the reverse VE diffusion.

MMPS keeps the Tweedie covariance ``V[x | x_σ] = σ² J_D`` that DPS drops (:mod:`core.inference.samplers.dps`):

.. math::  p(y | x_σ) ≈ N\big(y \mid A D(x_σ),\; K\big),\qquad K = Σ_y + σ^2 A J_D A^T,

.. math::  s_{MMPS}(x, σ) = s_{prior}(x, σ) + J_D^T A^T K^{-1} (y − A D(x)),

with ``A = M ∘ P`` (masked data dropped: the CG vectors live on observed data only), ``K⁻¹ r`` from
``cg_iterations`` iterations of preconditioned conjugate gradients with matrix-free Jacobian products (reverse
mode by default, or ``jacobian_product="jvp"`` with ``tf.autodiff.ForwardAccumulator``) and the final
``J_Dᵀ(·)`` by one VJP — :func:`core.inference.guidance.mmps_guidance`. ``K`` is treated as locally constant in
the gradient, as in the paper. The diagonal preconditioner is ``(Σ_y + τ(σ))⁻¹`` with
``τ(σ) = mean_k σ² P_k/(P_k + σ²)`` the mean Tweedie variance of the prior's Gaussian part (``σ²`` without a power map).

With the exact Gaussian prior ``D`` is linear and ``V`` exact, so ``s_MMPS`` is the exact score of the σ-convolved
posterior ``p(x_σ | y)`` once CG has converged, and the reverse diffusion samples the exact posterior up to the
integrator's discretisation error (Heun: 0.1–0.4 % in the variance at 50–100 geometric levels) — the known-answer
test of ``tests/test_diffusion_samplers.py``.

NFE per guided score: ``2 + cg_iterations`` (forward, one Jacobian product per CG iteration, final VJP); a level
costs that (Euler–Maruyama) or twice that (Heun).

``jacobian_product="gaussian"`` replaces ``J_D`` in ``K`` and in the final product by the Tweedie Jacobian of the
prior's Gaussian part, ``J_G = F⁻¹ diag(P_k/(P_k + σ²)) F`` (FFTs, no network Jacobian): the network enters
through ``D(x_σ)`` only, so a guided score costs **1 NFE**. For the exact Gaussian prior ``J_G = J_D`` and nothing
is approximated; for the hybrid prior the learned residual shifts the mean ``D`` but not the covariance used for
the data's weight. Measured on held-out halo-model mocks (``benchmarks/README.md``): with Heun at 20 levels the
exact-Gaussian posterior is reproduced (95 % coverage 0.935 vs 0.932 for exact samples, 64 samples), where the
tempered predictor–corrector is under-dispersed at any number of levels.

**Noise split** (``noise_split = f > 0``). White noise of variance ``σ*² = f · min Σ_y`` (the smallest observed
noise variance) is split off the data noise and moved into the diffusion: with ``w`` that white part,
``x_* = x + σ* Pᵀw`` (plus independent noise in the unobserved mean mode) is exactly the diffusion state at level σ*,
and ``y = A x_* + e`` with ``e`` independent of ``(x, x_*)`` and ``Cov e = Σ_y − σ*² A Aᵀ`` on observed data. So

* above σ* the guided levels sample ``p(x_σ | y)`` of this joint (``x_σ = x_* + τξ``, ``τ² = σ² − σ*²``): MMPS
  with ``D_* = x + τ² s(x, σ)``, ``J_* = I + τ² ∂s`` and ``K = Σ_y − σ*² A Aᵀ + τ² A J_* Aᵀ``
  (:func:`core.inference.guidance.mmps_guidance`, ``split_variance``); at σ* the likelihood ``N(y | A x, C_e)`` is
  exact, whatever the prior;
* from σ* down ``y`` is independent of ``x`` given ``x_*``, so the rest is the prior's own reverse SDE
  (Euler–Maruyama, ``split_levels`` geometric levels σ* → σ_min, 1 NFE each; stochastic, since the
  probability-flow ODE from a fixed ``x_*`` gives one map, not samples of ``p(x | x_*)``). The guided levels keep
  the chosen integrator; the schedule is the given one above σ*, then σ* and the prior-only levels.
  ``split_step="tweedie"`` keeps the drift ``x + δ s(x, σ_from)`` (``δ = σ_from² − σ_to²``; it is the exact mean
  ``E[x_{σ_to} | x_{σ_from}]`` for any prior, by Tweedie's formula for the Gaussian step between the levels) and
  gives the noise the exact transition covariance of the prior's Gaussian part, ``δ (P_k + σ_to²)/(P_k + σ_from²)``
  in Fourier space, in place of Euler–Maruyama's ``δ`` (exact only where ``P_k ≫ σ_from²``): exact for the Gaussian
  prior at any number of levels; for the hybrid prior the error is only the learned part's Hessian term
  ``δ² ∂²log p_residual`` of the true covariance ``δ I + δ² ∇² log p_σ``.

Only the part of the data noise above σ* goes through MMPS's Gaussian approximation of ``p(x | x_σ)``. With no mask
and uniform noise, ``f → 1`` leaves nothing to approximate (the posterior is then the prior's denoising posterior at
σ_n, ``benchmarks/sampler_fidelity.py``); with the Gaussian prior the split is exact like MMPS itself
(``tests/test_diffusion_samplers.py``). Keep ``f ≤ 0.9``: ``K`` at σ* has eigenvalues down to ``(1 − f) min Σ_y``.
"""
from __future__ import annotations

import hashlib
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from core.inference.guidance import mmps_guidance, mmps_nfe
from core.inference.samplers.dps import observation_of
from core.inference.samplers.predictor_corrector import DiffusionSampler
from core.inference.schedules import ListSchedule, Schedule
from core.physics.geometry import to_complex64

__all__ = ["MMPSSampler"]


class MMPSSampler(DiffusionSampler):
    """``"mmps"``: reverse diffusion driven by ``s_prior + J_Dᵀ Aᵀ (Σ_y + σ² A J_D Aᵀ)⁻¹ (y − A D)``."""

    name: ClassVar[str] = "mmps"

    def __init__(self, posterior: Any, schedule: Schedule, **options: Any) -> None:
        super().__init__(posterior, schedule, **options)
        if int(self.options["cg_iterations"]) < 1:  # the Option bounds already say so; kept for direct callers
            raise ValueError(f"cg_iterations must be an integer ≥ 1, got {self.options['cg_iterations']!r}")
        self.observation = observation_of(posterior)
        #: σ* of the noise split (None: no split); the schedule then gets σ* and the prior-only levels below it
        self.split_sigma: float | None = None
        if float(self.options["noise_split"]) > 0.0:
            self._setup_split(schedule)
        self.prior = posterior.prior
        power_map = getattr(posterior, "power_map", None)
        #: the prior's Gaussian power map ``P_k`` as given (map-shaped), or ``None``; the one stored copy
        self._power: tf.Tensor | None = (
            None if power_map is None else tf.constant(np.asarray(power_map, dtype=np.float32)))
        self._power_digest = None if power_map is None else hashlib.sha256(
            np.ascontiguousarray(power_map, dtype=np.float32).tobytes()).hexdigest()
        self._gaussian_jacobian = self.options["jacobian_product"] == "gaussian"
        if self._gaussian_jacobian:
            self._check_gaussian_jacobian(posterior)
        if self.split_sigma is not None and self.options["split_step"] == "tweedie":
            self._check_gaussian_jacobian(posterior, option="split_step='tweedie'", alternative="'euler_maruyama'")
        self.score_cost = 1.0 if self._gaussian_jacobian else float(mmps_nfe(int(self.options["cg_iterations"])))

    def _setup_split(self, schedule: Schedule) -> None:
        """σ*² = f · (smallest observed noise variance); levels: the schedule's above σ*, σ*, then ``split_levels``
        geometric levels down to the schedule's σ_min (prior-only, module docstring)."""
        observed = np.asarray(self.observation.observed) > 0
        smallest = float(np.asarray(self.observation.noise_variance)[observed].min())
        split_sigma = float(np.float32(np.sqrt(float(self.options["noise_split"]) * smallest)))
        levels = np.asarray(schedule.sigmas, dtype=np.float64)
        if not levels[0] > split_sigma > levels[-1]:
            raise ValueError(f"noise_split={self.options['noise_split']!r} gives σ* = {split_sigma:.4g}, which must lie "
                             f"between the schedule's σ_max = {levels[0]:.4g} and σ_min = {levels[-1]:.4g}")
        above = levels[levels > split_sigma * (1 + 1e-6)]
        below = np.geomspace(split_sigma, levels[-1], int(self.options["split_levels"]))
        self.schedule = ListSchedule(np.concatenate([above, below]))
        self.split_sigma = split_sigma

    def split_variance(self, observation: Any) -> tf.Tensor:
        """σ*² = f · (smallest observed noise variance of ``observation``), in-graph (the data are arguments)."""
        smallest = tf.reduce_min(tf.where(observation.observed > 0, observation.noise_variance, np.inf))
        return float(self.options["noise_split"]) * smallest

    def kernel_options(self) -> dict[str, Any]:
        """The split: prior-only steps from σ* down (1 NFE each), Euler–Maruyama or ``split_step="tweedie"``."""
        if self.split_sigma is None:
            return {}
        options = {"split_below": self.split_sigma, "prior_score_fn": self.prior.score, "prior_cost": 1.0}
        if self.options["split_step"] == "tweedie":
            options["split_noise_gain"] = self.gaussian_transition_noise
        return options

    def gaussian_transition_noise(self, white: tf.Tensor, sigma_from: tf.Tensor, sigma_to: tf.Tensor) -> tf.Tensor:
        """``F⁻¹[√((P_k + σ_to²)/(P_k + σ_from²)) F z]``: white ``z`` shaped so that ``√δ ·`` it has the Gaussian
        part's exact transition covariance ``Cov[x_{σ_to} | x_{σ_from}] = δ (P_k + σ_to²)/(P_k + σ_from²)``."""
        to2 = tf.square(tf.cast(sigma_to, tf.float32))
        from2 = tf.square(tf.cast(sigma_from, tf.float32))
        gain = to_complex64(tf.sqrt((self._power + to2) / (self._power + from2)))
        return tf.math.real(tf.signal.ifft2d(gain * tf.signal.fft2d(to_complex64(white))))

    @property
    def expected_nfe(self) -> float:
        if self.split_sigma is None:
            return super().expected_nfe
        sigmas = np.asarray(self.schedule.sigmas, np.float32)
        split = np.float32(self.split_sigma)
        guided_steps = int(np.sum(sigmas[1:] >= split))  # transitions that end at or above σ*
        heun = 2.0 if self.options["integrator"] == "heun" else 1.0
        prior_steps = int(sigmas.size - 1 - guided_steps)
        return self.score_cost * (1.0 + heun * guided_steps) + 1.0 + prior_steps

    def preconditioner_variance(self, sigma: tf.Tensor) -> tf.Tensor:
        """``τ(σ) = mean_k σ² P_k/(P_k + σ²)`` (or σ² without a power map)."""
        s2 = tf.square(tf.cast(sigma, tf.float32))
        if self._power is None:
            return s2
        power = tf.reshape(self._power, [-1])  # the mean over all modes
        return tf.reduce_mean(s2 * power / (power + s2))

    def score_fn(self, x: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
        if self.split_sigma is None:
            return self.compiled_guided_score(x, sigma)
        x = tf.convert_to_tensor(x, tf.float32)
        sigma = tf.cast(sigma, tf.float32)
        return tf.cond(sigma >= np.float32(self.split_sigma), lambda: self.compiled_guided_score(x, sigma),
                       lambda: tf.convert_to_tensor(self.prior.score(x, sigma), tf.float32))

    def guidance_key(self) -> tuple[Any, ...]:
        """The power map's digest: the traced score holds it (preconditioner, Gaussian Jacobian) as a constant."""
        return (self._power_digest,)

    @staticmethod
    def _check_gaussian_jacobian(posterior: Any, option: str = "jacobian_product='gaussian'",
                                 alternative: str = "'vjp' or 'jvp'") -> None:
        """``ValueError`` naming the option unless the posterior has a map-shaped (2-D) Gaussian power map ``P_k``."""
        power_map = getattr(posterior, "power_map", None)
        if power_map is None or np.ndim(power_map) != 2:
            raise ValueError(f"{option} needs the prior's Gaussian power map (a posterior on maps with a Gaussian or "
                             f"hybrid prior); use {alternative} here")

    def gaussian_tweedie_jacobian(self, w: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
        """``J_G w = F⁻¹[P_k/(P_k + σ²) F w]`` (σ a scalar or one per chain)."""
        s2 = tf.square(tf.cast(sigma, tf.float32))
        if s2.shape.rank:
            s2 = tf.reshape(s2, tf.concat([tf.shape(s2), [1, 1]], 0))
        gain = to_complex64(self._power / (self._power + s2))  # (n, n): checked 2-D in __init__
        return tf.math.real(tf.signal.ifft2d(gain * tf.signal.fft2d(to_complex64(w))))

    def guided_score(self, observation: Any, x: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
        """``s_prior + J_Dᵀ Aᵀ K⁻¹ (y − A D)`` for ``observation`` (module docstring)."""
        if self._gaussian_jacobian:  # J_G replaces J_D; the vjp/jvp choice does not apply
            products = {"surrogate_jacobian": lambda w: self.gaussian_tweedie_jacobian(w, sigma)}
        else:
            products = {"jacobian_product": self.options["jacobian_product"]}
        split = {} if self.split_sigma is None else {"split_variance": self.split_variance(observation)}
        terms = mmps_guidance(
            observation, self.prior.score, x, sigma, cg_iterations=int(self.options["cg_iterations"]),
            preconditioner_variance=self.preconditioner_variance(sigma), **products, **split,
        )
        return terms.prior_score + terms.likelihood_score
