"""Inference: from a likelihood and a prior score to posterior samples.

* :mod:`.likelihood` — the shear likelihood −½ Σ_obs |Pκ − γ|² / (σ_pix² + σ²), tempered by the level σ.
* :mod:`.posterior` — the posterior score ∇log p_σ(κ) + ∇log p_σ(γ | κ).
* :mod:`.schedules` — σ schedules σ_0 ≥ … ≥ σ_{L−1}.
* :mod:`.kernels` — TFP transition kernels (score HMC, Langevin, annealing, metrics, denoising).
* :mod:`.prior_sampling` — prior samples by reverse variance-exploding diffusion.
* :mod:`.driver` — the chunked sampling loop and its :class:`~core.inference.driver.Snapshot` stream.
"""
