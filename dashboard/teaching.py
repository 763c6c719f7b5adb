"""Short explanations shown beside each stage of the dashboard in teaching mode (Markdown, no UI code).

The texts follow the model of :mod:`core`: data ``γ = M(Pκ + n)``, a Gaussian likelihood tempered to
variance ``σ_n² + σ²``, a prior convolved with ``N(0, σ²I)``, the posterior score as their sum, and
annealed HMC over a decreasing σ schedule (Remy, Lanusse et al., A&A 2023).
"""
from __future__ import annotations

__all__ = ["STAGES", "stage_text", "INTRO"]

INTRO = (
    "**kappascope** draws samples of the convergence map κ (the projected mass) given the noisy, masked "
    "shear γ of background galaxies. Press **Run** and watch the chains cool from noise to maps that "
    "agree with the data *and* with the prior."
)

STAGES: dict[str, str] = {
    "data": (
        "**Data.** Weak lensing shears galaxy images: γ = Pκ + n, with P the Kaiser–Squires operator "
        "(a phase in Fourier space) and n shape noise of std σ_e/√(n_gal·A_pix) per pixel. Masked pixels "
        "(stars, chip gaps, survey edges) carry no shear."
    ),
    "likelihood": (
        "**Likelihood.** log p(γ|κ) = −½ Σ (Pκ − γ)² / σ_n² over observed pixels. It constrains the "
        "E-mode of κ where there are galaxies, but not the mean (mass-sheet degeneracy) nor the holes."
    ),
    "prior": (
        "**Prior.** The Gaussian prior has the theory power spectrum C_ℓ (pyccl); the hybrid prior adds a "
        "neural network that learned the non-Gaussian residual score of simulated lognormal maps. "
        "Press **Compare priors** to run both on the same data and seed, side by side."
    ),
    "score": (
        "**Score.** HMC here needs only gradients: ∇log p(κ|γ) = ∇log p(γ|κ) + ∇log p(κ). For a network "
        "prior there is no log-density, so the Metropolis test integrates the score along the move."
    ),
    "annealing": (
        "**Annealing.** Sampling starts from a blurred problem: the prior convolved with noise of std σ and "
        "the likelihood with extra variance σ². σ decreases level by level (see the schedule plot) to "
        "σ_min, where the chains sample the real posterior; a final Tweedie step removes the last σ. "
        "With the hybrid prior each new level starts with a reverse-diffusion step, and HMC moves each "
        "Fourier mode by at most about σ: the network only learned the modes that the noise σ dominates, so "
        "the large-scale structure is fixed while σ passes through it, as in diffusion models."
    ),
    "results": (
        "**Results.** The posterior mean is smoother than any single chain; std shows where data are "
        "missing; mean/std is a significance map. The chains' power spectrum should follow the theory."
    ),
}


def stage_text(stage: str) -> str:
    """The explanation of one stage; raises ``ValueError`` naming unknown stages."""
    try:
        return STAGES[stage]
    except KeyError:
        raise ValueError(f"stage must be one of {sorted(STAGES)}, got {stage!r}") from None
