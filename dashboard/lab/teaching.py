"""Short teaching texts beside each view of the 2-D lab (what the student should notice); switchable off."""
from __future__ import annotations

__all__ = ["TEXTS"]

TEXTS: dict[str, str] = {
    "target": (
        "**What you see.** The background is the target smoothed with Gaussian noise of width σ, "
        "π_σ = π ∗ N(0, σ²I); the dots are the chains. At large σ the target is one wide blob and every chain "
        "moves freely; as σ shrinks the structure appears and the chains must already sit in the right places. "
        "The white arrows are the score ∇log π_σ: they point uphill, towards more probable regions."
    ),
    "trajectory": (
        "**One proposal, up close.** The line is the last leapfrog trajectory of the ringed chain: HMC follows "
        "the score like a ball rolling on the landscape −log π_σ. Green: the Metropolis test accepted it; red: "
        "rejected, the chain stays put. Raise the step size and watch red trajectories multiply."
    ),
    "marginals": (
        "**Are the samples right?** Histograms of the last frames at this σ against the exact marginal densities "
        "(black). With too few levels or steps per level, the histograms lag behind the curve."
    ),
    "diagnostics": (
        "**Numbers.** Acceptance rate of the Metropolis test (a Langevin sampler without a test always shows 1). "
        "Energy distance between the chains and exact samples of π_σ: it drops to ~0 when the chains are "
        "distributed as the target — on the bimodal target it stays high without annealing."
    ),
    "schedule": (
        "**The annealing schedule.** σ per level; the red dot is where the sampler is now. Past the last level "
        "the chains keep sampling at σ_min."
    ),
    "samplers": (
        "**Samplers** (the map mode's own): *hmc* — leapfrog trajectories + Metropolis test; *mala* — one Langevin "
        "step + Metropolis test; *ula* — Langevin without a test (biased, never rejects); *pc* — reverse diffusion "
        "from σ_max to σ_min with MALA corrector steps; *dps* / *mmps* — reverse diffusion of the prior guided by "
        "the measurement (inverse problem only): DPS ignores the denoiser's uncertainty, MMPS includes it."
    ),
    "learned": (
        "**Learn the score, then sample.** *Train* fits a small neural network s_θ(x, σ) by denoising score "
        "matching on exact samples of the target, then runs the same sampler with it. Where the density is "
        "high the orange (learned) arrows match the white (exact) ones; far from the data the network has never "
        "been trained and they disagree — that is what the map mode's learned prior does in 4096 dimensions."
    ),
}
