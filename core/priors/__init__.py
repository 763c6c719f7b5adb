"""Priors p(κ) through their scores ∇log p_σ(κ) at noise level σ.

* :mod:`.gaussian` — the exact Gaussian prior of the theory C_ℓ: s_G(κ, σ) = −F⁻¹[F κ / (P_k + σ²)].
* :mod:`.network` — the σ-conditioned residual U-Net r_θ(κ, σ).
* :mod:`.hybrid` — the hybrid prior s = s_G + r_θ (filtered to the noise-dominated modes), weights and metadata.
* :mod:`.training` — denoising score matching: E‖u + σ s(κ + σu, σ)‖².
"""
