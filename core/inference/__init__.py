"""Inference: from a likelihood and a prior score to posterior samples.

* :mod:`.likelihood` — the shear likelihood −½ Σ_obs |Pκ − γ|² / (σ_pix² + σ²), tempered by the level σ.
* :mod:`.posterior` — the posterior score ∇log p_σ(κ) + ∇log p_σ(γ | κ).
* :mod:`.schedules` — σ schedules σ_0 ≥ … ≥ σ_{L−1}.
* :mod:`.kernels` — TFP transition kernels (score HMC, Langevin, annealing, predictor, step-size adaptation,
  metrics, denoising).
* :mod:`.samplers` — posterior samplers (one class per method) and their TensorFlow-free registry.
* :mod:`.prior_sampling` — prior samples by reverse variance-exploding diffusion.
* :mod:`.driver` — runs any sampler in time-sized compiled chunks as a :class:`~core.inference.driver.Snapshot` stream.
"""
