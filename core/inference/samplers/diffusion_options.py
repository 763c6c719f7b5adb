"""Options of the diffusion posterior samplers ``"pc"``, ``"dps"``, ``"mmps"`` (TensorFlow-free; read by the registry).

Shared by all three: ``integrator`` — the reverse-diffusion step between consecutive levels σ_i → σ_{i+1}
(``"euler_maruyama"``: one step of the reverse VE SDE, 1 score evaluation; ``"heun"``: Heun's 2nd-order step
of the probability-flow ODE, 2 score evaluations). The definitions (math, NFE counts) are in
:mod:`core.inference.samplers.predictor_corrector`, :mod:`core.inference.samplers.dps` and
:mod:`core.inference.samplers.mmps`.
"""
from __future__ import annotations

from core.options import MASSES, MAX_LEAPFROG_STEPS, Option

__all__ = [
    "INTEGRATORS",
    "CORRECTORS",
    "DPS_WEIGHTINGS",
    "JACOBIAN_PRODUCTS",
    "MAX_CORRECTOR_STEPS",
    "MAX_CG_ITERATIONS",
    "PC_OPTIONS",
    "DPS_OPTIONS",
    "MMPS_OPTIONS",
]

INTEGRATORS = ("euler_maruyama", "heun")
CORRECTORS = ("langevin", "hmc")
DPS_WEIGHTINGS = ("tempered", "normalized", "none")
JACOBIAN_PRODUCTS = ("vjp", "jvp", "gaussian")
SPLIT_STEPS = ("euler_maruyama", "tweedie")
MAX_CORRECTOR_STEPS = 100
MAX_CG_ITERATIONS = 100

_INTEGRATOR = Option("integrator", "choice", "euler_maruyama",
                     "reverse-diffusion step between levels: Euler–Maruyama of the reverse SDE (1 score evaluation) "
                     "or Heun's 2nd-order probability-flow ODE step (2)", choices=INTEGRATORS)

PC_OPTIONS: tuple[Option, ...] = (
    _INTEGRATOR,
    Option("num_corrector_steps", int, 1, "corrector steps K at every level after the predictor (0: plain reverse "
           "diffusion)", minimum=0, maximum=MAX_CORRECTOR_STEPS),
    Option("corrector", "choice", "langevin", "corrector kernel: unadjusted Langevin (1 evaluation per step) or "
           "Metropolis-adjusted score HMC (leapfrog + Simpson nodes per step)", choices=CORRECTORS),
    Option("corrector_step_size", float, None, "corrector base step size relative to the target's standard "
           "deviation (default: 0.05 for Langevin, dimension-aware for HMC)", minimum=1e-8, maximum=100.0),
    Option("mass", "choice", "auto", "corrector metric: Fourier posterior variance, its prior-capped variant, "
           "identity, or auto (by the kind of prior)", choices=MASSES),
    Option("num_leapfrog_steps", int, 3, "leapfrog steps of the HMC corrector", minimum=1, maximum=MAX_LEAPFROG_STEPS),
)

DPS_OPTIONS: tuple[Option, ...] = (
    _INTEGRATOR,
    Option("guidance_scale", float, 1.0, "DPS weight ζ > 0 on the likelihood score", minimum=1e-6, maximum=1e3),
    Option("weighting", "choice", "tempered", "DPS likelihood weighting: 'tempered' N(y|AD, Σ_y+σ²) (down-weights the "
           "data early), 'normalized' ζ√m/‖y−AD‖ (Chung et al. 2022), or 'none' N(y|AD, Σ_y)", choices=DPS_WEIGHTINGS),
)

MMPS_OPTIONS: tuple[Option, ...] = (
    _INTEGRATOR,
    Option("cg_iterations", int, 3, "conjugate-gradient iterations for (Σ_y + σ² A J_D Aᵀ)⁻¹, one Jacobian "
           "product each", minimum=1, maximum=MAX_CG_ITERATIONS),
    Option("jacobian_product", "choice", "vjp", "how CG multiplies by the denoiser Jacobian: reverse mode (symmetric "
           "J, reuses the forward pass), forward mode (ForwardAccumulator), or 'gaussian': the prior's Gaussian part's "
           "Tweedie Jacobian P/(P+σ²) in Fourier space (no network Jacobian, 1 NFE per score; needs a power map)",
           choices=JACOBIAN_PRODUCTS),
    Option("noise_split", float, 0.0, "fraction f of the smallest observed noise variance moved into the diffusion "
           "(σ*² = f·min Σ_y; 0: off): guided levels down to σ*, where the likelihood is exact, then prior-only "
           "reverse diffusion (Euler–Maruyama, whatever the integrator of the guided levels)", minimum=0.0, maximum=0.99),
    Option("split_levels", int, 100, "geometric levels of the prior-only stage from σ* to σ_min (noise_split > 0; "
           "1 NFE each)", minimum=2, maximum=10000),
    Option("split_step", "choice", "euler_maruyama", "step of the prior-only stage (noise_split > 0): Euler–Maruyama "
           "(white noise of variance σ_from² − σ_to²) or 'tweedie': the same exact-mean drift with the noise of the "
           "prior's Gaussian part's exact transition covariance, exact for a Gaussian prior at any number of levels "
           "(needs a power map)", choices=SPLIT_STEPS),
)
